//! Durable queues on PostgreSQL: the same queries as on SQLite, with row locks (`FOR UPDATE SKIP
//! LOCKED`) so that nodes claiming at once never take the same message. A commit is durable
//! with the server's default `synchronous_commit = on`.

use async_trait::async_trait;
use postern_core::Result;
use postern_core::mpl::MplStatus;
use sqlx::{AssertSqlSafe, Row};

use super::PgStore;
use crate::common::{count, numbered, storage};
use crate::queue::{
    Attempted, COLUMNS, Enqueued, NewQueued, QueueCount, QueueRow, QueueStatus, QueueStore, QueuedMessage,
    headers_json, sql,
};

#[async_trait]
impl QueueStore for PgStore {
    async fn enqueue(&self, batch: &[NewQueued]) -> Result<Vec<Enqueued>> {
        let mut tx = self.pool.begin().await.map_err(storage)?;
        let mut out = Vec::with_capacity(batch.len());
        for n in batch {
            let m = &n.message;
            if let Some(key) = &m.idempotency_key {
                let earlier = sqlx::query(AssertSqlSafe(numbered(sql::FIND_KEY)))
                    .bind(&m.flow_id)
                    .bind(key)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(storage)?;
                if let Some(row) = earlier {
                    let (guid, status): (String, String) = (row.get("guid"), row.get("status"));
                    if row.get::<i64, _>("created_at") >= n.idempotent_since {
                        let status = QueueStatus::parse(&status).unwrap_or(QueueStatus::Queued);
                        out.push(Enqueued::Duplicate { guid, status });
                        continue;
                    }
                    sqlx::query(AssertSqlSafe(numbered(sql::FORGET_KEY)))
                        .bind(&guid)
                        .execute(&mut *tx)
                        .await
                        .map_err(storage)?;
                }
            }
            let stored = sqlx::query(AssertSqlSafe(numbered(sql::INSERT)))
                .bind(&m.guid)
                .bind(&m.queue)
                .bind(&m.flow_id)
                .bind(&m.partner)
                .bind(&m.user)
                .bind(m.ordered)
                .bind(&m.method)
                .bind(&m.url)
                .bind(headers_json(&m.headers))
                .bind(m.body.as_slice())
                .bind(m.next_attempt_at)
                .bind(m.created_at)
                .bind(m.updated_at)
                .bind(&m.idempotency_key)
                .fetch_optional(&mut *tx)
                .await
                .map_err(storage)?;
            if stored.is_none() {
                // Another node stored the key since the check: that message is the answer.
                out.push(duplicate_of(&mut tx, m).await?);
                continue;
            }
            let l = &n.mpl;
            sqlx::query(AssertSqlSafe(numbered(sql::INSERT_MPL)))
                .bind(&l.guid)
                .bind(&l.flow_id)
                .bind(l.status.as_str())
                .bind(&l.user)
                .bind(&l.sender)
                .bind(&l.receiver)
                .bind(l.log_start)
                .bind(l.log_end)
                .bind(i64::from(l.http_status))
                .bind(&l.error)
                .execute(&mut *tx)
                .await
                .map_err(storage)?;
            out.push(Enqueued::Stored);
        }
        tx.commit().await.map_err(storage)?;
        Ok(out)
    }

    async fn claim_due(
        &self,
        owner: &str,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> Result<Vec<QueuedMessage>> {
        let rows: Vec<QueueRow> =
            sqlx::query_as(AssertSqlSafe(numbered(&sql::claim(" FOR UPDATE SKIP LOCKED"))))
                .bind(owner)
                .bind(lease_until)
                .bind(now)
                .bind(now)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err(storage)?;
        let mut out: Vec<QueuedMessage> = rows
            .into_iter()
            .map(QueueRow::into_message)
            .collect::<Result<_>>()?;
        // RETURNING gives no order; deliver oldest first.
        out.sort_by_key(|m| (m.next_attempt_at, m.created_at));
        Ok(out)
    }

    async fn recover_leases(&self, owner: &str) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE queue_messages SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1",
        )
        .bind(owner)
        .execute(&self.pool)
        .await
        .map_err(storage)?;
        Ok(done.rows_affected())
    }

    async fn record_attempt(&self, owner: &str, a: &Attempted) -> Result<bool> {
        let mut tx = self.pool.begin().await.map_err(storage)?;
        let done = sqlx::query(AssertSqlSafe(numbered(sql::ATTEMPT)))
            .bind(a.status.as_str())
            .bind(a.next_attempt_at)
            .bind(a.at)
            .bind(&a.error)
            .bind(a.http_status.map(i64::from))
            .bind(&a.guid)
            .bind(owner)
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        mpl_status(&mut tx, &a.guid, a.mpl_status, a.at, a.error.as_deref()).await?;
        tx.commit().await.map_err(storage)?;
        Ok(true)
    }

    async fn queued(&self, guid: &str) -> Result<Option<QueuedMessage>> {
        let row: Option<QueueRow> = sqlx::query_as(AssertSqlSafe(numbered(&format!(
            "SELECT {COLUMNS} FROM queue_messages {}",
            sql::ONE
        ))))
        .bind(guid)
        .fetch_optional(&self.pool)
        .await
        .map_err(storage)?;
        row.map(QueueRow::into_message).transpose()
    }

    async fn queued_list(
        &self,
        queue: Option<&str>,
        status: Option<QueueStatus>,
        limit: u32,
        offset: u32,
    ) -> Result<Vec<QueuedMessage>> {
        let text = sql::list(queue.is_some(), status.is_some());
        let mut q = sqlx::query_as::<_, QueueRow>(AssertSqlSafe(numbered(&text)));
        if let Some(queue) = queue {
            q = q.bind(queue);
        }
        if let Some(status) = status {
            q = q.bind(status.as_str());
        }
        let rows = q
            .bind(i64::from(limit))
            .bind(i64::from(offset))
            .fetch_all(&self.pool)
            .await
            .map_err(storage)?;
        rows.into_iter().map(QueueRow::into_message).collect()
    }

    async fn queue_counts(&self) -> Result<Vec<QueueCount>> {
        let rows = sqlx::query(AssertSqlSafe(numbered(sql::COUNTS)))
            .fetch_all(&self.pool)
            .await
            .map_err(storage)?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                Some(QueueCount {
                    queue: r.get("queue"),
                    status: QueueStatus::parse(r.get("status"))?,
                    count: count(r.get("n")),
                })
            })
            .collect())
    }

    async fn retry_queued(&self, guid: &str, now: i64) -> Result<bool> {
        let mut tx = self.pool.begin().await.map_err(storage)?;
        let done = sqlx::query(AssertSqlSafe(numbered(sql::RETRY)))
            .bind(now)
            .bind(now)
            .bind(guid)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        let error =
            sqlx::query_scalar::<_, Option<String>>("SELECT last_error FROM queue_messages WHERE guid = $1")
                .bind(guid)
                .fetch_one(&mut *tx)
                .await
                .map_err(storage)?;
        mpl_status(&mut tx, guid, MplStatus::Retry, now, error.as_deref()).await?;
        tx.commit().await.map_err(storage)?;
        Ok(true)
    }

    async fn discard_queued(&self, guid: &str, now: i64) -> Result<bool> {
        let mut tx = self.pool.begin().await.map_err(storage)?;
        let done = sqlx::query(AssertSqlSafe(numbered(sql::DISCARD)))
            .bind(now)
            .bind(guid)
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        mpl_status(
            &mut tx,
            guid,
            MplStatus::Discarded,
            now,
            Some("discarded by an operator"),
        )
        .await?;
        tx.commit().await.map_err(storage)?;
        Ok(true)
    }

    async fn prune_queue(&self, before: i64, keys_before: i64) -> Result<u64> {
        let mut tx = self.pool.begin().await.map_err(storage)?;
        sqlx::query(AssertSqlSafe(numbered(sql::FORGET_OLD_KEYS)))
            .bind(keys_before)
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
        sqlx::query(AssertSqlSafe(numbered(sql::PRUNE_BODIES)))
            .bind(&[][..] as &[u8])
            .bind(before)
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
        let done = sqlx::query(AssertSqlSafe(numbered(sql::PRUNE)))
            .bind(before)
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
        tx.commit().await.map_err(storage)?;
        Ok(done.rows_affected())
    }
}

async fn mpl_status(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    guid: &str,
    status: MplStatus,
    at: i64,
    error: Option<&str>,
) -> Result<()> {
    sqlx::query(AssertSqlSafe(numbered(sql::MPL_STATUS)))
        .bind(status.as_str())
        .bind(at)
        .bind(error)
        .bind(guid)
        .execute(&mut **tx)
        .await
        .map_err(storage)?;
    Ok(())
}

async fn duplicate_of(tx: &mut sqlx::Transaction<'_, sqlx::Postgres>, m: &QueuedMessage) -> Result<Enqueued> {
    let row = sqlx::query(AssertSqlSafe(numbered(sql::FIND_KEY)))
        .bind(&m.flow_id)
        .bind(&m.idempotency_key)
        .fetch_one(&mut **tx)
        .await
        .map_err(storage)?;
    let status: String = row.get("status");
    Ok(Enqueued::Duplicate {
        guid: row.get("guid"),
        status: QueueStatus::parse(&status).unwrap_or(QueueStatus::Queued),
    })
}
