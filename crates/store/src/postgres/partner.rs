//! The Partner Directory tables on PostgreSQL. Every write is a list of changes applied in one
//! transaction; it answers with what changed for the in-memory directory.

use async_trait::async_trait;
use postern_core::partner::{
    AlternativePartner, Audit, AuthorizedUser, BinaryParameter, PartnerChange, PartnerDelta, PartnerKind,
    PartnerQuery, PartnerRow, PartnerSet, StringParameter, hex_upper,
};
use postern_core::{Error, Result};
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, PgConnection, Row};

use super::logs::{bind_literal, bind_scalar_literal};
use super::{PgStore, storage};
use crate::PartnerStore;
use crate::common::{
    alternative_insert_conflict, alternative_update_conflict, count, delta, in_change_set, key,
    name_conflict, partner_column, partner_order, partner_table, push_where, user_insert_conflict,
};
use postern_core::partner::DirectorySink;

#[async_trait]
impl PartnerStore for PgStore {
    // The three full loads feed the in-memory directory; the key order only makes them
    // repeatable (SQLite returns them in storage order).
    async fn alternative_partners(&self) -> Result<Vec<AlternativePartner>> {
        let rows = sqlx::query(
            "SELECT agency, scheme, id, pid, created_by, created_at, modified_by, modified_at \
             FROM alternative_partners ORDER BY agency, scheme, id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(storage)?;
        Ok(rows.iter().map(alternative).collect())
    }

    async fn authorized_users(&self) -> Result<Vec<AuthorizedUser>> {
        let rows = sqlx::query(
            "SELECT user_name, pid, created_by, created_at, modified_by, modified_at \
             FROM authorized_users ORDER BY user_name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(storage)?;
        Ok(rows.iter().map(user).collect())
    }

    async fn load_directory(&self, sink: &mut (dyn DirectorySink + Send)) -> Result<()> {
        use crate::common::next_row;
        let mut rows =
            sqlx::query("SELECT agency, scheme, id, pid FROM alternative_partners").fetch(&self.pool);
        while let Some(row) = next_row(&mut rows).await {
            let row = row.map_err(storage)?;
            sink.alternative(row.get(0), row.get(1), row.get(2), row.get(3));
        }
        drop(rows);
        let mut rows = sqlx::query("SELECT user_name, pid FROM authorized_users").fetch(&self.pool);
        while let Some(row) = next_row(&mut rows).await {
            let row = row.map_err(storage)?;
            sink.user(row.get(0), row.get(1));
        }
        drop(rows);
        let mut rows = sqlx::query("SELECT pid, id, value FROM string_parameters").fetch(&self.pool);
        while let Some(row) = next_row(&mut rows).await {
            let row = row.map_err(storage)?;
            sink.string(row.get(0), row.get(1), row.get(2));
        }
        Ok(())
    }

    async fn string_parameters(&self) -> Result<Vec<StringParameter>> {
        let rows = sqlx::query(
            "SELECT pid, id, value, created_by, created_at, modified_by, modified_at \
             FROM string_parameters ORDER BY pid, id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(storage)?;
        Ok(rows.iter().map(string).collect())
    }

    async fn apply_partner_changes(&self, changes: &[PartnerChange]) -> Result<Vec<PartnerDelta>> {
        // Serialised: a partner delete reads what it removes, and the deltas must describe the
        // state the change set leaves, not one a concurrent set changed underneath.
        let mut tx = self.begin_serialised().await?;
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
        let mut filter = String::new();
        push_where(
            &mut filter,
            q.conditions.iter().map(|c| (partner_column(c.field), c.op)),
            |n| format!("${n}"),
        );
        let n = q.conditions.len();
        let sql = format!(
            "SELECT {cols} FROM {table}{filter} ORDER BY {} LIMIT ${} OFFSET ${}",
            partner_order(q.order_by, key),
            n + 1,
            n + 2
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        let mut total =
            sqlx::query_scalar::<_, i64>(AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}{filter}")));
        for c in &q.conditions {
            query = bind_literal(query, &c.value);
            total = bind_scalar_literal(total, &c.value);
        }
        let rows = query
            .bind(i64::from(q.top))
            .bind(i64::from(q.skip))
            .fetch_all(&self.pool)
            .await
            .map_err(storage)?;
        let total = total.fetch_one(&self.pool).await.map_err(storage)?;
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
        Ok((rows, count(total)))
    }
}

/// Turns a unique violation into a conflict that names the entry.
fn conflict(what: impl FnOnce() -> String) -> impl FnOnce(sqlx::Error) -> Error {
    move |e| name_conflict(storage(e), what)
}

/// Creates the partner row a write refers to, inside the write's transaction.
async fn ensure_partner(conn: &mut PgConnection, pid: &str, by: &str, at: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO partners (pid, created_at, created_by) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(pid)
    .bind(at)
    .bind(by)
    .execute(&mut *conn)
    .await
    .map_err(storage)?;
    Ok(())
}

/// Applies one change; a change that finds nothing to change is `NotFound`.
async fn apply_one(
    conn: &mut PgConnection,
    change: &PartnerChange,
    out: &mut Vec<PartnerDelta>,
) -> Result<()> {
    match change {
        PartnerChange::DeletePartner { pid, keep } => return delete_partner(conn, pid, keep, out).await,
        PartnerChange::InsertAlternative(a) => insert_alternative(conn, a).await?,
        PartnerChange::UpdateAlternative(a) => update_alternative(conn, a).await?,
        PartnerChange::DeleteAlternative { agency, scheme, id } => {
            let done = sqlx::query(
                "DELETE FROM alternative_partners WHERE hexagency = $1 AND hexscheme = $2 AND hexid = $3",
            )
            .bind(hex_upper(agency))
            .bind(hex_upper(scheme))
            .bind(hex_upper(id))
            .execute(&mut *conn)
            .await
            .map_err(storage)?;
            found(done.rows_affected(), || key::alternative(agency, scheme, id))?
        }
        PartnerChange::InsertUser(u) => {
            ensure_partner(conn, &u.pid, &u.audit.created_by, u.audit.created_at).await?;
            sqlx::query(
                "INSERT INTO authorized_users (user_name, pid, created_by, created_at, modified_by, modified_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&u.user)
            .bind(&u.pid)
            .bind(&u.audit.created_by)
            .bind(u.audit.created_at)
            .bind(&u.audit.modified_by)
            .bind(u.audit.modified_at)
            .execute(&mut *conn)
            .await
            .map_err(conflict(|| user_insert_conflict(u)))?;
        }
        PartnerChange::UpdateUser(u) => {
            ensure_partner(conn, &u.pid, &u.audit.modified_by, u.audit.modified_at).await?;
            let done = sqlx::query(
                "UPDATE authorized_users SET pid = $1, modified_by = $2, modified_at = $3 WHERE user_name = $4",
            )
            .bind(&u.pid)
            .bind(&u.audit.modified_by)
            .bind(u.audit.modified_at)
            .bind(&u.user)
            .execute(&mut *conn)
            .await
            .map_err(storage)?;
            found(done.rows_affected(), || key::user(&u.user))?
        }
        PartnerChange::DeleteUser { user } => {
            let done = sqlx::query("DELETE FROM authorized_users WHERE user_name = $1")
                .bind(user)
                .execute(&mut *conn)
                .await
                .map_err(storage)?;
            found(done.rows_affected(), || key::user(user))?
        }
        PartnerChange::InsertString(p) => insert_string(conn, p).await?,
        PartnerChange::UpdateString(p) => {
            let done = sqlx::query(
                "UPDATE string_parameters SET value = $1, modified_by = $2, modified_at = $3 \
                 WHERE pid = $4 AND id = $5",
            )
            .bind(&p.value)
            .bind(&p.audit.modified_by)
            .bind(p.audit.modified_at)
            .bind(&p.pid)
            .bind(&p.id)
            .execute(&mut *conn)
            .await
            .map_err(storage)?;
            found(done.rows_affected(), || key::string(&p.pid, &p.id))?
        }
        PartnerChange::DeleteString { pid, id } => {
            let done = sqlx::query("DELETE FROM string_parameters WHERE pid = $1 AND id = $2")
                .bind(pid)
                .bind(id)
                .execute(&mut *conn)
                .await
                .map_err(storage)?;
            found(done.rows_affected(), || key::string(pid, id))?
        }
        PartnerChange::InsertBinary(p) => insert_binary(conn, p).await?,
        PartnerChange::UpdateBinary(p) => {
            let done = sqlx::query(
                "UPDATE binary_parameters SET content_type = $1, value = $2, modified_by = $3, modified_at = $4 \
                 WHERE pid = $5 AND id = $6",
            )
            .bind(&p.content_type)
            .bind(&p.value)
            .bind(&p.audit.modified_by)
            .bind(p.audit.modified_at)
            .bind(&p.pid)
            .bind(&p.id)
            .execute(&mut *conn)
            .await
            .map_err(storage)?;
            found(done.rows_affected(), || key::binary(&p.pid, &p.id))?
        }
        PartnerChange::DeleteBinary { pid, id } => {
            let done = sqlx::query("DELETE FROM binary_parameters WHERE pid = $1 AND id = $2")
                .bind(pid)
                .bind(id)
                .execute(&mut *conn)
                .await
                .map_err(storage)?;
            found(done.rows_affected(), || key::binary(pid, id))?
        }
    }
    out.extend(delta(change));
    Ok(())
}

/// `NotFound` naming the entry when a change touched no row.
fn found(rows: u64, key: impl FnOnce() -> String) -> Result<()> {
    if rows == 0 {
        return Err(Error::NotFound(key()));
    }
    Ok(())
}

async fn insert_alternative(conn: &mut PgConnection, a: &AlternativePartner) -> Result<()> {
    ensure_partner(conn, &a.pid, &a.audit.created_by, a.audit.created_at).await?;
    sqlx::query(
        "INSERT INTO alternative_partners (hexagency, hexscheme, hexid, agency, scheme, id, pid, \
         created_by, created_at, modified_by, modified_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
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
    .execute(&mut *conn)
    .await
    .map_err(conflict(|| alternative_insert_conflict(a)))?;
    Ok(())
}

async fn update_alternative(conn: &mut PgConnection, a: &AlternativePartner) -> Result<()> {
    ensure_partner(conn, &a.pid, &a.audit.modified_by, a.audit.modified_at).await?;
    let done = sqlx::query(
        "UPDATE alternative_partners SET pid = $1, modified_by = $2, modified_at = $3 \
         WHERE hexagency = $4 AND hexscheme = $5 AND hexid = $6",
    )
    .bind(&a.pid)
    .bind(&a.audit.modified_by)
    .bind(a.audit.modified_at)
    .bind(hex_upper(&a.agency))
    .bind(hex_upper(&a.scheme))
    .bind(hex_upper(&a.id))
    .execute(&mut *conn)
    .await
    .map_err(conflict(|| alternative_update_conflict(a)))?;
    found(done.rows_affected(), || {
        key::alternative(&a.agency, &a.scheme, &a.id)
    })
}

async fn insert_string(conn: &mut PgConnection, p: &StringParameter) -> Result<()> {
    ensure_partner(conn, &p.pid, &p.audit.created_by, p.audit.created_at).await?;
    sqlx::query(
        "INSERT INTO string_parameters (pid, id, value, created_by, created_at, modified_by, modified_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&p.pid)
    .bind(&p.id)
    .bind(&p.value)
    .bind(&p.audit.created_by)
    .bind(p.audit.created_at)
    .bind(&p.audit.modified_by)
    .bind(p.audit.modified_at)
    .execute(&mut *conn)
    .await
    .map_err(conflict(|| format!("{} exists", key::string(&p.pid, &p.id))))?;
    Ok(())
}

async fn insert_binary(conn: &mut PgConnection, p: &BinaryParameter) -> Result<()> {
    ensure_partner(conn, &p.pid, &p.audit.created_by, p.audit.created_at).await?;
    sqlx::query(
        "INSERT INTO binary_parameters (pid, id, content_type, value, created_by, created_at, \
         modified_by, modified_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&p.pid)
    .bind(&p.id)
    .bind(&p.content_type)
    .bind(&p.value)
    .bind(&p.audit.created_by)
    .bind(p.audit.created_at)
    .bind(&p.audit.modified_by)
    .bind(p.audit.modified_at)
    .execute(&mut *conn)
    .await
    .map_err(conflict(|| format!("{} exists", key::binary(&p.pid, &p.id))))?;
    Ok(())
}

/// Deletes a partner's entries (except the kinds kept) and, when nothing is kept, the partner.
async fn delete_partner(
    conn: &mut PgConnection,
    pid: &str,
    keep: &[PartnerKind],
    out: &mut Vec<PartnerDelta>,
) -> Result<()> {
    let exists = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM partners WHERE pid = $1")
        .bind(pid)
        .fetch_one(&mut *conn)
        .await
        .map_err(storage)?;
    if exists == 0 {
        return Err(Error::NotFound(key::partner(pid)));
    }
    let removing = |kind| !keep.contains(&kind);
    if removing(PartnerKind::AlternativePartners) {
        let rows =
            sqlx::query("DELETE FROM alternative_partners WHERE pid = $1 RETURNING agency, scheme, id")
                .bind(pid)
                .fetch_all(&mut *conn)
                .await
                .map_err(storage)?;
        out.extend(rows.iter().map(|r| PartnerDelta::Alternative {
            agency: r.get("agency"),
            scheme: r.get("scheme"),
            id: r.get("id"),
            pid: None,
        }));
    }
    if removing(PartnerKind::AuthorizedUsers) {
        let rows = sqlx::query("DELETE FROM authorized_users WHERE pid = $1 RETURNING user_name")
            .bind(pid)
            .fetch_all(&mut *conn)
            .await
            .map_err(storage)?;
        out.extend(rows.iter().map(|r| PartnerDelta::User {
            user: r.get("user_name"),
            pid: None,
        }));
    }
    if removing(PartnerKind::StringParameters) {
        let rows = sqlx::query("DELETE FROM string_parameters WHERE pid = $1 RETURNING id")
            .bind(pid)
            .fetch_all(&mut *conn)
            .await
            .map_err(storage)?;
        out.extend(rows.iter().map(|r| PartnerDelta::String {
            pid: pid.to_owned(),
            id: r.get("id"),
            value: None,
        }));
    }
    if removing(PartnerKind::BinaryParameters) {
        let rows = sqlx::query("DELETE FROM binary_parameters WHERE pid = $1 RETURNING id")
            .bind(pid)
            .fetch_all(&mut *conn)
            .await
            .map_err(storage)?;
        out.extend(rows.iter().map(|r| PartnerDelta::Binary {
            pid: pid.to_owned(),
            id: r.get("id"),
        }));
    }
    if keep.is_empty() {
        sqlx::query("DELETE FROM partners WHERE pid = $1")
            .bind(pid)
            .execute(&mut *conn)
            .await
            .map_err(storage)?;
        out.push(PartnerDelta::PartnerRemoved { pid: pid.to_owned() });
    }
    Ok(())
}

fn audit(row: &PgRow) -> Audit {
    Audit {
        created_by: row.get("created_by"),
        created_at: row.get("created_at"),
        modified_by: row.get("modified_by"),
        modified_at: row.get("modified_at"),
    }
}

fn alternative(r: &PgRow) -> AlternativePartner {
    AlternativePartner {
        agency: r.get("agency"),
        scheme: r.get("scheme"),
        id: r.get("id"),
        pid: r.get("pid"),
        audit: audit(r),
    }
}

fn user(r: &PgRow) -> AuthorizedUser {
    AuthorizedUser {
        user: r.get("user_name"),
        pid: r.get("pid"),
        audit: audit(r),
    }
}

fn string(r: &PgRow) -> StringParameter {
    StringParameter {
        pid: r.get("pid"),
        id: r.get("id"),
        value: r.get("value"),
        audit: audit(r),
    }
}

fn binary(r: &PgRow) -> BinaryParameter {
    BinaryParameter {
        pid: r.get("pid"),
        id: r.get("id"),
        content_type: r.get("content_type"),
        value: r.get("value"),
        audit: audit(r),
    }
}
