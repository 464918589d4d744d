//! Several `postern serve` nodes on one PostgreSQL database follow each other's changes through
//! the change feed (LISTEN/NOTIFY), without restarts. Runs on PostgreSQL in every suite pass.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::fixture::{Server, basic, echo_user_flow};

/// Polls `f` until it is true or `limit` passes; returns how long it took.
async fn within<F, Fut>(limit: Duration, mut f: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        if f().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

#[tokio::test]
async fn nodes_see_each_others_changes_within_a_second() {
    let mut nodes = Server::start_nodes(3).await;
    let (id, secret) = nodes[0].orders_flow().await;
    // Node B killed with SIGKILL and restarted rejoins and serves.
    let b = nodes.remove(1).kill_and_restart().await;
    nodes.insert(1, b);
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let auth = basic(&id, &secret);
    let second = Duration::from_secs(1);
    // Created on A: works on B and C.
    for n in [b, c] {
        let took = within(second, || async {
            n.call("/orders", Some(&auth), "x").await.status() == 200
        })
        .await;
        assert!(
            took.is_some(),
            "the key and flow from A work on another node within 1 s"
        );
    }
    // One CA for the deployment: every node's server certificate is trusted through any node's
    // ca.pem (B's data directory was new when it started, and so was C's).
    let ca = std::fs::read(a.dir.join("tls/ca.pem")).expect("ca");
    for n in [b, c] {
        assert_eq!(std::fs::read(n.dir.join("tls/ca.pem")).expect("ca"), ca);
        let r = a
            .tls_client()
            .get(format!("{}/healthz", n.https_url))
            .send()
            .await
            .expect("https to another node with A's CA");
        assert_eq!(r.status(), 200);
    }
    // A role removed from the instance on B turns 200 into 403 on C, and given back, 200.
    for (roles, status) in [(json!(["ESBMessaging.send"]), 403), (json!(["Orders.Send"]), 200)] {
        let (st, v) = b
            .admin(
                Method::PATCH,
                "/admin/v1/service-instances/orders",
                Some(json!({ "parameters": { "roles": roles } })),
            )
            .await;
        assert_eq!(st, 200, "{v}");
        let took = within(second, || async {
            c.call("/orders", Some(&auth), "x").await.status() == status
        })
        .await;
        assert!(took.is_some(), "the instance's roles from B reach C ({status})");
    }
    // A flow's role changed on B turns 200 into 403 on C, and back.
    let (st, v) = b
        .deploy(&echo_user_flow("orders-in", "/orders", "ESBMessaging.send"))
        .await;
    assert_eq!(st, 200, "{v}");
    let took = within(second, || async {
        c.call("/orders", Some(&auth), "x").await.status() == 403
    })
    .await;
    assert!(took.is_some(), "the flow change on B reaches C");
    let (st, _) = b
        .deploy(&echo_user_flow("orders-in", "/orders", "Orders.Send"))
        .await;
    assert_eq!(st, 200);
    let took = within(second, || async {
        c.call("/orders", Some(&auth), "x").await.status() == 200
    })
    .await;
    assert!(took.is_some());

    // A Partner Directory change on C changes the partner check on A.
    let flow = include_str!("../../../../examples/orders-partner-check.yaml");
    let (st, v) = c.deploy(flow).await;
    assert_eq!(st, 201, "{v}");
    for body in [
        json!({"Agency": "016", "Scheme": "DUNS", "Id": "123456789", "Pid": "ACME"}),
        json!({"Agency": "016", "Scheme": "DUNS", "Id": "987654321", "Pid": "GLOBEX"}),
    ] {
        let (st, v) = c
            .admin(Method::POST, "/api/v1/AlternativePartners", Some(body))
            .await;
        assert_eq!(st, 201, "{v}");
    }
    let (st, _) = c
        .admin(
            Method::POST,
            "/api/v1/AuthorizedUsers",
            Some(json!({"User": id, "Pid": "ACME"})),
        )
        .await;
    assert_eq!(st, 201);
    let order = |duns: &str| {
        format!(
            "<o:Order xmlns:o=\"urn:example:order\"><o:Header><o:SenderId>{duns}</o:SenderId></o:Header></o:Order>"
        )
    };
    let took = within(second, || async {
        a.call("/partner-orders", Some(&auth), &order("123456789"))
            .await
            .status()
            == 200
    })
    .await;
    assert!(took.is_some(), "the authorized user from C passes on A");
    let (st, _) = c
        .admin(
            Method::PUT,
            &format!("/api/v1/AuthorizedUsers('{}')", id.to_lowercase()),
            Some(json!({"Pid": "GLOBEX"})),
        )
        .await;
    assert_eq!(st, 204);
    let took = within(second, || async {
        a.call("/partner-orders", Some(&auth), &order("123456789"))
            .await
            .status()
            == 403
    })
    .await;
    assert!(took.is_some(), "moving the user on C changes the check on A");

    // A key deleted on A is refused by B and C; propagation measured over 100 changes.
    let mut delays = Vec::with_capacity(100);
    for i in 0..100 {
        let pid = format!("P{i}");
        let (st, _) = a
            .admin(
                Method::PUT,
                &format!("/api/v1/AuthorizedUsers('{}')", id.to_lowercase()),
                Some(json!({"Pid": pid})),
            )
            .await;
        assert_eq!(st, 204);
        let start = Instant::now();
        let took = within(Duration::from_secs(2), || async {
            let (_, p) = b
                .admin(Method::GET, &format!("/admin/v1/principals/{id}"), None)
                .await;
            p["partner"] == pid.as_str()
        })
        .await;
        delays.push(took.unwrap_or_else(|| start.elapsed()));
    }
    delays.sort();
    let p50 = delays[delays.len() / 2];
    let max = delays[delays.len() - 1];
    println!(
        "propagation over 100 changes: p50 {:.1} ms, max {:.1} ms",
        p50.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    );
    assert!(
        max <= Duration::from_secs(1),
        "every change within 1 s (max {max:?})"
    );

    let (st, _) = a
        .admin(Method::DELETE, "/admin/v1/service-instances/orders/keys/k1", None)
        .await;
    assert_eq!(st, 204);
    for n in [b, c] {
        let took = within(second, || async {
            n.call("/orders", Some(&auth), "x").await.status() == 401
        })
        .await;
        assert!(
            took.is_some(),
            "a deleted key is refused on every node within 1 s"
        );
    }
}

#[tokio::test]
async fn a_node_away_longer_than_the_feed_keeps_changes_reloads_everything() {
    let nodes = Server::start_nodes(2).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let (id, secret) = a.orders_flow().await;
    let auth = basic(&id, &secret);
    assert!(
        within(Duration::from_secs(1), || async {
            b.call("/orders", Some(&auth), "x").await.status() == 200
        })
        .await
        .is_some()
    );
    // B is frozen while A deletes the key and the feed is pruned past that change (as an hour
    // of absence would): B cannot catch up change by change and must reload.
    b.signal("STOP");
    let (st, _) = a
        .admin(Method::DELETE, "/admin/v1/service-instances/orders/keys/k1", None)
        .await;
    assert_eq!(st, 204);
    let store = a.open_store().await;
    assert!(store.prune_changes(0).await.expect("prune") > 0);
    assert!(store.pruned_through().await.expect("horizon") > 0);
    b.signal("CONT");
    let took = within(Duration::from_secs(3), || async {
        b.call("/orders", Some(&auth), "x").await.status() == 401
    })
    .await;
    assert!(took.is_some(), "B reloaded and refuses the deleted key");
    // The log line follows the reload (and reaches the test through a reader thread).
    let said = within(Duration::from_secs(3), || async {
        b.log_text().contains("changes this node missed were pruned")
    })
    .await;
    assert!(said.is_some(), "B says it reloaded");
}

#[tokio::test]
async fn a_node_with_another_master_key_refuses_to_start() {
    let nodes = Server::start_nodes(1).await;
    let database = nodes[0].database.clone().expect("database");
    let dir = tempfile::tempdir().expect("dir");
    let out = std::process::Command::new(crate::fixture::BIN)
        .args(["serve", "--http", "127.0.0.1:0", "--https", "-", "--data-dir"])
        .arg(dir.path())
        .args(["--database", &database])
        .env("POSTERN_MASTER_KEY", "ff".repeat(32))
        .env("POSTERN_ADMIN_PASSWORD", crate::fixture::ADMIN_PASSWORD)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("every node of a deployment needs the same master key"),
        "{err}"
    );
}
