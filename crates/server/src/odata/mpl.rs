//! `MessageProcessingLogs` in SAP's shape (`SPEC:MessageProcessingLogs`), readable with
//! `MonitoringDataRead` or `Postern.Admin`.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use postern_core::mpl::{CmpOp, Condition, Literal, Mpl, MplField, MplQuery};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::filter::{field, parse_filter};
use super::{ODataError, base_url};
use crate::extract::Monitor;
use crate::state::AppState;

/// Largest page.
const MAX_TOP: u32 = 1000;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/MessageProcessingLogs", get(list))
        .route("/MessageProcessingLogs/$count", get(count))
        .route("/{entity}/ErrorInformation", get(error_information))
        .route("/{entity}/ErrorInformation/$value", get(error_text))
}

/// The system query options this API understands.
#[derive(Deserialize, Default)]
pub(super) struct Options {
    #[serde(rename = "$filter")]
    filter: Option<String>,
    #[serde(rename = "$top")]
    top: Option<String>,
    #[serde(rename = "$skip")]
    skip: Option<String>,
    #[serde(rename = "$orderby")]
    orderby: Option<String>,
    #[serde(rename = "$select")]
    select: Option<String>,
    #[serde(rename = "$inlinecount")]
    inlinecount: Option<String>,
    #[serde(rename = "$format")]
    format: Option<String>,
}

fn bad(m: impl Into<String>) -> ODataError {
    ODataError::new(StatusCode::BAD_REQUEST, m)
}

fn number(name: &str, v: Option<&str>, default: u32) -> Result<u32, ODataError> {
    match v {
        None => Ok(default),
        Some(t) => t
            .parse()
            .map_err(|_| bad(format!("{name} must be a non-negative integer"))),
    }
}

fn order(text: Option<&str>) -> Result<Option<(MplField, bool)>, ODataError> {
    let Some(text) = text else { return Ok(None) };
    let (name, desc) = orderby(text)?;
    let f = field(name).ok_or_else(|| bad(format!("cannot order by {name}")))?;
    Ok(Some((f, desc)))
}

/// Splits `$orderby=<Property> [asc|desc]` (one property).
pub(super) fn orderby(text: &str) -> Result<(&str, bool), ODataError> {
    let mut parts = text.split_whitespace();
    let name = parts.next().ok_or_else(|| bad("$orderby needs a property"))?;
    let desc = match parts.next() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(other) => return Err(bad(format!("unknown sort direction {other}; use asc or desc"))),
    };
    if parts.next().is_some() || text.contains(',') {
        return Err(bad("$orderby takes one property"));
    }
    Ok((name, desc))
}

fn check_format(o: &Options) -> Result<(), ODataError> {
    match o.format.as_deref() {
        None | Some("json") => Ok(()),
        Some(other) => Err(ODataError::new(
            StatusCode::NOT_ACCEPTABLE,
            format!("$format={other} is not supported; this service answers JSON"),
        )),
    }
}

async fn list(
    State(s): State<AppState>,
    _m: Monitor,
    q: Result<Query<Options>, QueryRejection>,
) -> Result<Json<Value>, ODataError> {
    let Query(o) = q.map_err(|e| bad(e.body_text()))?;
    check_format(&o)?;
    let conditions = match &o.filter {
        Some(f) => parse_filter(f).map_err(|m| bad(format!("$filter: {m}")))?,
        None => Vec::new(),
    };
    let query = MplQuery {
        conditions,
        order_by: order(o.orderby.as_deref())?,
        top: number("$top", o.top.as_deref(), MAX_TOP)?.min(MAX_TOP),
        skip: number("$skip", o.skip.as_deref(), 0)?,
    };
    let rows = s.store().query_mpls(&query).await?;
    let select = selection(o.select.as_deref())?;
    let base = base_url(&s);
    let results: Vec<Value> = rows
        .iter()
        .map(|m| project(entity_json(&base, m), &select))
        .collect();
    let mut d = Map::new();
    match o.inlinecount.as_deref() {
        None | Some("none") => {}
        Some("allpages") => {
            let n = s.store().count_mpls(&query.conditions).await?;
            d.insert("__count".into(), Value::String(n.to_string()));
        }
        Some(other) => {
            return Err(bad(format!(
                "$inlinecount={other} is not supported; use allpages or none"
            )));
        }
    }
    d.insert("results".into(), Value::Array(results));
    Ok(Json(json!({ "d": d })))
}

async fn count(
    State(s): State<AppState>,
    _m: Monitor,
    q: Result<Query<Options>, QueryRejection>,
) -> Result<impl IntoResponse, ODataError> {
    let Query(o) = q.map_err(|e| bad(e.body_text()))?;
    let conditions = match &o.filter {
        Some(f) => parse_filter(f).map_err(|m| bad(format!("$filter: {m}")))?,
        None => Vec::new(),
    };
    let n = s.store().count_mpls(&conditions).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain")], n.to_string()))
}

/// The GUID from `MessageProcessingLogs('<guid>')`.
fn key(entity: &str) -> Result<String, ODataError> {
    super::entity_key(entity, "MessageProcessingLogs").unwrap_or_else(|| {
        Err(ODataError::new(
            StatusCode::NOT_FOUND,
            format!("no entity set {entity}"),
        ))
    })
}

async fn find(s: &AppState, guid: String) -> Result<Mpl, ODataError> {
    let q = MplQuery {
        conditions: vec![Condition {
            field: MplField::MessageGuid,
            op: CmpOp::Eq,
            value: Literal::Text(guid.clone()),
        }],
        order_by: None,
        top: 1,
        skip: 0,
    };
    s.store().query_mpls(&q).await?.pop().ok_or_else(|| {
        ODataError::new(
            StatusCode::NOT_FOUND,
            format!("message processing log {guid} not found"),
        )
    })
}

/// `GET MessageProcessingLogs('<guid>')`.
pub(super) async fn by_key(s: &AppState, entity: &str, o: Options) -> Result<Json<Value>, ODataError> {
    check_format(&o)?;
    let m = find(s, key(entity)?).await?;
    let select = selection(o.select.as_deref())?;
    Ok(Json(
        json!({ "d": project(entity_json(&base_url(s), &m), &select) }),
    ))
}

async fn error_text(
    State(s): State<AppState>,
    _m: Monitor,
    Path(entity): Path<String>,
) -> Result<impl IntoResponse, ODataError> {
    let m = find(&s, key(&entity)?).await?;
    let text = m
        .error
        .ok_or_else(|| ODataError::new(StatusCode::NOT_FOUND, "this message has no error information"))?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text))
}

/// `GET MessageProcessingLogs('<guid>')/ErrorInformation`: SAP's entity (`MessageGuid`, `Type`,
/// `LastErrorModelStepId`: here the check that refused the message and its reason code) and,
/// as a Postern addition, the decision trace as `Denial`.
async fn error_information(
    State(s): State<AppState>,
    _m: Monitor,
    Path(entity): Path<String>,
) -> Result<Json<Value>, ODataError> {
    let m = find(&s, key(&entity)?).await?;
    if m.error.is_none() {
        return Err(ODataError::new(
            StatusCode::NOT_FOUND,
            "this message has no error information",
        ));
    }
    let uri = format!(
        "{}/MessageProcessingLogs('{}')/ErrorInformation",
        base_url(&s),
        m.guid
    );
    Ok(Json(json!({ "d": {
        "__metadata": { "id": uri, "uri": uri,
                        "type": "com.sap.hci.api.MessageProcessingLogErrorInformation" },
        "MessageGuid": m.guid,
        "Type": m.denial.as_ref().map_or("error", |d| d.check.as_str()),
        "LastErrorModelStepId": m.denial.as_ref().map(|d| d.reason.as_str()),
        "Denial": m.denial,
    }})))
}

/// One MPL in SAP's field names; `AuthenticatedUser` and `HttpStatus` are Postern additions.
fn entity_json(base: &str, m: &Mpl) -> Value {
    let uri = format!("{base}/MessageProcessingLogs('{}')", m.guid);
    let date = |ms: i64| format!("/Date({ms})/");
    json!({
        "__metadata": { "id": uri, "uri": uri, "type": "com.sap.hci.api.MessageProcessingLog" },
        "MessageGuid": m.guid,
        "CorrelationId": m.guid,
        "ApplicationMessageId": null,
        "ApplicationMessageType": null,
        "LogStart": date(m.log_start),
        "LogEnd": date(m.log_end),
        "Sender": m.sender,
        "Receiver": m.receiver,
        "IntegrationFlowName": m.flow_id,
        "Status": m.status.as_str(),
        "AlternateWebLink": "",
        "IntegrationArtifact": { "__metadata": { "type": "com.sap.hci.api.IntegrationArtifact" },
                                 "Id": m.flow_id, "Name": m.flow_id, "Type": "INTEGRATION_FLOW" },
        "LogLevel": "INFO",
        "CustomStatus": m.status.as_str(),
        "TransactionId": "",
        "PreviousComponentName": "postern",
        "LocalComponentName": "postern",
        "OriginComponentName": "postern",
        "AuthenticatedUser": m.user,
        "HttpStatus": m.http_status,
        "ErrorInformation": { "__deferred": { "uri": format!("{uri}/ErrorInformation") } },
    })
}

pub(super) fn selection(select: Option<&str>) -> Result<Option<Vec<String>>, ODataError> {
    let Some(s) = select else { return Ok(None) };
    let names: Vec<String> = s
        .split(',')
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .collect();
    if names.is_empty() || names.len() > 50 {
        return Err(bad("$select lists 1 to 50 properties"));
    }
    Ok(Some(names))
}

pub(super) fn project(v: Value, select: &Option<Vec<String>>) -> Value {
    let (Some(names), Value::Object(map)) = (select, &v) else {
        return v;
    };
    if names.iter().any(|n| n == "*") {
        return v;
    }
    let mut out = Map::new();
    if let Some(meta) = map.get("__metadata") {
        out.insert("__metadata".into(), meta.clone());
    }
    for n in names {
        if let Some(x) = map.get(n) {
            out.insert(n.clone(), x.clone());
        }
    }
    Value::Object(out)
}
