//! Receivers against a real back end on loopback (a small axum server in the test that records
//! what it gets): `http` forwarding with headers and expressions, failures mapped to 502/504,
//! and `queue`: 202, delivery, retries, the dead letter and its retry, idempotent re-sends, and
//! every acknowledged message delivered exactly once after a SIGKILL.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use reqwest::Method as M;
use serde_json::{Value, json};

use crate::fixture::{Server, basic};

/// One request the back end received.
#[derive(Clone, Debug)]
struct Received {
    method: String,
    uri: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// How the back end answers.
#[derive(Clone, Copy, Debug)]
enum Mode {
    /// 201 with a body and a header.
    Ok,
    /// This status, always.
    Status(u16),
    /// Sleeps this long, then 200.
    Slow(Duration),
    /// 503 for the first n requests, then 200.
    FailFirst(usize),
}

#[derive(Default)]
struct Seen {
    received: Vec<Received>,
    attempts: usize,
}

/// The recording back end.
struct Backend {
    url: String,
    seen: Arc<Mutex<Seen>>,
    mode: Arc<Mutex<Mode>>,
}

impl Backend {
    async fn start(mode: Mode) -> Backend {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let mode = Arc::new(Mutex::new(mode));
        let (s, m) = (seen.clone(), mode.clone());
        let app =
            axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let (seen, mode) = (s.clone(), m.clone());
                async move {
                    let current = *mode.lock().expect("mode");
                    let attempt = {
                        let mut g = seen.lock().expect("seen");
                        g.attempts += 1;
                        g.attempts
                    };
                    let status = match current {
                        Mode::Ok => 201,
                        Mode::Status(s) => s,
                        Mode::Slow(d) => {
                            tokio::time::sleep(d).await;
                            200
                        }
                        Mode::FailFirst(n) if attempt <= n => 503,
                        Mode::FailFirst(_) => 201,
                    };
                    // Only what the back end took counts as received.
                    if status < 300 {
                        seen.lock().expect("seen").received.push(Received {
                            method: method.to_string(),
                            uri: uri.to_string(),
                            headers,
                            body: body.to_vec(),
                        });
                    }
                    (
                        StatusCode::from_u16(status).expect("status"),
                        [("x-backend", "seen"), ("content-type", "text/plain")],
                        format!("backend said {status}"),
                    )
                }
            });
        let app = app.layer(axum::extract::DefaultBodyLimit::disable());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Backend { url, seen, mode }
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().expect("mode") = mode;
    }

    fn received(&self) -> Vec<Received> {
        self.seen.lock().expect("seen").received.clone()
    }

    fn attempts(&self) -> usize {
        self.seen.lock().expect("seen").attempts
    }

    /// Waits until at least `n` requests were received (or 30 s), then a moment more, so that
    /// a second delivery of anything would show; the message ids received, in order.
    async fn ids_after(&self, n: usize) -> Vec<String> {
        for _ in 0..600 {
            if self.received().len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        self.received()
            .iter()
            .map(|r| {
                r.headers["sap_messageprocessinglogid"]
                    .to_str()
                    .expect("id")
                    .to_owned()
            })
            .collect()
    }
}

fn flow(id: &str, address: &str, receiver: &str) -> String {
    format!(
        "id: {id}\nsender:\n  adapter: https\n  address: {address}\n  roles: [Orders.Send]\nreceiver:\n{receiver}\n"
    )
}

async fn deployed(s: &Server, yaml: &str) {
    let (st, b) = s.deploy(yaml).await;
    assert_eq!(st, 201, "{b}");
}

fn guid_of(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("sap_messageprocessinglogid")
        .expect("MPL header")
        .to_str()
        .expect("text")
        .to_owned()
}

/// A message's MPL (written off the request path, so it may take a moment to appear).
async fn mpl(s: &Server, guid: &str) -> Value {
    for _ in 0..100 {
        let (st, v) = s
            .admin(M::GET, &format!("/api/v1/MessageProcessingLogs('{guid}')"), None)
            .await;
        if st == 200 {
            return v["d"].clone();
        }
        assert_eq!(st, 404, "{v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no MPL {guid}");
}

/// Polls a queued message until `done` holds (or fails after 20 s).
async fn queued_until(s: &Server, guid: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..400 {
        let (st, v) = s
            .admin(M::GET, &format!("/admin/v1/queue-messages/{guid}"), None)
            .await;
        assert_eq!(st, 200, "{v}");
        if done(&v) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("queued message {guid} never reached the expected state");
}

#[tokio::test]
async fn http_forwards_with_headers_and_partner_expressions() {
    let s = Server::start().await;
    let back = Backend::start(Mode::Ok).await;
    let (id, secret) = s.sender("Orders.Send", "orders").await;
    for (set, body) in [
        ("AuthorizedUsers", json!({"User": id, "Pid": "ACME"})),
        (
            "StringParameters",
            json!({"Pid": "ACME", "Id": "ReceiverPath", "Value": "acme-inbox"}),
        ),
    ] {
        let (st, v) = s.admin(M::POST, &format!("/api/v1/{set}"), Some(body)).await;
        assert_eq!(st, 201, "{v}");
    }
    let receiver = format!(
        "  http:\n    url: \"{}/in/${{partner.ReceiverPath}}?src=${{header.X-Source}}\"\n    headers: {{ X-Flow: orders-fwd }}\n    user_header: X-Sender-User\n    partner_header: X-Partner\n",
        back.url
    );
    let yaml = format!(
        "id: orders-fwd\nsender:\n  adapter: https\n  address: /fwd\n  roles: [Orders.Send]\nsteps:\n  - partner_authorization: {{ partner: {{ header: X-Partner-Id }} }}\nreceiver:\n{receiver}"
    );
    deployed(&s, &yaml).await;

    let resp = s
        .http
        .post(s.at("/http/fwd"))
        .header("authorization", basic(&id, &secret))
        .header("cookie", "session=private")
        .header("x-partner-id", "ACME")
        .header("x-source", "erp1")
        .header("content-type", "application/xml")
        .body("<Order/>")
        .send()
        .await
        .expect("call");
    assert_eq!(resp.status(), 201, "the back end's status reaches the sender");
    let guid = guid_of(&resp);
    assert_eq!(resp.headers()["x-backend"], "seen");
    assert_eq!(resp.text().await.expect("body"), "backend said 201");

    let got = back.received();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(
        (r.method.as_str(), r.uri.as_str()),
        ("POST", "/in/acme-inbox?src=erp1")
    );
    assert_eq!(r.body, b"<Order/>");
    let h = |n: &str| r.headers.get(n).map(|v| v.to_str().expect("text").to_owned());
    assert_eq!(h("x-flow").as_deref(), Some("orders-fwd"));
    assert_eq!(h("x-sender-user"), Some(id.clone()));
    assert_eq!(h("x-partner").as_deref(), Some("ACME"));
    assert_eq!(h("content-type").as_deref(), Some("application/xml"));
    assert_eq!(h("sap_messageprocessinglogid"), Some(guid.clone()));
    for private in ["authorization", "cookie", "sapauthenticatedusername"] {
        assert_eq!(h(private), None, "{private} must not reach the back end");
    }
    assert_eq!(mpl(&s, &guid).await["Status"], "COMPLETED");

    // A partner without the parameter: the URL cannot be built, nothing is sent.
    let (st, v) = s
        .admin(
            M::DELETE,
            "/api/v1/StringParameters(Pid='ACME',Id='ReceiverPath')",
            None,
        )
        .await;
    assert_eq!(st, 204, "{v}");
    let resp = s
        .http
        .post(s.at("/http/fwd"))
        .header("authorization", basic(&id, &secret))
        .header("x-partner-id", "ACME")
        .body("<Order/>")
        .send()
        .await
        .expect("call");
    assert_eq!(resp.status(), 500);
    let body: Value = resp.json().await.expect("json");
    assert!(
        body["message"]
            .as_str()
            .expect("m")
            .contains("partner ACME has no string parameter ReceiverPath"),
        "{body}"
    );
    assert_eq!(back.received().len(), 1, "nothing sent");
}

#[tokio::test]
async fn http_failures_are_502_and_504_with_failed_mpls() {
    let s = Server::start().await;
    let (id, secret) = s.sender("Orders.Send", "orders").await;
    let auth = basic(&id, &secret);
    let back = Backend::start(Mode::Status(500)).await;
    // A port nobody listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    deployed(
        &s,
        &flow(
            "down",
            "/down",
            &format!("  http: {{ url: \"http://127.0.0.1:{closed}/x?token=abc\" }}"),
        ),
    )
    .await;
    deployed(
        &s,
        &flow(
            "slow",
            "/slow",
            &format!("  http: {{ url: \"{}/slow\", timeout_ms: 300 }}", back.url),
        ),
    )
    .await;
    deployed(
        &s,
        &flow("err", "/err", &format!("  http: {{ url: \"{}/err\" }}", back.url)),
    )
    .await;

    let resp = s.call("/down", Some(&auth), "x").await;
    assert_eq!(resp.status(), 502);
    let guid = guid_of(&resp);
    let body: Value = resp.json().await.expect("json");
    let message = body["message"].as_str().expect("message");
    assert!(message.contains("could not be reached"), "{message}");
    assert!(
        !message.contains("token=abc"),
        "the URL's query stays out of errors: {message}"
    );
    let m = mpl(&s, &guid).await;
    assert_eq!(m["Status"], "FAILED");

    let resp = s.call("/err", Some(&auth), "x").await;
    assert_eq!(resp.status(), 502, "a back end's 5xx is a failed delivery");
    let body: Value = resp.json().await.expect("json");
    assert!(
        body["message"].as_str().expect("m").contains("answered 500"),
        "{body}"
    );

    back.set(Mode::Status(404));
    let resp = s.call("/err", Some(&auth), "x").await;
    assert_eq!(resp.status(), 404, "a back end's 4xx reaches the sender as it is");
    let guid = guid_of(&resp);
    assert_eq!(resp.text().await.expect("body"), "backend said 404");
    assert_eq!(mpl(&s, &guid).await["Status"], "FAILED");

    back.set(Mode::Slow(Duration::from_secs(3)));
    let resp = s.call("/slow", Some(&auth), "x").await;
    assert_eq!(resp.status(), 504);
    let body: Value = resp.json().await.expect("json");
    assert!(
        body["message"].as_str().expect("m").contains("within 300 ms"),
        "{body}"
    );

    // Bad receiver settings are refused at deploy, with the field named.
    for (receiver, field) in [
        ("  http: { url: \"ftp://example.com/x\" }", "receiver.http.url"),
        (
            "  http: { url: \"https://user:pw@example.com/x\" }",
            "receiver.http.url",
        ),
        (
            "  http: { url: \"https://example.com\", method: TRACE }",
            "receiver.http.method",
        ),
        (
            "  http: { url: \"https://example.com\", timeout_ms: 0 }",
            "receiver.http.timeout_ms",
        ),
        (
            "  http: { url: \"https://example.com\", ca: \"not pem\" }",
            "receiver.http.ca",
        ),
        (
            "  queue: { name: \"a b\", target: { http: { url: \"https://example.com\" } } }",
            "receiver.queue.name",
        ),
        (
            "  reply: {}\n  http: { url: \"https://example.com\" }",
            "receiver",
        ),
    ] {
        let (st, v) = s.deploy(&flow("bad", "/bad", receiver)).await;
        assert_eq!(st, 400, "{receiver}: {v}");
        assert!(
            v["message"].as_str().expect("message").contains(field),
            "{receiver}: {v}"
        );
    }
}

fn queue_flow(id: &str, address: &str, url: &str, extra: &str) -> String {
    flow(
        id,
        address,
        &format!(
            "  queue:\n    name: {id}\n    max_attempts: 3\n    retry_interval_ms: 100\n    max_retry_interval_ms: 200\n{extra}    target: {{ http: {{ url: \"{url}\", timeout_ms: 2000 }} }}\n"
        ),
    )
}

#[tokio::test]
async fn queue_acknowledges_then_delivers_retries_and_dead_letters() {
    let s = Server::start().await;
    let (id, secret) = s.sender("Orders.Send", "orders").await;
    let auth = basic(&id, &secret);
    let back = Backend::start(Mode::Ok).await;
    deployed(&s, &queue_flow("q1", "/q1", &format!("{}/q", back.url), "")).await;

    // Accepted (202) once stored, then delivered: the MPL goes PROCESSING → COMPLETED.
    let resp = s.call("/q1", Some(&auth), "<first/>").await;
    assert_eq!(resp.status(), 202);
    let first = guid_of(&resp);
    let v = queued_until(&s, &first, |v| v["status"] == "DELIVERED").await;
    assert_eq!(v["attempts"], 1);
    assert_eq!(mpl(&s, &first).await["Status"], "COMPLETED");
    let got = back.received();
    assert_eq!(got[0].body, b"<first/>");
    assert_eq!(got[0].headers["sap_messageprocessinglogid"], first.as_str());

    // Failing for a while: retried, then delivered.
    back.set(Mode::FailFirst(back.attempts() + 2));
    let second = guid_of(&s.call("/q1", Some(&auth), "<second/>").await);
    let v = queued_until(&s, &second, |v| v["status"] == "DELIVERED").await;
    assert_eq!(v["attempts"], 3, "{v}");
    assert_eq!(mpl(&s, &second).await["Status"], "COMPLETED");

    // Failing for good: the dead letter after max_attempts, FAILED, visible, and retryable.
    back.set(Mode::Status(503));
    let third = guid_of(&s.call("/q1", Some(&auth), "<third/>").await);
    let v = queued_until(&s, &third, |v| v["status"] == "DEAD").await;
    assert_eq!(v["attempts"], 3);
    assert!(
        v["lastError"].as_str().expect("error").contains("answered 503"),
        "{v}"
    );
    assert_eq!(v["lastHttpStatus"], 503);
    assert_eq!(v["body"]["text"], "<third/>");
    let m = mpl(&s, &third).await;
    assert_eq!(m["Status"], "FAILED");
    let (_, dead) = s
        .admin(M::GET, "/admin/v1/queue-messages?queue=q1&status=dead", None)
        .await;
    assert_eq!(dead.as_array().expect("list").len(), 1);
    let (_, queues) = s.admin(M::GET, "/admin/v1/queues", None).await;
    assert_eq!(queues[0]["name"], "q1");
    assert_eq!(queues[0]["messages"]["DEAD"], 1);
    assert_eq!(queues[0]["messages"]["DELIVERED"], 2);

    back.set(Mode::Ok);
    let out = s.cli_ok(&["queue", "retry", &third]);
    assert!(out.contains("due for delivery"), "{out}");
    queued_until(&s, &third, |v| v["status"] == "DELIVERED").await;
    assert_eq!(mpl(&s, &third).await["Status"], "COMPLETED");
    // Delivered is final.
    let (st, v) = s
        .admin(M::POST, &format!("/admin/v1/queue-messages/{third}/retry"), None)
        .await;
    assert_eq!(st, 409, "{v}");

    // A back end that refuses the message itself (4xx) is not retried: ESCALATED at once.
    back.set(Mode::Status(422));
    let fourth = guid_of(&s.call("/q1", Some(&auth), "<fourth/>").await);
    let v = queued_until(&s, &fourth, |v| v["status"] == "DEAD").await;
    assert_eq!(v["attempts"], 1);
    assert_eq!(mpl(&s, &fourth).await["Status"], "ESCALATED");
    let (st, _) = s
        .admin(M::DELETE, &format!("/admin/v1/queue-messages/{fourth}"), None)
        .await;
    assert_eq!(st, 204);
    assert_eq!(mpl(&s, &fourth).await["Status"], "DISCARDED");
    let (st, _) = s
        .admin(M::GET, "/admin/v1/queue-messages/no-such-guid", None)
        .await;
    assert_eq!(st, 404);
    let (st, _) = s
        .admin(M::GET, "/admin/v1/queue-messages?status=LOST", None)
        .await;
    assert_eq!(st, 400);
}

#[tokio::test]
async fn queue_answers_a_resent_message_with_the_first() {
    let s = Server::start().await;
    let (id, secret) = s.sender("Orders.Send", "orders").await;
    let back = Backend::start(Mode::Ok).await;
    let extra = "    idempotency: { header: Idempotency-Key, window_hours: 1 }\n";
    deployed(&s, &queue_flow("q2", "/q2", &format!("{}/q", back.url), extra)).await;
    let send = |key: &'static str| {
        s.http
            .post(s.at("/http/q2"))
            .header("authorization", basic(&id, &secret))
            .header("idempotency-key", key)
            .body(format!("order {key}"))
            .send()
    };
    let first = send("order-1").await.expect("send");
    assert_eq!(first.status(), 202);
    let guid = guid_of(&first);
    assert!(first.headers().get("postern-idempotent-replay").is_none());
    queued_until(&s, &guid, |v| v["status"] == "DELIVERED").await;
    let again = send("order-1").await.expect("send");
    assert_eq!(again.status(), 202);
    assert_eq!(
        guid_of(&again),
        guid,
        "the re-sent message is answered with the first one's id"
    );
    assert_eq!(again.headers()["postern-idempotent-replay"], "true");
    assert_eq!(again.headers()["postern-queue-status"], "DELIVERED");
    let other = send("order-2").await.expect("send");
    let other = guid_of(&other);
    assert_ne!(other, guid);
    queued_until(&s, &other, |v| v["status"] == "DELIVERED").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(back.received().len(), 2, "one delivery per key");
}

#[tokio::test]
async fn queue_delivers_every_acknowledged_message_once_after_sigkill_mid_load() {
    let s = Server::start().await;
    let (id, secret) = s.sender("Orders.Send", "orders").await;
    let auth = basic(&id, &secret);
    // The back end is down while messages are accepted: they wait in the queue.
    let back = Backend::start(Mode::Status(503)).await;
    let yaml = flow(
        "q3",
        "/q3",
        &format!(
            "  queue:\n    name: q3\n    max_attempts: 1000\n    retry_interval_ms: 50\n    max_retry_interval_ms: 200\n    target: {{ http: {{ url: \"{}/q\" }} }}\n",
            back.url
        ),
    );
    deployed(&s, &yaml).await;
    // Sixteen senders keep sending; SIGKILL lands while they do.
    let acknowledged = Arc::new(Mutex::new(HashSet::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut sends = tokio::task::JoinSet::new();
    for w in 0..16 {
        let (http, url, auth) = (s.http.clone(), s.at("/http/q3"), auth.clone());
        let (acknowledged, stop) = (acknowledged.clone(), stop.clone());
        sends.spawn(async move {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let sent = http
                    .post(&url)
                    .header(
                        "authorization",
                        reqwest::header::HeaderValue::from_bytes(&auth).expect("header"),
                    )
                    .body(format!("message {w}-{i}"))
                    .send()
                    .await;
                match sent {
                    // Only a 202 the sender received counts as acknowledged.
                    Ok(resp) if resp.status() == 202 => {
                        acknowledged.lock().expect("set").insert(guid_of(&resp));
                    }
                    Ok(resp) => panic!("unexpected {}", resp.status()),
                    Err(_) => break, // the server is gone
                }
            }
        });
    }
    while acknowledged.lock().expect("set").len() < 300 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let s = s.kill_and_restart().await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    while sends.join_next().await.is_some() {}
    let acknowledged = acknowledged.lock().expect("set").clone();
    back.set(Mode::Ok);
    let ids = back.ids_after(acknowledged.len()).await;
    let distinct: HashSet<String> = ids.iter().cloned().collect();
    let lost: Vec<_> = acknowledged.difference(&distinct).collect();
    assert!(lost.is_empty(), "acknowledged but never delivered: {lost:?}");
    assert_eq!(ids.len(), distinct.len(), "none delivered twice");
    // Messages stored but not acknowledged before the kill may be delivered too; nothing else.
    let (_, queues) = s.admin(M::GET, "/admin/v1/queues", None).await;
    assert_eq!(queues[0]["messages"]["DELIVERED"], distinct.len(), "{queues}");
    assert!(
        distinct.len() - acknowledged.len() <= 16,
        "at most one in flight per sender"
    );
}

#[tokio::test]
async fn http_streams_bodies_the_flow_does_not_read() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = Server::start().await;
    let (id, secret) = s.sender("Orders.Send", "orders").await;
    let back = Backend::start(Mode::Ok).await;
    let yaml = format!(
        "id: big\nsender:\n  adapter: https\n  address: /big\n  roles: [Orders.Send]\n  max_body_bytes: 16777216\nsteps:\n  - content_modifier: {{ headers: {{ X-Seen: \"${{header.X-Source}}\" }} }}\nreceiver:\n  http: {{ url: \"{}/big\" }}\n",
        back.url
    );
    deployed(&s, &yaml).await;
    // 12 MiB with a length, passed through whole.
    let big = vec![b'x'; 12 << 20];
    let resp = s
        .http
        .post(s.at("/http/big"))
        .header("authorization", basic(&id, &secret))
        .header("x-source", "erp")
        .body(big.clone())
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.text().await.expect("body"), "backend said 201");
    let got = back.received();
    assert_eq!(got[0].body.len(), big.len());
    assert_eq!(got[0].headers["x-seen"], "erp");

    // Chunked, without a length, over the limit: 413 while it streams, and the MPL says so.
    let addr = s.url.trim_start_matches("http://").to_owned();
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.expect("connect");
    let auth = String::from_utf8(basic(&id, &secret)).expect("ascii");
    let head = format!(
        "POST /http/big HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {auth}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.expect("head");
    let chunk = vec![b'y'; 1 << 20];
    for _ in 0..17 {
        let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
        framed.extend_from_slice(&chunk);
        framed.extend_from_slice(b"\r\n");
        if tcp.write_all(&framed).await.is_err() {
            break; // the server may stop reading once it has refused
        }
    }
    let _ = tcp.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = tcp.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert_eq!(
        back.received().len(),
        1,
        "the cut-off body never counted as received"
    );
}

#[tokio::test]
async fn back_end_credentials_are_presented_and_never_stored_with_messages() {
    let s = Server::start().await;
    let (id, secret) = s.sender("Orders.Send", "orders").await;
    let auth = basic(&id, &secret);
    let back = Backend::start(Mode::Ok).await;
    let password = "backend-password-123";
    let (st, v) = s
        .admin(
            M::PUT,
            "/admin/v1/credentials/erp",
            Some(json!({ "type": "basic", "user": "postern", "password": password })),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    assert!(!v.to_string().contains(password));

    // Deploying with a credential that does not exist is refused.
    let (st, v) = s
        .deploy(&flow(
            "c0",
            "/c0",
            "  http: { url: \"https://example.com\", credential: nope }",
        ))
        .await;
    assert_eq!(st, 400, "{v}");
    assert!(
        v["message"]
            .as_str()
            .expect("m")
            .contains("credential nope does not exist"),
        "{v}"
    );

    deployed(
        &s,
        &flow(
            "c1",
            "/c1",
            &format!("  http: {{ url: \"{}/c1\", credential: erp }}", back.url),
        ),
    )
    .await;
    let extra = format!(
        "    target: {{ http: {{ url: \"{}/c2\", credential: erp }} }}\n",
        back.url
    );
    let queue = format!("  queue:\n    name: c2\n{extra}");
    deployed(&s, &flow("c2", "/c2", &queue)).await;

    let resp = s.call("/c1", Some(&auth), "x").await;
    assert_eq!(resp.status(), 201);
    use base64::Engine;
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("postern:{password}"))
    );
    assert_eq!(back.received()[0].headers["authorization"], expected.as_str());

    let guid = guid_of(&s.call("/c2", Some(&auth), "y").await);
    let v = queued_until(&s, &guid, |v| v["status"] == "DELIVERED").await;
    assert_eq!(back.received()[1].headers["authorization"], expected.as_str());
    assert!(
        !v.to_string().to_ascii_lowercase().contains("authorization"),
        "the credential is added at delivery, not stored with the message: {v}"
    );

    // Replaced: the flows present the new one at once.
    let (st, _) = s
        .admin(
            M::PUT,
            "/admin/v1/credentials/erp",
            Some(json!({ "type": "bearer", "token": "tok-0123456789abcdef" })),
        )
        .await;
    assert_eq!(st, 200);
    s.call("/c1", Some(&auth), "z").await;
    assert_eq!(
        back.received()[2].headers["authorization"],
        "Bearer tok-0123456789abcdef"
    );

    let (_, list) = s.admin(M::GET, "/admin/v1/credentials", None).await;
    assert_eq!(list[0]["type"], "bearer");
    assert_eq!(list[0]["usedBy"], json!(["c1", "c2"]));
    assert!(!list.to_string().contains("tok-0123456789abcdef"));
    let (st, v) = s.admin(M::DELETE, "/admin/v1/credentials/erp", None).await;
    assert_eq!(st, 409, "{v}");
    let (st, v) = s
        .admin(
            M::PUT,
            "/admin/v1/credentials/bad",
            Some(json!({ "type": "basic", "user": "a:b", "password": "p" })),
        )
        .await;
    assert_eq!(st, 400, "{v}");
    let (st, v) = s
        .admin(
            M::PUT,
            "/admin/v1/credentials/bad",
            Some(json!({ "type": "certificate", "certificate": "x", "key": "y" })),
        )
        .await;
    assert_eq!(st, 400, "{v}");
}

#[tokio::test]
async fn certificate_credentials_authenticate_over_mtls() {
    // Postern itself is the back end: its HTTPS listener with a certificate service key.
    let s = Server::start().await;
    let (id, secret) = s.sender("Orders.Send", "orders").await;
    s.sender("Inner.Call", "inner-caller").await;
    let (st, doc) = s
        .admin(
            M::POST,
            "/admin/v1/service-instances/inner-caller/keys",
            Some(json!({ "name": "cert", "parameters": { "key-type": "certificate", "key-length": 256 } })),
        )
        .await;
    assert_eq!(st, 201, "{doc}");
    let (cert, key) = (&doc["oauth"]["certificate"], &doc["oauth"]["key"]);
    let (st, v) = s
        .admin(
            M::PUT,
            "/admin/v1/credentials/mtls",
            Some(json!({ "type": "certificate", "certificate": cert, "key": key })),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    deployed(
        &s,
        &crate::fixture::echo_user_flow("inner", "/inner", "Inner.Call"),
    )
    .await;
    let ca = std::fs::read_to_string(s.dir.join("tls/ca.pem")).expect("ca.pem");
    let ca_block: String = ca.lines().map(|l| format!("      {l}\n")).collect();
    let receiver = format!(
        "  http:\n    url: \"{}/http/inner\"\n    credential: mtls\n    ca: |\n{ca_block}",
        s.https_url
    );
    deployed(&s, &flow("outer", "/outer", &receiver)).await;
    let resp = s.call("/outer", Some(&basic(&id, &secret)), "x").await;
    assert_eq!(resp.status(), 200);
    let body = resp.text().await.expect("body");
    let (_, key_doc) = s
        .admin(M::GET, "/admin/v1/service-instances/inner-caller/keys", None)
        .await;
    assert!(
        body.starts_with("user=") && body.len() > "user=".len(),
        "{body} / {key_doc}"
    );
}

#[tokio::test]
async fn nodes_share_a_queue_without_double_delivery() {
    let nodes = Server::start_nodes(2).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let (id, secret) = a.sender("Orders.Send", "orders").await;
    let auth = basic(&id, &secret);
    // Slow enough that both nodes' workers have deliveries in flight at once.
    let back = Backend::start(Mode::Slow(Duration::from_millis(20))).await;
    deployed(
        a,
        &queue_flow("shared", "/shared", &format!("{}/q", back.url), ""),
    )
    .await;
    // Node B serves the flow once it has followed the deployment.
    for _ in 0..100 {
        if b.call("/shared", Some(&auth), "probe").await.status() == 202 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut acknowledged = HashSet::new();
    for i in 0..200 {
        let node = if i % 2 == 0 { a } else { b };
        let resp = node.call("/shared", Some(&auth), &format!("m{i}")).await;
        assert_eq!(resp.status(), 202);
        acknowledged.insert(guid_of(&resp));
    }
    let ids = back.ids_after(acknowledged.len() + 1).await;
    let distinct: HashSet<String> = ids.iter().cloned().collect();
    assert!(
        acknowledged.is_subset(&distinct),
        "every acknowledged message delivered"
    );
    assert_eq!(
        ids.len(),
        distinct.len(),
        "no message delivered twice by the two nodes"
    );
}
