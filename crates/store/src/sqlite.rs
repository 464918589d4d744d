//! The SQLite backend: one file in the data directory, WAL journal, a single-connection write
//! pool beside a small read pool (SQLite allows one writer; queuing writes in the pool avoids
//! "database is locked").

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use postern_core::ids::{FlowId, InstanceName, KeyName, RoleName, UserName};
use postern_core::model::CertMapping;
use postern_core::model::{
    AuditEntry, BoundCertificate, KeyType, Plan, Role, ServiceInstance, ServiceKey, StoredCa, StoredFlow,
    TechnicalUser, TokenKey, TrustedCa,
};
use postern_core::mpl::{CmpOp, Condition, Denial, Literal, Mpl, MplField, MplQuery, MplStatus};
use postern_core::{Error, Result};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Row};

use crate::common::{corrupt, count, fingerprint, json_list, mpl_column, push_where, storage, to_json};
use crate::{
    AuditStore, CertMappingStore, FlowStore, InstanceStore, MplStore, RoleStore, RoleUsage, TokenKeyStore,
    TrustStore, UserStore,
};

/// The sizes of the INSERT statements MPL rows are written with, largest first: a batch is
/// written as the largest that fit, so every statement has one of these shapes. 11 binds a row
/// stays far below SQLite's limit.
const MPL_CHUNKS: [usize; 9] = [256, 128, 64, 32, 16, 8, 4, 2, 1];
/// Columns of one MPL row.
const MPL_COLUMNS: usize = 11;

/// The next INSERT for `left` (≥ 1) rows: how many it writes (the largest of [`MPL_CHUNKS`]
/// that fits) and its SQL, built once per shape.
fn mpl_insert(left: usize) -> (usize, &'static str) {
    static SQL: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let all = SQL.get_or_init(|| {
        let row = format!("({})", ["?"; MPL_COLUMNS].join(", "));
        MPL_CHUNKS
            .iter()
            .map(|&n| {
                format!(
                    "INSERT OR IGNORE INTO mpl (guid, flow_id, status, user_name, sender, receiver, log_start, log_end, http_status, error, denial) VALUES {}",
                    vec![row.as_str(); n].join(", ")
                )
            })
            .collect()
    });
    // The last shape is one row, so some shape always fits.
    let i = MPL_CHUNKS
        .iter()
        .position(|&c| c <= left)
        .unwrap_or(MPL_CHUNKS.len() - 1);
    (MPL_CHUNKS[i], &all[i])
}

/// Binds one MPL row's [`MPL_COLUMNS`] values in column order.
fn add_mpl(
    args: &mut sqlx::sqlite::SqliteArguments,
    m: &Mpl,
) -> std::result::Result<(), sqlx::error::BoxDynError> {
    use sqlx::Arguments;
    args.add(m.guid.as_str())?;
    args.add(m.flow_id.as_str())?;
    args.add(m.status.as_str())?;
    args.add(m.user.as_str())?;
    args.add(m.sender.as_str())?;
    args.add(m.receiver.as_str())?;
    args.add(m.log_start)?;
    args.add(m.log_end)?;
    args.add(i64::from(m.http_status))?;
    args.add(m.error.as_deref())?;
    args.add(m.denial.as_ref().map(Denial::to_json))
}

/// The SQLite store.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pub(crate) read: SqlitePool,
    pub(crate) write: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at a `sqlite://PATH` URL or a plain path, and
    /// applies the migrations.
    pub async fn open(url: &str) -> Result<Self> {
        let path = url.strip_prefix("sqlite://").unwrap_or(url);
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))
            .map_err(|e| Error::invalid("database", e.to_string()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        // 64 MiB of page cache for the one writer keeps the MPL indexes in memory while logging;
        // readers get 8 MiB each.
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone().pragma("cache_size", "-65536"))
            .await
            .map_err(storage)?;
        sqlx::migrate!("migrations/sqlite")
            .run(&write)
            .await
            .map_err(|e| Error::Unavailable(format!("migrating {}: {e}", Path::new(path).display())))?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true).pragma("cache_size", "-8192"))
            .await
            .map_err(storage)?;
        Ok(Self { read, write })
    }

    /// Closes both pools (after pending writes).
    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }
}

#[async_trait]
impl RoleStore for SqliteStore {
    async fn roles(&self) -> Result<Vec<Role>> {
        let rows = sqlx::query(
            "SELECT name, description, builtin, created_at, modified_at FROM roles ORDER BY name",
        )
        .fetch_all(&self.read)
        .await
        .map_err(storage)?;
        rows.iter().map(role_row).collect()
    }

    async fn role(&self, name: &str) -> Result<Option<Role>> {
        let row = sqlx::query(
            "SELECT name, description, builtin, created_at, modified_at FROM roles WHERE name = ?",
        )
        .bind(name)
        .fetch_optional(&self.read)
        .await
        .map_err(storage)?;
        row.as_ref().map(role_row).transpose()
    }

    async fn insert_role(&self, role: &Role) -> Result<()> {
        sqlx::query(
            "INSERT INTO roles (name, description, builtin, created_at, modified_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(role.name.as_str())
        .bind(&role.description)
        .bind(role.builtin)
        .bind(role.created_at)
        .bind(role.modified_at)
        .execute(&self.write)
        .await
        .map_err(storage)?;
        Ok(())
    }

    async fn update_role_description(&self, name: &str, description: &str, now: i64) -> Result<bool> {
        let done = sqlx::query("UPDATE roles SET description = ?, modified_at = ? WHERE name = ?")
            .bind(description)
            .bind(now)
            .bind(name)
            .execute(&self.write)
            .await
            .map_err(storage)?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_role(&self, name: &str) -> Result<Option<RoleUsage>> {
        let mut tx = self.write.begin().await.map_err(storage)?;
        let list = |sql: &'static str| sqlx::query_scalar::<_, String>(sql).bind(name.to_owned());
        let usage = RoleUsage {
            instances: list("SELECT instance FROM instance_roles WHERE role = ? ORDER BY instance")
                .fetch_all(&mut *tx)
                .await
                .map_err(storage)?,
            users: list("SELECT user_name FROM user_roles WHERE role = ? ORDER BY user_name")
                .fetch_all(&mut *tx)
                .await
                .map_err(storage)?,
            flows: list("SELECT flow FROM flow_roles WHERE role = ? ORDER BY flow")
                .fetch_all(&mut *tx)
                .await
                .map_err(storage)?,
        };
        if !usage.is_empty() {
            return Ok(Some(usage));
        }
        let done = sqlx::query("DELETE FROM roles WHERE name = ?")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
        tx.commit().await.map_err(storage)?;
        Ok((done.rows_affected() > 0).then(RoleUsage::default))
    }
}

fn role_row(row: &sqlx::sqlite::SqliteRow) -> Result<Role> {
    Ok(Role {
        name: RoleName::parse(row.get("name")).map_err(|e| corrupt("role", e))?,
        description: row.get("description"),
        builtin: row.get("builtin"),
        created_at: row.get("created_at"),
        modified_at: row.get("modified_at"),
    })
}

/// The instance's roles, in their order.
async fn insert_instance_roles(conn: &mut sqlx::SqliteConnection, i: &ServiceInstance) -> Result<()> {
    for (position, role) in i.roles.iter().enumerate() {
        sqlx::query("INSERT INTO instance_roles (instance, role, position) VALUES (?, ?, ?)")
            .bind(i.name.as_str())
            .bind(role.as_str())
            .bind(position as i64)
            .execute(&mut *conn)
            .await
            .map_err(storage)?;
    }
    Ok(())
}

#[async_trait]
impl InstanceStore for SqliteStore {
    async fn instances(&self) -> Result<Vec<ServiceInstance>> {
        let rows = sqlx::query(INSTANCE_SELECT)
            .fetch_all(&self.read)
            .await
            .map_err(storage)?;
        let roles = sqlx::query_as::<_, (String, String)>(
            "SELECT instance, role FROM instance_roles ORDER BY instance, position",
        )
        .fetch_all(&self.read)
        .await
        .map_err(storage)?;
        rows.iter()
            .map(|row| {
                let name: String = row.get("name");
                let mine = roles.iter().filter(|(i, _)| *i == name).map(|(_, r)| r.as_str());
                instance_row(row, mine)
            })
            .collect()
    }

    async fn instance(&self, name: &str) -> Result<Option<ServiceInstance>> {
        let Some(row) = sqlx::query(INSTANCE_BY_NAME)
            .bind(name)
            .fetch_optional(&self.read)
            .await
            .map_err(storage)?
        else {
            return Ok(None);
        };
        let roles = sqlx::query_scalar::<_, String>(
            "SELECT role FROM instance_roles WHERE instance = ? ORDER BY position",
        )
        .bind(name)
        .fetch_all(&self.read)
        .await
        .map_err(storage)?;
        instance_row(&row, roles.iter().map(String::as_str)).map(Some)
    }

    async fn insert_instance(&self, i: &ServiceInstance) -> Result<()> {
        let mut tx = self.write.begin().await.map_err(storage)?;
        sqlx::query(
            "INSERT INTO service_instances (name, plan, client_id, grant_types, redirect_uris, token_validity, rate_per_second, rate_burst, created_at, created_by) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(i.name.as_str())
        .bind(i.plan.as_str())
        .bind(&i.client_id)
        .bind(to_json(&i.grant_types))
        .bind(to_json(&i.redirect_uris))
        .bind(i64::from(i.token_validity))
        .bind(i.rate_limit.map(|r| i64::from(r.per_second)))
        .bind(i.rate_limit.map(|r| i64::from(r.burst)))
        .bind(i.created_at)
        .bind(&i.created_by)
        .execute(&mut *tx)
        .await
        .map_err(storage)?;
        insert_instance_roles(&mut tx, i).await?;
        tx.commit().await.map_err(storage)
    }

    async fn update_instance(&self, i: &ServiceInstance) -> Result<bool> {
        let mut tx = self.write.begin().await.map_err(storage)?;
        let done = sqlx::query(
            "UPDATE service_instances SET grant_types = ?, redirect_uris = ?, token_validity = ?, rate_per_second = ?, rate_burst = ? WHERE name = ?",
        )
        .bind(to_json(&i.grant_types))
        .bind(to_json(&i.redirect_uris))
        .bind(i64::from(i.token_validity))
        .bind(i.rate_limit.map(|r| i64::from(r.per_second)))
        .bind(i.rate_limit.map(|r| i64::from(r.burst)))
        .bind(i.name.as_str())
        .execute(&mut *tx)
        .await
        .map_err(storage)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM instance_roles WHERE instance = ?")
            .bind(i.name.as_str())
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
        insert_instance_roles(&mut tx, i).await?;
        tx.commit().await.map_err(storage)?;
        Ok(true)
    }

    async fn delete_instance(&self, name: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM service_instances WHERE name = ?")
            .bind(name)
            .execute(&self.write)
            .await
            .map_err(storage)?;
        Ok(done.rows_affected() > 0)
    }

    async fn keys(&self, instance: Option<&str>) -> Result<Vec<ServiceKey>> {
        const COLS: &str = "instance, name, key_type, secret_hash, created_at, created_by, cert_pem, cert_sha256, cert_not_after, expires_at";
        let query = match instance {
            Some(i) => sqlx::query(AssertSqlSafe(format!(
                "SELECT {COLS} FROM service_keys WHERE instance = ? ORDER BY name"
            )))
            .bind(i.to_owned()),
            None => sqlx::query(AssertSqlSafe(format!(
                "SELECT {COLS} FROM service_keys ORDER BY instance, name"
            ))),
        };
        // Row by row: SQLite copies each row's values with its own allocator, and a hundred
        // thousand keys read whole leave ~100 MiB in its heap.
        let mut rows = query.fetch(&self.read);
        let mut keys = Vec::new();
        while let Some(row) = crate::common::next_row(&mut rows).await {
            keys.push(key_row(&row.map_err(storage)?)?);
        }
        Ok(keys)
    }

    async fn insert_key(&self, key: &ServiceKey) -> Result<()> {
        sqlx::query(
            "INSERT INTO service_keys (instance, name, key_type, secret_hash, created_at, created_by, cert_pem, cert_sha256, cert_not_after, expires_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(key.instance.as_str())
        .bind(key.name.as_str())
        .bind(key.key_type.as_str())
        .bind(key.secret_hash.as_slice())
        .bind(key.created_at)
        .bind(&key.created_by)
        .bind(key.certificate.as_ref().map(|c| c.pem.clone()))
        .bind(key.certificate.as_ref().map(|c| c.sha256.to_vec()))
        .bind(key.certificate.as_ref().map(|c| c.not_after))
        .bind(key.expires_at)
        .execute(&self.write)
        .await
        .map_err(storage)?;
        Ok(())
    }

    async fn delete_key(&self, instance: &str, name: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM service_keys WHERE instance = ? AND name = ?")
            .bind(instance)
            .bind(name)
            .execute(&self.write)
            .await
            .map_err(storage)?;
        Ok(done.rows_affected() > 0)
    }

    async fn set_key_expiry(&self, instance: &str, name: &str, expires_at: Option<i64>) -> Result<bool> {
        let done = sqlx::query("UPDATE service_keys SET expires_at = ? WHERE instance = ? AND name = ?")
            .bind(expires_at)
            .bind(instance)
            .bind(name)
            .execute(&self.write)
            .await
            .map_err(storage)?;
        Ok(done.rows_affected() > 0)
    }
}

const INSTANCE_SELECT: &str = "SELECT name, plan, client_id, grant_types, redirect_uris, token_validity, rate_per_second, rate_burst, created_at, created_by \
     FROM service_instances ORDER BY name";

const INSTANCE_BY_NAME: &str = "SELECT name, plan, client_id, grant_types, redirect_uris, token_validity, rate_per_second, rate_burst, created_at, created_by \
     FROM service_instances WHERE name = ?";

fn instance_row<'a>(
    row: &sqlx::sqlite::SqliteRow,
    roles: impl Iterator<Item = &'a str>,
) -> Result<ServiceInstance> {
    let plan = match row.get::<&str, _>("plan") {
        "api" => Plan::Api,
        "integration-flow" => Plan::IntegrationFlow,
        other => return Err(corrupt("plan", other)),
    };
    let validity: i64 = row.get("token_validity");
    Ok(ServiceInstance {
        name: InstanceName::parse(row.get("name")).map_err(|e| corrupt("instance", e))?,
        plan,
        client_id: row.get("client_id"),
        roles: roles
            .map(|r| RoleName::parse(r).map_err(|e| corrupt("role", e)))
            .collect::<Result<_>>()?,
        grant_types: json_list(row.get("grant_types"))?,
        redirect_uris: json_list(row.get("redirect_uris"))?,
        token_validity: u32::try_from(validity).map_err(|e| corrupt("token validity", e))?,
        rate_limit: crate::common::rate_limit(row.get("rate_per_second"), row.get("rate_burst")),
        created_at: row.get("created_at"),
        created_by: row.get("created_by"),
    })
}

fn key_row(row: &sqlx::sqlite::SqliteRow) -> Result<ServiceKey> {
    let key_type: &str = row.get("key_type");
    let key_type = KeyType::parse(key_type).ok_or_else(|| corrupt("key type", key_type))?;
    let certificate = match (
        row.get::<Option<String>, _>("cert_pem"),
        row.get::<Option<Vec<u8>>, _>("cert_sha256"),
        row.get::<Option<i64>, _>("cert_not_after"),
    ) {
        (Some(pem), Some(sha), Some(not_after)) => Some(BoundCertificate {
            pem,
            sha256: fingerprint("certificate fingerprint", sha)?,
            not_after,
        }),
        _ => None,
    };
    Ok(ServiceKey {
        instance: InstanceName::parse(row.get("instance")).map_err(|e| corrupt("key", e))?,
        name: KeyName::parse(row.get("name")).map_err(|e| corrupt("key", e))?,
        key_type,
        secret_hash: row.get("secret_hash"),
        certificate,
        expires_at: row.get("expires_at"),
        created_at: row.get("created_at"),
        created_by: row.get("created_by"),
    })
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn users(&self) -> Result<Vec<TechnicalUser>> {
        let rows = sqlx::query("SELECT name, password_phc, created_at FROM users ORDER BY name")
            .fetch_all(&self.read)
            .await
            .map_err(storage)?;
        let roles = sqlx::query_as::<_, (String, String)>(
            "SELECT user_name, role FROM user_roles ORDER BY user_name, role",
        )
        .fetch_all(&self.read)
        .await
        .map_err(storage)?;
        rows.iter()
            .map(|row| {
                let name: String = row.get("name");
                user_row(
                    row,
                    roles.iter().filter(|(u, _)| *u == name).map(|(_, r)| r.as_str()),
                )
            })
            .collect()
    }

    async fn user(&self, name: &str) -> Result<Option<TechnicalUser>> {
        let Some(row) = sqlx::query("SELECT name, password_phc, created_at FROM users WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.read)
            .await
            .map_err(storage)?
        else {
            return Ok(None);
        };
        let roles =
            sqlx::query_scalar::<_, String>("SELECT role FROM user_roles WHERE user_name = ? ORDER BY role")
                .bind(name)
                .fetch_all(&self.read)
                .await
                .map_err(storage)?;
        user_row(&row, roles.iter().map(String::as_str)).map(Some)
    }

    async fn insert_user(&self, user: &TechnicalUser) -> Result<()> {
        let mut tx = self.write.begin().await.map_err(storage)?;
        sqlx::query("INSERT INTO users (name, password_phc, created_at) VALUES (?, ?, ?)")
            .bind(user.name.as_str())
            .bind(&user.password_phc)
            .bind(user.created_at)
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
        insert_user_roles(&mut tx, user).await?;
        tx.commit().await.map_err(storage)
    }

    async fn update_user(&self, user: &TechnicalUser) -> Result<bool> {
        let mut tx = self.write.begin().await.map_err(storage)?;
        let done = sqlx::query("UPDATE users SET password_phc = ? WHERE name = ?")
            .bind(&user.password_phc)
            .bind(user.name.as_str())
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM user_roles WHERE user_name = ?")
            .bind(user.name.as_str())
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
        insert_user_roles(&mut tx, user).await?;
        tx.commit().await.map_err(storage)?;
        Ok(true)
    }

    async fn delete_user(&self, name: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM users WHERE name = ?")
            .bind(name)
            .execute(&self.write)
            .await
            .map_err(storage)?;
        Ok(done.rows_affected() > 0)
    }
}

async fn insert_user_roles(tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>, user: &TechnicalUser) -> Result<()> {
    for role in &user.roles {
        sqlx::query("INSERT OR IGNORE INTO user_roles (user_name, role) VALUES (?, ?)")
            .bind(user.name.as_str())
            .bind(role.as_str())
            .execute(&mut **tx)
            .await
            .map_err(storage)?;
    }
    Ok(())
}

fn user_row<'a>(
    row: &sqlx::sqlite::SqliteRow,
    roles: impl Iterator<Item = &'a str>,
) -> Result<TechnicalUser> {
    Ok(TechnicalUser {
        name: UserName::parse(row.get("name")).map_err(|e| corrupt("user", e))?,
        password_phc: row.get("password_phc"),
        roles: roles
            .map(|r| RoleName::parse(r).map_err(|e| corrupt("role", e)))
            .collect::<Result<_>>()?,
        created_at: row.get("created_at"),
    })
}

#[async_trait]
impl FlowStore for SqliteStore {
    async fn flows(&self) -> Result<Vec<StoredFlow>> {
        let rows = sqlx::query("SELECT id, yaml, deployed_at, deployed_by FROM flows ORDER BY id")
            .fetch_all(&self.read)
            .await
            .map_err(storage)?;
        rows.iter()
            .map(|row| {
                Ok(StoredFlow {
                    id: FlowId::parse(row.get("id")).map_err(|e| corrupt("flow", e))?,
                    yaml: row.get("yaml"),
                    deployed_at: row.get("deployed_at"),
                    deployed_by: row.get("deployed_by"),
                })
            })
            .collect()
    }

    async fn put_flow(&self, flow: &StoredFlow, address: &str, roles: &[String]) -> Result<bool> {
        let mut tx = self.write.begin().await.map_err(storage)?;
        let taken = sqlx::query_scalar::<_, String>("SELECT id FROM flows WHERE address = ? AND id <> ?")
            .bind(address)
            .bind(flow.id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(storage)?;
        if let Some(other) = taken {
            return Err(Error::Conflict(format!(
                "address {address} is already served by flow {other}"
            )));
        }
        let existed = sqlx::query("DELETE FROM flows WHERE id = ?")
            .bind(flow.id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(storage)?
            .rows_affected()
            > 0;
        sqlx::query("INSERT INTO flows (id, address, yaml, deployed_at, deployed_by) VALUES (?, ?, ?, ?, ?)")
            .bind(flow.id.as_str())
            .bind(address)
            .bind(&flow.yaml)
            .bind(flow.deployed_at)
            .bind(&flow.deployed_by)
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
        for role in roles {
            sqlx::query("INSERT OR IGNORE INTO flow_roles (flow, role) VALUES (?, ?)")
                .bind(flow.id.as_str())
                .bind(role)
                .execute(&mut *tx)
                .await
                .map_err(storage)?;
        }
        tx.commit().await.map_err(storage)?;
        Ok(!existed)
    }

    async fn delete_flow(&self, id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM flows WHERE id = ?")
            .bind(id)
            .execute(&self.write)
            .await
            .map_err(storage)?;
        Ok(done.rows_affected() > 0)
    }
}

#[async_trait]
impl MplStore for SqliteStore {
    async fn insert_mpls(&self, batch: &[Mpl]) -> Result<()> {
        use sqlx::Arguments;
        let mut tx = self.write.begin().await.map_err(storage)?;
        // Multi-row INSERTs: one statement per chunk, not per row (each sqlx statement is a
        // round trip to SQLite's worker thread). The chunks have a few fixed sizes, so their
        // statements are built and prepared once and then found in the statement cache.
        let mut rest = batch;
        while !rest.is_empty() {
            let (size, sql) = mpl_insert(rest.len());
            let (chunk, tail) = rest.split_at(size);
            rest = tail;
            let mut args = sqlx::sqlite::SqliteArguments::default();
            args.reserve(chunk.len() * MPL_COLUMNS, 0);
            for m in chunk {
                add_mpl(&mut args, m).map_err(|e| Error::Internal(format!("binding an MPL: {e}")))?;
            }
            sqlx::query_with(sql, args)
                .execute(&mut *tx)
                .await
                .map_err(storage)?;
        }
        tx.commit().await.map_err(storage)
    }

    async fn query_mpls(&self, query: &MplQuery) -> Result<Vec<Mpl>> {
        let mut sql = String::from(
            "SELECT guid, flow_id, status, user_name, sender, receiver, log_start, log_end, http_status, error, denial FROM mpl",
        );
        push_where(&mut sql, mpl_comparisons(&query.conditions), |_| "?".into());
        let (field, desc) = query.order_by.unwrap_or((MplField::LogEnd, true));
        sql.push_str(&format!(
            " ORDER BY {} {}, guid LIMIT ? OFFSET ?",
            mpl_column(field),
            if desc { "DESC" } else { "ASC" }
        ));
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for c in &query.conditions {
            q = bind_literal(q, &c.value);
        }
        let rows = q
            .bind(i64::from(query.top))
            .bind(i64::from(query.skip))
            .fetch_all(&self.read)
            .await
            .map_err(storage)?;
        rows.iter().map(mpl_row).collect()
    }

    async fn count_mpls(&self, conditions: &[Condition]) -> Result<u64> {
        let mut sql = String::from("SELECT COUNT(*) FROM mpl");
        push_where(&mut sql, mpl_comparisons(conditions), |_| "?".into());
        let mut q = sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql));
        for c in conditions {
            q = match &c.value {
                Literal::Text(t) => q.bind(t.clone()),
                Literal::Time(t) => q.bind(*t),
            };
        }
        let n = q.fetch_one(&self.read).await.map_err(storage)?;
        Ok(count(n))
    }
}

/// The columns and operators of MPL conditions, for [`push_where`].
fn mpl_comparisons(conditions: &[Condition]) -> impl Iterator<Item = (&'static str, CmpOp)> + '_ {
    conditions.iter().map(|c| (mpl_column(c.field), c.op))
}

fn bind_literal<'q>(
    q: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
    value: &Literal,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments> {
    match value {
        Literal::Text(t) => q.bind(t.clone()),
        Literal::Time(t) => q.bind(*t),
    }
}

fn mpl_row(row: &sqlx::sqlite::SqliteRow) -> Result<Mpl> {
    let status: &str = row.get("status");
    let http_status: i64 = row.get("http_status");
    Ok(Mpl {
        guid: row.get("guid"),
        flow_id: row.get("flow_id"),
        status: MplStatus::parse(status).ok_or_else(|| corrupt("status", status))?,
        user: row.get("user_name"),
        sender: row.get("sender"),
        receiver: row.get("receiver"),
        log_start: row.get("log_start"),
        log_end: row.get("log_end"),
        http_status: u16::try_from(http_status).map_err(|e| corrupt("http status", e))?,
        error: row.get("error"),
        denial: row.get::<Option<&str>, _>("denial").and_then(Denial::from_json),
    })
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn append_audit(&self, entries: &[AuditEntry]) -> Result<()> {
        let mut tx = self.write.begin().await.map_err(storage)?;
        let mut previous: Vec<u8> = sqlx::query_scalar::<_, Option<Vec<u8>>>(
            "SELECT hash FROM audit WHERE hash IS NOT NULL ORDER BY id DESC LIMIT 1",
        )
        .fetch_optional(&mut *tx)
        .await
        .map_err(storage)?
        .flatten()
        .unwrap_or_else(|| vec![0; 32]);
        for e in entries {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO audit (at, actor, action, target, detail, source) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
            )
            .bind(e.at)
            .bind(&e.actor)
            .bind(&e.action)
            .bind(&e.target)
            .bind(&e.detail)
            .bind(&e.source)
            .fetch_one(&mut *tx)
            .await
            .map_err(storage)?;
            let link = crate::common::audit_link(&previous, &AuditEntry { id, ..e.clone() });
            sqlx::query("UPDATE audit SET hash = ? WHERE id = ?")
                .bind(link.as_slice())
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(storage)?;
            previous = link;
        }
        tx.commit().await.map_err(storage)
    }

    async fn audit(&self, limit: u32, before: Option<i64>) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query(
            "SELECT id, at, actor, action, target, detail, source FROM audit WHERE id < ? ORDER BY id DESC LIMIT ?",
        )
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await
        .map_err(storage)?;
        Ok(rows
            .iter()
            .map(|row| AuditEntry {
                id: row.get("id"),
                at: row.get("at"),
                actor: row.get("actor"),
                action: row.get("action"),
                target: row.get("target"),
                detail: row.get("detail"),
                source: row.get("source"),
            })
            .collect())
    }

    async fn audit_chain(&self, after: i64, limit: u32) -> Result<Vec<(AuditEntry, Option<Vec<u8>>)>> {
        let rows = sqlx::query(
            "SELECT id, at, actor, action, target, detail, source, hash FROM audit WHERE id > ? ORDER BY id LIMIT ?",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await
        .map_err(storage)?;
        Ok(rows
            .iter()
            .map(|row| {
                (
                    AuditEntry {
                        id: row.get("id"),
                        at: row.get("at"),
                        actor: row.get("actor"),
                        action: row.get("action"),
                        target: row.get("target"),
                        detail: row.get("detail"),
                        source: row.get("source"),
                    },
                    row.get("hash"),
                )
            })
            .collect())
    }
}

#[async_trait]
impl TokenKeyStore for SqliteStore {
    async fn token_keys(&self) -> Result<Vec<TokenKey>> {
        let rows = sqlx::query(
            "SELECT kid, alg, private_enc, public_key, created_at, retired_at FROM token_keys ORDER BY created_at, kid",
        )
        .fetch_all(&self.read)
        .await
        .map_err(storage)?;
        Ok(rows
            .iter()
            .map(|row| TokenKey {
                kid: row.get("kid"),
                alg: row.get("alg"),
                private_enc: row.get("private_enc"),
                public_key: row.get("public_key"),
                created_at: row.get("created_at"),
                retired_at: row.get("retired_at"),
            })
            .collect())
    }

    async fn rotate_token_key(&self, key: &TokenKey) -> Result<()> {
        let mut tx = self.write.begin().await.map_err(storage)?;
        sqlx::query("UPDATE token_keys SET retired_at = ? WHERE retired_at IS NULL")
            .bind(key.created_at)
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
        sqlx::query(
            "INSERT INTO token_keys (kid, alg, private_enc, public_key, created_at, retired_at) VALUES (?, ?, ?, ?, ?, NULL)",
        )
        .bind(&key.kid)
        .bind(&key.alg)
        .bind(key.private_enc.as_slice())
        .bind(key.public_key.as_slice())
        .bind(key.created_at)
        .execute(&mut *tx)
        .await
        .map_err(storage)?;
        tx.commit().await.map_err(storage)
    }

    async fn purge_token_keys(&self, before: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM token_keys WHERE retired_at IS NOT NULL AND retired_at < ?")
            .bind(before)
            .execute(&self.write)
            .await
            .map_err(storage)?;
        Ok(done.rows_affected())
    }
    async fn local_ca(&self) -> Result<Option<StoredCa>> {
        let row = sqlx::query("SELECT cert_pem, key_enc, created_at FROM local_ca WHERE id = 1")
            .fetch_optional(&self.read)
            .await
            .map_err(storage)?;
        Ok(row.map(|row| StoredCa {
            cert_pem: row.get("cert_pem"),
            key_enc: row.get("key_enc"),
            created_at: row.get("created_at"),
        }))
    }

    async fn init_local_ca(&self, ca: &StoredCa) -> Result<StoredCa> {
        sqlx::query(
            "INSERT INTO local_ca (id, cert_pem, key_enc, created_at) VALUES (1, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&ca.cert_pem)
        .bind(ca.key_enc.as_slice())
        .bind(ca.created_at)
        .execute(&self.write)
        .await
        .map_err(storage)?;
        let row = sqlx::query("SELECT cert_pem, key_enc, created_at FROM local_ca WHERE id = 1")
            .fetch_one(&self.write)
            .await
            .map_err(storage)?;
        Ok(StoredCa {
            cert_pem: row.get("cert_pem"),
            key_enc: row.get("key_enc"),
            created_at: row.get("created_at"),
        })
    }
}

#[async_trait]
impl TrustStore for SqliteStore {
    async fn trusted_cas(&self) -> Result<Vec<TrustedCa>> {
        let rows = sqlx::query("SELECT sha256, pem, subject, not_after, created_at, created_by FROM trusted_cas ORDER BY created_at")
            .fetch_all(&self.read)
            .await
            .map_err(storage)?;
        rows.iter()
            .map(|row| {
                let sha: Vec<u8> = row.get("sha256");
                Ok(TrustedCa {
                    sha256: fingerprint("CA fingerprint", sha)?,
                    pem: row.get("pem"),
                    subject: row.get("subject"),
                    not_after: row.get("not_after"),
                    created_at: row.get("created_at"),
                    created_by: row.get("created_by"),
                })
            })
            .collect()
    }

    async fn insert_trusted_ca(&self, ca: &TrustedCa) -> Result<()> {
        sqlx::query(
            "INSERT INTO trusted_cas (sha256, pem, subject, not_after, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(ca.sha256.as_slice())
        .bind(&ca.pem)
        .bind(&ca.subject)
        .bind(ca.not_after)
        .bind(ca.created_at)
        .bind(&ca.created_by)
        .execute(&self.write)
        .await
        .map_err(storage)?;
        Ok(())
    }

    async fn delete_trusted_ca(&self, sha256: &[u8; 32]) -> Result<bool> {
        let done = sqlx::query("DELETE FROM trusted_cas WHERE sha256 = ?")
            .bind(sha256.as_slice())
            .execute(&self.write)
            .await
            .map_err(storage)?;
        Ok(done.rows_affected() > 0)
    }
}

#[async_trait]
impl CertMappingStore for SqliteStore {
    async fn cert_mappings(&self) -> Result<Vec<CertMapping>> {
        let rows = sqlx::query(
            "SELECT id, sha256, user_name, pem, subject, issuer, serial, not_after, created_at, created_by \
             FROM cert_mappings ORDER BY user_name, id",
        )
        .fetch_all(&self.read)
        .await
        .map_err(storage)?;
        rows.iter()
            .map(|row| {
                let sha: Vec<u8> = row.get("sha256");
                Ok(CertMapping {
                    id: row.get("id"),
                    sha256: fingerprint("mapping fingerprint", sha)?,
                    user: row.get("user_name"),
                    pem: row.get("pem"),
                    subject: row.get("subject"),
                    issuer: row.get("issuer"),
                    serial: row.get("serial"),
                    not_after: row.get("not_after"),
                    created_at: row.get("created_at"),
                    created_by: row.get("created_by"),
                })
            })
            .collect()
    }

    async fn insert_cert_mapping(&self, m: &CertMapping) -> Result<()> {
        sqlx::query(
            "INSERT INTO cert_mappings (id, sha256, user_name, pem, subject, issuer, serial, not_after, created_at, created_by) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&m.id)
        .bind(m.sha256.as_slice())
        .bind(&m.user)
        .bind(&m.pem)
        .bind(&m.subject)
        .bind(&m.issuer)
        .bind(&m.serial)
        .bind(m.not_after)
        .bind(m.created_at)
        .bind(&m.created_by)
        .execute(&self.write)
        .await
        .map_err(storage)?;
        Ok(())
    }

    async fn delete_cert_mapping(&self, id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM cert_mappings WHERE id = ?")
            .bind(id)
            .execute(&self.write)
            .await
            .map_err(storage)?;
        Ok(done.rows_affected() > 0)
    }
}

mod partner;
mod queue;

#[cfg(test)]
mod tests;

/// One node: it applies its own changes as it makes them; nothing to follow.
#[async_trait]
impl crate::ChangeStore for SqliteStore {
    async fn changes_after(&self, _after: i64, _window_ms: i64, _limit: u32) -> Result<Vec<crate::Change>> {
        Ok(Vec::new())
    }

    async fn last_change(&self) -> Result<i64> {
        Ok(0)
    }

    async fn prune_changes(&self, _older_than_ms: i64) -> Result<u64> {
        Ok(0)
    }

    async fn pruned_through(&self) -> Result<i64> {
        Ok(0)
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.read)
            .await
            .map_err(storage)?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl crate::SessionStore for SqliteStore {
    async fn insert_session(&self, s: &crate::ConsoleSession) -> Result<()> {
        sqlx::query(
            "INSERT INTO console_sessions (id_hash, user_name, csrf, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(s.id_hash.as_slice())
        .bind(&s.user)
        .bind(&s.csrf)
        .bind(s.created_at)
        .bind(s.expires_at)
        .execute(&self.write)
        .await
        .map_err(storage)?;
        Ok(())
    }

    async fn session(&self, id_hash: &[u8], now: i64) -> Result<Option<crate::ConsoleSession>> {
        let row = sqlx::query(
            "SELECT id_hash, user_name, csrf, created_at, expires_at FROM console_sessions WHERE id_hash = ? AND expires_at > ?",
        )
        .bind(id_hash)
        .bind(now)
        .fetch_optional(&self.read)
        .await
        .map_err(storage)?;
        Ok(row.map(|row| crate::ConsoleSession {
            id_hash: row.get("id_hash"),
            user: row.get("user_name"),
            csrf: row.get("csrf"),
            created_at: row.get("created_at"),
            expires_at: row.get("expires_at"),
        }))
    }

    async fn delete_session(&self, id_hash: &[u8]) -> Result<bool> {
        let done = sqlx::query("DELETE FROM console_sessions WHERE id_hash = ?")
            .bind(id_hash)
            .execute(&self.write)
            .await
            .map_err(storage)?;
        Ok(done.rows_affected() > 0)
    }

    async fn purge_sessions(&self, now: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM console_sessions WHERE expires_at <= ?")
            .bind(now)
            .execute(&self.write)
            .await
            .map_err(storage)?;
        Ok(done.rows_affected())
    }
}
