//! A fresh PostgreSQL database per test, on the server `POSTERN_TEST_POSTGRES_URL` names
//! (`./dev/test` starts a throwaway cluster and sets it). Without the variable the tests fail:
//! a PostgreSQL test that skips itself would pass without testing anything.

use std::future::Future;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, Connection, PgConnection};

use super::PgStore;

/// The variable naming the test server (any database on it; tests create their own).
pub(crate) const URL_VAR: &str = "POSTERN_TEST_POSTGRES_URL";

/// Runs `body` on a store over a new, empty database, then drops the database, also when the
/// body panics (the panic is passed on).
pub(crate) async fn run<F, Fut>(body: F)
where
    F: FnOnce(PgStore) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let db = TestDb::create().await;
    let outcome = tokio::spawn(body(db.store.clone())).await;
    db.drop().await;
    if let Err(e) = outcome {
        match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("test body did not finish: {e}"),
        }
    }
}

/// A database made for one test.
pub(crate) struct TestDb {
    /// Where to connect to create and drop databases.
    admin: PgConnectOptions,
    /// The test's database.
    name: String,
    /// A store on it (migrated).
    pub(crate) store: PgStore,
}

impl TestDb {
    /// Creates a database and opens a store on it. The database sorts text by the ICU `en-US`
    /// collation, whose order is not byte order, so a text column that misses `COLLATE "C"`
    /// shows up as a test that orders differently than on SQLite.
    pub(crate) async fn create() -> Self {
        let url = std::env::var(URL_VAR).unwrap_or_else(|_| {
            panic!(
                "{URL_VAR} is not set: the PostgreSQL store tests need a server. Run ./dev/test (it \
                 starts a throwaway cluster), or `eval \"$(dev/pg-cluster start)\"` first, or set \
                 {URL_VAR}=postgres://USER@HOST:PORT/postgres (a role that may CREATE DATABASE)"
            )
        });
        let admin = PgConnectOptions::from_str(&url).unwrap_or_else(|e| panic!("{URL_VAR}={url}: {e}"));
        let name = unique_name();
        let mut conn = PgConnection::connect_with(&admin)
            .await
            .unwrap_or_else(|e| panic!("connecting to {URL_VAR}={url}: {e}"));
        let icu = format!("CREATE DATABASE {name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'");
        if sqlx::query(AssertSqlSafe(icu)).execute(&mut conn).await.is_err() {
            // A server built without ICU: the database's own locale then.
            sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("creating database {name}: {e}"));
        }
        let _ = conn.close().await;
        let store = PgStore::connect(admin.clone().database(&name))
            .await
            .unwrap_or_else(|e| panic!("opening database {name}: {e}"));
        Self { admin, name, store }
    }

    /// Closes the store and drops the database; failures leave it behind (the cluster is
    /// throwaway).
    pub(crate) async fn drop(self) {
        self.store.close().await;
        if let Ok(mut conn) = PgConnection::connect_with(&self.admin).await {
            let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
            let _ = sqlx::query(AssertSqlSafe(sql)).execute(&mut conn).await;
            let _ = conn.close().await;
        }
    }
}

/// `t_<pid>_<n>_<nanos>`: unique among the tests of this process and across runs.
fn unique_name() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "t_{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
