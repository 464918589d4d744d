//! Batched background writers: records queue in a bounded channel and one task writes them in
//! batches, off the request path. On a store error the batch is kept and retried with back-off,
//! so a database hiccup delays records but does not lose them. Shutdown drains the queue.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use postern_core::Result;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Records waiting before senders have to wait.
const CAPACITY: usize = 65_536;
/// Largest batch written in one transaction.
const MAX_BATCH: usize = 1024;
/// How long the writer lets a batch fill once the first record arrived.
const LINGER: Duration = Duration::from_millis(20);

/// The sending side.
pub(crate) struct BatchSink<T> {
    tx: mpsc::Sender<T>,
    depth: Arc<AtomicI64>,
}

impl<T> BatchSink<T> {
    /// Queues a record, waiting for room when the queue is full (back-pressure rather than loss).
    pub(crate) async fn send(&self, record: T) {
        self.depth.fetch_add(1, Ordering::Relaxed);
        if self.tx.send(record).await.is_err() {
            self.depth.fetch_sub(1, Ordering::Relaxed);
            tracing::error!("record written after its writer stopped; dropped");
        }
    }

    /// Queues a record unless the queue is full; returns false when it was dropped.
    pub(crate) fn try_send(&self, record: T) -> bool {
        match self.tx.try_send(record) {
            Ok(()) => {
                self.depth.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(_) => false,
        }
    }
}

/// The writing task.
pub(crate) struct BatchWriter {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl BatchWriter {
    /// Spawns a writer calling `write` with each batch.
    pub(crate) fn spawn<T, F, Fut>(
        name: &'static str,
        depth: Arc<AtomicI64>,
        write: F,
    ) -> (BatchSink<T>, BatchWriter)
    where
        T: Send + Sync + 'static,
        F: Fn(Arc<Vec<T>>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(CAPACITY);
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(run(name, rx, stop_rx, depth.clone(), write));
        (BatchSink { tx, depth }, BatchWriter { stop, task })
    }

    /// Writes what is queued, then ends the task.
    pub(crate) async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn run<T, F, Fut>(
    name: &'static str,
    mut rx: mpsc::Receiver<T>,
    mut stop: watch::Receiver<bool>,
    depth: Arc<AtomicI64>,
    write: F,
) where
    T: Send + Sync,
    F: Fn(Arc<Vec<T>>) -> Fut + Sync,
    Fut: Future<Output = Result<()>> + Send,
{
    let mut stopping = *stop.borrow();
    loop {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        let got = if stopping {
            0
        } else {
            tokio::select! {
                n = rx.recv_many(&mut batch, MAX_BATCH) => n,
                _ = stop.changed() => 0,
            }
        };
        if got == 0 {
            // Stopping (or every sender gone): drain what is left and end.
            while let Ok(r) = rx.try_recv() {
                batch.push(r);
                if batch.len() == MAX_BATCH {
                    flush(name, &depth, &write, std::mem::take(&mut batch), true).await;
                }
            }
            flush(name, &depth, &write, batch, true).await;
            return;
        }
        // Linger for more records: one timer per batch, and no wake-up per record meanwhile
        // (nothing polls the channel while this sleeps).
        if batch.len() < MAX_BATCH {
            tokio::select! {
                () = tokio::time::sleep(LINGER) => {}
                _ = stop.changed() => stopping = true,
            }
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
        }
        flush(name, &depth, &write, batch, false).await;
    }
}

async fn flush<T, F, Fut>(name: &str, depth: &AtomicI64, write: &F, batch: Vec<T>, stopping: bool)
where
    T: Send + Sync,
    F: Fn(Arc<Vec<T>>) -> Fut + Sync,
    Fut: Future<Output = Result<()>> + Send,
{
    if batch.is_empty() {
        return;
    }
    let n = batch.len();
    // Shared, not cloned, between attempts.
    let batch = Arc::new(batch);
    let mut delay = Duration::from_millis(50);
    let mut attempt = 0u32;
    loop {
        match write(batch.clone()).await {
            Ok(()) => break,
            Err(e) => {
                attempt += 1;
                tracing::warn!(writer = name, records = n, attempt, error = %e, "batch write failed; retrying");
                // At shutdown, give up after a bounded time rather than hang the exit.
                if stopping && attempt >= 20 {
                    tracing::error!(writer = name, records = n, "giving up on batch at shutdown");
                    break;
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
    depth.fetch_sub(n as i64, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::AtomicUsize;

    use super::*;

    #[tokio::test]
    async fn writes_every_record_in_batches_retries_and_drains_at_shutdown() {
        let written: Arc<Mutex<Vec<Vec<u32>>>> = Arc::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let depth = Arc::new(AtomicI64::new(0));
        let (sink, writer) = {
            let (written, calls) = (written.clone(), calls.clone());
            BatchWriter::spawn("test", depth.clone(), move |batch: Arc<Vec<u32>>| {
                let (written, calls) = (written.clone(), calls.clone());
                async move {
                    // The first write fails: the same batch comes again.
                    if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                        return Err(postern_core::Error::Internal("store hiccup".into()));
                    }
                    written.lock().expect("lock").push(batch.to_vec());
                    Ok(())
                }
            })
        };
        for i in 0..3000 {
            sink.send(i).await;
        }
        tokio::time::sleep(LINGER * 3).await;
        for i in 3000..3100 {
            assert!(sink.try_send(i));
        }
        writer.shutdown().await;
        let batches = written.lock().expect("lock").clone();
        let all: Vec<u32> = batches.iter().flatten().copied().collect();
        assert_eq!(all, (0..3100).collect::<Vec<_>>(), "every record once, in order");
        assert!(batches.iter().all(|b| !b.is_empty() && b.len() <= MAX_BATCH));
        assert!(batches.len() < 20, "{} batches for 3100 records", batches.len());
        assert_eq!(depth.load(Ordering::SeqCst), 0);
    }
}
