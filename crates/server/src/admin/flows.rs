//! `/flows`: deploy (PUT the YAML), list with status and endpoint URL, show, undeploy.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use postern_flow::definition::MAX_YAML_BYTES;
use postern_flow::deploy;
use postern_flow::table::DeployedFlow;
use serde_json::{Value, json};

use super::{ctx, now, time};
use crate::error::ApiError;
use crate::extract::Admin;
use crate::state::{AppState, Scope};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/flows", get(list).post(create))
        .route("/flows/{id}", get(one).put(put).delete(remove))
}

pub(crate) fn view(s: &AppState, d: &DeployedFlow) -> Value {
    let f = &d.flow;
    json!({
        "id": f.id,
        "address": f.address.to_string(),
        "endpoint": format!("{}/http{}", s.config().public_url.trim_end_matches('/'), f.address),
        "authorization": if f.certificates.is_empty() { "user-role" } else { "client-certificate" },
        "roles": f.roles,
        "certificates": f.certificates.iter()
            .map(|(s, i)| json!({ "subject": s.to_string(), "issuer": i.to_string() }))
            .collect::<Vec<_>>(),
        "maxBodyBytes": f.max_body_bytes,
        "steps": f.step_kinds(),
        "status": "STARTED",
        "deployedAt": time(d.deployed_at),
        "deployedBy": d.deployed_by,
    })
}

async fn list(State(s): State<AppState>, _a: Admin) -> Json<Value> {
    let live = s.live();
    Json(Value::Array(live.flows.iter().map(|d| view(&s, d)).collect()))
}

async fn one(State(s): State<AppState>, _a: Admin, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let live = s.live();
    let d = live
        .flows
        .get(&id)
        .ok_or_else(|| ApiError::not_found(format!("flow {id} is not deployed")))?;
    let mut v = view(&s, d);
    v["yaml"] = Value::String(d.yaml.clone());
    Ok(Json(v))
}

fn yaml_text(body: &Bytes) -> Result<&str, ApiError> {
    if body.len() > MAX_YAML_BYTES {
        return Err(ApiError::too_large(MAX_YAML_BYTES as u64));
    }
    std::str::from_utf8(body).map_err(|_| ApiError::bad_request("flow: the document is not UTF-8"))
}

async fn deploy_flow(
    s: &AppState,
    a: &Admin,
    id: Option<&str>,
    body: &Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let yaml = yaml_text(body)?;
    let c = ctx(s, a, now());
    let (flow, created) = s.write_in(Scope::Flows, deploy::deploy(&c, id, yaml)).await?;
    let live = s.live();
    let d = live.flows.get(flow.id.as_str()).ok_or_else(|| {
        ApiError::from_domain(postern_core::Error::Internal(
            "deployed flow missing from snapshot".into(),
        ))
    })?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view(s, d))))
}

async fn put(
    State(s): State<AppState>,
    a: Admin,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    deploy_flow(&s, &a, Some(&id), &body).await
}

async fn create(
    State(s): State<AppState>,
    a: Admin,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    deploy_flow(&s, &a, None, &body).await
}

async fn remove(State(s): State<AppState>, a: Admin, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let c = ctx(&s, &a, now());
    s.write_in(Scope::Flows, deploy::undeploy(&c, &id)).await?;
    Ok(StatusCode::NO_CONTENT)
}
