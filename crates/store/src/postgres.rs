//! The PostgreSQL backend, for several nodes sharing one database. Same traits, same behaviour
//! as [`SqliteStore`](crate::SqliteStore): same errors, orders, pages and all-or-nothing change
//! sets. SQLite has one writer, so its write transactions never interleave; here, the write
//! transactions that check before they write, and those that grant the roles such a check reads,
//! take one advisory lock so they cannot interleave either, on one node or across nodes.

use std::str::FromStr;

use postern_core::{Error, Result};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};

mod access;
mod certs;
mod flows;
mod instances;
mod logs;
mod partner;
mod queue;
#[cfg(test)]
pub(crate) mod test_db;
#[cfg(test)]
mod tests;

/// Connections per node: admin writes are rare and MPLs are written in batches by one task, so
/// a few connections serve a node; many nodes on one server must stay under `max_connections`.
const MAX_CONNECTIONS: u32 = 8;

/// Longest a query waits for a connection, including (re)connecting to the server: while the
/// database is down, an admin write answers 503 after this rather than after sqlx's 30 s default,
/// and the background writers retry at this pace.
const ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// The advisory lock key of the serialised write transactions ("postern" in ASCII).
const WRITE_LOCK: i64 = 0x0070_6f73_7465_726e;

/// The PostgreSQL store.
#[derive(Clone, Debug)]
pub struct PgStore {
    pub(crate) pool: PgPool,
}

impl PgStore {
    /// Connects to the database at a `postgres://` URL and applies the migrations. The
    /// connections name themselves `postern` in `pg_stat_activity` unless the URL (or
    /// `PGAPPNAME`) gives another `application_name`.
    pub async fn open(url: &str) -> Result<Self> {
        let options =
            PgConnectOptions::from_str(url).map_err(|e| Error::invalid("database", e.to_string()))?;
        Self::connect(options).await
    }

    /// Closes the pool (waiting for connections in use).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Opens a store on parsed options.
    pub(crate) async fn connect(mut options: PgConnectOptions) -> Result<Self> {
        if options.get_application_name().is_none() {
            options = options.application_name("postern");
        }
        let target = format!(
            "{}:{}/{}",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or_default()
        );
        // Over TCP, "not found" while connecting can only be a file the URL names (sslrootcert,
        // sslcert, sslkey); over a Unix socket it is a server not started yet.
        let over_tcp = options.get_socket().is_none() && !options.get_host().starts_with('/');
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| match &e {
                // A certificate that does not verify (rustls reports it as invalid data), or a
                // server without TLS when the URL requires it, will not change by waiting: say
                // so at once instead of retrying.
                sqlx::Error::Tls(_) => Error::invalid("database", format!("TLS to {target}: {e}")),
                sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => {
                    Error::invalid("database", format!("TLS to {target}: {e}"))
                }
                sqlx::Error::Io(io) if over_tcp && io.kind() == std::io::ErrorKind::NotFound => {
                    let names = "sslrootcert, sslcert or sslkey";
                    Error::invalid("database", format!("TLS to {target}: {names}: {e}"))
                }
                _ => Error::Unavailable(format!("connecting to {target}: {e}")),
            })?;
        // sqlx takes an advisory lock while migrating, so nodes starting together apply each
        // migration once.
        sqlx::migrate!("migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| Error::Unavailable(format!("migrating {target}: {e}")))?;
        Ok(Self { pool })
    }

    /// Begins a write transaction that runs alone among those begun here, on every node: what it
    /// reads (a role's users, a flow's address, the unretired token key, whether a partner
    /// exists) stays true until it commits, as on SQLite's single writer.
    async fn begin_serialised(&self) -> Result<Transaction<'static, Postgres>> {
        let mut tx = self.pool.begin().await.map_err(storage)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(WRITE_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
        Ok(tx)
    }
}

/// Maps a PostgreSQL error: besides what [`common::storage`](crate::common::storage) maps, a
/// lost or refused connection, a server shutting down or out of resources, and a deadlock or
/// serialisation failure are "try again later"; text holding NUL (which PostgreSQL cannot store)
/// is invalid input.
fn storage(e: sqlx::Error) -> Error {
    if let sqlx::Error::Database(db) = &e
        && let Some(code) = db.code()
    {
        // SQLSTATE classes: 08 connection, 40 transaction rollback, 53 insufficient resources,
        // 57P operator intervention.
        if ["08", "40", "53", "57P"]
            .iter()
            .any(|class| code.starts_with(class))
        {
            return Error::Unavailable(e.to_string());
        }
        if code == "22021" {
            return Error::invalid("text", "must not contain NUL characters");
        }
    }
    crate::common::storage(e)
}

#[async_trait::async_trait]
impl crate::ChangeStore for PgStore {
    async fn changes_after(&self, after: i64, window_ms: i64, limit: u32) -> Result<Vec<crate::Change>> {
        let rows = sqlx::query(
            "SELECT seq, entity, key FROM changes \
             WHERE seq > $1 OR at > clock_timestamp() - make_interval(secs => $2::double precision / 1000) \
             ORDER BY seq LIMIT $3",
        )
        .bind(after)
        .bind(window_ms)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(crate::common::storage)?;
        use sqlx::Row;
        Ok(rows
            .iter()
            .map(|r| crate::Change {
                seq: r.get("seq"),
                entity: r.get("entity"),
                key: r.get("key"),
            })
            .collect())
    }

    async fn last_change(&self) -> Result<i64> {
        sqlx::query_scalar::<_, i64>(
            "SELECT GREATEST((SELECT max(seq) FROM changes), (SELECT seq FROM change_horizon WHERE id = 1), 0)",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(crate::common::storage)
    }

    async fn prune_changes(&self, older_than_ms: i64) -> Result<u64> {
        // One statement: the horizon moves with the rows it removes.
        let done = sqlx::query_scalar::<_, i64>(
            "WITH gone AS (DELETE FROM changes \
                 WHERE at < clock_timestamp() - make_interval(secs => $1::double precision / 1000) RETURNING seq), \
             moved AS (UPDATE change_horizon SET seq = GREATEST(seq, (SELECT COALESCE(max(seq), 0) FROM gone)) \
                 WHERE id = 1) \
             SELECT count(*) FROM gone",
        )
        .bind(older_than_ms)
        .fetch_one(&self.pool)
        .await
        .map_err(crate::common::storage)?;
        Ok(done as u64)
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(crate::common::storage)?;
        Ok(())
    }

    async fn pruned_through(&self) -> Result<i64> {
        sqlx::query_scalar::<_, i64>("SELECT seq FROM change_horizon WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(crate::common::storage)
    }
}

impl PgStore {
    /// A connection listening for change notifications (`NOTIFY postern_changes`).
    pub async fn listen_changes(&self) -> Result<sqlx::postgres::PgListener> {
        let mut l = sqlx::postgres::PgListener::connect_with(&self.pool)
            .await
            .map_err(crate::common::storage)?;
        l.listen("postern_changes")
            .await
            .map_err(crate::common::storage)?;
        Ok(l)
    }
}
