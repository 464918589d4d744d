//! `POST /explain`: would this request be allowed on this flow, and why? Runs the same checks as
//! the sender endpoint (routing, authentication, the role or certificate check with the Partner
//! Directory's grant, then the flow's steps on a copy of the message) and reports each decision,
//! without running the receiver, forwarding anything or writing a message processing log.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use postern_auth::authz::require_any_or_partner;
use postern_flow::{Env, Message};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::extract::{Admin, ApiJson, now_ms};
use crate::state::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/explain", post(explain))
}

/// Largest body `explain` takes (it sits in the JSON request).
const MAX_BODY: usize = 4 * 1024 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ExplainBody {
    /// The flow, by id...
    #[serde(default)]
    flow: Option<String>,
    /// ...or by the address a sender calls (`/orders` or `/http/orders`).
    #[serde(default)]
    address: Option<String>,
    /// Request headers, e.g. `Authorization`.
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
    /// The body as text...
    #[serde(default)]
    body: Option<String>,
    /// ...or base64.
    #[serde(default)]
    body_base64: Option<String>,
    /// The client certificate the connection would present (PEM).
    #[serde(default)]
    client_certificate: Option<String>,
}

fn step(check: &str, ok: bool, detail: Value) -> Value {
    json!({ "check": check, "result": if ok { "passed" } else { "failed" }, "detail": detail })
}

async fn explain(
    State(s): State<AppState>,
    _a: Admin,
    ApiJson(req): ApiJson<ExplainBody>,
) -> Result<Json<Value>, ApiError> {
    let live = s.live_full();
    let flow = match (&req.flow, &req.address) {
        (Some(id), None) => live.flows.get(id).cloned(),
        (None, Some(addr)) => {
            let addr = addr.strip_prefix("/http").unwrap_or(addr);
            live.flows.route(addr).cloned()
        }
        (None, None) => {
            return Err(ApiError::bad_request(
                "name the flow: give flow (its id) or address (what a sender calls, e.g. /orders)",
            ));
        }
        (Some(_), Some(_)) => return Err(ApiError::bad_request("give flow or address, not both")),
    };
    let Some(flow) = flow else {
        return Ok(Json(json!({
            "allowed": false,
            "status": 404,
            "checks": [step("route", false, json!("no deployed flow serves this"))],
        })));
    };
    let body = match (req.body, req.body_base64) {
        (Some(t), None) => t.into_bytes(),
        (None, Some(b)) => base64::engine::general_purpose::STANDARD
            .decode(b.trim())
            .map_err(|_| ApiError::bad_request("bodyBase64 is not base64"))?,
        (None, None) => Vec::new(),
        _ => return Err(ApiError::bad_request("give body or bodyBase64, not both")),
    };
    if body.len() > MAX_BODY {
        return Err(ApiError::bad_request(format!(
            "explain takes bodies up to {MAX_BODY} bytes"
        )));
    }
    let cert = req
        .client_certificate
        .as_deref()
        .map(|pem| postern_auth::cert::one_certificate(pem, "clientCertificate"))
        .transpose()?;
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let mut checks = vec![step(
        "route",
        true,
        json!({ "flow": flow.flow.id.as_str(), "address": flow.flow.address.to_string() }),
    )];
    let deny = |checks: Vec<Value>, status: u16| {
        Json(json!({ "allowed": false, "status": status, "flow": flow.flow.id.as_str(), "checks": checks }))
    };
    if body.len() as u64 > flow.flow.max_body_bytes {
        checks.push(step(
            "body size",
            false,
            json!(format!(
                "over the flow's limit of {} bytes",
                flow.flow.max_body_bytes
            )),
        ));
        return Ok(deny(checks, 413));
    }

    let user: Option<String> = if flow.flow.certificates.is_empty() {
        let auth = header("authorization").map(str::as_bytes);
        let result = match (auth, &cert) {
            (None, Some(c)) => s.authn().certificate(&live.security, &c.sha256, now_ms()),
            (_, c) => {
                s.authn()
                    .authenticate(&live.security, &live.tokens, auth, c.as_ref().map(|c| &c.sha256))
                    .await
            }
        };
        let principal = match result {
            Ok(p) => p,
            Err(f) => {
                checks.push(step("authentication", false, json!({ "reason": f.as_str() })));
                return Ok(deny(checks, 401));
            }
        };
        checks.push(step(
            "authentication",
            true,
            json!({ "user": &*principal.name, "kind": format!("{:?}", principal.kind) }),
        ));
        let own = principal.roles.first_of(&flow.flow.roles).is_some();
        match require_any_or_partner(&principal, &flow.flow.roles, |u| {
            live.directory.is_authorized_user(u)
        }) {
            Ok(permit) => checks.push(step(
                "role",
                true,
                json!({
                    "role": permit.role.as_str(),
                    "grantedBy": if own { "user" } else { "partner-directory" },
                }),
            )),
            Err(missing) => {
                checks.push(step("role", false, json!(missing.to_string())));
                return Ok(deny(checks, 403));
            }
        }
        Some(principal.name.to_string())
    } else {
        let Some(c) = &cert else {
            checks.push(step(
                "client certificate",
                false,
                json!("the flow requires a client certificate; give clientCertificate"),
            ));
            return Ok(deny(checks, 401));
        };
        let subject = postern_core::dn::Dn::parse(&c.subject).ok();
        let issuer = postern_core::dn::Dn::parse(&c.issuer).ok();
        let allowed = match (&subject, &issuer) {
            (Some(sj), Some(is)) => flow.flow.certificates.iter().any(|(fs, fi)| fs == sj && fi == is),
            _ => false,
        };
        checks.push(step(
            "client certificate",
            allowed,
            json!({ "subject": c.subject, "issuer": c.issuer }),
        ));
        if !allowed {
            return Ok(deny(checks, 403));
        }
        s.authn()
            .certificate(&live.security, &c.sha256, now_ms())
            .ok()
            .map(|p| p.name.to_string())
    };

    let mut msg = Message::new(bytes::Bytes::from(body));
    for (k, v) in &req.headers {
        if !k.eq_ignore_ascii_case("authorization") {
            msg.set_header(k, v.clone());
        }
    }
    if let Some(u) = &user {
        msg.set_header("SapAuthenticatedUserName", u.clone());
    }
    let env = Env {
        directory: &live.directory,
    };
    for (kind, r) in flow.flow.explain(msg, &env) {
        match r {
            Ok(()) => checks.push(step(kind, true, Value::Null)),
            Err(e) => {
                checks.push(step(kind, false, json!(e.message)));
                return Ok(deny(checks, e.status));
            }
        }
    }
    Ok(Json(json!({
        "allowed": true,
        "status": 200,
        "flow": flow.flow.id.as_str(),
        "checks": checks,
        "note": "the receiver was not run",
    })))
}
