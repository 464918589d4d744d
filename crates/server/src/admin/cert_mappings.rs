//! `/certificate-user-mappings`: a whole client certificate authenticates as a user (SAP's
//! certificate-to-user mappings). The user's roles authorize it.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use postern_auth::admin;
use postern_core::model::CertMapping;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ctx, now, time};
use crate::error::ApiError;
use crate::extract::{Admin, ApiJson};
use crate::state::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/certificate-user-mappings", get(list).post(create))
        .route("/certificate-user-mappings/{id}", get(one).delete(remove))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    user: String,
    certificate: String,
}

pub(crate) fn view(m: &CertMapping) -> Value {
    json!({
        "id": m.id,
        "user": m.user,
        "subjectDn": m.subject,
        "issuerDn": m.issuer,
        "serialNumber": m.serial,
        "sha256": postern_auth::cert::hex(&m.sha256),
        "validUntil": time(m.not_after),
        "createdAt": time(m.created_at),
        "createdBy": m.created_by,
    })
}

async fn list(State(s): State<AppState>, _a: Admin) -> Result<Json<Value>, ApiError> {
    let all = s.store().cert_mappings().await?;
    Ok(Json(Value::Array(all.iter().map(view).collect())))
}

async fn one(State(s): State<AppState>, _a: Admin, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let all = s.store().cert_mappings().await?;
    let m = all
        .iter()
        .find(|m| m.id == id)
        .ok_or_else(|| ApiError::not_found(format!("certificate-to-user mapping {id} not found")))?;
    let mut v = view(m);
    v["certificate"] = Value::String(m.pem.clone());
    Ok(Json(v))
}

async fn create(
    State(s): State<AppState>,
    a: Admin,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let c = ctx(&s, &a, now());
    let m = s
        .write(admin::create_cert_mapping(&c, &body.user, &body.certificate))
        .await?;
    Ok((StatusCode::CREATED, Json(view(&m))))
}

async fn remove(State(s): State<AppState>, a: Admin, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let c = ctx(&s, &a, now());
    s.write(admin::delete_cert_mapping(&c, &id)).await?;
    Ok(StatusCode::NO_CONTENT)
}
