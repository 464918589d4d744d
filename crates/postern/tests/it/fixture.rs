//! A running `postern serve` for one test, killed on drop, with its log lines kept for
//! assertions (the secret-leak checks read them).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

pub(crate) const ADMIN_PASSWORD: &str = "test-admin-password-1";
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_postern");

pub(crate) struct Server {
    child: Option<Child>,
    pub(crate) url: String,
    pub(crate) https_url: String,
    pub(crate) dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    pub(crate) logs: Arc<Mutex<Vec<String>>>,
    pub(crate) http: reqwest::Client,
    /// The PostgreSQL database of this server, when the suite runs on that backend.
    pub(crate) database: Option<String>,
}

/// A free loopback address on a port below the kernel's ephemeral range (32768–60999 by
/// default). A server restarted on its old ports (after SIGKILL, say) must find them free: a
/// port handed out for `127.0.0.1:0` or to an outgoing connection of another test comes from
/// the ephemeral range, and could take a port of that range in the moment between the two.
fn stable_addr() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    static SEED: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let seed = *SEED.get_or_init(|| {
        std::process::id()
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
    });
    loop {
        // 7919 is prime to 12,000: consecutive calls walk the whole range before repeating.
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 20_000 + seed.wrapping_add(n.wrapping_mul(7919)) % 12_000;
        let addr = format!("127.0.0.1:{port}");
        if std::net::TcpListener::bind(&addr).is_ok() {
            return addr;
        }
    }
}

impl Server {
    /// Starts a server on a fresh data directory.
    pub(crate) async fn start() -> Server {
        Server::start_with(&[]).await
    }

    /// Starts a server on a fresh data directory (and, on the PostgreSQL backend, a fresh
    /// database) with extra `serve` arguments.
    pub(crate) async fn start_with(extra: &[&str]) -> Server {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().to_path_buf();
        let database = fresh_database();
        let mut args: Vec<&str> = extra.to_vec();
        if let Some(url) = &database {
            args.extend(["--database", url.as_str()]);
        }
        let (http, https) = (stable_addr(), stable_addr());
        let mut s = Server::start_in_with(&dir, Arc::new(Mutex::new(Vec::new())), &http, &https, &args).await;
        s._tmp = Some(tmp);
        s.database = database;
        s
    }

    async fn start_in_with(
        dir: &Path,
        logs: Arc<Mutex<Vec<String>>>,
        http: &str,
        https: &str,
        extra: &[&str],
    ) -> Server {
        let mut child = Command::new(BIN)
            .args([
                "serve",
                "--http",
                http,
                "--https",
                https,
                "--log-format",
                "json",
                "--data-dir",
            ])
            .arg(dir)
            .args(extra)
            .env("POSTERN_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("RUST_LOG", "debug,sqlx=warn,hyper=info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn postern");
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        for stream in [
            Box::new(child.stderr.take().expect("stderr")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stdout.take().expect("stdout")),
        ] {
            let logs = logs.clone();
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    logs.lock().expect("logs").push(line.clone());
                    let _ = tx.send(line);
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        let (url, https_url) = loop {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| panic!("server did not start; logs: {:?}", logs.lock().expect("logs")));
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && let Some(addr) = v.pointer("/fields/http").and_then(Value::as_str)
            {
                let tls = v.pointer("/fields/https").and_then(Value::as_str).unwrap_or("-");
                break (format!("http://{addr}"), format!("https://{tls}"));
            }
        };
        let server = Server {
            child: Some(child),
            url,
            https_url,
            dir: dir.to_path_buf(),
            _tmp: None,
            logs,
            http: reqwest::Client::new(),
            database: None,
        };
        let health = server
            .http
            .get(server.at("/healthz"))
            .send()
            .await
            .expect("healthz");
        assert_eq!(health.status(), 200);
        server
    }

    /// A client that trusts the server's generated CA (and only the system roots besides).
    pub(crate) fn tls_client(&self) -> reqwest::Client {
        let pem = std::fs::read(self.dir.join("tls/ca.pem")).expect("generated CA");
        reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("pem"))
            .build()
            .expect("client")
    }

    pub(crate) fn at(&self, path: &str) -> String {
        format!("{}{}", self.url, path)
    }

    /// The Prometheus text of `/metrics`.
    pub(crate) async fn metrics(&self) -> String {
        self.http
            .get(self.at("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    }

    /// Sends SIGTERM without waiting.
    pub(crate) fn signal_term(&self) {
        self.signal("TERM");
    }

    /// Sends a signal (`TERM`, `STOP`, `CONT`, ...) without waiting.
    pub(crate) fn signal(&self, name: &str) {
        let id = self.child.as_ref().expect("running").id().to_string();
        let ok = Command::new("kill")
            .args([format!("-{name}").as_str(), &id])
            .status()
            .expect("kill");
        assert!(ok.success());
    }

    /// Sends SIGTERM and waits for the exit; returns whether it exited successfully.
    pub(crate) async fn terminate(&mut self) -> bool {
        self.signal_term();
        self.wait_exit().await
    }

    /// Waits (up to 30 s) for the process to exit; returns whether it exited successfully.
    /// Polls without blocking the test's runtime, so the test's own HTTP/2 connections can answer
    /// the server's GOAWAY while it drains.
    pub(crate) async fn wait_exit(&mut self) -> bool {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status.success();
            }
            assert!(Instant::now() < deadline, "server did not stop after SIGTERM");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills this process (SIGKILL, no clean shutdown) and starts a new one on the same data
    /// directory, database and addresses.
    pub(crate) async fn kill_and_restart(mut self) -> Server {
        let mut child = self.child.take().expect("running");
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        self.start_again().await
    }

    /// Stops this process and starts a new one on the same data directory.
    pub(crate) async fn restart(mut self) -> Server {
        assert!(self.terminate().await, "clean exit on SIGTERM");
        self.start_again().await
    }

    /// Starts a stopped server again on its data directory, database and addresses (the public
    /// URL, and so the token issuer, stay the same).
    pub(crate) async fn start_again(mut self) -> Server {
        let http = self.url.trim_start_matches("http://").to_owned();
        let https = self.https_url.trim_start_matches("https://").to_owned();
        let database = self.database.take();
        let extra: Vec<&str> = match &database {
            Some(url) => vec!["--database", url.as_str()],
            None => vec![],
        };
        let mut next =
            Server::start_in_with(&self.dir.clone(), self.logs.clone(), &http, &https, &extra).await;
        next._tmp = self._tmp.take();
        next.database = database;
        next
    }

    /// Runs the CLI against this server; returns (success, stdout, stderr).
    pub(crate) fn cli(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(BIN)
            .args(args)
            .env("POSTERN_URL", &self.url)
            .env("POSTERN_USER", "admin")
            .env("POSTERN_PASSWORD", ADMIN_PASSWORD)
            .output()
            .expect("run cli");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if let Ok(v) = serde_json::from_str::<Value>(&stdout) {
            remember_secrets(&v);
        }
        (
            out.status.success(),
            stdout,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs the CLI and expects success.
    pub(crate) fn cli_ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.cli(args);
        assert!(ok, "postern {args:?} failed: {err}{out}");
        out
    }

    /// An admin API call with the bootstrap admin; returns status and JSON (Null when empty).
    pub(crate) async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, self.at(path))
            .basic_auth("admin", Some(ADMIN_PASSWORD));
        if let Some(b) = body {
            remember_secrets(&b);
            req = req.json(&b);
        }
        let resp = req.send().await.expect("admin call");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        let value = serde_json::from_str(&text).unwrap_or(Value::Null);
        remember_secrets(&value);
        (status, value)
    }

    /// Creates a role, an integration-flow instance with it, and a key; returns (clientid, secret).
    pub(crate) async fn sender(&self, role: &str, instance: &str) -> (String, String) {
        let (st, _) = self
            .admin(
                reqwest::Method::POST,
                "/admin/v1/user-roles",
                Some(json!({ "name": role })),
            )
            .await;
        assert!(st == 201 || st == 409, "role: {st}");
        let (st, body) = self
            .admin(
                reqwest::Method::POST,
                "/admin/v1/service-instances",
                Some(json!({ "name": instance, "plan": "integration-flow", "parameters": { "roles": [role] } })),
            )
            .await;
        assert_eq!(st, 201, "{body}");
        self.key(instance, "k1").await
    }

    /// The common setup: role `Orders.Send`, instance `orders` with a key, and flow `orders-in` at
    /// `/orders` requiring the role (answering `user=<SapAuthenticatedUserName>`).
    pub(crate) async fn orders_flow(&self) -> (String, String) {
        let creds = self.sender("Orders.Send", "orders").await;
        let (st, b) = self
            .deploy(&echo_user_flow("orders-in", "/orders", "Orders.Send"))
            .await;
        assert_eq!(st, 201, "{b}");
        creds
    }

    /// GETs a public (unauthenticated) JSON document.
    pub(crate) async fn public_json(&self, path: &str) -> Value {
        let resp = self.http.get(self.at(path)).send().await.expect("GET");
        assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
        resp.json().await.expect("JSON")
    }

    /// Creates a service instance and expects 201.
    pub(crate) async fn instance(&self, name: &str, plan: &str, parameters: Value) {
        let (st, b) = self
            .admin(
                reqwest::Method::POST,
                "/admin/v1/service-instances",
                Some(json!({ "name": name, "plan": plan, "parameters": parameters })),
            )
            .await;
        assert_eq!(st, 201, "{b}");
    }

    /// Creates a key on an instance; returns (clientid, secret).
    pub(crate) async fn key(&self, instance: &str, name: &str) -> (String, String) {
        let (st, doc) = self
            .admin(
                reqwest::Method::POST,
                &format!("/admin/v1/service-instances/{instance}/keys"),
                Some(json!({ "name": name })),
            )
            .await;
        assert_eq!(st, 201, "{doc}");
        (
            doc["oauth"]["clientid"].as_str().expect("clientid").to_owned(),
            doc["oauth"]["clientsecret"].as_str().expect("secret").to_owned(),
        )
    }

    /// Deploys a flow YAML through the admin API.
    pub(crate) async fn deploy(&self, yaml: &str) -> (u16, Value) {
        let id = yaml
            .lines()
            .find_map(|l| l.strip_prefix("id: "))
            .expect("flow id")
            .trim()
            .to_owned();
        let resp = self
            .http
            .put(self.at(&format!("/admin/v1/flows/{id}")))
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .body(yaml.to_owned())
            .send()
            .await
            .expect("deploy");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// POSTs a body to a flow with an `Authorization` header value.
    pub(crate) async fn call(
        &self,
        address: &str,
        authorization: Option<&[u8]>,
        body: &str,
    ) -> reqwest::Response {
        let mut req = self
            .http
            .post(self.at(&format!("/http{address}")))
            .body(body.to_owned());
        if let Some(a) = authorization {
            req = req.header(
                "authorization",
                reqwest::header::HeaderValue::from_bytes(a).expect("header value"),
            );
        }
        req.send().await.expect("call flow")
    }

    /// Starts `n` nodes on one new PostgreSQL database with one master key.
    pub(crate) async fn start_nodes(n: usize) -> Vec<Server> {
        Server::start_nodes_on(&new_pg_database(), n).await
    }

    /// Starts `n` nodes on the PostgreSQL database at `database` with one master key.
    pub(crate) async fn start_nodes_on(database: &str, n: usize) -> Vec<Server> {
        let database = database.to_owned();
        let mut nodes = Vec::with_capacity(n);
        for _ in 0..n {
            let tmp = tempfile::tempdir().expect("temp dir");
            let dir = tmp.path().to_path_buf();
            // One master key for all nodes, as a deployment gives them (file or POSTERN_MASTER_KEY).
            std::fs::write(dir.join("master.key"), [7u8; 32]).expect("master key");
            let (http, https) = (stable_addr(), stable_addr());
            let mut s = Server::start_in_with(
                &dir,
                Arc::new(Mutex::new(Vec::new())),
                &http,
                &https,
                &["--database", database.as_str()],
            )
            .await;
            s._tmp = Some(tmp);
            s.database = Some(database.clone());
            nodes.push(s);
        }
        nodes
    }

    /// Opens this server's database directly (SQLite file or PostgreSQL database).
    pub(crate) async fn open_store(&self) -> Box<dyn postern_store::Store> {
        match &self.database {
            Some(url) => Box::new(
                postern_store::PgStore::open(url)
                    .await
                    .expect("open the server's database"),
            ),
            None => Box::new(
                postern_store::SqliteStore::open(&format!(
                    "sqlite://{}",
                    self.dir.join("postern.db").display()
                ))
                .await
                .expect("open the server's database"),
            ),
        }
    }

    /// All log lines so far.
    pub(crate) fn log_text(&self) -> String {
        self.logs.lock().expect("logs").join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Suite-wide secret hygiene: no log line of any server may contain a secret any test
        // created or sent (client secrets, passwords, private keys). Skipped while a test is
        // already failing (a second panic would abort).
        if std::thread::panicking() {
            return;
        }
        let logs = self.log_text();
        let secrets = SECRETS.lock().map(|s| s.clone()).unwrap_or_default();
        if let Some(leaked) = secrets.iter().find(|secret| logs.contains(secret.as_str())) {
            let shown: String = leaked.chars().take(6).collect();
            panic!("a log line of this server contains a secret the tests created ({shown}...)");
        }
    }
}

/// Secrets the tests created or sent, for the log check when each server stops.
static SECRETS: Mutex<std::collections::BTreeSet<String>> = Mutex::new(std::collections::BTreeSet::new());

/// Remembers the secrets in an admin request or answer: `clientsecret`, `password`, and each
/// line of a private key's PEM.
pub(crate) fn remember_secrets(v: &Value) {
    let mut found = Vec::new();
    fn walk(v: &Value, found: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v.as_str()) {
                        ("clientsecret" | "password" | "newPassword", Some(s)) if s.len() >= 12 => {
                            found.push(s.to_owned())
                        }
                        ("key", Some(pem)) if pem.contains("PRIVATE KEY") => found.extend(
                            pem.lines()
                                .filter(|l| !l.starts_with("-----") && l.len() >= 32)
                                .map(str::to_owned),
                        ),
                        _ => walk(v, found),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, found)),
            _ => {}
        }
    }
    walk(v, &mut found);
    if !found.is_empty()
        && let Ok(mut s) = SECRETS.lock()
    {
        s.extend(found);
        s.insert(ADMIN_PASSWORD.to_owned());
    }
}

/// A PostgreSQL cluster of one test's own (`dev/pg-cluster start --crash-safe`), so that the test
/// can stop and start it without disturbing the suite's cluster; stopped and removed on drop.
pub(crate) struct PgCluster {
    /// `postgres://postern@127.0.0.1:PORT/postgres`.
    pub(crate) url: String,
    dir: String,
}

impl PgCluster {
    fn script() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dev/pg-cluster")
    }

    /// Starts a new cluster whose acknowledged commits survive [`PgCluster::pause`].
    pub(crate) async fn start() -> PgCluster {
        let out = tokio::process::Command::new(Self::script())
            .args(["start", "--crash-safe"])
            .output()
            .await
            .expect("run dev/pg-cluster start");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "dev/pg-cluster start: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // `export POSTERN_TEST_POSTGRES_URL=... POSTERN_TEST_PG_DIR=...`
        let value = |name: &str| {
            stdout
                .split_whitespace()
                .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
                .unwrap_or_else(|| panic!("{name} in the output of dev/pg-cluster start: {stdout}"))
                .to_owned()
        };
        PgCluster {
            url: value("POSTERN_TEST_POSTGRES_URL"),
            dir: value("POSTERN_TEST_PG_DIR"),
        }
    }

    async fn run(&self, what: &str) {
        let out = tokio::process::Command::new(Self::script())
            .args([what, self.dir.as_str()])
            .output()
            .await
            .unwrap_or_else(|e| panic!("run dev/pg-cluster {what}: {e}"));
        assert!(
            out.status.success(),
            "dev/pg-cluster {what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stops the server at once, as a crash would (`pg_ctl -m immediate`), keeping its data.
    pub(crate) async fn pause(&self) {
        self.run("pause").await;
    }

    /// Starts the server again on the same port, with the same data.
    pub(crate) async fn resume(&self) {
        self.run("resume").await;
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = Command::new(Self::script())
            .args(["stop", self.dir.as_str()])
            .status();
    }
}

/// The backend the suite runs on: `POSTERN_TEST_BACKEND=postgres` (with
/// `POSTERN_TEST_POSTGRES_URL`, as `./dev/test` sets them) or SQLite.
pub(crate) fn on_postgres() -> bool {
    std::env::var("POSTERN_TEST_BACKEND").is_ok_and(|b| b == "postgres")
}

/// A new, empty PostgreSQL database for one server, when the suite runs on that backend.
fn fresh_database() -> Option<String> {
    on_postgres().then(new_pg_database)
}

/// A new, empty PostgreSQL database on the test cluster.
pub(crate) fn new_pg_database() -> String {
    let admin = std::env::var("POSTERN_TEST_POSTGRES_URL")
        .expect("PostgreSQL tests need POSTERN_TEST_POSTGRES_URL (./dev/test starts a cluster and sets it)");
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let name = format!(
        "it_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let out = Command::new("psql")
        .args([admin.as_str(), "-v", "ON_ERROR_STOP=1", "-qc"])
        .arg(format!("CREATE DATABASE {name}"))
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "creating {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    format!("{base}/{name}")
}

/// `Basic base64(user:password)`.
pub(crate) fn basic(user: &str, password: &str) -> Vec<u8> {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
    .into_bytes()
}

/// A flow answering with the authenticated user, guarded by `role`.
pub(crate) fn echo_user_flow(id: &str, address: &str, role: &str) -> String {
    format!(
        "id: {id}\nsender:\n  adapter: https\n  address: {address}\n  authorization: user-role\n  roles: [{role}]\n  max_body_bytes: 2048\nsteps:\n  - content_modifier: {{ headers: {{ who: \"${{header.SapAuthenticatedUserName}}\" }} }}\nreceiver:\n  reply: {{ status: 200, body: \"user=${{header.who}}\" }}\n"
    )
}
