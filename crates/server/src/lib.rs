//! Postern's HTTP server: the sender endpoints (`/http/*`), the native admin API
//! (`/admin/v1`), the SAP-compatible OData API (`/api/v1`), the web console (`/console`), health
//! and metrics. [`app`] builds
//! the router apart from any socket so tests can drive it; [`serve`] and [`serve_tls`] run it on a
//! listener within [`Limits`], with graceful shutdown.

mod admin;
mod batch;
pub mod bootstrap;
mod console;
mod error;
mod extract;
pub mod follow;
mod forward;
pub mod guard;
mod limits;
mod listen;
mod metrics;
mod oauth;
mod odata;
mod queue;
mod ratelimit;
mod sender;
pub mod state;
mod tls;

use axum::Router;
use axum::routing::get;

pub use limits::Limits;
pub use listen::{serve, serve_tls};
pub use state::{AppState, ServerConfig};
pub use tls::{PeerCertificate, TlsIdentity};

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics::render))
        .merge(sender::router())
        .merge(oauth::router())
        .nest("/admin/v1", admin::router())
        .nest("/api/v1", odata::router())
        .nest("/console", console::router())
        .route(
            "/console/",
            get(|| async { axum::response::Redirect::to("/console/messages") }),
        )
        .fallback(error::not_found)
        .with_state(state)
}

async fn health(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({ "status": "UP", "snapshotVersion": state.live().version }))
}

/// Ready: the snapshot is loaded and the database answers within a second. A node that is not
/// ready still serves senders from its snapshot (`/healthz` stays 200); a load balancer may
/// prefer ready nodes for admin traffic.
async fn ready(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> (axum::http::StatusCode, axum::Json<serde_json::Value>) {
    let version = state.live().version;
    let db = tokio::time::timeout(std::time::Duration::from_secs(1), state.store().ping()).await;
    match db {
        Ok(Ok(())) if version > 0 => (
            axum::http::StatusCode::OK,
            axum::Json(serde_json::json!({ "status": "READY", "snapshotVersion": version })),
        ),
        Ok(Ok(())) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({ "status": "STARTING" })),
        ),
        _ => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({ "status": "DATABASE_UNAVAILABLE", "snapshotVersion": version })),
        ),
    }
}
