//! The Partner Directory tables on SQLite. Every write is a list of changes applied in one
//! transaction; it answers with what changed for the in-memory directory.

use async_trait::async_trait;
use postern_core::mpl::{CmpOp, Literal};
use postern_core::partner::{
    AlternativePartner, Audit, AuthorizedUser, BinaryParameter, PartnerChange, PartnerDelta, PartnerField,
    PartnerKind, PartnerQuery, PartnerRow, PartnerSet, StringParameter, hex_upper,
};
use postern_core::{Error, Result};
use sqlx::sqlite::SqliteRow;
use sqlx::{AssertSqlSafe, Row, Sqlite, Transaction};

use super::{SqliteStore, storage};
use crate::PartnerStore;

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
    move |e| match storage(e) {
        Error::Conflict(_) => Error::Conflict(what()),
        other => other,
    }
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

fn alt_key(agency: &str, scheme: &str, id: &str) -> String {
    format!("AlternativePartners(Agency='{agency}',Scheme='{scheme}',Id='{id}')")
}

async fn apply_one(tx: &mut Tx<'_>, change: &PartnerChange, out: &mut Vec<PartnerDelta>) -> Result<()> {
    match change {
        PartnerChange::DeletePartner { pid, keep } => delete_partner(tx, pid, keep, out).await?,
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
            .map_err(conflict(|| {
                format!(
                    "{} exists, or partner {} already has an alternative partner of agency {} and scheme {}",
                    alt_key(&a.agency, &a.scheme, &a.id),
                    a.pid,
                    a.agency,
                    a.scheme
                )
            }))?;
            out.push(PartnerDelta::Alternative {
                agency: a.agency.clone(),
                scheme: a.scheme.clone(),
                id: a.id.clone(),
                pid: Some(a.pid.clone()),
            });
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
            .map_err(conflict(|| {
                format!(
                    "partner {} already has an alternative partner of agency {} and scheme {}",
                    a.pid, a.agency, a.scheme
                )
            }))?;
            if done.rows_affected() == 0 {
                return Err(Error::NotFound(alt_key(&a.agency, &a.scheme, &a.id)));
            }
            out.push(PartnerDelta::Alternative {
                agency: a.agency.clone(),
                scheme: a.scheme.clone(),
                id: a.id.clone(),
                pid: Some(a.pid.clone()),
            });
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
                return Err(Error::NotFound(alt_key(agency, scheme, id)));
            }
            out.push(PartnerDelta::Alternative {
                agency: agency.clone(),
                scheme: scheme.clone(),
                id: id.clone(),
                pid: None,
            });
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
            .map_err(conflict(|| {
                format!("AuthorizedUsers('{}') exists: a user belongs to one partner", u.user)
            }))?;
            out.push(PartnerDelta::User {
                user: u.user.clone(),
                pid: Some(u.pid.clone()),
            });
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
                return Err(Error::NotFound(format!("AuthorizedUsers('{}')", u.user)));
            }
            out.push(PartnerDelta::User {
                user: u.user.clone(),
                pid: Some(u.pid.clone()),
            });
        }
        PartnerChange::DeleteUser { user } => {
            let done = sqlx::query("DELETE FROM authorized_users WHERE user_name = ?")
                .bind(user)
                .execute(&mut **tx)
                .await
                .map_err(storage)?;
            if done.rows_affected() == 0 {
                return Err(Error::NotFound(format!("AuthorizedUsers('{user}')")));
            }
            out.push(PartnerDelta::User {
                user: user.clone(),
                pid: None,
            });
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
            .map_err(conflict(|| format!("StringParameters(Pid='{}',Id='{}') exists", p.pid, p.id)))?;
            out.push(PartnerDelta::String {
                pid: p.pid.clone(),
                id: p.id.clone(),
                value: Some(p.value.clone()),
            });
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
                return Err(Error::NotFound(format!(
                    "StringParameters(Pid='{}',Id='{}')",
                    p.pid, p.id
                )));
            }
            out.push(PartnerDelta::String {
                pid: p.pid.clone(),
                id: p.id.clone(),
                value: Some(p.value.clone()),
            });
        }
        PartnerChange::DeleteString { pid, id } => {
            let done = sqlx::query("DELETE FROM string_parameters WHERE pid = ? AND id = ?")
                .bind(pid)
                .bind(id)
                .execute(&mut **tx)
                .await
                .map_err(storage)?;
            if done.rows_affected() == 0 {
                return Err(Error::NotFound(format!(
                    "StringParameters(Pid='{pid}',Id='{id}')"
                )));
            }
            out.push(PartnerDelta::String {
                pid: pid.clone(),
                id: id.clone(),
                value: None,
            });
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
            .map_err(conflict(|| {
                format!("BinaryParameters(Pid='{}',Id='{}') exists", p.pid, p.id)
            }))?;
            out.push(PartnerDelta::Binary {
                pid: p.pid.clone(),
                id: p.id.clone(),
            });
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
                return Err(Error::NotFound(format!(
                    "BinaryParameters(Pid='{}',Id='{}')",
                    p.pid, p.id
                )));
            }
            out.push(PartnerDelta::Binary {
                pid: p.pid.clone(),
                id: p.id.clone(),
            });
        }
        PartnerChange::DeleteBinary { pid, id } => {
            let done = sqlx::query("DELETE FROM binary_parameters WHERE pid = ? AND id = ?")
                .bind(pid)
                .bind(id)
                .execute(&mut **tx)
                .await
                .map_err(storage)?;
            if done.rows_affected() == 0 {
                return Err(Error::NotFound(format!(
                    "BinaryParameters(Pid='{pid}',Id='{id}')"
                )));
            }
            out.push(PartnerDelta::Binary {
                pid: pid.clone(),
                id: id.clone(),
            });
        }
    }
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
        return Err(Error::NotFound(format!("Partners('{pid}')")));
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

/// The table and key order of an entity set.
fn table(set: PartnerSet) -> (&'static str, &'static str, &'static str) {
    match set {
        PartnerSet::Partners => ("partners", "pid", "pid"),
        PartnerSet::AlternativePartners => (
            "alternative_partners",
            "agency, scheme, id, pid, created_by, created_at, modified_by, modified_at",
            "agency, scheme, id",
        ),
        PartnerSet::AuthorizedUsers => (
            "authorized_users",
            "user_name, pid, created_by, created_at, modified_by, modified_at",
            "user_name",
        ),
        PartnerSet::StringParameters => (
            "string_parameters",
            "pid, id, value, created_by, created_at, modified_by, modified_at",
            "pid, id",
        ),
        PartnerSet::BinaryParameters => (
            "binary_parameters",
            "pid, id, content_type, value, created_by, created_at, modified_by, modified_at",
            "pid, id",
        ),
    }
}

fn column(field: PartnerField) -> &'static str {
    match field {
        PartnerField::Pid => "pid",
        PartnerField::Id => "id",
        PartnerField::Agency => "agency",
        PartnerField::Scheme => "scheme",
        PartnerField::User => "user_name",
        PartnerField::Value => "value",
        PartnerField::ContentType => "content_type",
        PartnerField::CreatedBy => "created_by",
        PartnerField::LastModifiedBy => "modified_by",
        PartnerField::CreatedTime => "created_at",
        PartnerField::LastModifiedTime => "modified_at",
    }
}

fn where_clause(q: &PartnerQuery) -> String {
    let mut sql = String::new();
    for (i, c) in q.conditions.iter().enumerate() {
        sql.push_str(if i == 0 { " WHERE " } else { " AND " });
        let op = match c.op {
            CmpOp::Eq => "=",
            CmpOp::Ne => "<>",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
        };
        sql.push_str(&format!("{} {op} ?", column(c.field)));
    }
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
                return Err(if changes.len() > 1 { in_request(i, e) } else { e });
            }
        }
        tx.commit().await.map_err(storage)?;
        Ok(out)
    }

    async fn query_partners(&self, q: &PartnerQuery) -> Result<(Vec<PartnerRow>, u64)> {
        let (table, cols, key) = table(q.set);
        let filter = where_clause(q);
        let order = match q.order_by {
            Some((f, desc)) => format!("{} {}, {key}", column(f), if desc { "DESC" } else { "ASC" }),
            None => key.to_owned(),
        };
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
        Ok((rows, u64::try_from(total).unwrap_or(0)))
    }
}

/// Names the request of a change set that failed.
fn in_request(i: usize, e: Error) -> Error {
    let n = i + 1;
    match e {
        Error::NotFound(m) => Error::NotFound(format!("{m} (change {n})")),
        Error::Conflict(m) => Error::Conflict(format!("change {n}: {m}")),
        Error::Invalid { field, message } => Error::Invalid {
            field: format!("change {n}: {field}"),
            message,
        },
        other => other,
    }
}
