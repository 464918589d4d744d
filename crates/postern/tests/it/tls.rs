//! The HTTPS listener with the generated dev CA: standard clients that trust the CA verify the
//! server certificate; others refuse it; senders authenticate over TLS as over HTTP.

use crate::fixture::{Server, basic};

#[tokio::test]
async fn https_with_the_generated_ca() {
    let s = Server::start().await;
    assert!(s.https_url.starts_with("https://127.0.0.1:"), "{}", s.https_url);
    let (id, secret) = s.orders_flow().await;

    let tls = s.tls_client();
    let health = tls
        .get(format!("{}/healthz", s.https_url))
        .send()
        .await
        .expect("https");
    assert_eq!(health.status(), 200);
    let auth = String::from_utf8(basic(&id, &secret)).expect("ascii");
    for _ in 0..2 {
        let r = tls
            .post(format!("{}/http/orders", s.https_url))
            .header("authorization", auth.clone())
            .body("<Order/>")
            .send()
            .await
            .expect("flow over https");
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.expect("body"), format!("user={id}"));
    }
    // Early answers (401, 404) over HTTP/2 arrive as answers, not as stream resets, even when
    // the request had a body the server did not need.
    for (path, auth, expected) in [
        ("/http/orders", None, 401),
        (
            "/http/orders",
            Some(String::from_utf8(basic(&id, "wrong")).expect("ascii")),
            401,
        ),
        ("/http/nowhere", None, 404),
    ] {
        for _ in 0..5 {
            let mut req = tls.post(format!("{}{path}", s.https_url)).body("x".repeat(4000));
            if let Some(a) = &auth {
                req = req.header("authorization", a.clone());
            }
            let r = req.send().await.expect("an answer, not a reset");
            assert_eq!(r.version(), reqwest::Version::HTTP_2);
            assert_eq!(r.status(), expected, "{path}");
        }
    }

    // A client that does not trust Postern's CA refuses the certificate.
    let plain = reqwest::Client::new();
    assert!(
        plain
            .get(format!("{}/healthz", s.https_url))
            .send()
            .await
            .is_err()
    );

    // The certificate and CA persist across restarts (senders keep trusting it).
    let ca_before = std::fs::read(s.dir.join("tls/ca.pem")).expect("ca");
    let s = s.restart().await;
    assert!(
        !s.log_text().contains("still open after the drain timeout"),
        "connections drained"
    );
    assert_eq!(std::fs::read(s.dir.join("tls/ca.pem")).expect("ca"), ca_before);
    let r = s
        .tls_client()
        .get(format!("{}/healthz", s.https_url))
        .send()
        .await
        .expect("https after restart");
    assert_eq!(r.status(), 200);
    let key_mode = std::fs::metadata(s.dir.join("tls/server.key")).expect("key");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&key_mode.permissions()) & 0o777,
        0o600
    );
    // The CA's key is in the database, sealed under the master key, not in a file.
    assert!(!s.dir.join("tls/ca.key").exists());
    let stored = s
        .open_store()
        .await
        .local_ca()
        .await
        .expect("ca")
        .expect("stored");
    assert_eq!(stored.cert_pem.as_bytes(), ca_before.as_slice());
    assert!(!String::from_utf8_lossy(&stored.key_enc).contains("PRIVATE KEY"));
}

#[tokio::test]
async fn operator_certificates_reload_without_restart() {
    use postern_auth::pki::LocalCa;
    let now = time::OffsetDateTime::now_utc();
    let dir = tempfile::tempdir().expect("dir");
    let (cert, key) = (dir.path().join("server.pem"), dir.path().join("server.key"));
    let write = |ca: &LocalCa| {
        let leaf = ca.issue_server(&["127.0.0.1".into()], now).expect("leaf");
        std::fs::write(&cert, format!("{}{}", leaf.cert_pem, ca.cert_pem())).expect("cert");
        std::fs::write(&key, leaf.key_pem).expect("key");
    };
    let first = LocalCa::generate("Operator CA 1", now).expect("ca");
    let second = LocalCa::generate("Operator CA 2", now).expect("ca");
    write(&first);
    let s = Server::start_with(&[
        "--tls-cert",
        cert.to_str().expect("path"),
        "--tls-key",
        key.to_str().expect("path"),
        "--tls-reload-seconds",
        "1",
    ])
    .await;
    let trusting = |ca: &LocalCa| {
        reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(ca.cert_pem().as_bytes()).expect("pem")])
            .build()
            .expect("client")
    };
    let url = format!("{}/healthz", s.https_url);
    assert!(trusting(&first).get(&url).send().await.is_ok());
    assert!(trusting(&second).get(&url).send().await.is_err());
    // A broken file is not served: the old certificate stays.
    std::fs::write(&key, "not a key").expect("break");
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert!(
        trusting(&first).get(&url).send().await.is_ok(),
        "a broken key file keeps the old certificate"
    );
    write(&second);
    let mut switched = false;
    for _ in 0..50 {
        if trusting(&second).get(&url).send().await.is_ok() {
            switched = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(switched, "the new certificate is served without a restart");
}
