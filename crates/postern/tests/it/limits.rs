//! Limits of the HTTP edge on both listeners: header count and size (431), URL length (414),
//! slow headers (cut), slow bodies (408), the connection cap, idle keep-alive connections,
//! JSON/YAML body size and depth, and SIGTERM letting requests in flight finish with every MPL
//! stored. Raw sockets where a client library would refuse to send the bad input.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::fixture::{ADMIN_PASSWORD, Server, basic};

/// A byte stream to the server: plain TCP or TLS.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

fn host(url: &str) -> String {
    url.split_once("://").map_or(url, |(_, h)| h).to_owned()
}

/// A plain TCP connection to the HTTP listener.
async fn plain(s: &Server) -> Box<dyn Stream> {
    Box::new(TcpStream::connect(host(&s.url)).await.expect("connect"))
}

/// A TLS connection (HTTP/1.1, no ALPN) to the HTTPS listener, trusting the generated CA.
async fn tls(s: &Server) -> Box<dyn Stream> {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    let pem = std::fs::read(s.dir.join("tls/ca.pem")).expect("generated CA");
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(c.expect("CA pem")).expect("CA");
    }
    let config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
    let tcp = TcpStream::connect(host(&s.https_url)).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    Box::new(stream)
}

/// Both listeners, named for assertion messages.
async fn both(s: &Server) -> Vec<(&'static str, Box<dyn Stream>)> {
    vec![("plain", plain(s).await), ("tls", tls(s).await)]
}

/// Everything the server sends until it closes the connection (at most 20 s).
async fn read_all(stream: &mut Box<dyn Stream>) -> String {
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the server did not close the connection");
    String::from_utf8_lossy(&out).into_owned()
}

/// The JSON body of a raw HTTP/1.1 answer.
fn json_of(answer: &str) -> Value {
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("JSON body ({e}): {answer}"))
}

fn status_of(answer: &str) -> &str {
    answer.get(9..12).unwrap_or("")
}

#[tokio::test]
async fn too_many_or_too_large_headers_get_431() {
    let s = Server::start().await;
    let many: String = (0..150).map(|i| format!("X-Filler-{i}: v\r\n")).collect();
    let large = format!("X-Large: {}\r\n", "a".repeat(70 * 1024));
    for headers in [&many, &large] {
        for (name, mut stream) in both(&s).await {
            let req = format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{headers}\r\n");
            // The server may answer and close before it read everything we send.
            let _ = stream.write_all(req.as_bytes()).await;
            let answer = read_all(&mut stream).await;
            // hyper answers HTTP/1 heads over the limits itself, without a body.
            assert_eq!(status_of(&answer), "431", "{name}: {answer}");
        }
    }
    // HTTP/2 (TLS, ALPN h2): too many header fields get 431 in the JSON shape.
    let client = s.tls_client();
    let mut req = client.get(format!("{}/healthz", s.https_url));
    for i in 0..150 {
        req = req.header(format!("x-filler-{i}"), "v");
    }
    let resp = req.send().await.expect("h2 request");
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status(), 431);
    let v: Value = resp.json().await.expect("JSON");
    assert_eq!(v["error"], "request_header_fields_too_large");
    assert!(v["messageId"].is_string());
    // The sender endpoint (served past the router) applies the same limit.
    let mut req = client.post(format!("{}/http/orders", s.https_url)).body("x");
    for i in 0..150 {
        req = req.header(format!("x-filler-{i}"), "v");
    }
    let resp = req.send().await.expect("h2 request");
    assert_eq!(resp.status(), 431);
    let v: Value = resp.json().await.expect("JSON");
    assert_eq!(v["error"], "request_header_fields_too_large");
    let big = client
        .get(format!("{}/healthz", s.https_url))
        .header("x-large", "a".repeat(70 * 1024))
        .send()
        .await
        .expect("h2 request");
    // The h2 layer refuses a header list over the limit with a bodiless 431.
    assert_eq!(big.status(), 431);
    // Within the limits all is well.
    let ok = client
        .get(format!("{}/healthz", s.https_url))
        .header("x-large", "a".repeat(16 * 1024))
        .send()
        .await
        .expect("request");
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn plain_text_rejections_get_the_json_shape_but_flow_answers_stay_as_they_are() {
    let s = Server::start().await;
    // axum's own (plain-text) rejection of a path that does not decode answers in our shape.
    let (st, v) = admin_raw(&s, Method::GET, "/admin/v1/flows/%FF", "text/plain", Vec::new()).await;
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["error"], "bad_request");
    assert!(v["message"].as_str().is_some_and(|m| m.contains("UTF-8")), "{v}");
    assert!(v["messageId"].is_string(), "{v}");
    // A flow that answers a plain-text 400 itself keeps its answer.
    let (id, secret) = s.sender("Text.Send", "text").await;
    let yaml = "id: text-reply\nsender:\n  adapter: https\n  address: /text\n  authorization: user-role\n  roles: [Text.Send]\nreceiver:\n  reply: { status: 400, body: \"nope\", content_type: \"text/plain\" }\n";
    let (st, b) = s.deploy(yaml).await;
    assert_eq!(st, 201, "{b}");
    let resp = s.call("/text", Some(&basic(&id, &secret)), "x").await;
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.headers()["content-type"], "text/plain");
    assert_eq!(resp.text().await.expect("body"), "nope");
}

#[tokio::test]
async fn an_overlong_url_gets_414() {
    let s = Server::start().await;
    let long = format!("/healthz?q={}", "a".repeat(9 * 1024));
    let short = format!("/healthz?q={}", "a".repeat(7 * 1024));
    for (client, base) in [(&s.http, &s.url), (&s.tls_client(), &s.https_url)] {
        let resp = client.get(format!("{base}{long}")).send().await.expect("request");
        assert_eq!(resp.status(), 414, "{base}");
        let v: Value = resp.json().await.expect("JSON");
        assert_eq!(v["error"], "uri_too_long");
        assert!(v["messageId"].is_string());
        let resp = client
            .get(format!("{base}{short}"))
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), 200, "{base}");
    }
    // The same on the sender endpoint, before any authentication.
    let resp = s
        .call(&format!("/orders?q={}", "a".repeat(9 * 1024)), None, "x")
        .await;
    assert_eq!(resp.status(), 414);
}

#[tokio::test]
async fn slow_headers_are_cut_after_the_header_timeout() {
    let s = Server::start_with(&["--header-timeout-seconds", "1"]).await;
    for (name, mut stream) in both(&s).await {
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .expect("part of a head");
        // Nothing more: the server closes the connection without an answer.
        let answer = read_all(&mut stream).await;
        assert!(answer.is_empty(), "{name}: {answer}");
    }
    let resp = s.http.get(s.at("/healthz")).send().await.expect("healthz");
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn a_stalled_body_gets_408() {
    let s = Server::start_with(&["--body-timeout-seconds", "1"]).await;
    let (id, secret) = s.orders_flow().await;
    let auth = String::from_utf8(basic(&id, &secret)).expect("ascii");
    for (name, mut stream) in both(&s).await {
        let head = format!(
            "POST /http/orders HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Length: 10\r\n\r\nhello"
        );
        stream.write_all(head.as_bytes()).await.expect("half a body");
        let answer = read_all(&mut stream).await;
        assert_eq!(status_of(&answer), "408", "{name}: {answer}");
        let v = json_of(&answer);
        assert_eq!(v["error"], "request_timeout", "{name}");
        assert!(v["messageId"].is_string());
    }
    // The admin API too (a flow deployment whose body stalls).
    let mut stream = plain(&s).await;
    let admin = String::from_utf8(basic("admin", ADMIN_PASSWORD)).expect("ascii");
    let head = format!(
        "PUT /admin/v1/flows/slow HTTP/1.1\r\nHost: x\r\nAuthorization: {admin}\r\nContent-Length: 100\r\n\r\nid: slow\n"
    );
    stream.write_all(head.as_bytes()).await.expect("half a body");
    let answer = read_all(&mut stream).await;
    assert_eq!(status_of(&answer), "408", "{answer}");
    // A body that keeps coming within the timeout is fine.
    let mut stream = plain(&s).await;
    let head = format!(
        "POST /http/orders HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nConnection: close\r\nContent-Length: 10\r\n\r\nhello"
    );
    stream.write_all(head.as_bytes()).await.expect("half a body");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stream.write_all(b"world").await.expect("the rest");
    let answer = read_all(&mut stream).await;
    assert_eq!(status_of(&answer), "200", "{answer}");
}

/// Sends a keep-alive `GET /healthz` and reads its whole answer; the connection stays open.
async fn healthz_keep_alive(stream: &mut Box<dyn Stream>) -> String {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("request");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_owned)
                })
                .and_then(|n| n.trim().parse::<usize>().ok())
                .expect("content-length");
            if body.len() >= len {
                return text;
            }
        }
        let n = stream.read(&mut buf).await.expect("read");
        assert!(n > 0, "closed before the answer: {text}");
        got.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test]
async fn connections_over_the_cap_wait_until_one_closes() {
    let s = Server::start_with(&["--max-connections", "2", "--idle-timeout-seconds", "4"]).await;
    // The fixture's own client may keep a connection from its start-up check: let the idle
    // timeout close it.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut a = plain(&s).await;
    let mut b = tls(&s).await;
    assert!(healthz_keep_alive(&mut a).await.starts_with("HTTP/1.1 200"));
    assert!(healthz_keep_alive(&mut b).await.starts_with("HTTP/1.1 200"));
    // The third connection waits in the backlog: its request is not answered...
    let mut c = plain(&s).await;
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("request");
    let mut first = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(800), c.read(&mut first)).await;
    assert!(
        early.is_err(),
        "a third connection was served while two were open"
    );
    // ...until one of the two closes.
    drop(a);
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), c.read_to_end(&mut rest))
        .await
        .expect("served after a slot freed")
        .expect("read");
    let answer = String::from_utf8_lossy(&rest);
    assert!(
        answer.starts_with("TTP/1.1 200") || answer.starts_with("HTTP/1.1 200"),
        "{answer}"
    );
    drop(b);
    let resp = s.http.get(s.at("/healthz")).send().await.expect("healthz");
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    // The header timeout (30 s) would close an idle HTTP/1 connection too; the idle timeout
    // is shorter here, so closing within a few seconds proves it.
    let s = Server::start_with(&["--idle-timeout-seconds", "1"]).await;
    for tls_listener in [false, true] {
        let mut stream = if tls_listener {
            tls(&s).await
        } else {
            plain(&s).await
        };
        let answer = healthz_keep_alive(&mut stream).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "tls {tls_listener}: {answer}");
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest)).await;
        // A clean close: EOF (after TLS close_notify), no error.
        assert!(
            matches!(closed, Ok(Ok(0))),
            "tls {tls_listener}: idle connection not closed cleanly: {closed:?}"
        );
    }
    // HTTP/2 (prior knowledge on the plain listener): a connection that only sends pings and
    // never a request is idle too.
    let stream = TcpStream::connect(host(&s.url)).await.expect("connect");
    let (mut rd, mut wr) = stream.into_split();
    wr.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .expect("preface and SETTINGS");
    let pinger = tokio::spawn(async move {
        let ping = b"\0\0\x08\x06\0\0\0\0\0pingping";
        while wr.write_all(ping).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let mut got = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), rd.read_to_end(&mut got)).await;
    assert!(closed.is_ok(), "an HTTP/2 connection with pings only stayed open");
    // The server said goodbye with a GOAWAY frame (type 7) before closing.
    assert!(
        got.windows(4).any(|w| w[3] == 0x07 && w[0] == 0),
        "no GOAWAY: {got:?}"
    );
    pinger.abort();
}

/// Sends `body` as `content_type` with the admin's credentials; returns status and JSON.
async fn admin_raw(
    s: &Server,
    method: Method,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let resp = s
        .http
        .request(method, s.at(path))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    let v = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: not JSON: {text}"));
    (status, v)
}

/// Announces a `len`-byte body with `Expect: 100-continue` (as curl does for large bodies) and
/// sends it only if the server asks for it; returns the final answer. A body over a limit is
/// refused without being sent.
async fn announce(s: &Server, method: &str, path: &str, content_type: &str, len: usize) -> (String, Value) {
    let mut stream = plain(s).await;
    let admin = String::from_utf8(basic("admin", ADMIN_PASSWORD)).expect("ascii");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {admin}\r\nContent-Type: {content_type}\r\n\
         Content-Length: {len}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    let mut first = vec![0u8; 64 * 1024];
    let n = stream.read(&mut first).await.expect("answer");
    let mut answer = first[..n].to_vec();
    if answer.starts_with(b"HTTP/1.1 100") {
        stream.write_all(&vec![b' '; len]).await.expect("body");
        answer.clear();
    }
    stream.read_to_end(&mut answer).await.expect("answer");
    let text = String::from_utf8_lossy(&answer).into_owned();
    let v = json_of(&text);
    (status_of(&text).to_owned(), v)
}

fn deep_json(depth: usize) -> Vec<u8> {
    let mut v = b"{\"Pid\":\"P1\",\"Name\":".to_vec();
    v.extend(std::iter::repeat_n(b'[', depth));
    v.extend(std::iter::repeat_n(b']', depth));
    v.push(b'}');
    v
}

#[tokio::test]
async fn json_and_yaml_bodies_are_bounded_in_size_and_depth() {
    let s = Server::start().await;
    // Admin API (JSON), OData entities, $batch, flow YAML: over the route's limit → 413 in our
    // shape, before the body is read.
    for (method, path, content_type, size) in [
        ("POST", "/admin/v1/service-instances", "application/json", 3 << 20),
        ("POST", "/admin/v1/user-roles", "application/json", 3 << 20),
        ("POST", "/api/v1/AlternativePartners", "application/json", 2 << 20),
        (
            "POST",
            "/api/v1/$batch",
            "multipart/mixed; boundary=batch_1",
            33 << 20,
        ),
        ("PUT", "/admin/v1/flows/big", "application/yaml", 3 << 20),
    ] {
        let (st, v) = announce(&s, method, path, content_type, size).await;
        assert_eq!(st, "413", "{path}: {v}");
        assert_eq!(v["error"], "payload_too_large", "{path}");
        assert!(v["messageId"].is_string(), "{path}");
    }
    // Bodies within the route's limit but over the endpoint's own limit: read, then refused.
    let yaml = format!("id: big\n# {}\n", "a".repeat((1 << 20) + 10)).into_bytes();
    let (st, v) = admin_raw(&s, Method::PUT, "/admin/v1/flows/big", "application/yaml", yaml).await;
    assert_eq!(st, 413, "{v}");
    assert_eq!(v["error"], "payload_too_large");
    // Deep nesting: refused, never a stack overflow (the server keeps answering). The OData API
    // parses bodies as JSON values, so serde_json's recursion limit (128) answers 400; the
    // admin API's typed bodies refuse the first array where a string belongs (422).
    let (st, v) = admin_raw(
        &s,
        Method::POST,
        "/api/v1/AlternativePartners",
        "application/json",
        deep_json(100_000),
    )
    .await;
    assert_eq!(st, 400, "{v}");
    assert!(v.to_string().contains("recursion limit"), "{v}");
    for path in ["/admin/v1/service-instances", "/admin/v1/user-roles"] {
        let (st, v) = admin_raw(&s, Method::POST, path, "application/json", deep_json(100_000)).await;
        assert!(st == 400 || st == 422, "{path}: {st} {v}");
        assert!(v["messageId"].is_string(), "{path}: {v}");
    }
    // The token endpoint: form bodies up to 8 KiB.
    let resp = s
        .http
        .post(s.at("/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=client_credentials&x={}",
            "a".repeat(16 * 1024)
        ))
        .send()
        .await
        .expect("token request");
    assert_eq!(resp.status(), 413);
    let v: Value = resp.json().await.expect("JSON");
    assert_eq!(v["error"], "invalid_request");
    // Flow YAML nested deeply → 400.
    let mut yaml = b"id: deep\nsender: ".to_vec();
    yaml.extend(std::iter::repeat_n(b'[', 50_000));
    yaml.extend(std::iter::repeat_n(b']', 50_000));
    let (st, v) = admin_raw(&s, Method::PUT, "/admin/v1/flows/deep", "application/yaml", yaml).await;
    assert_eq!(st, 400, "{v}");
    assert!(v.get("error").is_some());
    let resp = s.http.get(s.at("/healthz")).send().await.expect("healthz");
    assert_eq!(resp.status(), 200);
}

/// The number of MPLs the OData API reports.
async fn mpl_count(s: &Server) -> usize {
    let (st, v) = s
        .admin(
            Method::GET,
            "/api/v1/MessageProcessingLogs?$inlinecount=allpages&$top=0",
            None,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    v["d"]["__count"]
        .as_str()
        .and_then(|c| c.parse().ok())
        .expect("__count")
}

#[tokio::test]
async fn sigterm_finishes_in_flight_requests_and_stores_their_mpls() {
    let mut s = Server::start().await;
    let (id, secret) = s.orders_flow().await;
    let auth = basic(&id, &secret);
    let tls_client = s.tls_client();
    let mut answered = 0;
    for i in 0..3 {
        let resp = s.call("/orders", Some(&auth), &format!("<o>{i}</o>")).await;
        assert_eq!(resp.status(), 200);
        answered += 1;
    }
    for _ in 0..2 {
        let resp = tls_client
            .post(format!("{}/http/orders", s.https_url))
            .header(
                "authorization",
                reqwest::header::HeaderValue::from_bytes(&auth).expect("value"),
            )
            .body("<o/>")
            .send()
            .await
            .expect("call over TLS");
        assert_eq!(resp.status(), 200);
        answered += 1;
    }
    // Two uploads in progress, one on each listener.
    let auth_text = String::from_utf8(auth.clone()).expect("ascii");
    let mut uploads = both(&s).await;
    for (_, stream) in &mut uploads {
        let head = format!(
            "POST /http/orders HTTP/1.1\r\nHost: x\r\nAuthorization: {auth_text}\r\nContent-Length: 10\r\n\r\nhello"
        );
        stream.write_all(head.as_bytes()).await.expect("first half");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    s.signal_term();
    // The listeners close at once; the uploads still run.
    let addr = host(&s.url);
    let mut refused = false;
    for _ in 0..100 {
        if TcpStream::connect(&addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused, "new connections are refused after SIGTERM");
    for (name, mut stream) in uploads {
        stream.write_all(b"world").await.expect("second half");
        let answer = read_all(&mut stream).await;
        assert_eq!(status_of(&answer), "200", "{name}: {answer}");
        assert!(answer.contains(&format!("user={id}")), "{name}: {answer}");
        answered += 1;
    }
    assert!(s.wait_exit().await, "clean exit after the in-flight requests");
    let s = s.start_again().await;
    assert_eq!(
        mpl_count(&s).await,
        answered,
        "every answered request has its MPL"
    );
}

#[tokio::test]
async fn the_shutdown_timeout_bounds_the_drain() {
    let mut s = Server::start_with(&["--shutdown-timeout-seconds", "1"]).await;
    let (id, secret) = s.orders_flow().await;
    let auth = basic(&id, &secret);
    assert_eq!(s.call("/orders", Some(&auth), "<o/>").await.status(), 200);
    // An upload that never finishes.
    let mut stalled = plain(&s).await;
    let auth_text = String::from_utf8(auth).expect("ascii");
    let head = format!(
        "POST /http/orders HTTP/1.1\r\nHost: x\r\nAuthorization: {auth_text}\r\nContent-Length: 10\r\n\r\nhello"
    );
    stalled.write_all(head.as_bytes()).await.expect("half a body");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(s.terminate().await, "clean exit once the shutdown timeout passed");
    let answer = read_all(&mut stalled).await;
    assert!(
        answer.is_empty(),
        "the stalled upload was cut, not answered: {answer}"
    );
    let s = s.start_again().await;
    assert_eq!(mpl_count(&s).await, 1, "the answered request has its MPL");
}
