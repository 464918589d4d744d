//! Monitor > Messages: the message processing logs with status, flow and time filters, paging,
//! optional auto-refresh, a chart of the last hour per minute by status, and each message's
//! detail (user, partner, duration, the reason it failed).

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use postern_core::mpl::{CmpOp, Condition, Literal, Mpl, MplField, MplQuery, MplStatus};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Session, problem, render, when};
use crate::extract::now_ms;
use crate::state::AppState;

/// Rows per page.
const PAGE: u32 = 50;
/// Most messages read for the chart.
const CHART_LIMIT: u32 = 20_000;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/messages", get(list))
        .route("/messages/{guid}", get(one))
}

#[derive(Deserialize, Default)]
struct Filter {
    #[serde(default)]
    status: String,
    #[serde(default)]
    flow: String,
    #[serde(default)]
    range: String,
    #[serde(default)]
    page: Option<u32>,
    #[serde(default)]
    refresh: Option<String>,
}

/// The time ranges offered, with their length in ms.
const RANGES: &[(&str, &str, i64)] = &[
    ("15m", "Last 15 minutes", 15 * 60_000),
    ("1h", "Last hour", 3_600_000),
    ("24h", "Last 24 hours", 86_400_000),
    ("7d", "Last 7 days", 7 * 86_400_000),
    ("all", "All", 0),
];

fn row(m: &Mpl) -> Value {
    json!({
        "guid": m.guid,
        "flow": m.flow_id,
        "status": m.status.as_str(),
        "user": m.user,
        "sender": m.sender,
        "receiver": m.receiver,
        "start": when(m.log_start),
        "duration_ms": (m.log_end - m.log_start).max(0),
        "http_status": m.http_status,
        "error": m.error,
        "denial": m.denial,
    })
}

async fn list(State(s): State<AppState>, session: Session, Query(f): Query<Filter>) -> Response {
    let now = now_ms();
    let mut conditions = Vec::new();
    let status = MplStatus::parse(&f.status);
    if let Some(st) = status {
        conditions.push(Condition {
            field: MplField::Status,
            op: CmpOp::Eq,
            value: Literal::Text(st.as_str().to_owned()),
        });
    }
    let flow = f.flow.trim();
    if !flow.is_empty() {
        conditions.push(Condition {
            field: MplField::IntegrationFlowName,
            op: CmpOp::Eq,
            value: Literal::Text(flow.to_owned()),
        });
    }
    let range = RANGES
        .iter()
        .find(|(k, _, _)| *k == f.range)
        .unwrap_or(&RANGES[2]);
    if range.2 > 0 {
        conditions.push(Condition {
            field: MplField::LogStart,
            op: CmpOp::Ge,
            value: Literal::Time(now - range.2),
        });
    }
    let page = f.page.unwrap_or(0).min(10_000);
    let store = s.store();
    let rows = store
        .query_mpls(&MplQuery {
            conditions: conditions.clone(),
            order_by: Some((MplField::LogStart, true)),
            top: PAGE,
            skip: page * PAGE,
        })
        .await;
    let total = store.count_mpls(&conditions).await;
    let (rows, total) = match (rows, total) {
        (Ok(r), Ok(t)) => (r, t),
        (Err(e), _) | (_, Err(e)) => {
            let (status, message) = problem(e);
            return session.error(status, &message);
        }
    };
    let chart = match chart(&s, now).await {
        Ok(c) => c,
        Err(e) => {
            let (status, message) = problem(e);
            return session.error(status, &message);
        }
    };
    let flows: Vec<String> = s.live().flows.iter().map(|d| d.flow.id.to_string()).collect();
    let refresh = f.refresh.is_some();
    let link = |page: u32, refresh: bool| {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("status", status.map(MplStatus::as_str).unwrap_or(""));
        q.append_pair("flow", flow);
        q.append_pair("range", range.0);
        if page > 0 {
            q.append_pair("page", &page.to_string());
        }
        if refresh {
            q.append_pair("refresh", "1");
        }
        format!("/console/messages?{}", q.finish())
    };
    let pages = total.div_ceil(u64::from(PAGE)).max(1);
    render(
        StatusCode::OK,
        "messages.html",
        session.page(
            "messages",
            json!({
                "rows": rows.iter().map(row).collect::<Vec<_>>(),
                "total": total,
                "page": page + 1,
                "pages": pages,
                "prev": (page > 0).then(|| link(page - 1, refresh)),
                "next": (u64::from(page + 1) < pages).then(|| link(page + 1, refresh)),
                "refresh": refresh,
                "toggle_refresh": link(page, !refresh),
                "status": status.map(MplStatus::as_str).unwrap_or(""),
                "flow": flow,
                "flows": flows,
                "range": range.0,
                "ranges": RANGES.iter().map(|(k, label, _)| json!({ "key": k, "label": label })).collect::<Vec<_>>(),
                "chart": chart,
            }),
        ),
    )
}

/// Messages per minute over the last hour, by status, as bars of an inline SVG (no script).
async fn chart(s: &AppState, now: i64) -> postern_core::Result<Value> {
    const MINUTES: i64 = 60;
    let start = (now / 60_000 - MINUTES + 1) * 60_000;
    let rows = s
        .store()
        .query_mpls(&MplQuery {
            conditions: vec![Condition {
                field: MplField::LogStart,
                op: CmpOp::Ge,
                value: Literal::Time(start),
            }],
            order_by: None,
            top: CHART_LIMIT,
            skip: 0,
        })
        .await?;
    let mut completed = vec![0u64; MINUTES as usize];
    let mut failed = vec![0u64; MINUTES as usize];
    for m in &rows {
        let i = ((m.log_start - start) / 60_000).clamp(0, MINUTES - 1) as usize;
        match m.status {
            MplStatus::Completed => completed[i] += 1,
            MplStatus::Failed | MplStatus::Escalated => failed[i] += 1,
            // Still in a queue or discarded: neither delivered nor failed yet.
            MplStatus::Processing | MplStatus::Retry | MplStatus::Discarded => {}
        }
    }
    let max = completed
        .iter()
        .zip(&failed)
        .map(|(c, f)| c + f)
        .max()
        .unwrap_or(0)
        .max(1);
    // 60 bars of 10 units in a 600×120 box; heights scaled to the busiest minute.
    let height = 100.0;
    let bars: Vec<Value> = (0..MINUTES as usize)
        .map(|i| {
            let hc = completed[i] as f64 / max as f64 * height;
            let hf = failed[i] as f64 / max as f64 * height;
            json!({
                "x": i * 10 + 1,
                "completed": completed[i],
                "failed": failed[i],
                "hc": format!("{hc:.1}"),
                "yc": format!("{:.1}", 110.0 - hc),
                "hf": format!("{hf:.1}"),
                "yf": format!("{:.1}", 110.0 - hc - hf),
                "minute": when(start + i as i64 * 60_000).get(11..16).unwrap_or("").to_owned(),
            })
        })
        .collect();
    Ok(json!({
        "bars": bars,
        "max": max,
        "completed": completed.iter().sum::<u64>(),
        "failed": failed.iter().sum::<u64>(),
        "truncated": rows.len() as u32 == CHART_LIMIT,
    }))
}

async fn one(State(s): State<AppState>, session: Session, Path(guid): Path<String>) -> Response {
    let found = s
        .store()
        .query_mpls(&MplQuery {
            conditions: vec![Condition {
                field: MplField::MessageGuid,
                op: CmpOp::Eq,
                value: Literal::Text(guid.clone()),
            }],
            order_by: None,
            top: 1,
            skip: 0,
        })
        .await;
    match found {
        Ok(rows) => match rows.first() {
            Some(m) => render(
                StatusCode::OK,
                "message.html",
                session.page("messages", json!({ "m": row(m), "end": when(m.log_end) })),
            ),
            None => session.error(
                StatusCode::NOT_FOUND,
                "There is no message with this id (its log may still be on its way; reload in a moment).",
            ),
        },
        Err(e) => {
            let (status, message) = problem(e);
            session.error(status, &message)
        }
    }
}
