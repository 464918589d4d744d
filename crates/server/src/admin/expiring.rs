//! `/expiring?days=N`: credentials whose validity ends within N days (default 30) or has ended:
//! service keys with an expiry, certificate keys, certificate-to-user mappings, trusted CAs,
//! Postern's CA and the server certificate, soonest first.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use postern_auth::expiry::{self, Credential, Kind};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{now, time};
use crate::error::ApiError;
use crate::extract::Admin;
use crate::state::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/expiring", get(list))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Window {
    days: Option<u32>,
}

/// Every credential that ends at a known time: the stored ones, Postern's CA and the server
/// certificate.
pub(crate) async fn all(s: &AppState) -> postern_core::Result<Vec<Credential>> {
    let mut out = expiry::stored_credentials(s.store()).await?;
    out.extend(Credential::of_certificate(Kind::LocalCa, s.ca().cert_pem()));
    if let Some(pem) = s.server_certificate_pem() {
        out.extend(Credential::of_certificate(Kind::ServerCertificate, &pem));
    }
    Ok(out)
}

/// A credential as listed.
pub(crate) fn view(c: &Credential, now: i64) -> Value {
    let mut v = json!({
        "kind": c.kind.as_str(),
        "name": c.name,
        "notAfter": time(c.ends_at),
        "daysLeft": c.days_left(now),
        "expired": c.ends_at <= now,
    });
    if let Some(subject) = &c.subject {
        v["subject"] = Value::String(subject.clone());
    }
    v
}

/// Those of [`all`] ending within `days`, as listed.
pub(crate) async fn listed(s: &AppState, days: u32, now: i64) -> postern_core::Result<Vec<Value>> {
    let soon = expiry::within(all(s).await?, now, days);
    Ok(soon.iter().map(|c| view(c, now)).collect())
}

async fn list(
    State(s): State<AppState>,
    _a: Admin,
    w: Result<Query<Window>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(w) = w.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let days = expiry::days(w.days)?;
    let now = now();
    Ok(Json(
        json!({ "days": days, "items": listed(&s, days, now).await? }),
    ))
}
