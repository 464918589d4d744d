//! Durable queues at run time: the enqueue writer, which commits concurrent senders' messages in
//! one transaction each (group commit) and answers each sender only after that commit, and the
//! delivery worker, which claims due messages under a lease, sends them to the queue's `http`
//! target, and records each attempt with the message's MPL status.

use std::sync::Arc;
use std::time::Duration;

use postern_core::Result;
use postern_core::mpl::MplStatus;
use postern_flow::definition::Receiver;
use postern_flow::receiver::{AfterFailure, DeliveryError, Outgoing, QueueReceiver};
use postern_store::Store;
use postern_store::queue::{Attempted, Enqueued, NewQueued, QueueStatus, QueuedMessage};
use tokio::sync::{Notify, Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::state::AppState;

/// Messages waiting for the enqueue writer before senders wait.
const CAPACITY: usize = 4096;
/// Most messages committed in one transaction.
const MAX_BATCH: usize = 256;
/// How long a claimed message is reserved for this node; longer than any delivery may take
/// (queue targets' timeouts are capped below it), so it is only ever reached when a node died.
pub(crate) const LEASE: Duration = Duration::from_secs(300);
/// Messages claimed at once.
const CLAIM: u32 = 64;
/// Deliveries in flight at once on this node.
const IN_FLIGHT: usize = 32;
/// How often the worker looks for due messages when nothing woke it.
const POLL: Duration = Duration::from_millis(500);
/// When a message's flow is gone (or no longer queues), the next look is this far ahead.
const ORPHAN_RETRY: Duration = Duration::from_secs(60);
/// Delivered and discarded messages are kept this long for inspection.
const KEEP_DONE: Duration = Duration::from_secs(24 * 3600);

type Job = (NewQueued, oneshot::Sender<Result<Enqueued>>);

/// The sending side of the enqueue writer.
#[derive(Clone)]
pub(crate) struct Enqueuer {
    tx: mpsc::Sender<Job>,
}

impl Enqueuer {
    /// Stores a message durably (with its MPL row); answers once it is committed.
    pub(crate) async fn enqueue(&self, message: NewQueued) -> Result<Enqueued> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send((message, tx)).await.is_err() {
            return Err(postern_core::Error::Unavailable(
                "the queue writer has stopped".into(),
            ));
        }
        rx.await.unwrap_or_else(|_| {
            Err(postern_core::Error::Unavailable(
                "the queue writer has stopped".into(),
            ))
        })
    }
}

/// The background tasks, stopped at shutdown.
pub(crate) struct QueueTasks {
    stop: watch::Sender<bool>,
    writer: JoinHandle<()>,
    worker: Option<JoinHandle<()>>,
}

impl QueueTasks {
    /// Stops claiming, lets deliveries in flight finish (bounded by their timeouts) and
    /// commits what senders are waiting on.
    pub(crate) async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Some(w) = self.worker {
            let _ = w.await;
        }
        let _ = self.writer.await;
    }
}

/// Starts the enqueue writer; the worker starts with [`start_worker`] once the state exists.
pub(crate) fn start_writer(store: Arc<dyn Store>, wake: Arc<Notify>) -> (Enqueuer, QueueTasks) {
    let (tx, rx) = mpsc::channel(CAPACITY);
    let (stop, stop_rx) = watch::channel(false);
    let writer = tokio::spawn(write_loop(store, rx, wake, stop_rx));
    (
        Enqueuer { tx },
        QueueTasks {
            stop,
            writer,
            worker: None,
        },
    )
}

/// Starts the delivery worker.
pub(crate) fn start_worker(tasks: &mut QueueTasks, state: AppState, wake: Arc<Notify>) {
    let stop = tasks.stop.subscribe();
    tasks.worker = Some(tokio::spawn(deliver_loop(state, wake, stop)));
}

async fn write_loop(
    store: Arc<dyn Store>,
    mut rx: mpsc::Receiver<Job>,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        // Stopping: the listeners are closed, so what waits now is all there will be.
        let first = if *stop.borrow() {
            rx.try_recv().ok()
        } else {
            tokio::select! {
                j = rx.recv() => j,
                _ = stop.changed() => rx.try_recv().ok(),
            }
        };
        let Some(first) = first else { return };
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let batch: Vec<NewQueued> = jobs.iter().map(|(m, _)| m.clone()).collect();
        let result = store.enqueue(&batch).await;
        match result {
            Ok(outcomes) => {
                for ((_, reply), outcome) in jobs.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
                wake.notify_one();
            }
            Err(e) => {
                // Nothing of the batch was stored: every sender hears so (and gets a 5xx).
                tracing::warn!(messages = batch.len(), error = %e, "queued messages could not be stored");
                for (_, reply) in jobs {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

async fn deliver_loop(state: AppState, wake: Arc<Notify>, mut stop: watch::Receiver<bool>) {
    let owner = state.config().node_id.clone();
    match state.store().recover_leases(&owner).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            messages = n,
            "took back messages whose delivery a stopped process left"
        ),
        Err(e) => tracing::warn!(error = %e, "could not take back leased queue messages"),
    }
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut last_prune = std::time::Instant::now() - Duration::from_secs(3600);
    loop {
        if *stop.borrow() {
            break;
        }
        if last_prune.elapsed() > Duration::from_secs(600) {
            last_prune = std::time::Instant::now();
            prune(&state).await;
        }
        let free = slots.available_permits().min(CLAIM as usize) as u32;
        if free == 0 {
            // Every slot is busy: claim again as soon as a delivery finishes (not after a poll
            // interval, which held a busy queue to a few dozen deliveries per interval).
            tokio::select! {
                p = slots.acquire() => drop(p),
                _ = stop.changed() => {}
            }
            continue;
        }
        let now = crate::extract::now_ms();
        let claimed = match state
            .store()
            .claim_due(&owner, now, now + LEASE.as_millis() as i64, free)
            .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim queued messages; retrying");
                Vec::new()
            }
        };
        let full = claimed.len() as u32 == free;
        for m in claimed {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let (state, owner) = (state.clone(), owner.clone());
            tokio::spawn(async move {
                deliver(&state, &owner, m).await;
                drop(permit);
            });
        }
        if full {
            continue; // more may be due right away
        }
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
            _ = stop.changed() => {}
        }
    }
    // Let deliveries in flight record their outcome.
    let _ = slots.acquire_many(IN_FLIGHT as u32).await;
}

/// One delivery attempt and its record.
async fn deliver(state: &AppState, owner: &str, m: QueuedMessage) {
    let flow = state.live().flows.get(&m.flow_id).cloned();
    let attempt = m.attempts + 1;
    let outcome = match flow.as_ref().map(|f| &f.flow.receiver) {
        Some(Receiver::Queue(q)) => {
            let out = Outgoing {
                method: m.method.clone(),
                url: m.url.clone(),
                headers: m.headers.clone(),
                body: m.body.clone().into(),
            };
            let result = q
                .target
                .send(&out, &[(crate::sender::MPL_HEADER, m.guid.as_str())])
                .await;
            judge(q, &m.guid, attempt, result.map(|r| r.status))
        }
        _ => {
            let now = crate::extract::now_ms();
            Attempted {
                guid: m.guid.clone(),
                status: QueueStatus::Retry,
                mpl_status: MplStatus::Retry,
                next_attempt_at: now + ORPHAN_RETRY.as_millis() as i64,
                error: Some(format!(
                    "flow {} is not deployed with a queue receiver; the message waits for it",
                    m.flow_id
                )),
                http_status: None,
                at: now,
            }
        }
    };
    state.metrics().queue_delivery(outcome.status);
    match state.store().record_attempt(owner, &outcome).await {
        Ok(true) => {}
        Ok(false) => tracing::info!(guid = %m.guid, "queued message changed by an operator during delivery"),
        // The lease runs out and the message is delivered again: at least once, never lost.
        Err(e) => tracing::warn!(guid = %m.guid, error = %e, "delivery outcome not recorded"),
    }
}

/// What an attempt's result means for the message.
fn judge(
    q: &QueueReceiver,
    guid: &str,
    attempt: u32,
    result: std::result::Result<u16, DeliveryError>,
) -> Attempted {
    let now = crate::extract::now_ms();
    let done = |status, mpl_status, error: Option<String>, http_status| Attempted {
        guid: guid.to_owned(),
        status,
        mpl_status,
        next_attempt_at: now,
        error,
        http_status,
        at: now,
    };
    let (error, http_status, permanent) = match result {
        Ok(s) if s < 400 => return done(QueueStatus::Delivered, MplStatus::Completed, None, Some(s)),
        // The back end refused the message itself: retrying cannot help (408 and 429 can).
        Ok(s) => (
            format!("the receiver answered {s}"),
            Some(s),
            s != 408 && s != 429,
        ),
        Err(e) => (e.message().to_owned(), e.http_status(), false),
    };
    match q.after_failure(attempt, now, permanent) {
        AfterFailure::RetryAt(at) => Attempted {
            next_attempt_at: at,
            ..done(QueueStatus::Retry, MplStatus::Retry, Some(error), http_status)
        },
        AfterFailure::GiveUp if permanent => done(
            QueueStatus::Dead,
            MplStatus::Escalated,
            Some(format!("{error}; moved to the dead letter")),
            http_status,
        ),
        AfterFailure::GiveUp => done(
            QueueStatus::Dead,
            MplStatus::Failed,
            Some(format!(
                "{error}; gave up after {attempt} attempts, moved to the dead letter"
            )),
            http_status,
        ),
    }
}

async fn prune(state: &AppState) {
    let now = crate::extract::now_ms();
    let keep = now - KEEP_DONE.as_millis() as i64;
    let keys = now - postern_flow::receiver::MAX_IDEMPOTENCY_WINDOW.as_millis() as i64;
    match state.store().prune_queue(keep, keys).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(messages = n, "pruned delivered and discarded queue messages"),
        Err(e) => tracing::warn!(error = %e, "queue pruning failed"),
    }
}
