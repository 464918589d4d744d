//! Shared server state: the store, the live snapshot (security tables and deployed flows, swapped
//! whole on every change), the authenticator, and the background writers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use postern_auth::Authenticator;
use postern_auth::pki::LocalCa;
use postern_auth::secret::Sealer;
use postern_auth::token::TokenKeys;
use postern_core::model::AuditEntry;
use postern_core::mpl::Mpl;
use postern_core::partner::{PartnerChange, PartnerDelta};
use postern_core::snapshot::Snapshot;
use postern_core::{Error, Result};
use postern_flow::FlowTable;
use postern_partner::Directory;
use postern_store::Store;
use tokio::sync::Mutex;

use crate::batch::{BatchSink, BatchWriter};
use crate::metrics::Metrics;

/// Settings the server needs at run time.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Public base URL of this server, used in service key documents (`url`, `tokenurl`).
    pub public_url: String,
    /// Zone (tenant) name used in generated client ids and the `zid` claim.
    pub zone: String,
    /// Brute-force protection.
    pub lockout: crate::guard::Policy,
    /// This node's name for the leases of queue deliveries; stable across restarts of the same
    /// node (data directory), so that a restarted node takes its own leases back at once.
    pub node_id: String,
}

impl ServerConfig {
    /// The token endpoint URL, also the `iss` of our tokens (as XSUAA does).
    pub fn issuer(&self) -> String {
        format!("{}/oauth/token", self.public_url.trim_end_matches('/'))
    }
}

/// What the request path reads: one immutable value, replaced whole on every change.
#[derive(Debug, Default)]
pub struct Live {
    /// Keys, users, roles.
    pub security: Arc<Snapshot>,
    /// Deployed flows.
    pub flows: Arc<FlowTable>,
    /// Token signing and verification keys.
    pub tokens: Arc<TokenKeys>,
    /// The Partner Directory (alternative partners, authorized users, string parameters).
    pub directory: Directory,
    /// The HTTPS listener's configuration (server identity, client-certificate trust).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Increases with every change.
    pub version: u64,
}

/// What a write changed, so that only that part of the snapshot is re-read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope<'a> {
    /// Anything (keys, users, flows, token keys, trust, mappings).
    All,
    /// Nothing the request path reads (a role's description, the audit log).
    Nothing,
    /// One service instance and its keys, by instance name.
    Instance(&'a str),
    /// One technical user, by name.
    User(&'a str),
    /// The deployed flows.
    Flows,
    /// The token signing keys.
    TokenKeys,
}

/// Cheap-to-clone handle to everything the handlers need.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    store: Arc<dyn Store>,
    live: ArcSwap<Live>,
    version: AtomicU64,
    authn: Authenticator,
    sealer: Sealer,
    ca: Arc<LocalCa>,
    // Replaced when the certificate files change; read only while building a snapshot.
    tls: std::sync::Mutex<Option<crate::tls::TlsIdentity>>,
    config: ServerConfig,
    // Serialises admin writes with their snapshot rebuild, so a slower rebuild can never publish
    // an older state after a newer one. Held across `.await`, hence tokio's Mutex.
    writes: Mutex<()>,
    mpl: BatchSink<Mpl>,
    audit: BatchSink<AuditEntry>,
    enqueuer: crate::queue::Enqueuer,
    wake_queue: Arc<tokio::sync::Notify>,
    metrics: Metrics,
    guard: crate::guard::Guard,
    rate: crate::ratelimit::RateLimiter,
}

/// Background writers to wait for at shutdown.
pub struct Writers {
    mpl: BatchWriter,
    audit: BatchWriter,
    queue: crate::queue::QueueTasks,
}

impl Writers {
    /// Stops queue deliveries, flushes what is queued and stops the writers.
    pub async fn shutdown(self) {
        self.queue.shutdown().await;
        self.mpl.shutdown().await;
        self.audit.shutdown().await;
    }
}

impl AppState {
    /// Builds the state, loads the first snapshot and starts the background writers.
    pub async fn start(
        store: Arc<dyn Store>,
        authn: Authenticator,
        sealer: Sealer,
        ca: Arc<LocalCa>,
        tls: Option<crate::tls::TlsIdentity>,
        config: ServerConfig,
    ) -> Result<(Self, Writers)> {
        let metrics = Metrics::default();
        let lockout = config.lockout.clone();
        let (mpl, mpl_writer) = {
            let store = store.clone();
            BatchWriter::spawn("mpl", metrics.mpl_queue.clone(), move |batch: Arc<Vec<Mpl>>| {
                let store = store.clone();
                async move { store.insert_mpls(&batch).await }
            })
        };
        let (audit, audit_writer) = {
            let store = store.clone();
            BatchWriter::spawn(
                "audit",
                metrics.audit_queue.clone(),
                move |batch: Arc<Vec<AuditEntry>>| {
                    let store = store.clone();
                    async move { store.append_audit(&batch).await }
                },
            )
        };
        let wake = Arc::new(tokio::sync::Notify::new());
        let (enqueuer, mut queue_tasks) = crate::queue::start_writer(store.clone(), wake.clone());
        let state = Self(Arc::new(Inner {
            store,
            live: ArcSwap::from_pointee(Live::default()),
            version: AtomicU64::new(0),
            authn,
            sealer,
            ca,
            tls: std::sync::Mutex::new(tls),
            config,
            writes: Mutex::new(()),
            mpl,
            audit,
            enqueuer,
            wake_queue: wake.clone(),
            metrics,
            guard: crate::guard::Guard::new(lockout),
            rate: crate::ratelimit::RateLimiter::default(),
        }));
        // Forget failure counts whose window has passed (a weak handle: ends with the state).
        let weak = Arc::downgrade(&state.0);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(10));
            loop {
                tick.tick().await;
                match weak.upgrade() {
                    Some(inner) => inner.guard.sweep(std::time::Instant::now()),
                    None => break,
                }
            }
        });
        state.load_directory().await?;
        state.reload().await?;
        crate::queue::start_worker(&mut queue_tasks, state.clone(), wake);
        Ok((
            state,
            Writers {
                mpl: mpl_writer,
                audit: audit_writer,
                queue: queue_tasks,
            },
        ))
    }

    /// The current snapshot.
    pub fn live(&self) -> arc_swap::Guard<Arc<Live>> {
        self.0.live.load()
    }

    /// The current snapshot as an owned handle, for holding across `.await`.
    pub fn live_full(&self) -> Arc<Live> {
        self.0.live.load_full()
    }

    /// The store.
    pub fn store(&self) -> &dyn Store {
        self.0.store.as_ref()
    }

    /// The authenticator.
    pub fn authn(&self) -> &Authenticator {
        &self.0.authn
    }

    /// Seals and opens secrets kept at rest (token signing keys).
    pub fn sealer(&self) -> &Sealer {
        &self.0.sealer
    }

    /// Postern's CA (issues certificate keys).
    pub fn ca(&self) -> &LocalCa {
        &self.0.ca
    }

    /// Run-time settings.
    pub fn config(&self) -> &ServerConfig {
        &self.0.config
    }

    pub(crate) fn rate(&self) -> &crate::ratelimit::RateLimiter {
        &self.0.rate
    }

    pub(crate) fn guard(&self) -> &crate::guard::Guard {
        &self.0.guard
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }

    pub(crate) fn mpl(&self) -> &BatchSink<Mpl> {
        &self.0.mpl
    }

    pub(crate) fn enqueuer(&self) -> &crate::queue::Enqueuer {
        &self.0.enqueuer
    }

    /// Tells the delivery worker that a message may be due now.
    pub(crate) fn wake_queue(&self) {
        self.0.wake_queue.notify_one();
    }

    pub(crate) fn audit(&self) -> &BatchSink<AuditEntry> {
        &self.0.audit
    }

    /// Runs an admin write and publishes the resulting snapshot before answering, so the very
    /// next request sees the change. Rebuilds everything the request path reads; prefer
    /// [`AppState::write_in`] when the write's reach is known.
    pub async fn write<T>(&self, change: impl Future<Output = Result<T>>) -> Result<T> {
        self.write_in(Scope::All, change).await
    }

    /// Runs an admin write that changes only `scope`, and publishes a snapshot with that part
    /// re-read from the store before answering.
    pub async fn write_in<T>(&self, scope: Scope<'_>, change: impl Future<Output = Result<T>>) -> Result<T> {
        let _guard = self.0.writes.lock().await;
        let out = change.await;
        match &out {
            Ok(_) => self.refresh_locked(scope).await?,
            // The database is away: a rebuild would fail as well (after another timeout), and
            // on PostgreSQL the change feed brings in anything that landed after all.
            Err(Error::Unavailable(_)) => {}
            // Rebuild after other failures too, since part of a write may have landed before the
            // error; the write's own error is the answer.
            Err(_) => {
                if let Err(e) = self.refresh_locked(scope).await {
                    tracing::warn!(error = %e, "rebuilding the snapshot after a failed write failed");
                }
            }
        }
        out
    }

    /// The HTTPS listener's certificate chain (PEM), when it serves TLS.
    pub fn server_certificate_pem(&self) -> Option<String> {
        // Short critical section without `.await`: clone the chain out of the lock.
        self.0
            .tls
            .lock()
            .ok()
            .and_then(|g| g.as_ref().map(|i| i.chain_pem.clone()))
    }

    /// Serves a new TLS identity (renewed or replaced certificate) on new connections.
    pub async fn replace_tls_identity(&self, identity: crate::tls::TlsIdentity) -> Result<()> {
        // Refuse an identity that does not load before it replaces the working one.
        crate::tls::server_config(&identity, &[]).map_err(|e| Error::invalid("tls", e))?;
        if let Ok(mut g) = self.0.tls.lock() {
            *g = Some(identity);
        }
        self.reload().await
    }

    /// Applies Partner Directory changes in one transaction and publishes the changed directory
    /// before answering, so the next request sees it.
    pub async fn write_partners(&self, changes: Vec<PartnerChange>) -> Result<Vec<PartnerDelta>> {
        self.plan_and_write_partners(move |_| Ok((changes, ())))
            .await
            .map(|(_, deltas)| deltas)
    }

    /// Plans Partner Directory changes against the current directory and applies them, with no
    /// other write in between (an import's "create or update" decisions stay true).
    pub async fn plan_and_write_partners<T>(
        &self,
        plan: impl FnOnce(&Directory) -> Result<(Vec<PartnerChange>, T)>,
    ) -> Result<(T, Vec<PartnerDelta>)>
    where
        T: Send,
    {
        let _guard = self.0.writes.lock().await;
        let (changes, planned) = plan(&self.0.live.load().directory)?;
        if changes.is_empty() {
            return Ok((planned, Vec::new()));
        }
        let deltas = self.store().apply_partner_changes(&changes).await?;
        let mut directory = self.0.live.load().directory.clone();
        directory.apply(&deltas);
        self.publish_directory(directory);
        Ok((planned, deltas))
    }

    /// Applies what another node's committed change did to the directory. `reread` reads the
    /// changed keys' current rows; it runs under the write lock, so a local write cannot land
    /// between the read and the apply and be undone by a value read before it.
    pub(crate) async fn apply_partner_deltas(
        &self,
        reread: impl Future<Output = Result<Vec<PartnerDelta>>>,
    ) -> Result<usize> {
        let _guard = self.0.writes.lock().await;
        let deltas = reread.await?;
        if !deltas.is_empty() {
            let mut directory = self.0.live.load().directory.clone();
            directory.apply(&deltas);
            self.publish_directory(directory);
        }
        Ok(deltas.len())
    }

    /// Reloads the whole Partner Directory from the store (after a large change elsewhere).
    pub(crate) async fn reload_directory(&self) -> Result<()> {
        self.load_directory().await
    }

    /// Loads the whole Partner Directory from the store (at start).
    async fn load_directory(&self) -> Result<()> {
        let _guard = self.0.writes.lock().await;
        let started = std::time::Instant::now();
        let store = self.store();
        let mut builder = postern_partner::DirectoryBuilder::default();
        store.load_directory(&mut builder).await?;
        let directory = builder.finish().map_err(|_| {
            Error::Unavailable(
                "the Partner Directory holds more than 4 GiB of alternative partners or users".into(),
            )
        })?;
        let (alternatives, users, strings) = directory.sizes();
        tracing::info!(
            alternatives,
            users,
            strings,
            ms = started.elapsed().as_millis() as u64,
            "partner directory loaded"
        );
        self.publish_directory(directory);
        Ok(())
    }

    /// Publishes the current snapshot with another Partner Directory.
    fn publish_directory(&self, directory: Directory) {
        let current = self.0.live.load_full();
        self.publish(Live {
            security: current.security.clone(),
            flows: current.flows.clone(),
            tokens: current.tokens.clone(),
            tls: current.tls.clone(),
            directory,
            version: 0,
        });
    }

    /// Stores a new snapshot under the next version.
    fn publish(&self, mut live: Live) {
        let version = self.0.version.fetch_add(1, Ordering::Relaxed) + 1;
        live.version = version;
        self.0.live.store(Arc::new(live));
        self.0.metrics.snapshot_version.store(version, Ordering::Relaxed);
    }

    /// Rebuilds the snapshot from the store.
    pub async fn reload(&self) -> Result<()> {
        let _guard = self.0.writes.lock().await;
        self.reload_locked().await
    }

    /// Re-reads part of what the request path reads (after a change elsewhere).
    pub async fn refresh(&self, scope: Scope<'_>) -> Result<()> {
        let _guard = self.0.writes.lock().await;
        self.refresh_locked(scope).await
    }

    /// Publishes a snapshot with `scope` re-read from the store.
    async fn refresh_locked(&self, scope: Scope<'_>) -> Result<()> {
        let store = self.store();
        let current = self.0.live.load_full();
        let next = |security: Arc<Snapshot>, flows: Arc<FlowTable>, tokens: Arc<TokenKeys>| Live {
            security,
            flows,
            tokens,
            tls: current.tls.clone(),
            directory: current.directory.clone(),
            version: 0,
        };
        match scope {
            Scope::All => return self.reload_locked().await,
            Scope::Nothing => return Ok(()),
            Scope::Instance(name) => {
                let instance = store.instance(name).await?;
                let keys = match &instance {
                    Some(_) => store.keys(Some(name)).await?,
                    None => Vec::new(),
                };
                let security = current
                    .security
                    .with_instance(name, instance.as_ref().map(|i| (i, keys.as_slice())));
                self.publish(next(
                    Arc::new(security),
                    current.flows.clone(),
                    current.tokens.clone(),
                ));
            }
            Scope::User(name) => {
                let name = name.to_ascii_lowercase();
                let user = store.user(&name).await?;
                let security = current.security.with_user(&name, user.as_ref());
                self.publish(next(
                    Arc::new(security),
                    current.flows.clone(),
                    current.tokens.clone(),
                ));
            }
            Scope::Flows => {
                let table = self.flow_table(&store.flows().await?).await?;
                self.publish(next(
                    current.security.clone(),
                    Arc::new(table),
                    current.tokens.clone(),
                ));
            }
            Scope::TokenKeys => {
                let tokens = self.token_keys(&store.token_keys().await?);
                self.publish(next(
                    current.security.clone(),
                    current.flows.clone(),
                    Arc::new(tokens),
                ));
            }
        }
        Ok(())
    }

    async fn reload_locked(&self) -> Result<()> {
        let store = self.store();
        let (instances, keys, users, flows, token_keys, trusted, mappings) = (
            store.instances().await?,
            store.keys(None).await?,
            store.users().await?,
            store.flows().await?,
            store.token_keys().await?,
            store.trusted_cas().await?,
            store.cert_mappings().await?,
        );
        let tls = self.tls_config(&trusted)?;
        let tokens = self.token_keys(&token_keys);
        let table = self.flow_table(&flows).await?;
        // The directory changes only through `write_partners`; keep the current one.
        let directory = self.0.live.load().directory.clone();
        self.publish(Live {
            security: Arc::new(Snapshot::build(&instances, &keys, &users, &mappings)),
            flows: Arc::new(table),
            tokens: Arc::new(tokens),
            tls,
            directory,
            version: 0,
        });
        Ok(())
    }
}

/// The deployed flows compiled; a flow that no longer compiles is logged and not served.
impl AppState {
    /// Compiles the deployed flows with their back-end credentials opened; a flow that no longer
    /// compiles (or names a credential that is gone) is logged and not served.
    async fn flow_table(&self, flows: &[postern_core::model::StoredFlow]) -> Result<FlowTable> {
        let stored = self.store().credentials().await?;
        let lookup = |name: &str| {
            let c = stored.iter().find(|c| c.name == name)?;
            let opened = crate::admin::credentials::open(&self.0.sealer, c);
            if opened.is_none() {
                tracing::error!(credential = %name, "credential cannot be opened with this master key");
            }
            opened
        };
        let previous = self.0.live.load().flows.clone();
        let (table, failed) = FlowTable::build(flows, &lookup, &previous);
        for (id, e) in failed {
            tracing::error!(flow = %id, error = %e, "deployed flow no longer compiles; it is not served");
        }
        Ok(table)
    }

    /// The token keys opened with this node's master key; a key it cannot open is logged.
    fn token_keys(&self, rows: &[postern_core::model::TokenKey]) -> TokenKeys {
        let (tokens, unreadable) = TokenKeys::build(
            rows,
            &self.0.sealer,
            &self.0.config.issuer(),
            crate::extract::now_ms(),
        );
        for kid in unreadable {
            tracing::error!(kid = %kid, "token signing key cannot be opened with this master key");
        }
        tokens
    }

    fn tls_config(
        &self,
        trusted: &[postern_core::model::TrustedCa],
    ) -> Result<Option<Arc<rustls::ServerConfig>>> {
        // Short critical section without `.await`: clone the identity out of the lock.
        let identity = self.0.tls.lock().map(|g| g.clone()).unwrap_or(None);
        let Some(identity) = &identity else {
            return Ok(None);
        };
        let mut roots = Vec::with_capacity(trusted.len() + 1);
        if let Ok(certs) = postern_auth::cert::pem_certificates(self.0.ca.cert_pem(), "ca") {
            roots.extend(certs);
        }
        for ca in trusted {
            match postern_auth::cert::pem_certificates(&ca.pem, "trusted CA") {
                Ok(certs) => roots.extend(certs),
                Err(e) => tracing::error!(subject = %ca.subject, error = %e, "trusted CA skipped"),
            }
        }
        let (config, skipped) = crate::tls::server_config(identity, &roots)
            .map_err(|e| Error::Internal(format!("TLS configuration: {e}")))?;
        for s in skipped {
            tracing::error!("{s}");
        }
        Ok(Some(config))
    }
}

impl From<Error> for crate::error::ApiError {
    fn from(e: Error) -> Self {
        crate::error::ApiError::from_domain(e)
    }
}
