//! The native admin API (`/admin/v1`): what the BTP cockpit and the tenant's *Manage Security*
//! do. Plain JSON; every endpoint requires `Postern.Admin`. Handlers are thin: they call the
//! admin services in the domain crates inside [`AppState::write`], which publishes the new
//! snapshot before the answer goes out.

mod audit;
pub(crate) mod cert_mappings;
pub(crate) mod connectivity;
pub(crate) mod credentials;
pub(crate) mod expiring;
mod explain;
pub(crate) mod flows;
pub(crate) mod instances;
pub(crate) mod partner_directory;
mod queues;
pub(crate) mod roles;
mod token_keys;
mod trust;
pub(crate) mod users;

use axum::Router;
use postern_core::time::rfc3339;
use postern_store::Ctx;

use crate::extract::{Admin, now_ms};
use crate::state::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", axum::routing::get(openapi))
        .merge(roles::router())
        .merge(instances::router())
        .merge(users::router())
        .merge(flows::router())
        .merge(audit::router())
        .merge(token_keys::router())
        .merge(trust::router())
        .merge(cert_mappings::router())
        .merge(connectivity::router())
        .merge(partner_directory::router())
        .merge(explain::router())
        .merge(queues::router())
        .merge(credentials::router())
        .merge(expiring::router())
}

/// The API's description (OpenAPI 3.0), public like any API documentation.
async fn openapi() -> axum::response::Response {
    use axum::http::{HeaderValue, header};
    let mut resp = axum::response::IntoResponse::into_response(include_str!("openapi.json"));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// The write context for an admin request.
fn ctx<'a>(state: &'a AppState, admin: &'a Admin, now: i64) -> Ctx<'a> {
    Ctx {
        store: state.store(),
        actor: &admin.principal.name,
        source: &admin.source,
        now,
    }
}

fn time(ms: i64) -> String {
    rfc3339(ms)
}

fn now() -> i64 {
    now_ms()
}
