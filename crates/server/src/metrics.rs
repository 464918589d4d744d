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
pub(crate) const AUTH_REASONS: [&str; 13] = [
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
    "expired",
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
    /// Sender requests refused by a per-credential rate limit.
    pub(crate) rate_limited: AtomicU64,
    /// Queue delivery attempts by outcome: delivered, retry, dead.
    pub(crate) queue_deliveries: [AtomicU64; 3],
    /// The credentials with an end, read from the store at most every [`EXPIRY_REFRESH`]: the
    /// endpoint is public, so scrapes must not drive database load. A tokio Mutex because it is
    /// held across the store read, so concurrent scrapes wait for one read instead of each
    /// making their own.
    expiring: tokio::sync::Mutex<Option<(std::time::Instant, Arc<Vec<postern_auth::expiry::Credential>>)>>,
}

/// How long the expiry gauges may lag a change.
const EXPIRY_REFRESH: std::time::Duration = std::time::Duration::from_secs(5);
/// Longest wait for the store when refreshing the expiry gauges.
const EXPIRY_READ_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

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
        "# HELP postern_rate_limited_total Sender requests refused by a per-credential rate limit."
    );
    let _ = writeln!(out, "# TYPE postern_rate_limited_total counter");
    let _ = writeln!(out, "postern_rate_limited_total {}", r(&m.rate_limited));
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
    expiring(&state, &mut out).await;
    flow_metrics(&state, &mut out);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}

/// The expiry gauges: credentials ending within 30 days (or ended) per kind, and the seconds until
/// the earliest end of a credential still valid. Read from the store at scrape time; left out
/// when the store does not answer.
async fn expiring(state: &AppState, out: &mut String) {
    use postern_auth::expiry::{DEFAULT_DAYS, Kind, within};
    let all = {
        let mut cached = state.metrics().expiring.lock().await;
        match &*cached {
            Some((at, all)) if at.elapsed() < EXPIRY_REFRESH => all.clone(),
            _ => {
                // Bounded, so a database outage never stalls a scrape: the last reading (if
                // any) is served again and retried after the refresh interval.
                let read = tokio::time::timeout(EXPIRY_READ_LIMIT, crate::admin::expiring::all(state)).await;
                let fresh = match read {
                    Ok(Ok(all)) => Some(Arc::new(all)),
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "expiring credentials not read for metrics");
                        None
                    }
                    Err(_) => {
                        tracing::warn!("expiring credentials not read for metrics: the database is slow");
                        None
                    }
                };
                let Some(all) = fresh.or_else(|| cached.as_ref().map(|(_, all)| all.clone())) else {
                    *cached = None;
                    return;
                };
                *cached = Some((std::time::Instant::now(), all.clone()));
                all
            }
        }
    };
    let now = crate::extract::now_ms();
    let next = all.iter().map(|c| c.ends_at).filter(|at| *at > now).min();
    let soon = within(all.to_vec(), now, DEFAULT_DAYS);
    let _ = writeln!(
        out,
        "# HELP postern_credentials_expiring Credentials whose validity ends within {DEFAULT_DAYS} days or has ended, by kind."
    );
    let _ = writeln!(out, "# TYPE postern_credentials_expiring gauge");
    for kind in Kind::ALL {
        let n = soon.iter().filter(|c| c.kind == kind).count();
        let _ = writeln!(
            out,
            "postern_credentials_expiring{{kind=\"{}\"}} {n}",
            kind.as_str()
        );
    }
    if let Some(next) = next {
        let _ = writeln!(
            out,
            "# HELP postern_credentials_next_expiry_seconds Seconds until the earliest end of a credential still valid."
        );
        let _ = writeln!(out, "# TYPE postern_credentials_next_expiry_seconds gauge");
        let _ = writeln!(
            out,
            "postern_credentials_next_expiry_seconds {}",
            (next - now) / 1000
        );
    }
}

/// Requests and latency per deployed flow (flow ids are `[A-Za-z0-9._-]`, safe as label values).
fn flow_metrics(state: &AppState, out: &mut String) {
    use postern_flow::stats::BUCKETS;
    let live = state.live();
    let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let _ = writeln!(
        out,
        "# HELP postern_flow_requests_total Sender requests by flow and status class."
    );
    let _ = writeln!(out, "# TYPE postern_flow_requests_total counter");
    for d in live.flows.iter() {
        for (class, c) in ["2xx", "4xx", "5xx"].iter().zip(&d.stats.by_class) {
            let _ = writeln!(
                out,
                "postern_flow_requests_total{{flow=\"{}\",class=\"{class}\"}} {}",
                d.flow.id,
                r(c)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP postern_flow_request_duration_seconds Time from request to answer headers, by flow."
    );
    let _ = writeln!(out, "# TYPE postern_flow_request_duration_seconds histogram");
    for d in live.flows.iter() {
        let id = &d.flow.id;
        let mut cumulative = 0;
        for (bound, c) in BUCKETS.iter().zip(&d.stats.buckets) {
            cumulative += r(c);
            let _ = writeln!(
                out,
                "postern_flow_request_duration_seconds_bucket{{flow=\"{id}\",le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = r(&d.stats.count);
        let _ = writeln!(
            out,
            "postern_flow_request_duration_seconds_bucket{{flow=\"{id}\",le=\"+Inf\"}} {count}"
        );
        let sum = r(&d.stats.sum_micros) as f64 / 1e6;
        let _ = writeln!(
            out,
            "postern_flow_request_duration_seconds_sum{{flow=\"{id}\"}} {sum}"
        );
        let _ = writeln!(
            out,
            "postern_flow_request_duration_seconds_count{{flow=\"{id}\"}} {count}"
        );
    }
}
