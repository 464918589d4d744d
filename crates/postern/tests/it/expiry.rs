//! Secret rotation with overlap and key expiry: two keys of one instance authenticate at once; a
//! key given an expiry stops at that time (Basic, token endpoint, bearer tokens, certificates),
//! on every node; credentials ending soon are listed (API, CLI, metrics).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::Method;
use serde_json::{Value, json};

use crate::fixture::{Server, basic};

/// Now, Unix ms.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .expect("clock after 1970")
}

/// Unix ms as RFC 3339 UTC (seconds precision).
fn rfc3339(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)).expect("time");
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Polls `f` until it is true or `limit` passes.
async fn eventually<F, Fut>(limit: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

async fn set_expiry(s: &Server, instance: &str, key: &str, at: Value) -> (u16, Value) {
    s.admin(
        Method::PATCH,
        &format!("/admin/v1/service-instances/{instance}/keys/{key}"),
        Some(json!({ "expires-at": at })),
    )
    .await
}

async fn token_request(s: &Server, id: &str, secret: &str) -> (u16, Value) {
    let resp = s
        .http
        .post(s.at("/oauth/token"))
        .header(
            "authorization",
            format!("Basic {}", STANDARD.encode(format!("{id}:{secret}"))),
        )
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .expect("token request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The value of one sample line, e.g. `postern_auth_failures_total{reason="expired"}`.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[tokio::test]
async fn two_keys_overlap_and_an_expired_key_stops_at_its_time() {
    let s = Server::start().await;
    let (id, old) = s.orders_flow().await;
    let (id2, new) = s.key("orders", "k2").await;
    assert_eq!(id, id2, "keys of one instance share the client id");
    let (old_auth, new_auth) = (basic(&id, &old), basic(&id, &new));
    // Both keys are live at once.
    for auth in [&old_auth, &new_auth] {
        let r = s.call("/orders", Some(auth), "x").await;
        assert_eq!(r.status(), 200);
    }

    // Bad changes are refused in the API's error shape.
    for (body, status) in [
        (json!({ "expires-at": "tomorrow" }), 400),
        (json!({ "expires-at": 5 }), 400),
        (json!({ "expires-at": "2026-12-01T00:00:00" }), 400),
        (json!({}), 422),
        (json!({ "expires-at": null, "other": 1 }), 422),
    ] {
        let (st, v) = s
            .admin(
                Method::PATCH,
                "/admin/v1/service-instances/orders/keys/k1",
                Some(body.clone()),
            )
            .await;
        assert_eq!(st, status, "{body}: {v}");
        assert!(v["error"].is_string() && v["message"].is_string(), "{v}");
    }
    let (st, v) = set_expiry(&s, "orders", "nope", json!("2099-01-01T00:00:00Z")).await;
    assert_eq!(st, 404, "{v}");
    let (st, v) = s
        .admin(
            Method::POST,
            "/admin/v1/service-instances/orders/keys",
            Some(json!({ "name": "born-expired", "parameters": { "expires-at": "2020-01-01T00:00:00Z" } })),
        )
        .await;
    assert_eq!(st, 400, "a key cannot be created expired: {v}");

    // The old key gets an expiry a few seconds ahead; until then it works and its tokens are
    // capped at that time.
    let expires = now_ms() + 6_000;
    let (st, v) = set_expiry(&s, "orders", "k1", json!(rfc3339(expires))).await;
    assert_eq!(st, 200, "{v}");
    let expires = expires.div_euclid(1000) * 1000;
    assert_eq!(
        v["expiresAt"].as_str().map(|t| &t[..19]),
        Some(&rfc3339(expires)[..19])
    );
    let before = now_ms();
    let (st, tok) = token_request(&s, &id, &old).await;
    if st == 200 {
        let expires_in = tok["expires_in"].as_i64().expect("expires_in");
        assert!(
            (1..=(expires - before) / 1000 + 1).contains(&expires_in),
            "token validity capped at the key's expiry: {expires_in}"
        );
        let claims = tok["access_token"]
            .as_str()
            .expect("token")
            .split('.')
            .nth(1)
            .expect("payload");
        let claims: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(claims)
                .expect("base64"),
        )
        .expect("claims");
        assert!(
            claims["exp"].as_i64().expect("exp") <= expires / 1000 + 1,
            "exp {} beyond the key's expiry {expires}",
            claims["exp"]
        );
    } else {
        assert!(
            now_ms() >= expires,
            "the key was refused before its expiry: {st} {tok}"
        );
    }
    let token = tok["access_token"].as_str().map(str::to_owned);

    // From the expiry on: Basic 401, token endpoint 401 invalid_client, its token refused; the
    // new key goes on.
    assert!(
        eventually(Duration::from_secs(60), || async {
            s.call("/orders", Some(&old_auth), "x").await.status() == 401
        })
        .await,
        "the expired key is refused"
    );
    assert!(now_ms() >= expires, "refused only from its expiry on");
    let r = s.call("/orders", Some(&new_auth), "x").await;
    assert_eq!(r.status(), 200, "the second key still works");
    let (st, v) = token_request(&s, &id, &old).await;
    assert_eq!(st, 401, "{v}");
    assert_eq!(v["error"], "invalid_client");
    if let Some(token) = token {
        let r = s
            .http
            .post(s.at("/http/orders"))
            .bearer_auth(token)
            .body("x")
            .send()
            .await
            .expect("call");
        assert_eq!(r.status(), 401, "a token does not outlive its key");
    }
    let m = s.metrics().await;
    assert!(
        sample(&m, "postern_auth_failures_total{reason=\"expired\"}").is_some_and(|n| n >= 2.0),
        "{m}"
    );

    // Listed with its expiry; the new key without.
    let (_, keys) = s
        .admin(Method::GET, "/admin/v1/service-instances/orders/keys", None)
        .await;
    let find = |name: &str| {
        keys.as_array()
            .and_then(|a| a.iter().find(|k| k["name"] == name))
            .cloned()
    };
    assert!(find("k1").expect("k1")["expiresAt"].is_string(), "{keys}");
    assert!(find("k2").expect("k2").get("expiresAt").is_none(), "{keys}");

    // Clearing the expiry brings the key back at once; setting a past time stops it at once.
    let (st, v) = set_expiry(&s, "orders", "k1", Value::Null).await;
    assert_eq!(st, 200, "{v}");
    assert!(v.get("expiresAt").is_none(), "{v}");
    assert_eq!(s.call("/orders", Some(&old_auth), "x").await.status(), 200);
    let (st, _) = set_expiry(&s, "orders", "k1", json!("2020-01-01T00:00:00+01:00")).await;
    assert_eq!(st, 200);
    assert_eq!(s.call("/orders", Some(&old_auth), "x").await.status(), 401);

    // The changes are audited with the expiry before and after.
    let (_, audit) = s.admin(Method::GET, "/admin/v1/audit?limit=200", None).await;
    let updates: Vec<&Value> = audit
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["action"] == "service-key.update" && e["target"] == "orders/k1")
        .collect();
    assert_eq!(updates.len(), 3, "{audit}");
    assert_eq!(updates[0]["detail"]["expires-at"], "2019-12-31T23:00:00.000Z");
    assert_eq!(updates[0]["detail"]["expires-at-before"], Value::Null);
    assert_eq!(updates[1]["detail"]["expires-at"], Value::Null);
    assert!(updates[1]["detail"]["expires-at-before"].is_string());

    // Rotation done: deleting the old key leaves the new one working.
    let (st, _) = s
        .admin(Method::DELETE, "/admin/v1/service-instances/orders/keys/k1", None)
        .await;
    assert_eq!(st, 204);
    assert_eq!(s.call("/orders", Some(&new_auth), "x").await.status(), 200);
    assert_eq!(s.call("/orders", Some(&old_auth), "x").await.status(), 401);
}

/// Logs into the web console as the bootstrap admin; returns the session cookie.
async fn console_login(s: &Server) -> String {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let cookie_of = |r: &reqwest::Response, name: &str| {
        r.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|c| {
                c.strip_prefix(&format!("{name}="))?
                    .split(';')
                    .next()
                    .map(str::to_owned)
            })
    };
    let form = http.get(s.at("/console/login")).send().await.expect("login page");
    let token = cookie_of(&form, "postern_login").expect("login token");
    let r = http
        .post(s.at("/console/login"))
        .header("cookie", format!("postern_login={token}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "user=admin&password={}&login_token={token}",
            crate::fixture::ADMIN_PASSWORD
        ))
        .send()
        .await
        .expect("login");
    let session = cookie_of(&r, "postern_console").expect("session cookie");
    format!("postern_console={session}")
}

fn mtls_client(s: &Server, cert_and_key_pem: &str) -> reqwest::Client {
    let ca = std::fs::read(s.dir.join("tls/ca.pem")).expect("ca");
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("pem"))
        .identity(reqwest::Identity::from_pem(cert_and_key_pem.as_bytes()).expect("identity"))
        .build()
        .expect("client")
}

#[tokio::test]
async fn credentials_ending_soon_are_listed_and_an_expired_certificate_key_is_refused() {
    let s = Server::start().await;
    s.orders_flow().await;
    let day = 86_400_000;
    for (name, at) in [("soon", now_ms() + 10 * day), ("late", now_ms() + 100 * day)] {
        let (st, v) = s
            .admin(
                Method::POST,
                "/admin/v1/service-instances/orders/keys",
                Some(json!({ "name": name, "parameters": { "expires-at": rfc3339(at) } })),
            )
            .await;
        assert_eq!(st, 201, "{v}");
    }
    let (st, doc) = s
        .admin(
            Method::POST,
            "/admin/v1/service-instances/orders/keys",
            Some(json!({ "name": "cert", "parameters": { "key-type": "certificate", "validity": 20, "key-length": 256 } })),
        )
        .await;
    assert_eq!(st, 201, "{doc}");

    let names = |v: &Value| -> Vec<(String, String)> {
        v["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| {
                (
                    i["kind"].as_str().expect("kind").to_owned(),
                    i["name"].as_str().expect("name").to_owned(),
                )
            })
            .collect()
    };
    let (st, v) = s.admin(Method::GET, "/admin/v1/expiring?days=30", None).await;
    assert_eq!(st, 200, "{v}");
    let listed = names(&v);
    let pos = |kind: &str, name: &str| listed.iter().position(|(k, n)| k == kind && n == name);
    let soon = pos("service-key", "orders/soon").expect("the key ending in 10 days");
    let cert = pos("certificate-key", "orders/cert").expect("the certificate key");
    assert!(soon < cert, "soonest first: {listed:?}");
    assert!(pos("service-key", "orders/late").is_none(), "{listed:?}");
    let item = &v["items"][soon];
    assert!(
        [9, 10].contains(&item["daysLeft"].as_i64().expect("days")),
        "{item}"
    );
    assert_eq!(item["expired"], false);
    assert!(
        v["items"][cert]["subject"]
            .as_str()
            .expect("subject")
            .contains("orders/cert")
    );
    // The default window is 30 days; a wider one takes the later key; bad windows are refused.
    let (_, default) = s.admin(Method::GET, "/admin/v1/expiring", None).await;
    assert_eq!(names(&default), listed);
    let (_, wide) = s.admin(Method::GET, "/admin/v1/expiring?days=200", None).await;
    assert!(names(&wide).contains(&("service-key".into(), "orders/late".into())));
    for bad in ["days=3651", "days=-1", "days=x", "other=1"] {
        let (st, v) = s
            .admin(Method::GET, &format!("/admin/v1/expiring?{bad}"), None)
            .await;
        assert_eq!(st, 400, "{bad}: {v}");
        assert!(v["message"].is_string(), "{v}");
    }

    // The CLI lists them too, and changes an expiry.
    let out = s.cli_ok(&["expiring", "--days", "30"]);
    assert!(
        out.contains("orders/soon") && out.contains("orders/cert"),
        "{out}"
    );
    assert!(!out.contains("orders/late"), "{out}");
    let out = s.cli_ok(&["--json", "expiring", "--days", "200"]);
    let v: Value = serde_json::from_str(&out).expect("JSON");
    assert!(names(&v).contains(&("service-key".into(), "orders/late".into())));
    let out = s.cli_ok(&["service-key", "update", "orders", "late", "--no-expiry"]);
    assert!(out.contains("does not expire"), "{out}");
    let (_, wide) = s.admin(Method::GET, "/admin/v1/expiring?days=200", None).await;
    assert!(!names(&wide).contains(&("service-key".into(), "orders/late".into())));
    let at = rfc3339(now_ms() + 50 * day);
    let out = s.cli_ok(&["service-key", "update", "orders", "late", "--expires-at", &at]);
    assert!(out.contains("expires at"), "{out}");
    let out = s.cli_ok(&["service-key", "list", "orders"]);
    assert!(out.contains("expiresAt") && out.contains(&at[..10]), "{out}");
    let (ok, _, err) = s.cli(&["service-key", "update", "orders", "late"]);
    assert!(!ok, "either --expires-at or --no-expiry: {err}");

    // Metrics: per kind within 30 days, and the seconds to the earliest end.
    let m = s.metrics().await;
    assert_eq!(
        sample(&m, "postern_credentials_expiring{kind=\"service-key\"}"),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, "postern_credentials_expiring{kind=\"certificate-key\"}"),
        Some(1.0),
        "{m}"
    );
    let next = sample(&m, "postern_credentials_next_expiry_seconds").expect("next expiry");
    assert!(next > 9.0 * 86_400.0 && next <= 10.0 * 86_400.0, "{next}");

    // The console shows them above the instances, with days left.
    let cookie = console_login(&s).await;
    let page = s
        .http
        .get(s.at("/console/security/instances"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("instances page");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(html.contains("Expiring soon"), "{html}");
    // minijinja escapes `/` in text.
    for (name, shown) in [("soon", true), ("cert", true), ("late", false)] {
        assert_eq!(
            html.contains(&format!("orders&#x2f;{name}")),
            shown,
            "{name}: {html}"
        );
    }
    let page = s
        .http
        .get(s.at("/console/security/instances/orders"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("instance page");
    let html = page.text().await.expect("html");
    assert!(html.contains(&at[..10]), "the key's expiry is shown: {html}");

    // The certificate key works over mTLS until it is given a past expiry, then it is refused
    // like an unknown certificate.
    let o = &doc["oauth"];
    let identity = format!(
        "{}{}",
        o["certificate"].as_str().expect("chain"),
        o["key"].as_str().expect("key")
    );
    let c = mtls_client(&s, &identity);
    let post = || async {
        c.post(format!("{}/http/orders", s.https_url))
            .body("x")
            .send()
            .await
            .expect("mTLS call")
            .status()
    };
    assert_eq!(post().await, 200);
    let (st, v) = set_expiry(&s, "orders", "cert", json!(rfc3339(now_ms() - 1000))).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(post().await, 401);
    let (_, v) = s.admin(Method::GET, "/admin/v1/expiring?days=0", None).await;
    let ended = v["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["name"] == "orders/cert")
        .expect("an ended key is listed")
        .clone();
    assert_eq!(ended["expired"], true, "{ended}");
    assert!(ended["daysLeft"].as_i64().expect("days") < 0, "{ended}");
}

/// On PostgreSQL: an expiry set on node A is honored on node B without a restart.
#[tokio::test]
async fn an_expiry_set_on_one_node_is_honored_on_another() {
    let nodes = Server::start_nodes(2).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let (id, secret) = a.orders_flow().await;
    let auth = basic(&id, &secret);
    assert!(
        eventually(Duration::from_secs(30), || async {
            b.call("/orders", Some(&auth), "x").await.status() == 200
        })
        .await,
        "the key from A works on B"
    );
    let expires = now_ms() + 3_000;
    let (st, v) = set_expiry(a, "orders", "k1", json!(rfc3339(expires))).await;
    assert_eq!(st, 200, "{v}");
    assert!(
        eventually(Duration::from_secs(60), || async {
            b.call("/orders", Some(&auth), "x").await.status() == 401
        })
        .await,
        "B refuses the key once its expiry set on A has passed"
    );
    assert!(now_ms() >= expires - 1000, "refused on B only from the expiry on");
    let (_, keys) = b
        .admin(Method::GET, "/admin/v1/service-instances/orders/keys", None)
        .await;
    assert!(keys[0]["expiresAt"].is_string(), "{keys}");
}
