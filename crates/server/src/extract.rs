//! Extractors: admin authentication (a role check that yields the caller), JSON bodies whose
//! rejections answer in [`ApiError`]'s shape, and the peer address.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use bytes::Bytes;
use postern_auth::authz::require_any;
use postern_auth::{AuthFailure, Principal};
use postern_core::ids::RoleName;
use postern_core::model::{AuditEntry, ROLE_ADMIN, ROLE_MONITORING, ROLE_PARTNER_DIRECTORY};

use crate::error::ApiError;
use crate::state::{AppState, Live};
use crate::tls::PeerCertificate;

/// The caller of an admin endpoint, holding `Postern.Admin`.
pub(crate) struct Admin {
    pub(crate) principal: Principal,
    pub(crate) source: String,
}

/// The caller of a monitoring endpoint, holding `MonitoringDataRead` or `Postern.Admin`.
pub(crate) struct Monitor {
    #[allow(dead_code)]
    pub(crate) principal: Principal,
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = authenticate_with_roles(parts, state, &[ROLE_ADMIN]).await?;
        Ok(Admin {
            principal,
            source: peer(parts),
        })
    }
}

/// The caller of the Partner Directory API, holding `AuthGroup_TenantPartnerDirectoryConfigurator`
/// or `Postern.Admin`.
pub(crate) struct PartnerAdmin {
    pub(crate) principal: Principal,
    pub(crate) source: String,
}

impl FromRequestParts<AppState> for PartnerAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = authenticate_with_roles(parts, state, &[ROLE_PARTNER_DIRECTORY, ROLE_ADMIN]).await?;
        Ok(PartnerAdmin {
            principal,
            source: peer(parts),
        })
    }
}

impl FromRequestParts<AppState> for Monitor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = authenticate_with_roles(parts, state, &[ROLE_MONITORING, ROLE_ADMIN]).await?;
        Ok(Monitor { principal })
    }
}

/// Authenticates a request: its `Authorization` header when it has one, otherwise the client
/// certificate of its TLS connection.
pub(crate) async fn authenticate(
    state: &AppState,
    live: &Live,
    headers: &axum::http::HeaderMap,
    extensions: &axum::http::Extensions,
) -> Result<Principal, AuthFailure> {
    let header = headers.get(AUTHORIZATION).map(|v| v.as_bytes());
    match (header, extensions.get::<PeerCertificate>()) {
        (None, Some(cert)) => state.authn().certificate(&live.security, &cert.sha256, now_ms()),
        (_, cert) => {
            let peer = cert.map(|c| &c.sha256);
            state
                .authn()
                .authenticate(&live.security, &live.tokens, header, peer)
                .await
        }
    }
}

/// The source address's IP, when the request came through a socket.
pub(crate) fn peer_ip(extensions: &axum::http::Extensions) -> Option<std::net::IpAddr> {
    extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())
}

/// Whom a request claims to be, for the failure counters: the Basic user name, lower-cased.
fn claimed(headers: &axum::http::HeaderMap) -> Option<String> {
    let header = headers.get(AUTHORIZATION)?;
    postern_auth::basic::parse_basic(header.as_bytes())
        .ok()
        .map(|c| c.user().to_ascii_lowercase())
}

/// [`authenticate`] behind the brute-force guard: a locked-out source gets 429 before its
/// credentials are looked at; a failure is counted (and answered 401); a success ends the
/// source's count.
pub(crate) async fn authenticate_guarded(
    state: &AppState,
    live: &Live,
    headers: &axum::http::HeaderMap,
    extensions: &axum::http::Extensions,
    path: &str,
) -> Result<Principal, ApiError> {
    let ip = peer_ip(extensions);
    let guard = state.guard();
    if let Some(ip) = ip
        && guard.active()
        && let Some(wait) = guard.locked(claimed(headers).as_deref(), ip, std::time::Instant::now())
    {
        state.metrics().auth_failure("locked_out");
        return Err(ApiError::locked_out(wait));
    }
    match authenticate(state, live, headers, extensions).await {
        Ok(p) => {
            if let Some(ip) = ip {
                guard.succeeded(&p.name, ip);
            }
            Ok(p)
        }
        Err(failure) => {
            // A request without credentials is the first half of every Basic challenge; only
            // wrong credentials count.
            if let Some(ip) = ip
                && !matches!(failure, AuthFailure::Missing)
                && let Some(wait) = guard.failed(claimed(headers).as_deref(), ip, std::time::Instant::now())
            {
                tracing::warn!(source = %ip, seconds = wait.as_secs(), "locked out after failed authentications");
            }
            Err(auth_failed(state, failure, &peer_of(extensions), path))
        }
    }
}

async fn authenticate_with_roles(
    parts: &Parts,
    state: &AppState,
    roles: &[&str],
) -> Result<Principal, ApiError> {
    let live = state.live_full();
    let principal =
        authenticate_guarded(state, &live, &parts.headers, &parts.extensions, parts.uri.path()).await?;
    let wanted: Vec<RoleName> = roles.iter().filter_map(|r| RoleName::parse(r).ok()).collect();
    require_any(&principal, &wanted).map_err(|m| ApiError::forbidden(m.to_string()))?;
    Ok(principal)
}

/// Counts and audits a failed authentication and returns the 401 to send.
pub(crate) fn auth_failed(state: &AppState, failure: AuthFailure, source: &str, path: &str) -> ApiError {
    let reason = failure.as_str();
    state.metrics().auth_failure(reason);
    tracing::info!(reason, source, path, "authentication failed");
    let entry = AuditEntry {
        id: 0,
        at: now_ms(),
        actor: "-".into(),
        action: "auth.failed".into(),
        target: path.chars().take(200).collect(),
        detail: serde_json::json!({ "reason": reason, "authenticator": failure.authenticator() }).to_string(),
        source: source.to_owned(),
    };
    // Under a flood of bad requests the audit queue may fill; dropping (and counting) beats
    // letting attackers stall the request path.
    if !state.audit().try_send(entry) {
        state
            .metrics()
            .audit_dropped
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    ApiError::unauthorized(if failure.is_token() {
        crate::error::INVALID_TOKEN
    } else {
        crate::error::CHALLENGE
    })
}

/// The peer address, or `-` when unknown (tests driving the router without a socket).
pub(crate) fn peer(parts: &Parts) -> String {
    peer_of(&parts.extensions)
}

/// The peer address from request extensions.
pub(crate) fn peer_of(extensions: &axum::http::Extensions) -> String {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string())
        .unwrap_or_else(|| "-".into())
}

/// Now, Unix ms (the edge reads the clock; domain code takes it as a parameter).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A JSON object body read as `T`, refused in our error shape: 415 without a JSON content type,
/// 413 over the route's body limit, 400 for bytes that are not JSON, 422 for JSON that is not an
/// object or does not fit `T`.
pub(crate) struct ApiJson<T>(pub(crate) T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !json_content_type(req.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "bad_request",
                "Expected request with `Content-Type: application/json`",
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|r| rejected(r.status(), r.body_text()))?;
        // serde reads a struct from a JSON array too (fields by position), so `["Orders.Send",
        // ""]` would pass for a role and `[]` for an empty import; every body here is an object.
        let object = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        if !object && serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_ok() {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "bad_request",
                "the body must be a JSON object",
            ));
        }
        axum::Json::<T>::from_bytes(&bytes)
            .map(|axum::Json(v)| ApiJson(v))
            .map_err(|r| rejected(r.status(), r.body_text()))
    }
}

/// `application/json` or `application/<anything>+json`, parameters aside (axum's rule).
fn json_content_type(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    let subtype = subtype.to_ascii_lowercase();
    kind.eq_ignore_ascii_case("application") && (subtype == "json" || subtype.ends_with("+json"))
}

fn rejected(status: StatusCode, text: String) -> ApiError {
    let kind = if status == StatusCode::PAYLOAD_TOO_LARGE {
        "payload_too_large"
    } else {
        "bad_request"
    };
    ApiError::new(status, kind, text)
}
