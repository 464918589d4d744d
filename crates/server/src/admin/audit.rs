//! `/audit`: the newest audit entries, newest first (`?limit=`, `?before=<id>` to page), and
//! `/audit/verify`: every entry's link in the hash chain recomputed.

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
    Router::new()
        .route("/audit", get(list))
        .route("/audit/verify", get(verify))
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

/// Walks the whole log oldest first and recomputes each entry's link: an edited entry, or one
/// deleted from the middle, breaks the link of the next entry (and every one after). The head
/// link is returned so that it can be recorded elsewhere (deleting the newest entries shows only
/// against such a record).
async fn verify(State(s): State<AppState>, _a: Admin) -> Result<Json<Value>, ApiError> {
    const PAGE: u32 = 1000;
    let (mut after, mut entries, mut chained, mut unchained) = (0i64, 0u64, 0u64, 0u64);
    let mut previous: Option<Vec<u8>> = None;
    let mut broken: Option<(i64, &str)> = None;
    'pages: loop {
        let page = s.store().audit_chain(after, PAGE).await?;
        for (entry, link) in &page {
            entries += 1;
            after = entry.id;
            match (link, &previous) {
                // Before the chain began.
                (None, None) => unchained += 1,
                (None, Some(_)) => {
                    broken = Some((entry.id, "has no link although entries before it have"));
                    break 'pages;
                }
                (Some(link), prev) => {
                    let prev = prev.clone().unwrap_or_else(|| vec![0; 32]);
                    if postern_store::audit_link(&prev, entry) != *link {
                        broken = Some((
                            entry.id,
                            "does not match its link: it, or the entry before it, was changed or deleted",
                        ));
                        break 'pages;
                    }
                    chained += 1;
                    previous = Some(link.clone());
                }
            }
        }
        if page.len() < PAGE as usize {
            break;
        }
    }
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    Ok(Json(json!({
        "ok": broken.is_none(),
        "entries": entries,
        "chained": chained,
        "unchained": unchained,
        "brokenAt": broken.map(|(id, _)| id),
        "reason": broken.map(|(id, why)| format!("entry {id} {why}")),
        "head": previous.as_deref().map(hex),
        "headId": if broken.is_none() { Some(after) } else { None },
    })))
}
