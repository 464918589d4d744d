//! Console login, sessions and CSRF protection.
//!
//! * Login checks a technical user's password (argon2id) and that the user holds
//!   `Postern.Admin`; the login form itself carries a double-submit token (cookie and field).
//! * The session cookie holds a random 256-bit id (`HttpOnly`, `SameSite=Strict`, `Path=/console`,
//!   `Secure` over HTTPS); the database keeps its SHA-256 and the session's CSRF token. Sessions
//!   end after [`SESSION_MS`], at logout, or as soon as the user loses `Postern.Admin` or is
//!   deleted (checked against the live snapshot on every request).
//! * Every state-changing request is a POST whose form carries the session's CSRF token; a
//!   missing or wrong token is refused with 403 before anything happens.

use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use postern_core::model::ROLE_ADMIN;
use postern_store::{ConsoleSession, Ctx};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use super::render;
use crate::extract::{auth_failed, now_ms, peer};
use crate::state::AppState;
use crate::tls::OverTls;

/// How long a session lasts from login.
pub(crate) const SESSION_MS: i64 = 8 * 3600 * 1000;
const COOKIE: &str = "postern_console";
const LOGIN_COOKIE: &str = "postern_login";
/// Largest form body accepted (file uploads have their own limits).
pub(crate) const MAX_FORM_BYTES: usize = 1024 * 1024;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
}

/// A logged-in administrator.
pub(crate) struct Session {
    pub(crate) user: String,
    pub(crate) csrf: String,
    id_hash: Vec<u8>,
    pub(crate) source: String,
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes)
        .as_ref()
        .to_vec()
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn set_cookie(name: &str, value: &str, path: &str, max_age_s: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!("{name}={value}; Path={path}; Max-Age={max_age_s}; HttpOnly; SameSite=Strict{secure}");
    // Names, paths and base64url values are visible ASCII.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Where to go after login: a console page, never another site.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/console/") && !n.contains("//") && !n.contains('\\') && n.len() < 1024 => {
            n.to_owned()
        }
        _ => "/console/messages".to_owned(),
    }
}

fn to_login(parts: &Parts) -> Response {
    // The console is nested at /console, which the nested router's URI no longer shows.
    let next = match parts.uri.path_and_query() {
        Some(p) => format!("/console{}", p.as_str()),
        None => "/console/messages".to_owned(),
    };
    let target = format!(
        "/console/login?next={}",
        form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
    );
    Redirect::to(&target).into_response()
}

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Some(id) = cookie(&parts.headers, COOKIE) else {
            return Err(to_login(parts));
        };
        let id_hash = sha256(id.as_bytes());
        let found = state.store().session(&id_hash, now_ms()).await.map_err(|e| {
            let (status, message) = super::problem(e);
            render(
                status,
                "error.html",
                json!({ "status": status.as_u16(), "message": message }),
            )
        })?;
        let Some(found) = found else {
            return Err(to_login(parts));
        };
        let allowed = state
            .live()
            .security
            .user(&found.user)
            .is_some_and(|u| u.roles.contains(ROLE_ADMIN));
        if !allowed {
            let _ = state.store().delete_session(&id_hash).await;
            return Err(to_login(parts));
        }
        Ok(Session {
            user: found.user,
            csrf: found.csrf,
            id_hash,
            source: peer(parts),
        })
    }
}

// The error side is the page to send at once, built only on the failing path.
#[allow(clippy::result_large_err)]
impl Session {
    /// The write context for this administrator's changes.
    pub(crate) fn ctx<'a>(&'a self, state: &'a AppState) -> Ctx<'a> {
        Ctx {
            store: state.store(),
            actor: &self.user,
            source: &self.source,
            now: now_ms(),
        }
    }

    /// What every page's layout needs, merged with the page's own values.
    pub(crate) fn page(&self, section: &str, mut values: Value) -> Value {
        if let Value::Object(map) = &mut values {
            map.insert("user".into(), Value::String(self.user.clone()));
            map.insert("csrf".into(), Value::String(self.csrf.clone()));
            map.insert("section".into(), Value::String(section.to_owned()));
        }
        values
    }

    /// An error page within the layout.
    pub(crate) fn error(&self, status: StatusCode, message: &str) -> Response {
        render(
            status,
            "error.html",
            self.page("", json!({ "status": status.as_u16(), "message": message })),
        )
    }

    /// Checks a submitted token against the session's.
    pub(crate) fn check_csrf(&self, token: Option<&str>) -> Result<(), Response> {
        let ok = token.is_some_and(|t| bool::from(t.as_bytes().ct_eq(self.csrf.as_bytes())));
        if ok {
            Ok(())
        } else {
            Err(self.error(
                StatusCode::FORBIDDEN,
                "The form's security token is missing or wrong, so nothing was changed. Reload the page and try again.",
            ))
        }
    }

    /// Checks a form without fields of its own (a button): its size and its `csrf` field.
    pub(crate) fn confirm(&self, body: &Bytes) -> Result<(), Response> {
        self.form::<serde::de::IgnoredAny>(body).map(|_| ())
    }

    /// Reads a URL-encoded form after checking its `csrf` field.
    pub(crate) fn form<T: DeserializeOwned>(&self, body: &Bytes) -> Result<T, Response> {
        if body.len() > MAX_FORM_BYTES {
            return Err(self.error(StatusCode::PAYLOAD_TOO_LARGE, "The form is too large."));
        }
        let token = form_urlencoded::parse(body)
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.into_owned());
        self.check_csrf(token.as_deref())?;
        serde_urlencoded_from(body)
            .map_err(|e| self.error(StatusCode::BAD_REQUEST, &format!("The form is incomplete: {e}")))
    }
}

/// The fields of a multipart form, by name (a repeated name keeps its last value).
pub(crate) struct Upload(std::collections::HashMap<String, Bytes>);

impl Upload {
    /// A field as text (lossy UTF-8), empty when absent.
    pub(crate) fn text(&self, name: &str) -> String {
        self.0
            .get(name)
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default()
    }

    /// A field's bytes, empty when absent.
    pub(crate) fn bytes(&self, name: &str) -> &[u8] {
        self.0.get(name).map_or(&[], |b| b.as_ref())
    }
}

// The error side is the page to send at once, built only on the failing path.
#[allow(clippy::result_large_err)]
impl Session {
    /// Reads a multipart form (each field at most `limit` bytes) after checking its `csrf`
    /// field.
    pub(crate) async fn upload(
        &self,
        mut form: axum::extract::Multipart,
        limit: usize,
    ) -> Result<Upload, Response> {
        let mut fields = std::collections::HashMap::new();
        loop {
            match form.next_field().await {
                Ok(Some(field)) => {
                    let name = field.name().unwrap_or("").to_owned();
                    match field.bytes().await {
                        Ok(d) if d.len() <= limit => {
                            fields.insert(name, d);
                        }
                        Ok(_) => {
                            return Err(self.error(
                                StatusCode::PAYLOAD_TOO_LARGE,
                                &format!("The upload is larger than {limit} bytes."),
                            ));
                        }
                        Err(e) => {
                            return Err(self
                                .error(StatusCode::BAD_REQUEST, &format!("The upload is incomplete: {e}")));
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    return Err(
                        self.error(StatusCode::BAD_REQUEST, &format!("The upload is incomplete: {e}"))
                    );
                }
            }
        }
        let upload = Upload(fields);
        self.check_csrf(Some(&upload.text("csrf")))?;
        Ok(upload)
    }
}

/// The value of a `Result<T, Response>`, or the response answered at once.
macro_rules! or_answer {
    ($result:expr) => {
        match $result {
            Ok(v) => v,
            Err(response) => return response,
        }
    };
}
pub(crate) use or_answer;

/// Deserializes URL-encoded pairs into `T` through a JSON object (fields are strings).
fn serde_urlencoded_from<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    let mut map = serde_json::Map::new();
    for (k, v) in form_urlencoded::parse(body) {
        if k == "csrf" {
            continue;
        }
        match map.get_mut(k.as_ref()) {
            Some(Value::Array(list)) => list.push(Value::String(v.into_owned())),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, Value::String(v.into_owned())]);
            }
            None => {
                map.insert(k.into_owned(), Value::String(v.into_owned()));
            }
        }
    }
    serde_json::from_value(Value::Object(map)).map_err(|e| e.to_string())
}

#[derive(Deserialize)]
struct LoginQuery {
    next: Option<String>,
    #[serde(rename = "loggedOut")]
    logged_out: Option<String>,
}

fn login_form(
    status: StatusCode,
    next: &str,
    error: Option<&str>,
    notice: Option<&str>,
    secure: bool,
) -> Response {
    let token = URL_SAFE_NO_PAD.encode(postern_auth::secret::random::<32>());
    let mut resp = render(
        status,
        "login.html",
        json!({ "next": next, "error": error, "notice": notice, "login_token": token }),
    );
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(LOGIN_COOKIE, &token, "/console/login", 3600, secure),
    );
    resp
}

async fn login_page(parts: Parts) -> Response {
    let q: LoginQuery = axum::extract::Query::try_from_uri(&parts.uri)
        .map(|q| q.0)
        .unwrap_or(LoginQuery {
            next: None,
            logged_out: None,
        });
    let notice = q.logged_out.map(|_| "You are logged out.");
    let secure = parts.extensions.get::<OverTls>().is_some();
    login_form(
        StatusCode::OK,
        &safe_next(q.next.as_deref()),
        None,
        notice,
        secure,
    )
}

#[derive(Deserialize)]
struct LoginForm {
    user: String,
    password: String,
    #[serde(default)]
    next: Option<String>,
    #[serde(default)]
    login_token: Option<String>,
}

async fn login(State(state): State<AppState>, parts: Parts, body: Bytes) -> Response {
    let secure = parts.extensions.get::<OverTls>().is_some();
    if body.len() > 16 * 1024 {
        return login_form(
            StatusCode::PAYLOAD_TOO_LARGE,
            "/console/messages",
            Some("The form is too large."),
            None,
            secure,
        );
    }
    let form: LoginForm = match serde_urlencoded_from(&body) {
        Ok(f) => f,
        Err(_) => {
            return login_form(
                StatusCode::BAD_REQUEST,
                "/console/messages",
                Some("Give a user name and a password."),
                None,
                secure,
            );
        }
    };
    let next = safe_next(form.next.as_deref());
    // Double submit: the token in the form must equal the cookie set with the form, which
    // another site can neither read nor set.
    let expected = cookie(&parts.headers, LOGIN_COOKIE);
    let token_ok = matches!((expected, form.login_token.as_deref()),
        (Some(a), Some(b)) if bool::from(a.as_bytes().ct_eq(b.as_bytes())));
    if !token_ok {
        return login_form(
            StatusCode::FORBIDDEN,
            &next,
            Some("The login form expired or came from elsewhere; please log in again."),
            None,
            secure,
        );
    }
    let source = peer(&parts);
    let identity = form.user.trim().to_ascii_lowercase();
    let ip = crate::extract::peer_ip(&parts.extensions);
    let guard = state.guard();
    if let Some(ip) = ip
        && let Some(wait) = guard.locked(Some(&identity), ip, std::time::Instant::now())
    {
        state.metrics().auth_failure("locked_out");
        let secs = crate::guard::retry_after_secs(wait);
        let mut resp = login_form(
            StatusCode::TOO_MANY_REQUESTS,
            &next,
            Some(&format!("Too many failed logins; try again in {secs} s.")),
            None,
            secure,
        );
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return resp;
    }
    let live = state.live_full();
    let principal = match state
        .authn()
        .user_password(&live.security, form.user.trim(), &form.password)
        .await
    {
        Ok(p) => {
            if let Some(ip) = ip {
                guard.succeeded(&identity, ip);
            }
            p
        }
        Err(failure) => {
            if let Some(ip) = ip {
                guard.failed(Some(&identity), ip, std::time::Instant::now());
            }
            let _ = auth_failed(&state, failure, &source, "/console/login");
            return login_form(
                StatusCode::UNAUTHORIZED,
                &next,
                Some("Wrong user name or password."),
                None,
                secure,
            );
        }
    };
    if !principal.roles.contains(ROLE_ADMIN) {
        return login_form(
            StatusCode::FORBIDDEN,
            &next,
            Some("This user may not use the console: it needs the role Postern.Admin."),
            None,
            secure,
        );
    }
    let now = now_ms();
    let id = URL_SAFE_NO_PAD.encode(postern_auth::secret::random::<32>());
    let session = ConsoleSession {
        id_hash: sha256(id.as_bytes()),
        user: principal.name.to_string(),
        csrf: URL_SAFE_NO_PAD.encode(postern_auth::secret::random::<32>()),
        created_at: now,
        expires_at: now + SESSION_MS,
    };
    let _ = state.store().purge_sessions(now).await;
    if let Err(e) = state.store().insert_session(&session).await {
        let (status, message) = super::problem(e);
        return login_form(status, &next, Some(&message), None, secure);
    }
    let ctx = Ctx {
        store: state.store(),
        actor: &session.user,
        source: &source,
        now,
    };
    if let Err(e) = ctx.audit("console.login", &session.user, json!({})).await {
        tracing::warn!(error = %e, "auditing a console login failed");
    }
    let mut resp = Redirect::to(&next).into_response();
    let h = resp.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(COOKIE, &id, "/console", SESSION_MS / 1000, secure),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(LOGIN_COOKIE, "", "/console/login", 0, secure),
    );
    resp
}

async fn logout(State(state): State<AppState>, session: Session, parts: Parts, body: Bytes) -> Response {
    or_answer!(session.confirm(&body));
    if let Err(e) = state.store().delete_session(&session.id_hash).await {
        let (status, message) = super::problem(e);
        return session.error(status, &message);
    }
    let _ = session
        .ctx(&state)
        .audit("console.logout", &session.user, json!({}))
        .await;
    let secure = parts.extensions.get::<OverTls>().is_some();
    let mut resp = Redirect::to("/console/login?loggedOut=1").into_response();
    resp.headers_mut()
        .append(header::SET_COOKIE, set_cookie(COOKIE, "", "/console", 0, secure));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_login_only_console_pages() {
        assert_eq!(safe_next(Some("/console/flows?x=1")), "/console/flows?x=1");
        for bad in [
            None,
            Some("https://evil.example/console/"),
            Some("//evil.example/console/"),
            Some("/console//evil.example"),
            Some("/console/\\evil"),
            Some("/admin/v1/users"),
        ] {
            assert_eq!(safe_next(bad), "/console/messages", "{bad:?}");
        }
    }

    #[test]
    fn forms_read_repeated_fields_and_skip_the_token() {
        #[derive(Deserialize, Debug, PartialEq)]
        struct F {
            name: String,
            roles: Vec<String>,
        }
        let f: F = serde_urlencoded_from(b"csrf=t&name=a%20b&roles=X&roles=Y").expect("form");
        assert_eq!(
            f,
            F {
                name: "a b".into(),
                roles: vec!["X".into(), "Y".into()]
            }
        );
        assert!(serde_urlencoded_from::<F>(b"roles=X").is_err(), "missing name");
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("other=1; postern_console_x=2; postern_console=abc"),
        );
        assert_eq!(cookie(&h, COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "missing"), None);
    }
}
