//! The Partner Directory tables on SQLite. Every write is a list of changes applied in one
//! transaction; it answers with what changed for the in-memory directory.

use async_trait::async_trait;
use postern_core::mpl::Literal;
use postern_core::partner::{
    AlternativePartner, Audit, AuthorizedUser, BinaryParameter, PartnerChange, PartnerDelta, PartnerKind,
    PartnerQuery, PartnerRow, PartnerSet, StringParameter, hex_upper,
};
use postern_core::{Error, Result};
use sqlx::sqlite::SqliteRow;
use sqlx::{AssertSqlSafe, Row, Sqlite, Transaction};

use super::{SqliteStore, storage};
use crate::PartnerStore;
use crate::common::{
    alternative_insert_conflict, alternative_update_conflict, delta, in_change_set, key, name_conflict,
    partner_column, partner_order, partner_table, push_where, user_insert_conflict,
};
use postern_core::partner::DirectorySink;

fn audit(row: &SqliteRow) -> Audit {
    Audit {
        created_by: row.get("created_by"),
        created_at: row.get("created_at"),
        modified_by: row.get("modified_by"),
        modified_at: row.get("modified_at"),
    }
}

fn alternative(r: &SqliteRow) -> AlternativePartner {
    AlternativePartner {
        agency: r.get("agency"),
        scheme: r.get("scheme"),
        id: r.get("id"),
        pid: r.get("pid"),
        audit: audit(r),
    }
}

fn user(r: &SqliteRow) -> AuthorizedUser {
    AuthorizedUser {
        user: r.get("user_name"),
        pid: r.get("pid"),
        audit: audit(r),
    }
}

fn string(r: &SqliteRow) -> StringParameter {
    StringParameter {
        pid: r.get("pid"),
        id: r.get("id"),
        value: r.get("value"),
        audit: audit(r),
    }
}

fn binary(r: &SqliteRow) -> BinaryParameter {
    BinaryParameter {
        pid: r.get("pid"),
        id: r.get("id"),
        content_type: r.get("content_type"),
        value: r.get("value"),
        audit: audit(r),
    }
}

const AUDIT_COLS: &str = "created_by, created_at, modified_by, modified_at";

/// Turns a unique violation into a conflict that names the entry.
fn conflict(what: impl FnOnce() -> String) -> impl FnOnce(sqlx::Error) -> Error {
    move |e| name_conflict(storage(e), what)
}

type Tx<'a> = Transaction<'a, Sqlite>;

/// Creates the partner row a write refers to, inside the write's transaction.
async fn ensure_partner(tx: &mut Tx<'_>, pid: &str, by: &str, at: i64) -> Result<()> {
    sqlx::query("INSERT OR IGNORE INTO partners (pid, created_at, created_by) VALUES (?, ?, ?)")
        .bind(pid)
        .bind(at)
        .bind(by)
        .execute(&mut **tx)
        .await
        .map_err(storage)?;
    Ok(())
}

async fn apply_one(tx: &mut Tx<'_>, change: &PartnerChange, out: &mut Vec<PartnerDelta>) -> Result<()> {
    match change {
        PartnerChange::DeletePartner { pid, keep } => return delete_partner(tx, pid, keep, out).await,
        PartnerChange::InsertAlternative(a) => {
            ensure_partner(tx, &a.pid, &a.audit.created_by, a.audit.created_at).await?;
            sqlx::query(
                "INSERT INTO alternative_partners (hexagency, hexscheme, hexid, agency, scheme, id, pid, \
                 created_by, created_at, modified_by, modified_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(hex_upper(&a.agency))
            .bind(hex_upper(&a.scheme))
            .bind(hex_upper(&a.id))
            .bind(&a.agency)
            .bind(&a.scheme)
            .bind(&a.id)
            .bind(&a.pid)
            .bind(&a.audit.created_by)
            .bind(a.audit.created_at)
            .bind(&a.audit.modified_by)
            .bind(a.audit.modified_at)
            .execute(&mut **tx)
            .await
            .map_err(conflict(|| alternative_insert_conflict(a)))?;
        }
        PartnerChange::UpdateAlternative(a) => {
            ensure_partner(tx, &a.pid, &a.audit.modified_by, a.audit.modified_at).await?;
            let done = sqlx::query(
                "UPDATE alternative_partners SET pid = ?, modified_by = ?, modified_at = ? \
                 WHERE hexagency = ? AND hexscheme = ? AND hexid = ?",
            )
            .bind(&a.pid)
            .bind(&a.audit.modified_by)
            .bind(a.audit.modified_at)
            .bind(hex_upper(&a.agency))
            .bind(hex_upper(&a.scheme))
            .bind(hex_upper(&a.id))
            .execute(&mut **tx)
            .await
            .map_err(conflict(|| alternative_update_conflict(a)))?;
            if done.rows_affected() == 0 {
                return Err(Error::NotFound(key::alternative(&a.agency, &a.scheme, &a.id)));
            }
        }
        PartnerChange::DeleteAlternative { agency, scheme, id } => {
            let done = sqlx::query(
                "DELETE FROM alternative_partners WHERE hexagency = ? AND hexscheme = ? AND hexid = ?",
            )
            .bind(hex_upper(agency))
            .bind(hex_upper(scheme))
            .bind(hex_upper(id))
            .execute(&mut **tx)
            .await
            .map_err(storage)?;
            if done.rows_affected() == 0 {
                return Err(Error::NotFound(key::alternative(agency, scheme, id)));
            }
        }
        PartnerChange::InsertUser(u) => {
            ensure_partner(tx, &u.pid, &u.audit.created_by, u.audit.created_at).await?;
            sqlx::query(
                "INSERT INTO authorized_users (user_name, pid, created_by, created_at, modified_by, modified_at) \
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(&u.user)
            .bind(&u.pid)
            .bind(&u.audit.created_by)
            .bind(u.audit.created_at)
            .bind(&u.audit.modified_by)
            .bind(u.audit.modified_at)
            .execute(&mut **tx)
            .await
            .map_err(conflict(|| user_insert_conflict(u)))?;
        }
        PartnerChange::UpdateUser(u) => {
            ensure_partner(tx, &u.pid, &u.audit.modified_by, u.audit.modified_at).await?;
            let done = sqlx::query(
                "UPDATE authorized_users SET pid = ?, modified_by = ?, modified_at = ? WHERE user_name = ?",
            )
            .bind(&u.pid)
            .bind(&u.audit.modified_by)
            .bind(u.audit.modified_at)
            .bind(&u.user)
            .execute(&mut **tx)
            .await
            .map_err(storage)?;
            if done.rows_affected() == 0 {
                return Err(Error::NotFound(key::user(&u.user)));
            }
        }
        PartnerChange::DeleteUser { user } => {
            let done = sqlx::query("DELETE FROM authorized_users WHERE user_name = ?")
                .bind(user)
                .execute(&mut **tx)
                .await
                .map_err(storage)?;
            if done.rows_affected() == 0 {
                return Err(Error::NotFound(key::user(user)));
            }
        }
        PartnerChange::InsertString(p) => {
            ensure_partner(tx, &p.pid, &p.audit.created_by, p.audit.created_at).await?;
            sqlx::query(
                "INSERT INTO string_parameters (pid, id, value, created_by, created_at, modified_by, modified_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&p.pid)
            .bind(&p.id)
            .bind(&p.value)
            .bind(&p.audit.created_by)
            .bind(p.audit.created_at)
            .bind(&p.audit.modified_by)
            .bind(p.audit.modified_at)
            .execute(&mut **tx)
            .await
            .map_err(conflict(|| format!("{} exists", key::string(&p.pid, &p.id))))?;
        }
        PartnerChange::UpdateString(p) => {
            let done = sqlx::query(
                "UPDATE string_parameters SET value = ?, modified_by = ?, modified_at = ? WHERE pid = ? AND id = ?",
            )
            .bind(&p.value)
            .bind(&p.audit.modified_by)
            .bind(p.audit.modified_at)
            .bind(&p.pid)
            .bind(&p.id)
            .execute(&mut **tx)
            .await
            .map_err(storage)?;
            if done.rows_affected() == 0 {
                return Err(Error::NotFound(key::string(&p.pid, &p.id)));
            }
        }
        PartnerChange::DeleteString { pid, id } => {
            let done = sqlx::query("DELETE FROM string_parameters WHERE pid = ? AND id = ?")
                .bind(pid)
                .bind(id)
                .execute(&mut **tx)
                .await
                .map_err(storage)?;
            if done.rows_affected() == 0 {
                return Err(Error::NotFound(key::string(pid, id)));
            }
        }
        PartnerChange::InsertBinary(p) => {
            ensure_partner(tx, &p.pid, &p.audit.created_by, p.audit.created_at).await?;
            sqlx::query(
                "INSERT INTO binary_parameters (pid, id, content_type, value, created_by, created_at, \
                 modified_by, modified_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&p.pid)
            .bind(&p.id)
            .bind(&p.content_type)
            .bind(&p.value)
            .bind(&p.audit.created_by)
            .bind(p.audit.created_at)
            .bind(&p.audit.modified_by)
            .bind(p.audit.modified_at)
            .execute(&mut **tx)
            .await
            .map_err(conflict(|| format!("{} exists", key::binary(&p.pid, &p.id))))?;
        }
        PartnerChange::UpdateBinary(p) => {
            let done = sqlx::query(
                "UPDATE binary_parameters SET content_type = ?, value = ?, modified_by = ?, modified_at = ? \
                 WHERE pid = ? AND id = ?",
            )
            .bind(&p.content_type)
            .bind(&p.value)
            .bind(&p.audit.modified_by)
            .bind(p.audit.modified_at)
            .bind(&p.pid)
            .bind(&p.id)
            .execute(&mut **tx)
            .await
            .map_err(storage)?;
            if done.rows_affected() == 0 {
                return Err(Error::NotFound(key::binary(&p.pid, &p.id)));
            }
        }
        PartnerChange::DeleteBinary { pid, id } => {
            let done = sqlx::query("DELETE FROM binary_parameters WHERE pid = ? AND id = ?")
                .bind(pid)
                .bind(id)
                .execute(&mut **tx)
                .await
                .map_err(storage)?;
            if done.rows_affected() == 0 {
                return Err(Error::NotFound(key::binary(pid, id)));
            }
        }
    }
    out.extend(delta(change));
    Ok(())
}

/// Deletes a partner's entries (except the kinds kept) and, when nothing is kept, the partner.
async fn delete_partner(
    tx: &mut Tx<'_>,
    pid: &str,
    keep: &[PartnerKind],
    out: &mut Vec<PartnerDelta>,
) -> Result<()> {
    let exists = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM partners WHERE pid = ?")
        .bind(pid)
        .fetch_one(&mut **tx)
        .await
        .map_err(storage)?;
    if exists == 0 {
        return Err(Error::NotFound(key::partner(pid)));
    }
    if !keep.contains(&PartnerKind::AlternativePartners) {
        let rows = sqlx::query("DELETE FROM alternative_partners WHERE pid = ? RETURNING agency, scheme, id")
            .bind(pid)
            .fetch_all(&mut **tx)
            .await
            .map_err(storage)?;
        out.extend(rows.iter().map(|r| PartnerDelta::Alternative {
            agency: r.get("agency"),
            scheme: r.get("scheme"),
            id: r.get("id"),
            pid: None,
        }));
    }
    if !keep.contains(&PartnerKind::AuthorizedUsers) {
        let rows = sqlx::query("DELETE FROM authorized_users WHERE pid = ? RETURNING user_name")
            .bind(pid)
            .fetch_all(&mut **tx)
            .await
            .map_err(storage)?;
        out.extend(rows.iter().map(|r| PartnerDelta::User {
            user: r.get("user_name"),
            pid: None,
        }));
    }
    if !keep.contains(&PartnerKind::StringParameters) {
        let rows = sqlx::query("DELETE FROM string_parameters WHERE pid = ? RETURNING id")
            .bind(pid)
            .fetch_all(&mut **tx)
            .await
            .map_err(storage)?;
        out.extend(rows.iter().map(|r| PartnerDelta::String {
            pid: pid.to_owned(),
            id: r.get("id"),
            value: None,
        }));
    }
    if !keep.contains(&PartnerKind::BinaryParameters) {
        let rows = sqlx::query("DELETE FROM binary_parameters WHERE pid = ? RETURNING id")
            .bind(pid)
            .fetch_all(&mut **tx)
            .await
            .map_err(storage)?;
        out.extend(rows.iter().map(|r| PartnerDelta::Binary {
            pid: pid.to_owned(),
            id: r.get("id"),
        }));
    }
    if keep.is_empty() {
        sqlx::query("DELETE FROM partners WHERE pid = ?")
            .bind(pid)
            .execute(&mut **tx)
            .await
            .map_err(storage)?;
        out.push(PartnerDelta::PartnerRemoved { pid: pid.to_owned() });
    }
    Ok(())
}

/// ` WHERE ...` of a query, with `?` placeholders.
fn where_clause(q: &PartnerQuery) -> String {
    let mut sql = String::new();
    push_where(
        &mut sql,
        q.conditions.iter().map(|c| (partner_column(c.field), c.op)),
        |_| "?".into(),
    );
    sql
}

#[async_trait]
impl PartnerStore for SqliteStore {
    async fn alternative_partners(&self) -> Result<Vec<AlternativePartner>> {
        let rows = sqlx::query(
            "SELECT agency, scheme, id, pid, created_by, created_at, modified_by, modified_at \
             FROM alternative_partners",
        )
        .fetch_all(&self.read)
        .await
        .map_err(storage)?;
        Ok(rows.iter().map(alternative).collect())
    }

    async fn authorized_users(&self) -> Result<Vec<AuthorizedUser>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT user_name, pid, {AUDIT_COLS} FROM authorized_users"
        )))
        .fetch_all(&self.read)
        .await
        .map_err(storage)?;
        Ok(rows.iter().map(user).collect())
    }

    async fn load_directory(&self, sink: &mut (dyn DirectorySink + Send)) -> Result<()> {
        // One read transaction: every chunk comes from the same state of the database.
        let mut tx = self.read.begin().await.map_err(storage)?;
        let alternatives = ["agency", "scheme", "id", "pid"];
        load_chunks(
            &mut tx,
            alternatives,
            "alternative_partners",
            LOAD_CHUNK,
            |[a, s, i, p]| sink.alternative(a, s, i, p),
        )
        .await?;
        load_chunks(
            &mut tx,
            ["user_name", "pid"],
            "authorized_users",
            LOAD_CHUNK,
            |[u, p]| sink.user(u, p),
        )
        .await?;
        load_chunks(
            &mut tx,
            ["pid", "id", "value"],
            "string_parameters",
            LOAD_STRING_CHUNK,
            |[p, i, v]| sink.string(p, i, v),
        )
        .await?;
        tx.commit().await.map_err(storage)
    }

    async fn string_parameters(&self) -> Result<Vec<StringParameter>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT pid, id, value, {AUDIT_COLS} FROM string_parameters"
        )))
        .fetch_all(&self.read)
        .await
        .map_err(storage)?;
        Ok(rows.iter().map(string).collect())
    }

    async fn apply_partner_changes(&self, changes: &[PartnerChange]) -> Result<Vec<PartnerDelta>> {
        let mut tx = self.write.begin().await.map_err(storage)?;
        let mut out = Vec::with_capacity(changes.len());
        for (i, change) in changes.iter().enumerate() {
            if let Err(e) = apply_one(&mut tx, change, &mut out).await {
                // Dropping the transaction rolls back everything before the failed change.
                return Err(in_change_set(changes.len(), i, e));
            }
        }
        tx.commit().await.map_err(storage)?;
        Ok(out)
    }

    async fn query_partners(&self, q: &PartnerQuery) -> Result<(Vec<PartnerRow>, u64)> {
        let (table, cols, key) = partner_table(q.set);
        let filter = where_clause(q);
        let order = partner_order(q.order_by, key);
        let sql = format!("SELECT {cols} FROM {table}{filter} ORDER BY {order} LIMIT ? OFFSET ?");
        let mut query = sqlx::query(AssertSqlSafe(sql));
        let mut count =
            sqlx::query_scalar::<_, i64>(AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}{filter}")));
        for c in &q.conditions {
            match &c.value {
                Literal::Text(t) => {
                    query = query.bind(t.clone());
                    count = count.bind(t.clone());
                }
                Literal::Time(t) => {
                    query = query.bind(*t);
                    count = count.bind(*t);
                }
            }
        }
        let rows = query
            .bind(i64::from(q.top))
            .bind(i64::from(q.skip))
            .fetch_all(&self.read)
            .await
            .map_err(storage)?;
        let total = count.fetch_one(&self.read).await.map_err(storage)?;
        let rows = rows
            .iter()
            .map(|r| match q.set {
                PartnerSet::Partners => PartnerRow::Partner(r.get("pid")),
                PartnerSet::AlternativePartners => PartnerRow::Alternative(alternative(r)),
                PartnerSet::AuthorizedUsers => PartnerRow::User(user(r)),
                PartnerSet::StringParameters => PartnerRow::String(string(r)),
                PartnerSet::BinaryParameters => PartnerRow::Binary(binary(r)),
            })
            .collect();
        Ok((rows, crate::common::count(total)))
    }
}

/// Rows per chunk when the directory is loaded (a chunk of ids is at most a few MiB of JSON);
/// smaller in tests, so that a test's directory spans several chunks.
#[cfg(not(test))]
const LOAD_CHUNK: i64 = 16_384;
#[cfg(test)]
pub(crate) const LOAD_CHUNK: i64 = 1_000;

/// Rows per chunk of string parameters (values run to 4,000 characters).
#[cfg(not(test))]
const LOAD_STRING_CHUNK: i64 = 1_024;
#[cfg(test)]
const LOAD_STRING_CHUNK: i64 = 4;

/// A text column of a loaded row: borrowed from the chunk's JSON unless it had escapes.
#[derive(serde::Deserialize)]
struct Field<'a>(#[serde(borrow)] std::borrow::Cow<'a, str>);

/// Reads every row of `table` (its text columns `cols`, `N` of them) in rowid order and hands
/// each to `each`. SQLite packs a chunk of rows into one flat JSON array of strings: a million
/// rows one at a time cost seconds in the driver (a thread hand-off and an allocation per value),
/// a chunk costs one.
async fn load_chunks<const N: usize>(
    tx: &mut Transaction<'_, Sqlite>,
    cols: [&str; N],
    table: &str,
    chunk_rows: i64,
    mut each: impl FnMut([&str; N]),
) -> Result<()> {
    let quoted = cols.map(|c| format!("json_quote({c})")).join(" || ',' || ");
    let sql = format!(
        "SELECT max(r), '[' || coalesce(group_concat({quoted}), '') || ']' FROM \
         (SELECT rowid AS r, {} FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT ?)",
        cols.join(", ")
    );
    let mut after = i64::MIN;
    loop {
        let (last, chunk): (Option<i64>, String) = sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(after)
            .bind(chunk_rows)
            .fetch_one(&mut **tx)
            .await
            .map_err(storage)?;
        let Some(last) = last else { return Ok(()) };
        let fields: Vec<Field<'_>> =
            serde_json::from_str(&chunk).map_err(|e| Error::Internal(format!("reading {table}: {e}")))?;
        if !fields.len().is_multiple_of(N) {
            return Err(Error::Internal(format!(
                "reading {table}: a row without all its columns"
            )));
        }
        for row in fields.chunks_exact(N) {
            each(std::array::from_fn(|i| &*row[i].0));
        }
        after = last;
    }
}
