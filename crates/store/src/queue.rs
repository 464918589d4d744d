//! Durable queues of `queue` receivers: the message is committed with its MPL row before the
//! sender's 202, claimed by delivery workers under a lease (several nodes share the work, none
//! delivers a message another holds), and ends delivered, in the dead letter, or discarded.

use async_trait::async_trait;
use postern_core::Result;
use postern_core::mpl::{Mpl, MplStatus};

/// Where a queued message stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueueStatus {
    /// Accepted, first delivery not yet tried (or tried and not yet answered).
    Queued,
    /// A delivery failed; the next one is due at `next_attempt_at`.
    Retry,
    /// The receiver took it.
    Delivered,
    /// Given up on (attempts or time used up, or refused for good): the dead letter.
    Dead,
    /// Removed by an operator without delivery.
    Discarded,
}

impl QueueStatus {
    /// Every status.
    pub const ALL: [QueueStatus; 5] = [
        QueueStatus::Queued,
        QueueStatus::Retry,
        QueueStatus::Delivered,
        QueueStatus::Dead,
        QueueStatus::Discarded,
    ];

    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueStatus::Queued => "QUEUED",
            QueueStatus::Retry => "RETRY",
            QueueStatus::Delivered => "DELIVERED",
            QueueStatus::Dead => "DEAD",
            QueueStatus::Discarded => "DISCARDED",
        }
    }

    /// Parses a name given by [`as_str`](Self::as_str).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether delivery is still to come.
    pub fn is_pending(self) -> bool {
        matches!(self, QueueStatus::Queued | QueueStatus::Retry)
    }
}

/// One queued message: the outgoing request as rendered when it was accepted, and its state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedMessage {
    /// The message GUID (its MPL's id).
    pub guid: String,
    /// The queue's name.
    pub queue: String,
    /// The flow that accepted it.
    pub flow_id: String,
    /// The partner a partner check established (empty when none).
    pub partner: String,
    /// The authenticated sender.
    pub user: String,
    /// Whether the queue delivers each partner's messages in order.
    pub ordered: bool,
    /// HTTP method of the delivery.
    pub method: String,
    /// Target URL of the delivery.
    pub url: String,
    /// Headers of the delivery.
    pub headers: Vec<(String, String)>,
    /// Body of the delivery.
    pub body: Vec<u8>,
    /// State.
    pub status: QueueStatus,
    /// Deliveries tried so far.
    pub attempts: u32,
    /// When the next delivery is due, Unix ms.
    pub next_attempt_at: i64,
    /// Accepted, Unix ms.
    pub created_at: i64,
    /// Last state change, Unix ms.
    pub updated_at: i64,
    /// Why the last delivery failed.
    pub last_error: Option<String>,
    /// The receiver's status on the last delivery.
    pub last_http_status: Option<u16>,
    /// The sender's idempotency key, while its window lasts.
    pub idempotency_key: Option<String>,
}

/// What [`QueueStore::enqueue`] did with a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Enqueued {
    /// Stored (with its MPL), durable.
    Stored,
    /// A message with the same idempotency key was accepted within the window: this one was
    /// not stored; the earlier one's GUID and status are the answer.
    Duplicate {
        /// The earlier message.
        guid: String,
        /// Its state now.
        status: QueueStatus,
    },
}

/// A message to enqueue with its MPL row and the idempotency window.
#[derive(Clone, Debug)]
pub struct NewQueued {
    /// The message (status `Queued`).
    pub message: QueuedMessage,
    /// Its MPL row (status `PROCESSING`).
    pub mpl: Mpl,
    /// An earlier message with the same idempotency key counts when accepted after this time.
    pub idempotent_since: i64,
}

/// The outcome of one delivery attempt, written with the MPL's new status.
#[derive(Clone, Debug)]
pub struct Attempted {
    /// The message.
    pub guid: String,
    /// The state it moves to.
    pub status: QueueStatus,
    /// Its MPL status.
    pub mpl_status: MplStatus,
    /// When the next attempt is due (for `Retry`).
    pub next_attempt_at: i64,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// The receiver's HTTP status, if it answered.
    pub http_status: Option<u16>,
    /// Now, Unix ms.
    pub at: i64,
}

/// Messages per queue and state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueCount {
    /// The queue.
    pub queue: String,
    /// The state.
    pub status: QueueStatus,
    /// How many.
    pub count: u64,
}

/// Durable queue storage.
#[async_trait]
pub trait QueueStore {
    /// Stores messages (each with its MPL row) in one transaction, unless an earlier message of
    /// the same flow carries the same idempotency key within its window; answers per message.
    async fn enqueue(&self, batch: &[NewQueued]) -> Result<Vec<Enqueued>>;
    /// Leases up to `limit` due messages to `owner` until `lease_until` and returns them. A
    /// message of an ordered queue is due only when no older message of its partner is pending.
    async fn claim_due(
        &self,
        owner: &str,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> Result<Vec<QueuedMessage>>;
    /// Ends leases a stopped process of node `owner` left, so its messages are delivered at once
    /// rather than after the lease: on SQLite (one node by construction) every lease, on
    /// PostgreSQL those of `owner` (other nodes' leases run out on their own). How many.
    async fn recover_leases(&self, owner: &str) -> Result<u64>;
    /// Records a delivery attempt (attempt count + 1, new state, MPL status) and ends the lease;
    /// false when the message is no longer leased to `owner` (an operator discarded it meanwhile).
    async fn record_attempt(&self, owner: &str, outcome: &Attempted) -> Result<bool>;
    /// One message.
    async fn queued(&self, guid: &str) -> Result<Option<QueuedMessage>>;
    /// Messages of a queue (any queue when `None`) in a state (any when `None`), newest first.
    async fn queued_list(
        &self,
        queue: Option<&str>,
        status: Option<QueueStatus>,
        limit: u32,
        offset: u32,
    ) -> Result<Vec<QueuedMessage>>;
    /// Message counts per queue and state.
    async fn queue_counts(&self) -> Result<Vec<QueueCount>>;
    /// Makes a dead (or retrying) message due now with a fresh attempt count; MPL back to RETRY.
    /// False when the message is not dead or retrying.
    async fn retry_queued(&self, guid: &str, now: i64) -> Result<bool>;
    /// Discards a message that is not delivered; MPL DISCARDED. False when there is none such.
    async fn discard_queued(&self, guid: &str, now: i64) -> Result<bool>;
    /// Deletes delivered and discarded messages last changed before `before` and forgets
    /// idempotency keys older than `keys_before`; how many rows were deleted.
    async fn prune_queue(&self, before: i64, keys_before: i64) -> Result<u64>;
}

/// The columns every query returning messages reads, in [`QueueRow`]'s names.
pub(crate) const COLUMNS: &str = "guid, queue, flow_id, partner, user_name, ordered, method, url, headers, body, \
     status, attempts, next_attempt_at, created_at, updated_at, last_error, last_http_status, idempotency_key";

/// The queries both backends run, with `?` placeholders (numbered for PostgreSQL by
/// [`crate::common::numbered`]).
pub(crate) mod sql {
    /// An earlier message with the key.
    pub(crate) const FIND_KEY: &str =
        "SELECT guid, status, created_at FROM queue_messages WHERE flow_id = ? AND idempotency_key = ?";
    /// Forgets a key whose window has passed.
    pub(crate) const FORGET_KEY: &str = "UPDATE queue_messages SET idempotency_key = NULL WHERE guid = ?";
    /// Stores a message unless its key is taken (then returns nothing).
    pub(crate) const INSERT: &str = "INSERT INTO queue_messages (guid, queue, flow_id, partner, user_name, ordered, \
         method, url, headers, body, status, attempts, next_attempt_at, created_at, updated_at, idempotency_key) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'QUEUED', 0, ?, ?, ?, ?) \
         ON CONFLICT (flow_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING RETURNING seq";
    /// The MPL row of an accepted message.
    pub(crate) const INSERT_MPL: &str = "INSERT INTO mpl (guid, flow_id, status, user_name, sender, receiver, \
         log_start, log_end, http_status, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    /// Records an attempt while the lease is held.
    pub(crate) const ATTEMPT: &str = "UPDATE queue_messages SET status = ?, attempts = attempts + 1, \
         next_attempt_at = ?, updated_at = ?, last_error = ?, last_http_status = ?, lease_owner = NULL, \
         lease_until = NULL WHERE guid = ? AND lease_owner = ? AND status IN ('QUEUED', 'RETRY')";
    /// An MPL's new status.
    pub(crate) const MPL_STATUS: &str = "UPDATE mpl SET status = ?, log_end = ?, error = ? WHERE guid = ?";
    /// Makes a dead message (or a retrying one nobody is delivering) due now.
    pub(crate) const RETRY: &str = "UPDATE queue_messages SET status = 'RETRY', attempts = 0, next_attempt_at = ?, \
         updated_at = ?, lease_owner = NULL, lease_until = NULL WHERE guid = ? AND (status = 'DEAD' \
         OR (status = 'RETRY' AND (lease_until IS NULL OR lease_until < ?)))";
    /// Discards a message not yet delivered.
    pub(crate) const DISCARD: &str = "UPDATE queue_messages SET status = 'DISCARDED', updated_at = ?, \
         lease_owner = NULL, lease_until = NULL WHERE guid = ? AND status IN ('QUEUED', 'RETRY', 'DEAD')";
    /// One message.
    pub(crate) const ONE: &str = "WHERE guid = ?";
    /// Counts per queue and status.
    pub(crate) const COUNTS: &str = "SELECT queue, status, COUNT(*) AS n FROM queue_messages \
         GROUP BY queue, status ORDER BY queue, status";
    /// Old delivered/discarded messages without a key.
    pub(crate) const PRUNE: &str = "DELETE FROM queue_messages WHERE status IN ('DELIVERED', 'DISCARDED') \
         AND updated_at < ? AND idempotency_key IS NULL";
    /// Old delivered/discarded messages whose key still counts keep the key, not the body.
    pub(crate) const PRUNE_BODIES: &str = "UPDATE queue_messages SET body = ? WHERE status IN ('DELIVERED', \
         'DISCARDED') AND updated_at < ? AND idempotency_key IS NOT NULL";
    /// Keys past the longest window.
    pub(crate) const FORGET_OLD_KEYS: &str = "UPDATE queue_messages SET idempotency_key = NULL \
         WHERE idempotency_key IS NOT NULL AND created_at < ?";

    /// Leases due messages; `lock` is the row-locking clause of the backend (empty on SQLite,
    /// whose one writer never interleaves).
    pub(crate) fn claim(lock: &str) -> String {
        format!(
            "UPDATE queue_messages SET lease_owner = ?, lease_until = ? WHERE seq IN (\
             SELECT m.seq FROM queue_messages m WHERE m.status IN ('QUEUED', 'RETRY') \
             AND m.next_attempt_at <= ? AND (m.lease_until IS NULL OR m.lease_until < ?) \
             AND (NOT m.ordered OR NOT EXISTS (SELECT 1 FROM queue_messages o WHERE o.queue = m.queue \
             AND o.partner = m.partner AND o.status IN ('QUEUED', 'RETRY') AND o.seq < m.seq)) \
             ORDER BY m.next_attempt_at, m.seq LIMIT ?{lock}) RETURNING {}",
            super::COLUMNS
        )
    }

    /// A listing with optional queue and status conditions.
    pub(crate) fn list(queue: bool, status: bool) -> String {
        let mut s = format!("SELECT {} FROM queue_messages", super::COLUMNS);
        match (queue, status) {
            (true, true) => s.push_str(" WHERE queue = ? AND status = ?"),
            (true, false) => s.push_str(" WHERE queue = ?"),
            (false, true) => s.push_str(" WHERE status = ?"),
            (false, false) => {}
        }
        s.push_str(" ORDER BY seq DESC LIMIT ? OFFSET ?");
        s
    }
}

/// A stored message row as both backends read it.
#[derive(sqlx::FromRow)]
pub(crate) struct QueueRow {
    guid: String,
    queue: String,
    flow_id: String,
    partner: String,
    user_name: String,
    ordered: bool,
    method: String,
    url: String,
    headers: String,
    body: Vec<u8>,
    status: String,
    attempts: i64,
    next_attempt_at: i64,
    created_at: i64,
    updated_at: i64,
    last_error: Option<String>,
    last_http_status: Option<i64>,
    idempotency_key: Option<String>,
}

impl QueueRow {
    /// The message, or why the stored row is not one.
    pub(crate) fn into_message(self) -> Result<QueuedMessage> {
        use crate::common::corrupt;
        let headers: Vec<(String, String)> =
            serde_json::from_str(&self.headers).map_err(|e| corrupt("queued headers", e))?;
        Ok(QueuedMessage {
            status: QueueStatus::parse(&self.status).ok_or_else(|| corrupt("queue status", &self.status))?,
            guid: self.guid,
            queue: self.queue,
            flow_id: self.flow_id,
            partner: self.partner,
            user: self.user_name,
            ordered: self.ordered,
            method: self.method,
            url: self.url,
            headers,
            body: self.body,
            attempts: u32::try_from(self.attempts).unwrap_or(u32::MAX),
            next_attempt_at: self.next_attempt_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
            last_error: self.last_error,
            last_http_status: self.last_http_status.and_then(|s| u16::try_from(s).ok()),
            idempotency_key: self.idempotency_key,
        })
    }
}

/// The stored form of a message's headers.
pub(crate) fn headers_json(headers: &[(String, String)]) -> String {
    serde_json::to_string(headers).unwrap_or_else(|_| "[]".into())
}
