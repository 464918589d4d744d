//! `/audit`: the newest audit entries, newest first (`?limit=`, `?before=<id>` to page).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::time;
use crate::error::ApiError;
use crate::extract::Admin;
use crate::state::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/audit", get(list))
}

#[derive(Deserialize, Default)]
struct Params {
    limit: Option<u32>,
    before: Option<i64>,
}

async fn list(
    State(s): State<AppState>,
    _a: Admin,
    q: Result<Query<Params>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let entries = s.store().audit(limit, q.before).await?;
    Ok(Json(Value::Array(
        entries
            .iter()
            .map(|e| {
                json!({
                    "id": e.id,
                    "at": time(e.at),
                    "actor": e.actor,
                    "action": e.action,
                    "target": e.target,
                    "detail": serde_json::from_str::<Value>(&e.detail).unwrap_or(Value::Null),
                    "source": e.source,
                })
            })
            .collect(),
    )))
}
