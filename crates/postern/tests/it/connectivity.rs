//! The TLS connectivity test, pointed at Postern itself and at endpoints that do not answer.

use std::io::Read;

use reqwest::Method;
use serde_json::{Value, json};

use crate::fixture::Server;

#[tokio::test]
async fn connectivity_test_yields_postern_root_that_a_client_can_trust() {
    let s = Server::start().await;
    let port: u16 = s
        .https_url
        .rsplit(':')
        .next()
        .expect("port")
        .parse()
        .expect("number");
    let (st, v) = s
        .admin(
            Method::POST,
            "/admin/v1/connectivity-tests/tls",
            Some(json!({ "host": "127.0.0.1", "port": port })),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["success"], true, "{v}");
    assert!(v["protocol"].as_str().expect("protocol").contains("TLS"));
    let certs = v["certificates"].as_array().expect("chain");
    assert_eq!(certs.len(), 2, "leaf and Postern's CA");
    assert_eq!(certs[1]["root"], true);
    assert_eq!(certs[0]["root"], false);

    // The zip: one DER .cer per certificate, the root marked in its name.
    let dir = tempfile::tempdir().expect("dir");
    let zip_path = dir.path().join("chain.zip");
    let out = s.cli_ok(&[
        "connectivity-test",
        "tls",
        &format!("127.0.0.1:{port}"),
        "--download",
        zip_path.to_str().expect("path"),
    ]);
    assert!(out.contains("succeeded"), "{out}");
    let mut archive = zip::ZipArchive::new(std::fs::File::open(&zip_path).expect("zip")).expect("a zip");
    assert_eq!(archive.len(), 2);
    let root_name = archive
        .file_names()
        .filter_map(Result::ok)
        .find(|n| n.contains("root") && n.ends_with(".cer"))
        .expect("a root .cer")
        .into_owned();
    let mut der = Vec::new();
    archive
        .by_name(&root_name)
        .expect("entry")
        .read_to_end(&mut der)
        .expect("read");

    // A standard TLS client trusting only that root verifies Postern's server certificate.
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_der(&der).expect("DER certificate")])
        .build()
        .expect("client");
    let r = client
        .get(format!("{}/healthz", s.https_url))
        .send()
        .await
        .expect("verified by the zip's root");
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn connectivity_test_errors_are_clear() {
    let s = Server::start().await;
    for host in ["https://example.com", "example.com/path", "", "a b", "host:443"] {
        let (st, v) = s
            .admin(
                Method::POST,
                "/admin/v1/connectivity-tests/tls",
                Some(json!({ "host": host })),
            )
            .await;
        assert_eq!(st, 400, "{host}: {v}");
        assert!(v["message"].as_str().expect("message").starts_with("host"), "{v}");
    }
    // Nothing listens: a clear failure, not a hang or a 500.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let (st, v) = s
        .admin(
            Method::POST,
            "/admin/v1/connectivity-tests/tls",
            Some(json!({ "host": "127.0.0.1", "port": port })),
        )
        .await;
    assert_eq!((st, v["success"].clone()), (200, Value::Bool(false)), "{v}");
    assert!(
        v["error"].as_str().expect("error").contains("cannot connect"),
        "{v}"
    );
    // Something accepts but never speaks TLS: the time-out is reported.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("addr").port();
    let (st, v) = s
        .admin(
            Method::POST,
            "/admin/v1/connectivity-tests/tls",
            Some(json!({ "host": "127.0.0.1", "port": port, "timeoutSeconds": 1 })),
        )
        .await;
    assert_eq!((st, v["success"].clone()), (200, Value::Bool(false)), "{v}");
    assert!(v["error"].as_str().expect("error").contains("within 1 s"), "{v}");
    drop(silent);
    // The download of a chain that cannot be read is a 502 with the reason, not an empty zip.
    let (st, v) = s
        .admin(
            Method::POST,
            "/admin/v1/connectivity-tests/tls/download",
            Some(json!({ "host": "127.0.0.1", "port": port })),
        )
        .await;
    assert_eq!(st, 502, "{v}");
}
