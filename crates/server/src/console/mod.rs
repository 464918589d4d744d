//! The web console at `/console/`: server-rendered pages (minijinja templates embedded in the
//! binary) with a little JavaScript, for administrators (`Postern.Admin`). It calls the same
//! domain services as the admin APIs. Sessions live in the database (every node serves every
//! session); every form carries the session's CSRF token; responses forbid framing, caching
//! and any script or style from elsewhere.

mod flows;
mod messages;
mod partners;
mod security;
mod session;

use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use minijinja::Environment;
use serde::Serialize;

use crate::error::ApiError;
use crate::state::AppState;

pub(crate) use session::Session;

/// Templates, compiled once.
fn templates() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        // Every template name ends in .html, so minijinja escapes HTML in all of them.
        for (name, source) in TEMPLATES {
            // The templates are part of the binary and checked by the tests; a broken one is a
            // build defect, found by the first test that renders any page.
            #[allow(clippy::expect_used)]
            env.add_template(name, source).expect("console template parses");
        }
        env
    })
}

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("login.html", include_str!("templates/login.html")),
    ("error.html", include_str!("templates/error.html")),
    ("messages.html", include_str!("templates/messages.html")),
    ("message.html", include_str!("templates/message.html")),
    ("roles.html", include_str!("templates/roles.html")),
    ("users.html", include_str!("templates/users.html")),
    ("instances.html", include_str!("templates/instances.html")),
    ("instance.html", include_str!("templates/instance.html")),
    ("key_created.html", include_str!("templates/key_created.html")),
    ("cert_mappings.html", include_str!("templates/cert_mappings.html")),
    ("connectivity.html", include_str!("templates/connectivity.html")),
    ("flows.html", include_str!("templates/flows.html")),
    ("flow.html", include_str!("templates/flow.html")),
    ("partners.html", include_str!("templates/partners.html")),
    ("partner.html", include_str!("templates/partner.html")),
    (
        "partner_import.html",
        include_str!("templates/partner_import.html"),
    ),
];

/// Static files, embedded.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("assets/console.css"),
    ),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/console.js"),
    ),
];

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/console/messages") }))
        .route("/assets/{file}", get(asset))
        .merge(session::router())
        .merge(messages::router())
        .merge(security::router())
        .merge(flows::router())
        .merge(partners::router())
        .fallback(|s: Session| async move { s.error(StatusCode::NOT_FOUND, "There is no such page.") })
        .layer(axum::middleware::map_response(harden))
}

/// Headers on every console answer: no framing, no caching of pages that may show secrets, no
/// script, style or form target outside this origin.
async fn harden(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    let fixed: [(header::HeaderName, &str); 5] = [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    for (name, value) in fixed {
        h.entry(name).or_insert(HeaderValue::from_static(value));
    }
    resp
}

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, mime, body)) => {
            let mut resp = Response::new(Body::from(*body));
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
            resp
        }
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}

/// A notice shown after a change (`?done=...`).
#[derive(serde::Deserialize, Default)]
struct Done {
    done: Option<String>,
}

/// Redirects to a console page showing `notice` (Post/Redirect/Get).
fn back(path: &str, notice: &str) -> Response {
    let q: String = form_urlencoded::byte_serialize(notice.as_bytes()).collect();
    Redirect::to(&format!("{path}?done={q}")).into_response()
}

/// Renders a template with `status`.
fn render(status: StatusCode, name: &str, ctx: impl Serialize) -> Response {
    let env = templates();
    let html = env.get_template(name).and_then(|t| t.render(ctx));
    match html {
        Ok(html) => {
            let mut resp = (status, html).into_response();
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            resp
        }
        Err(e) => {
            tracing::error!(template = name, error = %e, "console template failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered; see the server log",
            )
                .into_response()
        }
    }
}

/// A domain or API error shown on a console page: its status and message.
fn problem(e: impl Into<ApiError>) -> (StatusCode, String) {
    let e: ApiError = e.into();
    (e.status, e.message)
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) for tables.
fn when(ms: i64) -> String {
    let t = postern_core::time::rfc3339(ms);
    t.get(..19).map(|s| s.replace('T', " ")).unwrap_or(t)
}
