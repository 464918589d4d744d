//! PostgreSQL down for 10 s under load, on two nodes: senders with known credentials keep getting
//! answers from the nodes' snapshots, message processing logs wait in the nodes' queues and all
//! land once the database is back (counted: none lost, none doubled), and admin writes answer a
//! clear 503 meanwhile. The test runs on a PostgreSQL cluster of its own (it stops and starts
//! it), in every pass of the suite.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::fixture::{PgCluster, Server, basic};

/// How long the database stays down.
const OUTAGE: Duration = Duration::from_secs(10);
/// Concurrent senders per node.
const SENDERS_PER_NODE: usize = 3;

/// What the senders saw, per node.
#[derive(Default)]
struct Tally {
    ok: [AtomicU64; 2],
    /// Answers other than 200 (and transport errors), by node and kind.
    other: Mutex<BTreeMap<String, u64>>,
    /// Slowest answer, in microseconds, per node.
    slowest_us: [AtomicU64; 2],
}

impl Tally {
    fn ok(&self) -> [u64; 2] {
        [
            self.ok[0].load(Ordering::SeqCst),
            self.ok[1].load(Ordering::SeqCst),
        ]
    }

    fn other(&self) -> BTreeMap<String, u64> {
        self.other.lock().expect("tally").clone()
    }
}

/// One sender: POSTs to the flow on one node until `stop`, counting answers.
async fn send_until(node: usize, url: String, auth: Vec<u8>, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let auth = reqwest::header::HeaderValue::from_bytes(&auth).expect("header");
    while !stop.load(Ordering::SeqCst) {
        let started = Instant::now();
        let answer = http
            .post(&url)
            .header("authorization", auth.clone())
            .body("x")
            .send()
            .await;
        let took = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        tally.slowest_us[node].fetch_max(took, Ordering::SeqCst);
        let kind = match answer {
            Ok(r) if r.status() == 200 => {
                // Count only a complete answer: its message processing log is queued by then.
                match r.text().await {
                    Ok(_) => {
                        tally.ok[node].fetch_add(1, Ordering::SeqCst);
                        continue;
                    }
                    Err(e) => format!("node {node}: reading the body: {e}"),
                }
            }
            Ok(r) => {
                let status = r.status();
                let body = r.text().await.unwrap_or_default();
                format!("node {node}: {status} {body}")
            }
            Err(e) => format!("node {node}: {e}"),
        };
        *tally.other.lock().expect("tally").entry(kind).or_default() += 1;
        // Do not spin on a failing node.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The number of message processing logs as a node's OData API counts them; None while the API
/// does not answer.
async fn mpl_count(node: &Server) -> Option<u64> {
    let (st, v) = node
        .admin(
            Method::GET,
            "/api/v1/MessageProcessingLogs?$inlinecount=allpages&$top=0",
            None,
        )
        .await;
    if st != 200 {
        return None;
    }
    v["d"]["__count"].as_str()?.parse().ok()
}

/// The node's queue of message processing logs not yet written (from `/metrics`).
async fn mpl_queue(node: &Server) -> i64 {
    let text = node.metrics().await;
    text.lines()
        .find_map(|l| l.strip_prefix("postern_queue_depth{writer=\"mpl\"} "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no MPL queue depth in /metrics: {text}"))
}

/// Polls (up to 60 s) until both nodes count `expected` logs; returns the last counts seen.
async fn wait_for_mpls(nodes: &[Server], expected: u64) -> (Duration, [Option<u64>; 2]) {
    let start = Instant::now();
    loop {
        let counts = [mpl_count(&nodes[0]).await, mpl_count(&nodes[1]).await];
        if counts == [Some(expected); 2] || start.elapsed() > Duration::from_secs(60) {
            return (start.elapsed(), counts);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_serve_known_credentials_and_keep_logs_while_postgres_is_down() {
    let started = Instant::now();
    // Declared first, so dropped last: the nodes are killed before the cluster goes.
    let cluster = PgCluster::start().await;
    let nodes = Server::start_nodes_on(&cluster.url, 2).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let (id, secret) = a.orders_flow().await;
    let auth = basic(&id, &secret);
    // Both nodes serve the key and flow before the load starts.
    for n in [a, b] {
        let deadline = Instant::now() + Duration::from_secs(5);
        while n.call("/orders", Some(&auth), "x").await.status() != 200 {
            assert!(Instant::now() < deadline, "the flow from A is served on B");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // Those calls made logs too: count from what is stored once they are.
    let mut base = None;
    for _ in 0..100 {
        base = mpl_count(a).await.filter(|&c| c >= 2);
        if base.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let base = base.expect("the first two logs are stored");

    // Load on both nodes.
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let mut senders = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        for _ in 0..SENDERS_PER_NODE {
            senders.push(tokio::spawn(send_until(
                i,
                n.at("/http/orders"),
                auth.clone(),
                stop.clone(),
                tally.clone(),
            )));
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        tally.ok().iter().all(|&n| n > 0),
        "load runs on both nodes: {:?} {:?}",
        tally.ok(),
        tally.other()
    );

    // PostgreSQL down.
    let before = tally.ok();
    tally.slowest_us[0].store(0, Ordering::SeqCst);
    tally.slowest_us[1].store(0, Ordering::SeqCst);
    cluster.pause().await;
    let down = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    // The nodes still report healthy (they serve), but not ready (the database is away).
    for n in [a, b] {
        let health = n.http.get(n.at("/healthz")).send().await.expect("healthz");
        assert_eq!(health.status(), 200);
        let ready = n.http.get(n.at("/readyz")).send().await.expect("readyz");
        assert_eq!(ready.status(), 503);
        let body: serde_json::Value = ready.json().await.expect("json");
        assert_eq!(body["status"], "DATABASE_UNAVAILABLE");
    }
    // An admin write fails fast and says why, while the load goes on for the rest of the outage.
    let write = async {
        let started = Instant::now();
        let (st, body) = a
            .admin(
                Method::POST,
                "/admin/v1/user-roles",
                Some(json!({ "name": "Outage.Role" })),
            )
            .await;
        (st, body, started.elapsed())
    };
    let ((st, body, write_took), ()) =
        tokio::join!(write, tokio::time::sleep(OUTAGE.saturating_sub(down.elapsed())));
    let during = tally.ok();
    let slowest_during = [
        tally.slowest_us[0].load(Ordering::SeqCst),
        tally.slowest_us[1].load(Ordering::SeqCst),
    ];
    let other_during = tally.other();
    let queued = [mpl_queue(a).await, mpl_queue(b).await];

    // PostgreSQL back; the load goes on a little, then stops.
    cluster.resume().await;
    // Ready again once the database answers.
    for n in [a, b] {
        let mut ready = false;
        for _ in 0..100 {
            if n.http.get(n.at("/readyz")).send().await.expect("readyz").status() == 200 {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(ready, "ready again after the database came back");
    }
    let outage = down.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::SeqCst);
    for s in senders {
        s.await.expect("sender");
    }
    let ok = tally.ok();
    let other = tally.other();
    let answered = ok[0] + ok[1];
    println!(
        "admin write during the outage: {st} after {:.1} s: {body}",
        write_took.as_secs_f64()
    );
    println!(
        "outage {:.1} s: 200s during it: node A {}, node B {}; logs queued at its end: A {}, B {}; slowest answer during it: A {:.1} ms, B {:.1} ms",
        outage.as_secs_f64(),
        during[0] - before[0],
        during[1] - before[1],
        queued[0],
        queued[1],
        slowest_during[0] as f64 / 1e3,
        slowest_during[1] as f64 / 1e3,
    );
    println!(
        "200s under load in all: node A {}, node B {}; other answers: {other:?}",
        ok[0], ok[1]
    );
    assert_eq!(st, 503, "an admin write while the database is down: {body}");
    assert_eq!(body["error"], "unavailable", "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("storage is unavailable")),
        "a clear message: {body}"
    );
    assert!(
        write_took < Duration::from_secs(5),
        "the 503 comes within seconds, not after sqlx's 30 s default ({write_took:?})"
    );
    assert!(
        other_during.is_empty(),
        "known credentials get 200 on both nodes while the database is down: {other_during:?}"
    );
    assert!(other.is_empty(), "every answer under load is 200: {other:?}");
    for node in 0..2 {
        assert!(
            during[node] - before[node] > 0,
            "node {node} served during the outage"
        );
        assert!(
            slowest_during[node] < 3_000_000,
            "no sender waited on the database (node {node}: {} ms)",
            slowest_during[node] / 1000
        );
        // The logs of the outage waited in the node's queue.
        assert!(
            queued[node] > 0,
            "node {node} queued its logs while the database was down"
        );
    }

    // Every log lands, once: the count through the API equals the 200s.
    let expected = base + answered;
    let (took, counts) = wait_for_mpls(&nodes, expected).await;
    println!(
        "message processing logs: {counts:?} of {expected} expected ({base} before the load + {answered} under load) after {:.1} s",
        took.as_secs_f64()
    );
    assert_eq!(counts, [Some(expected); 2], "every 200 has its log, once");
    assert_eq!(
        [mpl_queue(a).await, mpl_queue(b).await],
        [0, 0],
        "the queues are empty"
    );

    // Admin writes work again, and the change feed follows again: a key made on A after the
    // outage works on B.
    let (st, body) = a
        .admin(
            Method::POST,
            "/admin/v1/user-roles",
            Some(json!({ "name": "Outage.Role" })),
        )
        .await;
    assert_eq!(st, 201, "the admin write after recovery: {body}");
    let (id2, secret2) = a.key("orders", "after-outage").await;
    let auth2 = basic(&id2, &secret2);
    let start = Instant::now();
    loop {
        let st = b.call("/orders", Some(&auth2), "x").await.status();
        if st == 200 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "a key created on A after the outage works on B (last answer {st})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "key from A served on B {:.0} ms after its creation",
        start.elapsed().as_secs_f64() * 1e3
    );
    // That 200 logged one more message; nothing else came in late.
    let (_, counts) = wait_for_mpls(&nodes, expected + 1).await;
    assert_eq!(counts, [Some(expected + 1); 2]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        [mpl_count(a).await, mpl_count(b).await],
        [Some(expected + 1); 2],
        "no log arrives twice"
    );
    println!("test took {:.1} s", started.elapsed().as_secs_f64());
}
