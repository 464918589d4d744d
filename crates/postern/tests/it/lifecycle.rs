//! Restart keeps everything, SIGTERM flushes MPLs, and no log line carries a secret.

use reqwest::Method;
use serde_json::{Value, json};

use crate::fixture::{Server, basic};

#[tokio::test]
async fn restart_keeps_state_and_sigterm_flushes_logs() {
    let s = Server::start().await;
    let (id, secret) = s.orders_flow().await;
    let (st, _) = s
        .admin(
            Method::POST,
            "/admin/v1/users",
            Some(json!({ "name": "partner-b", "password": "partner-b-password", "roles": ["Orders.Send"] })),
        )
        .await;
    assert_eq!(st, 201);
    let auth = basic(&id, &secret);
    let mut guids = Vec::new();
    for _ in 0..20 {
        let r = s.call("/orders", Some(&auth), "x").await;
        assert_eq!(r.status(), 200);
        guids.push(
            r.headers()["sap_messageprocessinglogid"]
                .to_str()
                .expect("guid")
                .to_owned(),
        );
    }
    // SIGTERM right after the last answer: the queued MPLs must be flushed before exit.
    let s = s.restart().await;
    let (_, v) = s
        .admin(
            Method::GET,
            "/api/v1/MessageProcessingLogs?$inlinecount=allpages&$top=0",
            None,
        )
        .await;
    assert_eq!(
        v["d"]["__count"], "20",
        "every answered message has its MPL after a restart"
    );

    assert_eq!(
        s.call("/orders", Some(&auth), "x").await.status(),
        200,
        "key survives restart"
    );
    assert_eq!(
        s.call("/orders", Some(&basic("partner-b", "partner-b-password")), "x")
            .await
            .status(),
        200
    );
    let (_, roles) = s.admin(Method::GET, "/admin/v1/user-roles", None).await;
    assert!(
        roles
            .as_array()
            .expect("roles")
            .iter()
            .any(|r| r["name"] == "Orders.Send")
    );
    let (_, flows) = s.admin(Method::GET, "/admin/v1/flows", None).await;
    assert_eq!(flows[0]["id"], "orders-in");
    assert_eq!(flows[0]["status"], "STARTED");
    let (_, inst) = s
        .admin(Method::GET, "/admin/v1/service-instances/orders", None)
        .await;
    assert_eq!(inst["keys"][0]["name"], "k1");
    // The bootstrap admin is not re-created or changed by a restart.
    let (_, users) = s.admin(Method::GET, "/admin/v1/users", None).await;
    let admins: Vec<&Value> = users
        .as_array()
        .expect("users")
        .iter()
        .filter(|u| u["name"] == "admin")
        .collect();
    assert_eq!(admins.len(), 1);
}

#[tokio::test]
async fn no_log_line_contains_a_secret() {
    let s = Server::start().await;
    let (id, secret) = s.orders_flow().await;
    let (_, secret2) = s.key("orders", "k2").await;
    let (_, cert_doc) = s
        .admin(
            Method::POST,
            "/admin/v1/service-instances/orders/keys",
            Some(json!({ "name": "cert", "parameters": { "key-type": "certificate", "key-length": 256 } })),
        )
        .await;
    let private_key = cert_doc["oauth"]["key"].as_str().expect("private key").to_owned();
    // The base64 body of the PEM, which is what a leak would show.
    let key_body: String = private_key.lines().filter(|l| !l.starts_with("-----")).collect();
    let token = {
        let r = s
            .http
            .post(s.at("/oauth/token"))
            .basic_auth(&id, Some(&secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials")
            .send()
            .await
            .expect("token");
        r.json::<serde_json::Value>().await.expect("json")["access_token"]
            .as_str()
            .expect("token")
            .to_owned()
    };
    let r = s
        .http
        .post(s.at("/http/orders"))
        .bearer_auth(&token)
        .body("x")
        .send()
        .await
        .expect("call");
    assert_eq!(r.status(), 200);
    let password = "leak-check-password-1";
    s.admin(
        Method::POST,
        "/admin/v1/users",
        Some(json!({ "name": "leaky", "password": password, "roles": ["Orders.Send"] })),
    )
    .await;
    for auth in [
        basic(&id, &secret),
        basic(&id, &secret2),
        basic(&id, &format!("{secret}x")),
        basic("leaky", password),
        basic("leaky", &format!("{password}x")),
        basic("unknown", &secret),
    ] {
        s.call("/orders", Some(&auth), "x").await;
    }
    s.admin(Method::DELETE, "/admin/v1/service-instances/orders/keys/k1", None)
        .await;
    let s = s.restart().await;
    let logs = s.log_text();
    assert!(logs.contains("authentication failed"), "the failures were logged");
    for needle in [
        secret.as_str(),
        secret2.as_str(),
        password,
        crate::fixture::ADMIN_PASSWORD,
        key_body.as_str(),
        token.as_str(),
    ] {
        assert!(!logs.contains(needle), "a log line contains a secret");
    }
    // The audit log shows failures without the credential.
    let (_, audit) = s.admin(Method::GET, "/admin/v1/audit?limit=1000", None).await;
    let text = audit.to_string();
    assert!(text.contains("auth.failed") && text.contains("bad_secret") && text.contains("bad_password"));
    assert!(!text.contains(&secret) && !text.contains(password));
}

#[tokio::test]
async fn generated_admin_password_is_printed_once_and_works() {
    let dir = tempfile::tempdir().expect("dir");
    let run = |dir: &std::path::Path| {
        std::process::Command::new(crate::fixture::BIN)
            .args([
                "serve",
                "--http",
                "127.0.0.1:0",
                "--https",
                "127.0.0.1:0",
                "--data-dir",
            ])
            .arg(dir)
            .env_remove("POSTERN_ADMIN_PASSWORD")
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("spawn")
    };
    for round in 0..2 {
        let mut child = run(dir.path());
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
        let mut generated = None;
        for line in lines.by_ref().map_while(Result::ok) {
            if line.contains("postern listening") {
                break;
            }
            let t = line.trim();
            if t.len() == 43
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                generated = Some(t.to_owned());
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        if round == 0 {
            assert!(generated.is_some(), "first start prints a generated password");
        } else {
            assert!(generated.is_none(), "later starts do not");
        }
    }
}

#[tokio::test]
async fn sigterm_lets_in_flight_requests_finish() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = Server::start().await;
    let (id, secret) = s.orders_flow().await;
    let addr = s.url.trim_start_matches("http://").to_owned();
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.expect("connect");
    let mut head =
        format!("POST /http/orders HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 10\r\nAuthorization: ")
            .into_bytes();
    head.extend_from_slice(&basic(&id, &secret));
    head.extend_from_slice(b"\r\n\r\nhello");
    tcp.write_all(&head).await.expect("first half");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    s.signal_term();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    tcp.write_all(b"world").await.expect("second half");
    let mut answer = Vec::new();
    let _ = tcp.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.starts_with("HTTP/1.1 200"),
        "in-flight request answered: {text}"
    );
    assert!(text.contains(&format!("user={id}")), "{text}");
    assert!(s.wait_exit().await, "clean exit after the in-flight request");
    // New connections are refused once the server stopped.
    assert!(tokio::net::TcpStream::connect(&addr).await.is_err());
}
