//! Per-flow request counters and a latency histogram, kept as plain atomics on the deployed flow
//! (no lookup on the request path) and carried over when the flow table is rebuilt, so that
//! redeploying one flow does not reset the others' counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds (Prometheus `le`).
pub const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// A flow's counters.
#[derive(Debug, Default)]
pub struct FlowStats {
    /// Answers by class: 2xx (and 3xx), 4xx, 5xx.
    pub by_class: [AtomicU64; 3],
    /// Answers at or below each bound of [`BUCKETS`] (not cumulative; the renderer adds up).
    pub buckets: [AtomicU64; BUCKETS.len()],
    /// Sum of latencies, microseconds.
    pub sum_micros: AtomicU64,
    /// Answers counted.
    pub count: AtomicU64,
}

impl FlowStats {
    /// Counts one answer and how long it took.
    pub fn record(&self, status: u16, took: Duration) {
        let class = match status {
            0..=399 => 0,
            400..=499 => 1,
            _ => 2,
        };
        self.by_class[class].fetch_add(1, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_micros.fetch_add(
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        self.count.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_classes_and_buckets() {
        let s = FlowStats::default();
        s.record(200, Duration::from_micros(300));
        s.record(403, Duration::from_millis(30));
        s.record(502, Duration::from_secs(9));
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        assert_eq!(s.by_class.iter().map(n).collect::<Vec<_>>(), [1, 1, 1]);
        assert_eq!(n(&s.buckets[0]), 1);
        assert_eq!(n(&s.buckets[6]), 1, "30 ms is at most 50 ms");
        assert_eq!(s.buckets.iter().map(n).sum::<u64>(), 2, "9 s is only in +Inf");
        assert_eq!(n(&s.count), 3);
    }
}
