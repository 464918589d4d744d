//! Prometheus metrics, kept as plain atomics (cheap on the hot path) and rendered by hand in the
//! text exposition format at `/metrics`.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::state::AppState;

/// Authentication failure reasons, in the order of [`Metrics::auth_failures`].
pub(crate) const AUTH_REASONS: [&str; 12] = [
    "locked_out",
    "missing",
    "malformed",
    "unknown_user",
    "bad_secret",
    "bad_password",
    "malformed_token",
    "unknown_token_key",
    "invalid_token",
    "expired_token",
    "revoked_token",
    "unknown_certificate",
];

/// Counters and gauges.
#[derive(Default)]
pub(crate) struct Metrics {
    /// Sender requests by answer: 2xx, 4xx, 5xx.
    pub(crate) sender_2xx: AtomicU64,
    pub(crate) sender_4xx: AtomicU64,
    pub(crate) sender_5xx: AtomicU64,
    /// Failed authentications by reason (all endpoints).
    pub(crate) auth_failures: [AtomicU64; AUTH_REASONS.len()],
    /// Failed authentications whose audit record was dropped because the queue was full.
    pub(crate) audit_dropped: AtomicU64,
    /// Records waiting to be written.
    pub(crate) mpl_queue: Arc<AtomicI64>,
    pub(crate) audit_queue: Arc<AtomicI64>,
    /// Current snapshot version.
    pub(crate) snapshot_version: AtomicU64,
    /// Queue delivery attempts by outcome: delivered, retry, dead.
    pub(crate) queue_deliveries: [AtomicU64; 3],
}

impl Metrics {
    pub(crate) fn sender_status(&self, status: u16) {
        let c = match status {
            200..=399 => &self.sender_2xx,
            400..=499 => &self.sender_4xx,
            _ => &self.sender_5xx,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn queue_delivery(&self, status: postern_store::queue::QueueStatus) {
        use postern_store::queue::QueueStatus;
        let i = match status {
            QueueStatus::Delivered => 0,
            QueueStatus::Dead => 2,
            _ => 1,
        };
        self.queue_deliveries[i].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn auth_failure(&self, reason: &str) {
        if let Some(i) = AUTH_REASONS.iter().position(|r| *r == reason) {
            self.auth_failures[i].fetch_add(1, Ordering::Relaxed);
        }
    }
}

pub(crate) async fn render(State(state): State<AppState>) -> impl IntoResponse {
    let m = state.metrics();
    let mut out = String::with_capacity(1024);
    let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let _ = writeln!(
        out,
        "# HELP postern_sender_requests_total Requests to /http/* by status class."
    );
    let _ = writeln!(out, "# TYPE postern_sender_requests_total counter");
    for (class, c) in [
        ("2xx", &m.sender_2xx),
        ("4xx", &m.sender_4xx),
        ("5xx", &m.sender_5xx),
    ] {
        let _ = writeln!(out, "postern_sender_requests_total{{class=\"{class}\"}} {}", r(c));
    }
    let _ = writeln!(
        out,
        "# HELP postern_auth_failures_total Failed authentications by reason."
    );
    let _ = writeln!(out, "# TYPE postern_auth_failures_total counter");
    for (reason, c) in AUTH_REASONS.iter().zip(&m.auth_failures) {
        let _ = writeln!(out, "postern_auth_failures_total{{reason=\"{reason}\"}} {}", r(c));
    }
    let _ = writeln!(
        out,
        "# HELP postern_audit_dropped_total Failed-authentication audit records dropped under overload."
    );
    let _ = writeln!(out, "# TYPE postern_audit_dropped_total counter");
    let _ = writeln!(out, "postern_audit_dropped_total {}", r(&m.audit_dropped));
    let _ = writeln!(
        out,
        "# HELP postern_queue_depth Records waiting for the background writers."
    );
    let _ = writeln!(out, "# TYPE postern_queue_depth gauge");
    let _ = writeln!(
        out,
        "postern_queue_depth{{writer=\"mpl\"}} {}",
        m.mpl_queue.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "postern_queue_depth{{writer=\"audit\"}} {}",
        m.audit_queue.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "# HELP postern_snapshot_version Version of the live security snapshot."
    );
    let _ = writeln!(out, "# TYPE postern_snapshot_version gauge");
    let _ = writeln!(out, "postern_snapshot_version {}", r(&m.snapshot_version));
    let _ = writeln!(
        out,
        "# HELP postern_queue_deliveries_total Delivery attempts of queued messages by outcome."
    );
    let _ = writeln!(out, "# TYPE postern_queue_deliveries_total counter");
    for (outcome, c) in ["delivered", "retry", "dead"].iter().zip(&m.queue_deliveries) {
        let _ = writeln!(
            out,
            "postern_queue_deliveries_total{{outcome=\"{outcome}\"}} {}",
            r(c)
        );
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
