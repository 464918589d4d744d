//! `/trusted-cas`: CAs whose client certificates the HTTPS listener accepts, besides Postern's
//! own CA. Changes apply to new connections at once.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use postern_auth::admin;
use postern_core::model::TrustedCa;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ctx, now, time};
use crate::error::ApiError;
use crate::extract::{Admin, ApiJson};
use crate::state::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/trusted-cas", get(list).post(add))
        .route("/trusted-cas/{sha256}", delete(remove))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddBody {
    certificate: String,
}

fn view(c: &TrustedCa) -> Value {
    json!({
        "sha256": postern_auth::cert::hex(&c.sha256),
        "subject": c.subject,
        "validUntil": time(c.not_after),
        "createdAt": time(c.created_at),
        "createdBy": c.created_by,
    })
}

async fn list(State(s): State<AppState>, _a: Admin) -> Result<Json<Value>, ApiError> {
    let own = postern_auth::cert::one_certificate(s.ca().cert_pem(), "ca")?;
    let mut out = vec![json!({
        "sha256": postern_auth::cert::hex(&own.sha256),
        "subject": own.subject,
        "validUntil": time(own.not_after),
        "builtin": true,
    })];
    out.extend(s.store().trusted_cas().await?.iter().map(view));
    Ok(Json(Value::Array(out)))
}

async fn add(
    State(s): State<AppState>,
    a: Admin,
    ApiJson(body): ApiJson<AddBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let c = ctx(&s, &a, now());
    let ca = s.write(admin::add_trusted_ca(&c, &body.certificate)).await?;
    Ok((StatusCode::CREATED, Json(view(&ca))))
}

async fn remove(
    State(s): State<AppState>,
    a: Admin,
    Path(sha256): Path<String>,
) -> Result<StatusCode, ApiError> {
    let c = ctx(&s, &a, now());
    s.write(admin::remove_trusted_ca(&c, &sha256)).await?;
    Ok(StatusCode::NO_CONTENT)
}
