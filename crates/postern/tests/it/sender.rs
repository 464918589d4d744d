//! The sender endpoint: Basic with service keys and technical users, every malformed
//! credential answered 401 (never 500), role checks, limits, routing.

use base64::Engine;
use reqwest::Method;
use serde_json::json;

use crate::fixture::{Server, basic, echo_user_flow};

#[tokio::test]
async fn service_key_basic_auth_and_failures() {
    let s = Server::start().await;
    let (id, secret) = s.orders_flow().await;

    let ok = s.call("/orders", Some(&basic(&id, &secret)), "<Order/>").await;
    assert_eq!(ok.status(), 200);
    assert!(ok.headers().contains_key("sap_messageprocessinglogid"));
    assert_eq!(ok.text().await.expect("body"), format!("user={id}"));

    let b64 = |raw: &[u8]| {
        let mut v = b"Basic ".to_vec();
        v.extend(base64::engine::general_purpose::STANDARD.encode(raw).bytes());
        v
    };
    let long = {
        let mut v = b"Basic ".to_vec();
        v.extend(std::iter::repeat_n(b'A', 10 * 1024));
        v
    };
    let cases: Vec<(&str, Option<Vec<u8>>)> = vec![
        ("no header", None),
        ("wrong secret", Some(basic(&id, "wrong"))),
        ("unknown clientid", Some(basic("sb-nobody", &secret))),
        ("bad base64", Some(b"Basic %%%not-base64%%%".to_vec())),
        ("no colon", Some(b64(b"nocolonhere"))),
        ("empty", Some(b"".to_vec())),
        ("empty basic", Some(b"Basic ".to_vec())),
        ("10 KiB", Some(long)),
        ("non-UTF-8", Some(b64(&[0xff, 0xfe, b':', 0xfd]))),
        ("bearer", Some(b"Bearer abc.def.ghi".to_vec())),
        ("other scheme", Some(b"Digest username=x".to_vec())),
    ];
    for (name, header) in cases {
        let r = s.call("/orders", header.as_deref(), "x").await;
        assert_eq!(r.status(), 401, "{name}");
        let challenges: Vec<&str> = r
            .headers()
            .get_all("www-authenticate")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if name == "bearer" {
            assert_eq!(
                challenges,
                ["Bearer realm=\"postern\", error=\"invalid_token\""],
                "{name}"
            );
        } else {
            assert_eq!(
                challenges,
                ["Basic realm=\"postern\"", "Bearer realm=\"postern\""],
                "{name}"
            );
        }
        let body: serde_json::Value = r.json().await.expect("json error body");
        assert_eq!(body["error"], "unauthorized", "{name}");
        assert!(
            body["messageId"].as_str().is_some_and(|m| m.len() == 28),
            "{name}"
        );
        assert!(!body.to_string().contains(&secret), "{name}");
    }
    let metrics = s.metrics().await;
    assert!(
        metrics.contains("postern_auth_failures_total{reason=\"bad_secret\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("postern_auth_failures_total{reason=\"malformed\"} 7"),
        "{metrics}"
    );
}

#[tokio::test]
async fn roles_spoofing_limits_and_routing() {
    let s = Server::start().await;
    let (id, secret) = s.sender("Orders.Send", "orders").await;
    s.sender("Invoices.Send", "invoices").await;
    assert_eq!(
        s.deploy(&echo_user_flow("orders-in", "/orders", "Orders.Send"))
            .await
            .0,
        201
    );
    assert_eq!(
        s.deploy(&echo_user_flow("invoices-in", "/invoices", "Invoices.Send"))
            .await
            .0,
        201
    );
    let auth = basic(&id, &secret);

    // Authenticated, but the instance lacks the custom role of this channel.
    let r = s.call("/invoices", Some(&auth), "x").await;
    assert_eq!(r.status(), 403);
    assert!(r.headers().contains_key("sap_messageprocessinglogid"));
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["error"], "forbidden");
    assert!(
        body["message"]
            .as_str()
            .expect("message")
            .contains("Invoices.Send")
    );

    // A client cannot choose its own SapAuthenticatedUserName.
    let r = s
        .http
        .post(s.at("/http/orders"))
        .header("authorization", auth.clone())
        .header("SapAuthenticatedUserName", "someone-else")
        .body("x")
        .send()
        .await
        .expect("call");
    assert_eq!(r.text().await.expect("body"), format!("user={id}"));

    // Addresses are case-insensitive; unknown ones are 404 even without credentials.
    assert_eq!(s.call("/ORDERS", Some(&auth), "x").await.status(), 200);
    assert_eq!(s.call("/nothing-here", None, "x").await.status(), 404);
    let get = s
        .http
        .get(s.at("/http/orders"))
        .header("authorization", auth.clone())
        .send()
        .await
        .expect("get");
    assert_eq!(get.status(), 405);

    // Body limit (2048 in the test flow): by Content-Length and by a chunked stream.
    assert_eq!(
        s.call("/orders", Some(&auth), &"x".repeat(2048)).await.status(),
        200
    );
    let big = s.call("/orders", Some(&auth), &"x".repeat(2049)).await;
    assert_eq!(big.status(), 413);
    assert_eq!(
        big.json::<serde_json::Value>().await.expect("json")["error"],
        "payload_too_large"
    );
    assert_eq!(chunked_post(&s, "/http/orders", &auth, 10, 1000).await, 413);
    assert_eq!(chunked_post(&s, "/http/orders", &auth, 2, 1000).await, 200);

    // Undeployed flow: 404 from the next request on.
    assert_eq!(
        s.admin(Method::DELETE, "/admin/v1/flows/orders-in", None).await.0,
        204
    );
    assert_eq!(s.call("/orders", Some(&auth), "x").await.status(), 404);
}

/// Sends a chunked body (no Content-Length) over a raw connection; returns the status.
async fn chunked_post(s: &Server, path: &str, auth: &[u8], chunks: usize, size: usize) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = s.url.trim_start_matches("http://");
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n"
    )
    .into_bytes();
    req.extend_from_slice(b"Authorization: ");
    req.extend_from_slice(auth);
    req.extend_from_slice(b"\r\n\r\n");
    tcp.write_all(&req).await.expect("head");
    for _ in 0..chunks {
        let chunk = format!("{size:x}\r\n{}\r\n", "y".repeat(size));
        if tcp.write_all(chunk.as_bytes()).await.is_err() {
            break; // the server may answer 413 and close before reading everything
        }
    }
    let _ = tcp.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = tcp.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn deleted_key_and_instance_stop_working_at_once() {
    let s = Server::start().await;
    let (id, secret) = s.sender("Orders.Send", "orders").await;
    let (id2, secret2) = s.key("orders", "k2").await;
    assert_eq!(id, id2, "keys of one instance share its client id");
    assert_eq!(
        s.deploy(&echo_user_flow("orders-in", "/orders", "Orders.Send"))
            .await
            .0,
        201
    );
    assert_eq!(
        s.call("/orders", Some(&basic(&id, &secret)), "x").await.status(),
        200
    );
    assert_eq!(
        s.call("/orders", Some(&basic(&id, &secret2)), "x").await.status(),
        200
    );

    assert_eq!(
        s.admin(Method::DELETE, "/admin/v1/service-instances/orders/keys/k1", None)
            .await
            .0,
        204
    );
    assert_eq!(
        s.call("/orders", Some(&basic(&id, &secret)), "x").await.status(),
        401
    );
    assert_eq!(
        s.call("/orders", Some(&basic(&id, &secret2)), "x").await.status(),
        200
    );

    assert_eq!(
        s.admin(Method::DELETE, "/admin/v1/service-instances/orders", None)
            .await
            .0,
        204
    );
    assert_eq!(
        s.call("/orders", Some(&basic(&id, &secret2)), "x").await.status(),
        401
    );
}

#[tokio::test]
async fn technical_users_authenticate_with_passwords() {
    let s = Server::start().await;
    s.sender("Orders.Send", "orders").await;
    assert_eq!(
        s.deploy(&echo_user_flow("orders-in", "/orders", "Orders.Send"))
            .await
            .0,
        201
    );
    let (st, body) = s
        .admin(
            Method::POST,
            "/admin/v1/users",
            Some(json!({ "name": "Partner-A", "password": "partner-a-password", "roles": ["Orders.Send"] })),
        )
        .await;
    assert_eq!(st, 201, "{body}");
    assert_eq!(body["name"], "partner-a");
    assert!(body.get("password").is_none() && !body.to_string().contains("argon2"));
    for _ in 0..3 {
        let r = s
            .call("/orders", Some(&basic("Partner-A", "partner-a-password")), "x")
            .await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.expect("body"), "user=partner-a");
    }
    assert_eq!(
        s.call("/orders", Some(&basic("partner-a", "wrong-password!")), "x")
            .await
            .status(),
        401
    );
    // Removing the role turns 200 into 403 on the next request.
    let (st, _) = s
        .admin(
            Method::PATCH,
            "/admin/v1/users/partner-a",
            Some(json!({ "roles": [] })),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(
        s.call("/orders", Some(&basic("partner-a", "partner-a-password")), "x")
            .await
            .status(),
        403
    );
}
