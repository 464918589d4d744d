//! Message processing logs and the audit log on PostgreSQL.

use async_trait::async_trait;
use postern_core::Result;
use postern_core::model::AuditEntry;
use postern_core::mpl::{CmpOp, Condition, Denial, Literal, Mpl, MplField, MplQuery, MplStatus};
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::{Query, QueryScalar};
use sqlx::{AssertSqlSafe, Postgres, Row};

use super::{PgStore, storage};
use crate::common::{corrupt, count, mpl_column, push_where};
use crate::{AuditStore, MplStore};

/// MPL rows written by one INSERT statement (11 binds a row; PostgreSQL allows 65535 a statement).
const MPL_ROWS_PER_INSERT: usize = 200;

#[async_trait]
impl MplStore for PgStore {
    async fn insert_mpls(&self, batch: &[Mpl]) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(storage)?;
        for chunk in batch.chunks(MPL_ROWS_PER_INSERT) {
            let mut q = sqlx::QueryBuilder::<Postgres>::new(
                "INSERT INTO mpl (guid, flow_id, status, user_name, sender, receiver, log_start, log_end, http_status, error, denial) ",
            );
            q.push_values(chunk, |mut row, m| {
                row.push_bind(m.guid.clone())
                    .push_bind(m.flow_id.clone())
                    .push_bind(m.status.as_str())
                    .push_bind(m.user.clone())
                    .push_bind(m.sender.clone())
                    .push_bind(m.receiver.clone())
                    .push_bind(m.log_start)
                    .push_bind(m.log_end)
                    .push_bind(i64::from(m.http_status))
                    .push_bind(m.error.clone())
                    .push_bind(m.denial.as_ref().map(Denial::to_json));
            });
            // A GUID already stored, or seen earlier in the batch, keeps its first entry.
            q.push(" ON CONFLICT DO NOTHING");
            q.build().execute(&mut *tx).await.map_err(storage)?;
        }
        tx.commit().await.map_err(storage)
    }

    async fn query_mpls(&self, query: &MplQuery) -> Result<Vec<Mpl>> {
        let mut sql = String::from(
            "SELECT guid, flow_id, status, user_name, sender, receiver, log_start, log_end, http_status, error, denial FROM mpl",
        );
        push_where(&mut sql, comparisons(&query.conditions), |n| format!("${n}"));
        let (field, desc) = query.order_by.unwrap_or((MplField::LogEnd, true));
        let n = query.conditions.len();
        sql.push_str(&format!(
            " ORDER BY {} {}, guid LIMIT ${} OFFSET ${}",
            mpl_column(field),
            if desc { "DESC" } else { "ASC" },
            n + 1,
            n + 2
        ));
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for c in &query.conditions {
            q = bind_literal(q, &c.value);
        }
        let rows = q
            .bind(i64::from(query.top))
            .bind(i64::from(query.skip))
            .fetch_all(&self.pool)
            .await
            .map_err(storage)?;
        rows.iter().map(mpl_row).collect()
    }

    async fn count_mpls(&self, conditions: &[Condition]) -> Result<u64> {
        let mut sql = String::from("SELECT COUNT(*) FROM mpl");
        push_where(&mut sql, comparisons(conditions), |n| format!("${n}"));
        let mut q = sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql));
        for c in conditions {
            q = bind_scalar_literal(q, &c.value);
        }
        let n = q.fetch_one(&self.pool).await.map_err(storage)?;
        Ok(count(n))
    }
}

/// The columns and operators of MPL conditions.
fn comparisons(conditions: &[Condition]) -> impl Iterator<Item = (&'static str, CmpOp)> + '_ {
    conditions.iter().map(|c| (mpl_column(c.field), c.op))
}

/// Binds a condition's value to a row query.
pub(super) fn bind_literal<'q>(
    q: Query<'q, Postgres, PgArguments>,
    value: &Literal,
) -> Query<'q, Postgres, PgArguments> {
    match value {
        Literal::Text(t) => q.bind(t.clone()),
        Literal::Time(t) => q.bind(*t),
    }
}

/// Binds a condition's value to a count query.
pub(super) fn bind_scalar_literal<'q>(
    q: QueryScalar<'q, Postgres, i64, PgArguments>,
    value: &Literal,
) -> QueryScalar<'q, Postgres, i64, PgArguments> {
    match value {
        Literal::Text(t) => q.bind(t.clone()),
        Literal::Time(t) => q.bind(*t),
    }
}

fn mpl_row(row: &PgRow) -> Result<Mpl> {
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
impl AuditStore for PgStore {
    async fn append_audit(&self, entries: &[AuditEntry]) -> Result<()> {
        // Serialised: one chain, in one order, across nodes.
        let mut tx = self.begin_serialised().await?;
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
                "INSERT INTO audit (at, actor, action, target, detail, source) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
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
            sqlx::query("UPDATE audit SET hash = $1 WHERE id = $2")
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
            "SELECT id, at, actor, action, target, detail, source FROM audit WHERE id < $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
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
            "SELECT id, at, actor, action, target, detail, source, hash FROM audit WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
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
