//! Brute-force protection through the real server: callers come from different loopback
//! addresses (127.0.0.x), so the per-address, per-pair and per-identity rules can be seen apart.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use reqwest::StatusCode;

use crate::fixture::{Server, basic};

/// A client whose connections come from 127.0.0.`last`.
fn from(last: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
        .build()
        .expect("client")
}

async fn call(s: &Server, client: &reqwest::Client, auth: &[u8]) -> reqwest::Response {
    client
        .post(s.at("/http/orders"))
        .header(
            "authorization",
            reqwest::header::HeaderValue::from_bytes(auth).expect("header"),
        )
        .body("x")
        .send()
        .await
        .expect("call")
}

#[tokio::test]
async fn failed_logins_lock_out_the_guesser_not_the_owner() {
    let s = Server::start_with(&[
        "--lockout-after",
        "3",
        "--lockout-identity-after",
        "8",
        "--lockout-address-after",
        "30",
    ])
    .await;
    let (id, secret) = s.orders_flow().await;
    let good = basic(&id, &secret);
    let bad = basic(&id, "wrong-secret");
    let owner = from(1);
    assert_eq!(call(&s, &owner, &good).await.status(), 200);

    // Three wrong secrets from .2 lock .2 out of this identity: even the right secret gets 429
    // with Retry-After, without being checked; .1 is not affected.
    let guesser = from(2);
    for _ in 0..3 {
        assert_eq!(call(&s, &guesser, &bad).await.status(), 401);
    }
    let locked = call(&s, &guesser, &good).await;
    assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(locked.headers()["retry-after"], "1");
    let body: serde_json::Value = locked.json().await.expect("json");
    assert_eq!(body["error"], "too_many_attempts");
    assert_eq!(call(&s, &owner, &good).await.status(), 200);
    // The lock ends after Retry-After; a success then ends the count.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(call(&s, &guesser, &good).await.status(), 200);
    assert_eq!(call(&s, &guesser, &bad).await.status(), 401);

    // Spraying the identity from many addresses locks it for addresses it was never used
    // from, but its owner's address keeps working.
    for last in 10..14 {
        assert_eq!(call(&s, &from(last), &bad).await.status(), 401);
    }
    assert_eq!(
        call(&s, &from(40), &good).await.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "an unknown address is locked out of a sprayed identity"
    );
    assert_eq!(call(&s, &owner, &good).await.status(), 200, "the owner is not");

    // The token endpoint and the admin API count failures too (another client id: this one is
    // locked for new addresses now).
    let token = |c: reqwest::Client, secret: &'static str| {
        let (url, id) = (s.at("/oauth/token"), "sb-someone-else".to_owned());
        async move {
            c.post(url)
                .basic_auth(id, Some(secret))
                .header("content-type", "application/x-www-form-urlencoded")
                .body("grant_type=client_credentials")
                .send()
                .await
                .expect("token")
        }
    };
    let t = from(3);
    for _ in 0..3 {
        assert_eq!(token(t.clone(), "nope").await.status(), 401);
    }
    let r = token(t.clone(), "nope").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key("retry-after"));
    let a = from(4);
    for _ in 0..3 {
        let r = a
            .get(s.at("/admin/v1/user-roles"))
            .basic_auth("admin", Some("not-the-password"))
            .send()
            .await
            .expect("admin");
        assert_eq!(r.status(), 401);
    }
    let r = a
        .get(s.at("/admin/v1/user-roles"))
        .basic_auth("admin", Some(crate::fixture::ADMIN_PASSWORD))
        .send()
        .await
        .expect("admin");
    assert_eq!(
        r.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "locked before the password is checked"
    );

    // Lockouts are counted in the metrics.
    let metrics = s.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.contains("locked_out") && !l.trim_end().ends_with(" 0")),
        "{metrics}"
    );
}

#[tokio::test]
async fn lockout_can_be_switched_off() {
    let s = Server::start_with(&["--lockout-after", "0"]).await;
    let (id, secret) = s.orders_flow().await;
    let c = from(5);
    for _ in 0..20 {
        assert_eq!(call(&s, &c, &basic(&id, "wrong")).await.status(), 401);
    }
    assert_eq!(call(&s, &c, &basic(&id, &secret)).await.status(), 200);
}

#[tokio::test]
async fn instances_limit_how_fast_each_key_sends() {
    let s = Server::start().await;
    s.sender("Orders.Send", "other").await;
    let (st, v) = s
        .admin(
            reqwest::Method::POST,
            "/admin/v1/service-instances",
            Some(serde_json::json!({ "name": "limited", "plan": "integration-flow",
                "parameters": { "roles": ["Orders.Send"], "rate-limit": { "requests-per-second": 1, "burst": 2 } } })),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let (k1, s1) = s.key("limited", "k1").await;
    let (k2, s2) = s.key("limited", "k2").await;
    let (other_id, other_secret) = s.key("other", "k2").await;
    let (st, b) = s
        .deploy(&crate::fixture::echo_user_flow(
            "orders-in",
            "/orders",
            "Orders.Send",
        ))
        .await;
    assert_eq!(st, 201, "{b}");

    // Six at once from one key: the burst of two, then 429 with Retry-After, whatever the pace
    // of this machine (each second refills one).
    let started = std::time::Instant::now();
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..6 {
        let r = s.call("/orders", Some(&basic(&k1, &s1)), "x").await;
        if r.status() == 429 {
            retry_after = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().expect("text").to_owned());
        }
        statuses.push(r.status().as_u16());
    }
    let allowed = statuses.iter().filter(|s| **s == 200).count();
    let refilled = started.elapsed().as_secs() as usize + 1;
    assert!(allowed >= 2 && allowed <= 2 + refilled, "{statuses:?}");
    if refilled < 4 {
        assert!(statuses.contains(&429), "{statuses:?}");
        assert_eq!(retry_after.as_deref(), Some("1"));
    }
    // Each key has its own bucket; other instances have none.
    assert_eq!(s.call("/orders", Some(&basic(&k2, &s2)), "x").await.status(), 200);
    for _ in 0..10 {
        assert_eq!(
            s.call("/orders", Some(&basic(&other_id, &other_secret)), "x")
                .await
                .status(),
            200
        );
    }
    let metrics = s.metrics().await;
    assert!(
        !metrics.contains("postern_rate_limited_total 0\n") || refilled >= 4,
        "{metrics}"
    );

    // Removed: the key sends freely at once.
    let (st, v) = s
        .admin(
            reqwest::Method::PATCH,
            "/admin/v1/service-instances/limited",
            Some(serde_json::json!({ "parameters": { "rate-limit": null } })),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    for _ in 0..6 {
        assert_eq!(s.call("/orders", Some(&basic(&k1, &s1)), "x").await.status(), 200);
    }
    for bad in [
        serde_json::json!({ "requests-per-second": 0 }),
        serde_json::json!({ "requests-per-second": 5, "burst": 2 }),
        serde_json::json!({ "requests-per-second": 5, "burst": 100 }),
        serde_json::json!({ "per-second": 5 }),
        serde_json::json!(7),
    ] {
        let (st, v) = s
            .admin(
                reqwest::Method::PATCH,
                "/admin/v1/service-instances/limited",
                Some(serde_json::json!({ "parameters": { "rate-limit": bad } })),
            )
            .await;
        assert_eq!(st, 400, "{bad}: {v}");
        assert!(v["message"].as_str().expect("m").contains("rate-limit"), "{v}");
    }
}
