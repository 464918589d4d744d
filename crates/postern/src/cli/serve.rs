//! `postern serve`: configuration (flags, then `POSTERN_*` environment, then the TOML file, then
//! defaults), the data directory (SQLite file, master key), the bootstrap admin, listeners, and
//! graceful shutdown on SIGTERM / Ctrl-C.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use postern_auth::Authenticator;
use postern_auth::password::CachedVerifier;
use postern_auth::secret::{Sealer, SecretHasher, random};
use postern_server::{AppState, ServerConfig};
use postern_store::{PgStore, SqliteStore, Store};
use serde::Deserialize;
use tokio::net::TcpListener;

/// Log line format.
#[derive(Clone, Copy, Debug, Deserialize, ValueEnum, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Options of `postern serve`; each also reads `POSTERN_<NAME>` and the `--config` file.
#[derive(Args, Debug)]
pub(crate) struct ServeArgs {
    /// TOML file with the same keys (data-dir, http, database, public-url, log-format).
    #[arg(long, env = "POSTERN_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory: SQLite database and master key [default: ./postern-data].
    #[arg(long, env = "POSTERN_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Plain-HTTP listen address, `-` for none [default: 127.0.0.1:8080].
    #[arg(long, env = "POSTERN_HTTP")]
    http: Option<String>,
    /// HTTPS listen address, `-` for none [default: 127.0.0.1:8443].
    #[arg(long, env = "POSTERN_HTTPS")]
    https: Option<String>,
    /// Host names and IP addresses of the generated server certificate, comma-separated
    /// [default: localhost,127.0.0.1].
    #[arg(long, env = "POSTERN_TLS_HOSTNAME", value_delimiter = ',')]
    tls_hostname: Option<Vec<String>>,
    /// PEM certificate chain to serve instead of the generated one (with --tls-key).
    #[arg(long, env = "POSTERN_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "POSTERN_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// How often (seconds) the certificate files are checked for changes [default: 30].
    #[arg(long, env = "POSTERN_TLS_RELOAD_SECONDS")]
    tls_reload_seconds: Option<u64>,
    /// Database URL: sqlite://PATH (one node) or postgres://USER@HOST:PORT/DB (several nodes)
    /// [default: sqlite://<data-dir>/postern.db].
    #[arg(long, env = "POSTERN_DATABASE")]
    database: Option<String>,
    /// Public base URL put into service keys and endpoint URLs [default: from the listener].
    #[arg(long, env = "POSTERN_PUBLIC_URL")]
    public_url: Option<String>,
    /// Log format [default: text].
    #[arg(long, env = "POSTERN_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormat>,
    /// Failed authentications of one identity from one address before that address is locked
    /// out of it (1 s, doubling); 0 switches brute-force protection off [default: 5].
    #[arg(long, env = "POSTERN_LOCKOUT_AFTER")]
    lockout_after: Option<u32>,
    /// Failed authentications from one address, any identity, before it is locked out
    /// [default: 50].
    #[arg(long, env = "POSTERN_LOCKOUT_ADDRESS_AFTER")]
    lockout_address_after: Option<u32>,
    /// Failed authentications of one identity from anywhere before it is locked out for
    /// addresses that have not authenticated as it in the last 24 h [default: 100].
    #[arg(long, env = "POSTERN_LOCKOUT_IDENTITY_AFTER")]
    lockout_identity_after: Option<u32>,
    /// Longest lockout of an identity, seconds [default: 900].
    #[arg(long, env = "POSTERN_LOCKOUT_MAX_SECONDS")]
    lockout_max_seconds: Option<u64>,
    /// Most open connections, both listeners together; more wait in the backlog
    /// [default: 10000].
    #[arg(long, env = "POSTERN_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Seconds a client may take to send a request head (HTTP/1) [default: 30].
    #[arg(long, env = "POSTERN_HEADER_TIMEOUT_SECONDS")]
    header_timeout_seconds: Option<u64>,
    /// Seconds a request body may stall before the request is answered 408 [default: 60].
    #[arg(long, env = "POSTERN_BODY_TIMEOUT_SECONDS")]
    body_timeout_seconds: Option<u64>,
    /// Seconds after which a connection with no request in flight is closed
    /// [default: 120].
    #[arg(long, env = "POSTERN_IDLE_TIMEOUT_SECONDS")]
    idle_timeout_seconds: Option<u64>,
    /// Most header fields in one request; more get 431 [default: 100].
    #[arg(long, env = "POSTERN_MAX_HEADERS")]
    max_headers: Option<usize>,
    /// Most bytes of a request head; more get 431 [default: 65536, at least 8192].
    #[arg(long, env = "POSTERN_MAX_HEADER_BYTES")]
    max_header_bytes: Option<usize>,
    /// Longest request target (path and query) in bytes; longer gets 414 [default: 8192].
    #[arg(long, env = "POSTERN_MAX_URI_BYTES")]
    max_uri_bytes: Option<usize>,
    /// Seconds shutdown waits for requests in flight [default: 30].
    #[arg(long, env = "POSTERN_SHUTDOWN_TIMEOUT_SECONDS")]
    shutdown_timeout_seconds: Option<u64>,
}

/// The `--config` file: the same keys as the flags, unknown keys rejected.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileConfig {
    data_dir: Option<PathBuf>,
    http: Option<String>,
    https: Option<String>,
    tls_hostname: Option<Vec<String>>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_reload_seconds: Option<u64>,
    database: Option<String>,
    public_url: Option<String>,
    log_format: Option<LogFormat>,
    lockout_after: Option<u32>,
    lockout_address_after: Option<u32>,
    lockout_identity_after: Option<u32>,
    lockout_max_seconds: Option<u64>,
    max_connections: Option<usize>,
    header_timeout_seconds: Option<u64>,
    body_timeout_seconds: Option<u64>,
    idle_timeout_seconds: Option<u64>,
    max_headers: Option<usize>,
    max_header_bytes: Option<usize>,
    max_uri_bytes: Option<usize>,
    shutdown_timeout_seconds: Option<u64>,
}

/// The resolved configuration.
struct Config {
    data_dir: PathBuf,
    http: Option<SocketAddr>,
    https: Option<SocketAddr>,
    tls_hostnames: Vec<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_reload: std::time::Duration,
    database: String,
    public_url: Option<String>,
    log_format: LogFormat,
    lockout: postern_server::guard::Policy,
    limits: postern_server::Limits,
}

/// The connection and request limits: flag, then file, then default; times at least 1 s.
fn limits(args: &ServeArgs, file: &FileConfig) -> postern_server::Limits {
    let d = postern_server::Limits::default();
    let secs = |flag: Option<u64>, file: Option<u64>, default: std::time::Duration| {
        flag.or(file)
            .map(|s| std::time::Duration::from_secs(s.clamp(1, 86_400)))
            .unwrap_or(default)
    };
    let mut l = postern_server::Limits::new(
        args.max_connections
            .or(file.max_connections)
            .unwrap_or(d.max_connections()),
    );
    l.header_timeout = secs(
        args.header_timeout_seconds,
        file.header_timeout_seconds,
        d.header_timeout,
    );
    l.body_timeout = secs(
        args.body_timeout_seconds,
        file.body_timeout_seconds,
        d.body_timeout,
    );
    l.idle_timeout = secs(
        args.idle_timeout_seconds,
        file.idle_timeout_seconds,
        d.idle_timeout,
    );
    l.drain_timeout = secs(
        args.shutdown_timeout_seconds,
        file.shutdown_timeout_seconds,
        d.drain_timeout,
    );
    l.max_headers = args
        .max_headers
        .or(file.max_headers)
        .unwrap_or(d.max_headers)
        .max(1);
    l.max_header_bytes = args
        .max_header_bytes
        .or(file.max_header_bytes)
        .unwrap_or(d.max_header_bytes)
        .max(8 * 1024);
    l.max_uri_bytes = args
        .max_uri_bytes
        .or(file.max_uri_bytes)
        .unwrap_or(d.max_uri_bytes)
        .max(1);
    l
}

fn resolve(args: ServeArgs) -> anyhow::Result<Config> {
    let file: FileConfig = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading config file {}", path.display()))?;
            toml::from_str(&text).with_context(|| format!("config file {}", path.display()))?
        }
        None => FileConfig::default(),
    };
    let limits = limits(&args, &file);
    let data_dir = args
        .data_dir
        .or(file.data_dir)
        .unwrap_or_else(|| PathBuf::from("postern-data"));
    let http = listen_addr(
        "http",
        args.http.or(file.http).as_deref().unwrap_or("127.0.0.1:8080"),
    )?;
    let https = listen_addr(
        "https",
        args.https.or(file.https).as_deref().unwrap_or("127.0.0.1:8443"),
    )?;
    if http.is_none() && https.is_none() {
        bail!("--http - and --https - leave no listener; give an address for one of them");
    }
    let tls_hostnames = args
        .tls_hostname
        .or(file.tls_hostname)
        .unwrap_or_else(|| vec!["localhost".into(), "127.0.0.1".into()]);
    let database = args
        .database
        .or(file.database)
        .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("postern.db").display()));
    if !(database.starts_with("sqlite://")
        || database.starts_with("postgres://")
        || database.starts_with("postgresql://"))
    {
        bail!("--database: give sqlite://PATH or postgres://USER@HOST:PORT/DB");
    }
    Ok(Config {
        data_dir,
        http,
        https,
        tls_hostnames,
        tls_cert: args.tls_cert.or(file.tls_cert),
        tls_key: args.tls_key.or(file.tls_key),
        tls_reload: std::time::Duration::from_secs(
            args.tls_reload_seconds
                .or(file.tls_reload_seconds)
                .unwrap_or(30)
                .clamp(1, 86_400),
        ),
        database,
        public_url: args.public_url.or(file.public_url),
        log_format: args.log_format.or(file.log_format).unwrap_or(LogFormat::Text),
        lockout: {
            let d = postern_server::guard::Policy::default();
            let max = args
                .lockout_max_seconds
                .or(file.lockout_max_seconds)
                .map(|s| std::time::Duration::from_secs(s.clamp(1, 86_400)));
            postern_server::guard::Policy {
                pair_after: args.lockout_after.or(file.lockout_after).unwrap_or(d.pair_after),
                ip_after: args
                    .lockout_address_after
                    .or(file.lockout_address_after)
                    .unwrap_or(d.ip_after)
                    .max(1),
                identity_after: args
                    .lockout_identity_after
                    .or(file.lockout_identity_after)
                    .unwrap_or(d.identity_after)
                    .max(1),
                pair_max: max.unwrap_or(d.pair_max),
                ..d
            }
        },
        limits,
    })
}

fn listen_addr(name: &str, value: &str) -> anyhow::Result<Option<SocketAddr>> {
    if value == "-" {
        return Ok(None);
    }
    value
        .parse()
        .map(Some)
        .with_context(|| format!("--{name}: {value:?} is not an address such as 127.0.0.1:8080"))
}

/// The store behind `--database`: SQLite (one node) or PostgreSQL (several nodes).
#[derive(Clone)]
enum Database {
    Sqlite(Arc<SqliteStore>),
    Postgres(Arc<PgStore>),
}

impl Database {
    async fn open(url: &str) -> anyhow::Result<Self> {
        Ok(if url.starts_with("sqlite://") {
            Database::Sqlite(Arc::new(
                SqliteStore::open(url).await.context("opening the database")?,
            ))
        } else {
            // A node may start together with its database: wait for it a while.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            let store = loop {
                match PgStore::open(url).await {
                    Ok(s) => break s,
                    Err(postern_core::Error::Unavailable(e)) if std::time::Instant::now() < deadline => {
                        tracing::warn!(error = %e, "the database is not reachable yet; retrying");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                    Err(e) => return Err(anyhow::Error::new(e).context("opening the PostgreSQL database")),
                }
            };
            tracing::info!("using PostgreSQL");
            Database::Postgres(Arc::new(store))
        })
    }

    fn as_ref(&self) -> &dyn Store {
        match self {
            Database::Sqlite(s) => s.as_ref(),
            Database::Postgres(s) => s.as_ref(),
        }
    }

    fn shared(&self) -> Arc<dyn Store> {
        match self {
            Database::Sqlite(s) => s.clone(),
            Database::Postgres(s) => s.clone(),
        }
    }

    async fn close(&self) {
        match self {
            Database::Sqlite(s) => s.close().await,
            Database::Postgres(s) => s.close().await,
        }
    }
}

pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = resolve(args)?;
    init_logging(config.log_format);
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    let master = master_key(&config.data_dir)?;
    let store = Database::open(&config.database).await?;
    let admin_password = std::env::var("POSTERN_ADMIN_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty());
    if let Some(generated) =
        postern_server::bootstrap::ensure_admin(store.as_ref(), admin_password.as_deref(), now_ms()).await?
    {
        // Shown once, on the terminal only: this is the one way to learn it.
        eprintln!(
            "\n  Created the administrator `admin` with the generated password:\n\n      {generated}\n\n  It is not shown again. Set POSTERN_ADMIN_PASSWORD on first start to choose it.\n"
        );
    }
    let http = bind(config.http).await?;
    let https = bind(config.https).await?;
    let ca = super::tls::load_ca(
        &config.data_dir,
        store.as_ref(),
        &Sealer::new(&master, "postern local CA v1"),
    )
    .await?;
    let identity = match &https {
        Some(_) => Some(super::tls::identity(
            &config.data_dir,
            &ca.ca,
            &config.tls_hostnames,
            config.tls_cert.as_deref(),
            config.tls_key.as_deref(),
        )?),
        None => None,
    };
    let http_addr = http.as_ref().map(TcpListener::local_addr).transpose()?;
    let https_addr = https.as_ref().map(TcpListener::local_addr).transpose()?;
    let public_url = match (&config.public_url, https_addr, http_addr) {
        (Some(url), _, _) => url.clone(),
        (None, Some(a), _) => format!("https://{}", host_for_url(a, &config.tls_hostnames)),
        (None, None, Some(a)) => format!("http://{a}"),
        (None, None, None) => bail!("no listener configured"),
    };
    let authn = Authenticator::new(
        SecretHasher::new(&master, "postern client secret v1"),
        CachedVerifier::new(SecretHasher::new(&master, "postern password cache v1"), 10_000),
    );
    let sealer = Sealer::new(&master, "postern token signing keys v1");
    {
        let rows = store.as_ref().token_keys().await?;
        if !rows.is_empty() && rows.iter().all(|r| sealer.open(&r.private_enc).is_none()) {
            bail!(
                "the master key does not open this database's token signing keys: every node of a \
                 deployment needs the same master key (POSTERN_MASTER_KEY or the same master.key file)"
            );
        }
    }
    if postern_auth::token::ensure_key(store.as_ref(), &sealer, now_ms()).await? {
        tracing::info!("created the first token signing key");
    }
    let served = identity.clone();
    let local_ca = Arc::new(ca.ca);
    let (state, writers) = AppState::start(
        store.shared(),
        authn,
        sealer,
        local_ca.clone(),
        identity,
        ServerConfig {
            public_url: public_url.clone(),
            zone: "postern".into(),
            lockout: config.lockout.clone(),
            node_id: node_id(&config.data_dir)?,
        },
    )
    .await?;
    let show = |a: Option<SocketAddr>| a.map(|a| a.to_string()).unwrap_or_else(|| "-".into());
    let ca_file = ca.file.display().to_string();
    tracing::info!(
        http = %show(http_addr),
        https = %show(https_addr),
        public_url = %public_url,
        ca = %ca_file,
        data_dir = %config.data_dir.display(),
        "postern listening"
    );
    let limits = config.limits.clone();
    if https_addr.is_some() {
        tokio::spawn(watch_certificates(state.clone(), config, local_ca, served));
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let plain = {
        let (state, rx, limits) = (state.clone(), stop_rx.clone(), limits.clone());
        async move {
            match http {
                Some(l) => postern_server::serve(l, state, limits, stopped(rx)).await,
                None => Ok(()),
            }
        }
    };
    let secure = {
        let (state, rx, limits) = (state.clone(), stop_rx.clone(), limits.clone());
        async move {
            match https {
                Some(l) => postern_server::serve_tls(l, state, limits, stopped(rx)).await,
                None => Ok(()),
            }
        }
    };
    let follower = match &store {
        Database::Postgres(pg) => Some(tokio::spawn(follow_changes(pg.clone(), state.clone()))),
        Database::Sqlite(_) => None,
    };
    tokio::try_join!(plain, secure)?;
    if let Some(f) = follower {
        f.abort();
    }
    drop(state);
    tracing::info!("listener closed; flushing message processing logs");
    writers.shutdown().await;
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Follows the changes other nodes make to the shared PostgreSQL database: woken by `NOTIFY`,
/// and at least once a second in case a notification is lost. After a lost connection it
/// reconnects and catches up from the last change it applied.
async fn follow_changes(pg: Arc<PgStore>, state: AppState) {
    use postern_store::ChangeStore;
    let mut follower = loop {
        match postern_server::follow::Follower::start(&state).await {
            Ok(f) => break f,
            Err(e) => {
                tracing::error!(error = %e, "change feed unavailable; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    };
    let mut listener = None;
    let mut pruned = std::time::Instant::now();
    loop {
        if listener.is_none() {
            match pg.listen_changes().await {
                Ok(l) => {
                    tracing::info!("following changes of other nodes (LISTEN postern_changes)");
                    listener = Some(l);
                }
                Err(e) => tracing::warn!(error = %e, "cannot listen for changes; polling every second"),
            }
        }
        if let Some(l) = listener.as_mut() {
            match tokio::time::timeout(std::time::Duration::from_secs(1), l.try_recv()).await {
                Ok(Ok(Some(_))) | Err(_) => {}
                Ok(Ok(None)) => tracing::warn!("change feed connection lost; reconnecting and catching up"),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "change feed connection failed; reconnecting and catching up");
                    listener = None;
                }
            }
        } else {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
        match follower.poll(&state).await {
            Ok(a) if a.full_reload => tracing::warn!(
                "changes this node missed were pruned from the change feed (it was away for more \
                 than an hour); reloaded all configuration and the Partner Directory"
            ),
            Ok(a) if a.changes > 0 => tracing::info!(
                changes = a.changes,
                security = a.security,
                partner_keys = a.partner_keys,
                "applied changes from the database"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "reading the change feed failed; retrying"),
        }
        if pruned.elapsed() > std::time::Duration::from_secs(60) {
            pruned = std::time::Instant::now();
            if let Err(e) = pg.prune_changes(3_600_000).await {
                tracing::warn!(error = %e, "pruning the change feed failed");
            }
        }
    }
}

/// Reloads the server certificate without a restart: the operator's `--tls-cert/--tls-key` when
/// the files change, or the generated certificate when it is re-issued (30 days before expiry).
async fn watch_certificates(
    state: AppState,
    config: Config,
    ca: Arc<postern_auth::pki::LocalCa>,
    mut current: Option<postern_server::TlsIdentity>,
) {
    let mut tick = tokio::time::interval(config.tls_reload);
    tick.tick().await;
    loop {
        tick.tick().await;
        let next = super::tls::identity(
            &config.data_dir,
            &ca,
            &config.tls_hostnames,
            config.tls_cert.as_deref(),
            config.tls_key.as_deref(),
        );
        match next {
            Ok(next) if Some(&next) != current.as_ref() => {
                match state.replace_tls_identity(next.clone()).await {
                    Ok(()) => {
                        tracing::info!("server certificate changed; new connections use it");
                        current = Some(next);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "the new server certificate does not load; keeping the old one")
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the server certificate; keeping the current one")
            }
        }
    }
}

async fn bind(addr: Option<SocketAddr>) -> anyhow::Result<Option<TcpListener>> {
    match addr {
        Some(a) => Ok(Some(
            TcpListener::bind(a)
                .await
                .with_context(|| format!("binding {a}"))?,
        )),
        None => Ok(None),
    }
}

/// `host:port` for the public URL: a certificate host name when the listener is on a wildcard
/// address, so the URL matches the certificate.
fn host_for_url(addr: SocketAddr, hostnames: &[String]) -> String {
    if addr.ip().is_unspecified() {
        let host = hostnames.first().map(String::as_str).unwrap_or("localhost");
        format!("{host}:{}", addr.port())
    } else {
        addr.to_string()
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Reads the 32-byte master key from the data directory, creating it (mode 0600) on first start.
/// The master key: `POSTERN_MASTER_KEY` (64 hex digits; the same on every node of a multi-node
/// deployment), else `<data-dir>/master.key`, created on first start.
fn master_key(dir: &Path) -> anyhow::Result<[u8; 32]> {
    if let Ok(hex) = std::env::var("POSTERN_MASTER_KEY") {
        let hex = hex.trim();
        let bytes: Option<Vec<u8>> = (hex.len() == 64)
            .then(|| {
                (0..64)
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
                    .collect()
            })
            .flatten();
        return bytes
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| anyhow::anyhow!("POSTERN_MASTER_KEY must be 64 hex digits (32 bytes)"));
    }
    let path = dir.join("master.key");
    match std::fs::read(&path) {
        Ok(bytes) => bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("{} must hold exactly 32 bytes", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = random::<32>();
            write_private(&path, &key)?;
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown requested; finishing in-flight requests");
}

/// This node's stable name (`node-id` in the data directory, made on first start): it names the
/// leases of queue deliveries, so that a restarted node takes its own back at once.
fn node_id(data_dir: &std::path::Path) -> anyhow::Result<String> {
    let file = data_dir.join("node-id");
    match std::fs::read_to_string(&file) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_owned()),
        _ => {
            let id: String = postern_auth::secret::random::<16>()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            std::fs::write(&file, &id).with_context(|| format!("writing {}", file.display()))?;
            Ok(id)
        }
    }
}
