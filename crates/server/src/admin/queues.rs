//! `/queues` and `/queue-messages`: what durable queues hold (counts per queue and state), one
//! message with its delivery history, and the operator's two actions: retry a dead message
//! (or one waiting for its next attempt) now, or discard a message that is not delivered.

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use postern_core::model::AuditEntry;
use postern_store::queue::{QueueStatus, QueuedMessage};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{now, time};
use crate::error::ApiError;
use crate::extract::Admin;
use crate::state::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/queues", get(queues))
        .route("/queue-messages", get(list))
        .route("/queue-messages/{guid}", get(show).delete(discard))
        .route("/queue-messages/{guid}/retry", post(retry))
}

async fn queues(State(s): State<AppState>, _a: Admin) -> Result<Json<Value>, ApiError> {
    let mut by_queue: BTreeMap<String, BTreeMap<&'static str, u64>> = BTreeMap::new();
    for c in s.store().queue_counts().await? {
        let counts = by_queue
            .entry(c.queue)
            .or_insert_with(|| QueueStatus::ALL.iter().map(|st| (st.as_str(), 0)).collect());
        counts.insert(c.status.as_str(), c.count);
    }
    Ok(Json(Value::Array(
        by_queue
            .into_iter()
            .map(|(name, counts)| json!({ "name": name, "messages": counts }))
            .collect(),
    )))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ListParams {
    queue: Option<String>,
    status: Option<String>,
    limit: Option<u32>,
    offset: Option<u32>,
}

async fn list(
    State(s): State<AppState>,
    _a: Admin,
    q: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(st) => Some(QueueStatus::parse(&st.to_ascii_uppercase()).ok_or_else(|| {
            ApiError::bad_request("status must be QUEUED, RETRY, DELIVERED, DEAD or DISCARDED")
        })?),
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let rows = s
        .store()
        .queued_list(
            q.queue.as_deref().filter(|n| !n.is_empty()),
            status,
            limit,
            q.offset.unwrap_or(0),
        )
        .await?;
    Ok(Json(Value::Array(rows.iter().map(summary).collect())))
}

async fn show(
    State(s): State<AppState>,
    _a: Admin,
    Path(guid): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let m = s
        .store()
        .queued(&guid)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no queued message {guid}")))?;
    let mut v = summary(&m);
    v["headers"] = m.headers.iter().map(|(n, v)| json!([n, v])).collect();
    v["body"] = match std::str::from_utf8(&m.body) {
        Ok(text) => json!({ "text": text }),
        Err(_) => json!({ "base64": base64::engine::general_purpose::STANDARD.encode(&m.body) }),
    };
    Ok(Json(v))
}

async fn retry(
    State(s): State<AppState>,
    a: Admin,
    Path(guid): Path<String>,
) -> Result<StatusCode, ApiError> {
    act(&s, &a, &guid, "queue-message.retry").await
}

async fn discard(
    State(s): State<AppState>,
    a: Admin,
    Path(guid): Path<String>,
) -> Result<StatusCode, ApiError> {
    act(&s, &a, &guid, "queue-message.discard").await
}

async fn act(s: &AppState, a: &Admin, guid: &str, action: &'static str) -> Result<StatusCode, ApiError> {
    let before = s
        .store()
        .queued(guid)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no queued message {guid}")))?;
    let at = now();
    let done = if action == "queue-message.retry" {
        s.store().retry_queued(guid, at).await?
    } else {
        s.store().discard_queued(guid, at).await?
    };
    if !done {
        let why = if action == "queue-message.retry" {
            "only a dead message, or one waiting for its next attempt, can be retried"
        } else {
            "a delivered or discarded message cannot be discarded"
        };
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("message {guid} is {}: {why}", before.status.as_str()),
        ));
    }
    s.audit()
        .send(AuditEntry {
            id: 0,
            at,
            actor: a.principal.name.to_string(),
            action: action.into(),
            target: guid.to_owned(),
            detail:
                json!({ "queue": before.queue, "flow": before.flow_id, "before": before.status.as_str() })
                    .to_string(),
            source: a.source.clone(),
        })
        .await;
    if action == "queue-message.retry" {
        s.wake_queue();
    }
    Ok(StatusCode::NO_CONTENT)
}

fn summary(m: &QueuedMessage) -> Value {
    json!({
        "messageGuid": m.guid,
        "queue": m.queue,
        "flow": m.flow_id,
        "partner": m.partner,
        "user": m.user,
        "status": m.status.as_str(),
        "attempts": m.attempts,
        "nextAttemptAt": m.status.is_pending().then(|| time(m.next_attempt_at)),
        "createdAt": time(m.created_at),
        "updatedAt": time(m.updated_at),
        "lastError": m.last_error,
        "lastHttpStatus": m.last_http_status,
        "method": m.method,
        "url": postern_flow::receiver::shown_url(&m.url),
        "bodyBytes": m.body.len(),
        "idempotencyKey": m.idempotency_key,
    })
}
