//! The SAP-compatible OData v2 API (`/api/v1`), JSON only: `{"d": {...}}` for an entity,
//! `{"d": {"results": [...]}}` for a collection, OData error bodies. So far:
//! `MessageProcessingLogs` (list with `$filter`, `$top`, `$skip`, `$orderby`, `$select`,
//! `$inlinecount`; by key; `$count`; `ErrorInformation/$value`).

mod filter;
mod mpl;

use axum::Json;
use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

pub(crate) fn router() -> Router<AppState> {
    mpl::router()
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
