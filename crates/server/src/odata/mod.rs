//! The SAP-compatible OData v2 API (`/api/v1`), JSON only: `{"d": {...}}` for an entity,
//! `{"d": {"results": [...]}}` for a collection, OData error bodies. So far:
//! `MessageProcessingLogs` (list with `$filter`, `$top`, `$skip`, `$orderby`, `$select`,
//! `$inlinecount`; by key; `$count`; `ErrorInformation/$value`), `IntegrationRuntimeArtifacts`,
//! and the Partner Directory (`Partners`, `AlternativePartners`, `AuthorizedUsers`,
//! `StringParameters`, `BinaryParameters`, `$batch`).

mod artifacts;
mod batch;
use postern_core::odata_filter as filter;
mod mpl;
pub(crate) mod partners;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};

use crate::extract::{Admin, Monitor, PartnerAdmin};
use crate::state::AppState;

/// Largest `$batch` body.
const MAX_BATCH_BYTES: usize = 32 * 1024 * 1024;
/// Largest single entity body (a binary parameter of 256 KiB, base64-encoded, with room).
const MAX_ENTITY_BYTES: usize = 1024 * 1024;

pub(crate) fn router() -> Router<AppState> {
    mpl::router()
        .merge(artifacts::router())
        .route(
            "/$batch",
            post(run_batch).layer(DefaultBodyLimit::max(MAX_BATCH_BYTES)),
        )
        .route(
            "/{entity}",
            any(entity).layer(DefaultBodyLimit::max(MAX_ENTITY_BYTES)),
        )
}

/// The service root of this API.
pub(crate) fn base_url(s: &AppState) -> String {
    format!("{}/api/v1", s.config().public_url.trim_end_matches('/'))
}

/// Every method on `/{entity}`: Partner Directory sets and keys, MPLs and artifacts by key.
async fn entity(
    State(s): State<AppState>,
    mut parts: Parts,
    Path(entity): Path<String>,
    body: Bytes,
) -> Response {
    if let Some(res) = partners::resource(&entity) {
        let admin = match PartnerAdmin::from_request_parts(&mut parts, &s).await {
            Ok(a) => a,
            Err(e) => return e.into_response(),
        };
        return match partner_request(&s, &admin, &parts, res, &body).await {
            Ok(r) => r,
            Err(e) => e.into_response(),
        };
    }
    match parts.method {
        Method::GET => {
            let monitor = match Monitor::from_request_parts(&mut parts, &s).await {
                Ok(m) => m,
                Err(e) => return e.into_response(),
            };
            let q = Query::<mpl::Options>::try_from_uri(&parts.uri);
            get_entity(State(s), monitor, Path(entity), q)
                .await
                .into_response()
        }
        Method::DELETE => {
            let admin = match Admin::from_request_parts(&mut parts, &s).await {
                Ok(a) => a,
                Err(e) => return e.into_response(),
            };
            delete_entity(State(s), admin, Path(entity)).await.into_response()
        }
        _ => ODataError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{} is not supported on {entity}", parts.method),
        )
        .into_response(),
    }
}

async fn partner_request(
    s: &AppState,
    admin: &PartnerAdmin,
    parts: &Parts,
    res: Result<partners::Resource, ODataError>,
    body: &[u8],
) -> Result<Response, ODataError> {
    let res = res?;
    let o = partners::ListOptions::parse(parts.uri.query().unwrap_or(""))?;
    if parts.method == Method::GET {
        let v = match &res.key {
            None => partners::list(s, res.set, &o).await?,
            Some(k) => partners::by_key(s, res.set, k, &o).await?,
        };
        return Ok(Json(v).into_response());
    }
    let now = crate::extract::now_ms();
    let actor = admin.principal.name.to_string();
    let planned = partners::plan(&parts.method, &res, &o, body, &actor, now)?;
    let mut answers = partners::apply(s, vec![planned], &actor, &admin.source, now).await?;
    Ok(match answers.pop() {
        Some((status, Some(v))) => (status, Json(v)).into_response(),
        Some((status, None)) => status.into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

async fn run_batch(State(s): State<AppState>, admin: PartnerAdmin, parts: Parts, body: Bytes) -> Response {
    let ct = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let actor = admin.principal.name.to_string();
    match batch::run(&s, ct, &body, &actor, &admin.source).await {
        Ok((content_type, text)) => {
            (StatusCode::ACCEPTED, [(header::CONTENT_TYPE, content_type)], text).into_response()
        }
        Err(e) => e.into_response(),
    }
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

impl ODataError {
    /// The HTTP status.
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    /// The OData error body.
    pub(crate) fn body(&self) -> serde_json::Value {
        let code = self.status.canonical_reason().unwrap_or("Error");
        serde_json::json!({
            "error": { "code": code, "message": { "lang": "en", "value": self.message } }
        })
    }

    /// The same error with context before its message.
    pub(crate) fn with_prefix(mut self, prefix: &str) -> Self {
        self.message = format!("{prefix}{}", self.message);
        self
    }
}

impl IntoResponse for ODataError {
    fn into_response(self) -> Response {
        let body = self.body();
        (self.status, Json(body)).into_response()
    }
}
