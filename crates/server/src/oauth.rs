//! The token server (RFC 6749 §4.4 client credentials), its metadata (RFC 8414), the JWKS, and
//! token introspection (RFC 7662). Clients authenticate with a service key's client id and secret,
//! by `client_secret_basic` or `client_secret_post` (exactly one per request).

use axum::extract::State;
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, PRAGMA, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use postern_auth::authn::AuthFailure;
use postern_auth::basic::parse_basic;
use postern_auth::token::{Claims, Confirmation, ExtAttr};
use postern_core::model::AuditEntry;
use postern_core::snapshot::{CertSubject, Client};
use serde_json::{Value, json};
use std::sync::Arc;

use crate::error::ApiError;
use crate::extract::{Monitor, now_ms};
use crate::state::AppState;
use crate::tls::PeerCertificate;

/// Largest token request body.
const MAX_FORM: usize = 8 * 1024;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/oauth/token", post(token).fallback(method_not_allowed))
        .route("/oauth/introspect", post(introspect))
        .route("/token_keys", get(jwks))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route(
            "/.well-known/oauth-authorization-server/oauth/token",
            get(metadata),
        )
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed("POST")
}

/// An RFC 6749 §5.2 error answer.
struct OAuthError {
    status: StatusCode,
    code: &'static str,
    description: String,
    challenge: bool,
    /// Seconds for `Retry-After` (429 after failed client authentications).
    retry_after: Option<u64>,
}

fn oauth_error(code: &'static str, description: impl Into<String>) -> OAuthError {
    OAuthError {
        status: StatusCode::BAD_REQUEST,
        code,
        description: description.into(),
        challenge: false,
        retry_after: None,
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.code, "error_description": self.description });
        let mut resp = (self.status, Json(body)).into_response();
        no_store(resp.headers_mut());
        if self.challenge {
            resp.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"postern\""),
            );
        }
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

fn no_store(h: &mut HeaderMap) {
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(PRAGMA, HeaderValue::from_static("no-cache"));
}

/// Form fields and query parameters together (SAP's docs put `grant_type` in the query).
fn params(query: Option<&str>, body: &[u8]) -> Result<Vec<(String, String)>, OAuthError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()).chain(form_urlencoded::parse(body)) {
        if out.iter().any(|(n, _)| *n == k) {
            return Err(oauth_error(
                "invalid_request",
                format!("parameter {k} appears more than once"),
            ));
        }
        out.push((k.into_owned(), v.into_owned()));
    }
    Ok(out)
}

fn param<'a>(p: &'a [(String, String)], name: &str) -> Option<&'a str> {
    p.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Which credentials the client presented.
struct ClientAuth {
    id: String,
    secret: String,
    basic: bool,
    /// `tls_client_auth` (RFC 8705 §2.1): the connection's certificate of a certificate key.
    certificate: Option<[u8; 32]>,
}

fn client_auth(
    headers: &HeaderMap,
    p: &[(String, String)],
    peer: Option<&PeerCertificate>,
) -> Result<ClientAuth, OAuthError> {
    if let (None, None, Some(cert)) = (headers.get(AUTHORIZATION), param(p, "client_secret"), peer) {
        return Ok(ClientAuth {
            id: param(p, "client_id").unwrap_or_default().to_owned(),
            secret: String::new(),
            basic: false,
            certificate: Some(cert.sha256),
        });
    }
    let in_body = param(p, "client_id").is_some() || param(p, "client_secret").is_some();
    match (headers.get(AUTHORIZATION), in_body) {
        (Some(_), true) => Err(oauth_error(
            "invalid_request",
            "use exactly one client authentication method: Basic or client_id/client_secret in the body",
        )),
        (Some(h), false) => {
            let c = parse_basic(h.as_bytes()).map_err(|_| OAuthError {
                status: StatusCode::UNAUTHORIZED,
                code: "invalid_client",
                description: "client authentication failed".into(),
                challenge: true,
                retry_after: None,
            })?;
            Ok(ClientAuth {
                id: c.user().to_owned(),
                secret: c.password().to_owned(),
                basic: true,
                certificate: None,
            })
        }
        (None, _) => match (param(p, "client_id"), param(p, "client_secret")) {
            (Some(id), Some(secret)) => Ok(ClientAuth {
                id: id.to_owned(),
                secret: secret.to_owned(),
                basic: false,
                certificate: None,
            }),
            _ => Err(OAuthError {
                status: StatusCode::UNAUTHORIZED,
                code: "invalid_client",
                description: "client authentication is required".into(),
                challenge: true,
                retry_after: None,
            }),
        },
    }
}

/// RFC 6749 §2.3.1 wants Basic credentials form-urlencoded first; most clients do that, some do
/// not. Client ids contain `!` and `|`, so accept both spellings.
fn decoded(s: &str) -> Option<String> {
    if !s.contains('%') && !s.contains('+') {
        return None;
    }
    let joined = format!("x={s}");
    form_urlencoded::parse(joined.as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
}

async fn token(State(s): State<AppState>, req: axum::extract::Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, MAX_FORM).await {
        Ok(b) => b,
        Err(e)
            if std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>()) =>
        {
            let description = format!("the request body exceeds {MAX_FORM} bytes");
            return OAuthError {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                ..oauth_error("invalid_request", description)
            }
            .into_response();
        }
        Err(_) => return oauth_error("invalid_request", "request body unreadable").into_response(),
    };
    let source = crate::extract::peer_of(&parts.extensions);
    let peer = parts.extensions.get::<PeerCertificate>();
    let ip = crate::extract::peer_ip(&parts.extensions);
    match issue(&s, parts.uri.query(), &parts.headers, &body, &source, peer, ip).await {
        Ok(issued) => {
            let mut resp = (
                [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
                issued.body(),
            )
                .into_response();
            no_store(resp.headers_mut());
            resp
        }
        Err(e) => e.into_response(),
    }
}

/// A token answer (RFC 6749 §5.1).
struct Issued {
    /// A compact JWS: base64url parts and dots, nothing a JSON string must escape.
    token: String,
    expires_in: i64,
    scope: String,
    /// A UUID, likewise.
    jti: String,
}

impl Issued {
    /// The JSON body, written directly: the token is most of it and needs no escaping, which
    /// a general serialiser would check byte by byte.
    fn body(&self) -> Vec<u8> {
        let scope = Value::String(self.scope.clone()).to_string();
        let mut out = Vec::with_capacity(self.token.len() + scope.len() + self.jti.len() + 96);
        out.extend_from_slice(b"{\"access_token\":\"");
        out.extend_from_slice(self.token.as_bytes());
        out.extend_from_slice(b"\",\"token_type\":\"bearer\",\"expires_in\":");
        out.extend_from_slice(self.expires_in.to_string().as_bytes());
        out.extend_from_slice(b",\"scope\":");
        out.extend_from_slice(scope.as_bytes());
        out.extend_from_slice(b",\"jti\":\"");
        out.extend_from_slice(self.jti.as_bytes());
        out.extend_from_slice(b"\"}");
        out
    }
}

async fn issue(
    s: &AppState,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
    source: &str,
    peer: Option<&PeerCertificate>,
    ip: Option<std::net::IpAddr>,
) -> Result<Issued, OAuthError> {
    let p = params(query, body)?;
    let auth = client_auth(headers, &p, peer)?;
    let identity = auth.id.to_ascii_lowercase();
    let guard = s.guard();
    if let Some(ip) = ip
        && guard.active()
        && let Some(wait) = guard.locked(Some(&identity), ip, std::time::Instant::now())
    {
        s.metrics().auth_failure("locked_out");
        let secs = crate::guard::retry_after_secs(wait);
        return Err(OAuthError {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "temporarily_unavailable",
            description: format!("too many failed client authentications; retry after {secs} s"),
            challenge: false,
            retry_after: Some(secs),
        });
    }
    let live = s.live_full();
    let now_ms = now_ms();
    let found = find_client(s, &live.security, &auth, now_ms);
    if let Some(ip) = ip {
        match &found {
            Ok((client, _)) => guard.succeeded(&client.client_id, ip),
            Err(_) => {
                guard.failed(Some(&identity), ip, std::time::Instant::now());
            }
        }
    }
    let (client, key) = match found {
        Ok(found) => found,
        Err(failure) => {
            audit_failure(s, source, &auth.id, failure);
            return Err(OAuthError {
                status: StatusCode::UNAUTHORIZED,
                code: "invalid_client",
                description: "client authentication failed".into(),
                challenge: auth.basic,
                retry_after: None,
            });
        }
    };
    match param(&p, "grant_type") {
        None => return Err(oauth_error("invalid_request", "grant_type is required")),
        Some("client_credentials") => {}
        Some(other) => {
            return Err(oauth_error(
                "unsupported_grant_type",
                format!("grant type {other} is not supported; use client_credentials"),
            ));
        }
    }
    if !client.grant_types.iter().any(|g| g == "client_credentials") {
        return Err(oauth_error(
            "unauthorized_client",
            "the service instance does not allow the client_credentials grant",
        ));
    }
    let granted: Vec<String> = client.roles.iter().map(ToString::to_string).collect();
    let scope = match param(&p, "scope") {
        None => granted,
        Some(asked) => {
            let asked: Vec<String> = asked.split_whitespace().map(str::to_owned).collect();
            if let Some(bad) = asked.iter().find(|r| !granted.contains(r)) {
                return Err(oauth_error(
                    "invalid_scope",
                    format!("scope {bad} is not granted to this client"),
                ));
            }
            if asked.is_empty() {
                return Err(oauth_error("invalid_scope", "scope is empty"));
            }
            asked
        }
    };
    let now = now_ms / 1000;
    // A token never outlives its key: its validity ends with the key's expiry at the latest.
    let validity = match client.key_expires_at(&key) {
        Some(at) => i64::from(client.token_validity).min(at / 1000 - now).max(1),
        None => i64::from(client.token_validity),
    };
    let id = client.client_id.to_string();
    let claims = Claims {
        jti: postern_auth::secret::uuid_v4(),
        sub: id.clone(),
        client_id: id.clone(),
        cid: id.clone(),
        azp: id.clone(),
        grant_type: "client_credentials".into(),
        scope: scope.clone(),
        iat: now,
        exp: now + validity,
        iss: s.config().issuer(),
        zid: s.config().zone.clone(),
        aud: vec![id],
        ext_attr: ExtAttr {
            enhancer: "XSUAA".into(),
            serviceinstancename: client.instance.to_string(),
            key,
        },
        cnf: auth.certificate.as_ref().map(Confirmation::for_certificate),
    };
    let token = live.tokens.sign(&claims).map_err(|e| {
        tracing::error!(error = %e, "cannot sign tokens");
        OAuthError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "temporarily_unavailable",
            description: "the token server cannot sign tokens right now".into(),
            challenge: false,
            retry_after: None,
        }
    })?;
    Ok(Issued {
        token,
        expires_in: validity,
        scope: scope.join(" "),
        jti: claims.jti,
    })
}

/// The client and key the request authenticates as, or why not (`expired` when the right
/// credentials belong to a key whose expiry has passed).
fn find_client(
    s: &AppState,
    snapshot: &postern_core::snapshot::Snapshot,
    auth: &ClientAuth,
    now: i64,
) -> Result<(Arc<Client>, String), AuthFailure> {
    if let Some(sha) = &auth.certificate {
        let binding = snapshot.certificate(sha).ok_or(AuthFailure::UnknownCertificate)?;
        let CertSubject::Key { client, key } = &binding.subject else {
            return Err(AuthFailure::UnknownCertificate);
        };
        if binding.not_after <= now || (!auth.id.is_empty() && *auth.id != *client.client_id) {
            return Err(AuthFailure::UnknownCertificate);
        }
        if client.key_expired(key, now) {
            return Err(AuthFailure::Expired);
        }
        return Ok((Arc::clone(client), key.to_string()));
    }
    let try_one = |id: &str, secret: &str| {
        let client = snapshot.client(id).ok_or(AuthFailure::BadSecret)?;
        let key = s.authn().client_secret(client, secret, now)?;
        Ok((Arc::clone(client), key.to_string()))
    };
    try_one(&auth.id, &auth.secret).or_else(|first| {
        if !auth.basic {
            return Err(first);
        }
        let id = decoded(&auth.id).unwrap_or_else(|| auth.id.clone());
        let secret = decoded(&auth.secret).unwrap_or_else(|| auth.secret.clone());
        match try_one(&id, &secret) {
            Err(AuthFailure::BadSecret) => Err(first),
            other => other,
        }
    })
}

fn audit_failure(s: &AppState, source: &str, client_id: &str, failure: AuthFailure) {
    s.metrics().auth_failure(failure.as_str());
    tracing::info!(source, "token request with bad client credentials");
    let entry = AuditEntry {
        id: 0,
        at: now_ms(),
        actor: "-".into(),
        action: "token.denied".into(),
        target: client_id.chars().take(200).collect(),
        detail: json!({ "reason": "invalid_client", "cause": failure.as_str() }).to_string(),
        source: source.to_owned(),
    };
    if !s.audit().try_send(entry) {
        s.metrics()
            .audit_dropped
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

async fn jwks(State(s): State<AppState>) -> Response {
    let live = s.live();
    let mut resp = Json(live.tokens.jwks().clone()).into_response();
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    resp
}

async fn metadata(State(s): State<AppState>) -> Json<Value> {
    let base = s.config().public_url.trim_end_matches('/').to_owned();
    Json(json!({
        "issuer": s.config().issuer(),
        "token_endpoint": format!("{base}/oauth/token"),
        "jwks_uri": format!("{base}/token_keys"),
        "introspection_endpoint": format!("{base}/oauth/introspect"),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "tls_client_auth"],
        "tls_client_certificate_bound_access_tokens": true,
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic"],
        "response_types_supported": ["token"],
        "token_endpoint_auth_signing_alg_values_supported": ["EdDSA"],
        "id_token_signing_alg_values_supported": ["EdDSA"],
    }))
}

/// RFC 7662: for admin and monitoring callers (`Postern.Admin` or `MonitoringDataRead`).
async fn introspect(State(s): State<AppState>, _m: Monitor, body: Bytes) -> Result<Response, ApiError> {
    if body.len() > MAX_FORM {
        return Err(ApiError::too_large(MAX_FORM as u64));
    }
    let p = params(None, &body).map_err(|e| ApiError::bad_request(e.description))?;
    let token = param(&p, "token").ok_or_else(|| ApiError::bad_request("token is required"))?;
    let live = s.live_full();
    let header = format!("Bearer {token}");
    let answer = match s
        .authn()
        .authenticate(&live.security, &live.tokens, Some(header.as_bytes()), None)
        .await
    {
        Ok(principal) => match live.tokens.verify(token) {
            Ok(c) => json!({
                "active": true,
                "scope": principal.roles.iter().map(ToString::to_string).collect::<Vec<_>>().join(" "),
                "client_id": c.client_id,
                "username": principal.name.as_ref(),
                "token_type": "bearer",
                "exp": c.exp,
                "iat": c.iat,
                "sub": c.sub,
                "aud": c.aud,
                "iss": c.iss,
                "jti": c.jti,
            }),
            Err(_) => json!({ "active": false }),
        },
        Err(_) => json!({ "active": false }),
    };
    let mut resp = Json(answer).into_response();
    no_store(resp.headers_mut());
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_answer_is_the_json_a_serialiser_would_write() {
        let issued = Issued {
            token: "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJjIn0.c2ln-_".into(),
            expires_in: 43_199,
            scope: "ESBMessaging.send Odd\"Role\\ \u{e9}".into(),
            jti: "3f8e2a4c-0b1d-4e6f-9a2b-1c3d5e7f9a0b".into(),
        };
        let parsed: Value = serde_json::from_slice(&issued.body()).expect("valid JSON");
        assert_eq!(
            parsed,
            json!({
                "access_token": issued.token,
                "token_type": "bearer",
                "expires_in": 43_199,
                "scope": issued.scope,
                "jti": issued.jti,
            })
        );
    }
}
