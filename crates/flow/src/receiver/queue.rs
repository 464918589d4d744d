//! `queue`: accepts the message into a durable queue (the sender gets 202 once it is committed)
//! and delivers it later to an `http` target with retries, as SAP Cloud Integration does with
//! its JMS queues. This file holds the queue's settings and its retry rule; storing is the
//! store's, delivering the server's worker.

use std::time::Duration;

use crate::receiver::HttpReceiver;

/// Longest idempotency window a flow may set (the store forgets keys after it).
pub const MAX_IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);

/// The compiled receiver.
#[derive(Debug)]
pub struct QueueReceiver {
    /// The queue's name (several flows may share one).
    pub name: String,
    /// Whether each partner's messages are delivered in the order they were accepted.
    pub ordered: bool,
    /// Deliveries tried before the message goes to the dead letter.
    pub max_attempts: u32,
    /// Wait after the first failed delivery.
    pub retry_interval: Duration,
    /// Longest wait between deliveries (the wait doubles up to this).
    pub max_retry_interval: Duration,
    /// Sender header whose value makes a re-sent message a duplicate, and for how long.
    pub idempotency: Option<(String, Duration)>,
    /// Where messages go.
    pub target: HttpReceiver,
}

/// What to do after a failed delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterFailure {
    /// Try again at this time (Unix ms).
    RetryAt(i64),
    /// Give up: dead letter.
    GiveUp,
}

impl QueueReceiver {
    /// The rule after delivery number `attempt` (1 for the first) failed at `now`: the wait
    /// doubles from the retry interval up to the maximum; after `max_attempts` deliveries, or
    /// when the back end refused the message itself (`permanent`), it is given up.
    pub fn after_failure(&self, attempt: u32, now: i64, permanent: bool) -> AfterFailure {
        if permanent || attempt >= self.max_attempts {
            return AfterFailure::GiveUp;
        }
        let base = self.retry_interval.as_millis() as u64;
        let factor = 1u64 << attempt.saturating_sub(1).min(30);
        let wait = base
            .saturating_mul(factor)
            .min(self.max_retry_interval.as_millis() as u64);
        AfterFailure::RetryAt(now.saturating_add(i64::try_from(wait).unwrap_or(i64::MAX)))
    }
}
