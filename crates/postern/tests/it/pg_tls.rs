//! TLS between a node and PostgreSQL: the suite's throwaway cluster serves TLS with a CA of its
//! own (`dev/pg-cluster`), so a node can connect with `sslmode=verify-full`. Runs in every pass.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::fixture::{ADMIN_PASSWORD, BIN, Server, new_pg_database};

fn cluster_ca() -> String {
    std::env::var("POSTERN_TEST_PG_CA")
        .expect("POSTERN_TEST_PG_CA (./dev/test starts a cluster with TLS and sets it)")
}

#[tokio::test]
async fn nodes_connect_to_postgres_over_verified_tls() {
    let database = new_pg_database();
    let url = format!("{database}?sslmode=verify-full&sslrootcert={}", cluster_ca());
    let nodes = Server::start_nodes_on(&url, 1).await;
    let (st, body) = nodes[0]
        .admin(
            Method::POST,
            "/admin/v1/user-roles",
            Some(json!({ "name": "Tls.Role" })),
        )
        .await;
    assert_eq!(st, 201, "{body}");

    // The server side says the node's connections are encrypted.
    let admin = std::env::var("POSTERN_TEST_POSTGRES_URL").expect("cluster url");
    let name = database.rsplit('/').next().expect("database name");
    let out = std::process::Command::new("psql")
        .args([admin.as_str(), "-tAc"])
        .arg(format!(
            "SELECT count(*), bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = 'postern' AND a.datname = '{name}'"
        ))
        .output()
        .expect("psql");
    let answer = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let (count, all_tls) = answer.split_once('|').expect("count|ssl");
    assert!(count.parse::<u32>().expect("count") > 0, "{answer}");
    assert_eq!(all_tls, "t", "every connection of the node uses TLS: {answer}");

    // A root that did not sign the server's certificate, or a root file that is not there: the
    // node refuses to start, at once and with a clear message (waiting would not help).
    let wrong_root = nodes[0].dir.join("tls/ca.pem");
    let err = refused(&format!(
        "{database}?sslmode=verify-full&sslrootcert={}",
        wrong_root.display()
    ))
    .await;
    assert!(err.contains("TLS") && err.contains("certificate"), "{err}");
    let err = refused(&format!(
        "{database}?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem"
    ))
    .await;
    assert!(err.contains("TLS") && err.contains("sslrootcert"), "{err}");
}

/// Runs `serve` on a database URL it must refuse within seconds; its stderr.
async fn refused(url: &str) -> String {
    let dir = tempfile::tempdir().expect("dir");
    let started = Instant::now();
    let run = tokio::process::Command::new(BIN)
        .args(["serve", "--http", "127.0.0.1:0", "--https", "-", "--data-dir"])
        .arg(dir.path())
        .args(["--database", url])
        .env("POSTERN_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(15), run)
        .await
        .unwrap_or_else(|_| panic!("serve still running after 15 s with {url}"))
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "no retrying for what waiting does not fix ({:?})",
        started.elapsed()
    );
    err
}
