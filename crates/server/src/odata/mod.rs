//! The SAP-compatible OData v2 API (`/api/v1`), JSON only: `{"d": {...}}` for an entity,
//! `{"d": {"results": [...]}}` for a collection, OData error bodies. So far:
//! `MessageProcessingLogs` (list with `$filter`, `$top`, `$skip`, `$orderby`, `$select`,
//! `$inlinecount`; by key; `$count`; `ErrorInformation/$value`).

mod artifacts;
mod filter;
mod mpl;

use axum::Json;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::extract::{Admin, Monitor};
use crate::state::AppState;

pub(crate) fn router() -> Router<AppState> {
    mpl::router()
        .merge(artifacts::router())
        .route("/{entity}", get(get_entity).delete(delete_entity))
}

/// The key of `Set('<key>')` when `entity` addresses that entity set: `None` for another set,
/// an error for a malformed key.
pub(crate) fn entity_key(entity: &str, set: &str) -> Option<Result<String, ODataError>> {
    let inner = entity.strip_prefix(set)?.strip_prefix('(')?.strip_suffix(')');
    Some(
        inner
            .and_then(|i| i.strip_prefix('\'')?.strip_suffix('\''))
            .map(|k| k.replace("''", "'"))
            .ok_or_else(|| {
                ODataError::new(
                    StatusCode::BAD_REQUEST,
                    format!("the key is a quoted string: {set}('<key>')"),
                )
            }),
    )
}

async fn get_entity(
    State(s): State<AppState>,
    _m: Monitor,
    Path(entity): Path<String>,
    q: Result<Query<mpl::Options>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ODataError> {
    let Query(o) = q.map_err(|e| ODataError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    if entity.starts_with("MessageProcessingLogs(") {
        mpl::by_key(&s, &entity, o).await
    } else if let Some(id) = entity_key(&entity, "IntegrationRuntimeArtifacts") {
        artifacts::by_key(&s, &id?)
    } else {
        Err(ODataError::new(
            StatusCode::NOT_FOUND,
            format!("no entity set {entity}"),
        ))
    }
}

async fn delete_entity(
    State(s): State<AppState>,
    a: Admin,
    Path(entity): Path<String>,
) -> Result<StatusCode, ODataError> {
    match entity_key(&entity, "IntegrationRuntimeArtifacts") {
        Some(id) => artifacts::undeploy(&s, &a, &id?).await,
        None => Err(ODataError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{entity} cannot be deleted here"),
        )),
    }
}

/// An OData v2 error answer.
#[derive(Debug)]
pub(crate) struct ODataError {
    status: StatusCode,
    message: String,
}

impl ODataError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

impl From<crate::error::ApiError> for ODataError {
    fn from(e: crate::error::ApiError) -> Self {
        Self::new(e.status, e.message)
    }
}

impl From<postern_core::Error> for ODataError {
    fn from(e: postern_core::Error) -> Self {
        crate::error::ApiError::from_domain(e).into()
    }
}

impl IntoResponse for ODataError {
    fn into_response(self) -> Response {
        let code = self.status.canonical_reason().unwrap_or("Error");
        let body = serde_json::json!({
            "error": { "code": code, "message": { "lang": "en", "value": self.message } }
        });
        (self.status, Json(body)).into_response()
    }
}
