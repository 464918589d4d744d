//! The sender endpoint `/http/<address>` (SAP's HTTPS sender adapter): route to the deployed
//! flow, authenticate, check the channel's user role, bound the body, run the flow, answer, and
//! log the message (MPL) off the request path. Everything it reads comes from the live snapshot.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use http_body_util::{BodyExt, Limited};
use postern_auth::AuthFailure;
use postern_auth::authz::require_any_or_partner;
use postern_core::mpl::{Denial, Mpl, MplStatus};
use postern_flow::receiver::{HttpReceiver, Outgoing, QueueReceiver};
use postern_flow::step::StepError;
use postern_flow::table::DeployedFlow;
use postern_flow::{Env, Message, Next, Reply};
use postern_store::queue::{Enqueued, NewQueued, QueueStatus, QueuedMessage};

use crate::error::{ApiError, new_guid};
use crate::extract::{auth_failed, now_ms};
use crate::state::AppState;
use crate::tls::PeerCertificate;

/// The header carrying the authenticated user into the flow.
pub(crate) const USER_HEADER: &str = "SapAuthenticatedUserName";
/// The response header naming the message's MPL.
pub(crate) const MPL_HEADER: &str = "SAP_MessageProcessingLogID";

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/http/{*path}", any(handle))
}

/// Whether the listener hands a request with this path to [`serve`] directly, past the router
/// (the hot path: no routing table and no middleware stack in between).
pub(crate) fn is_sender_path(path: &str) -> bool {
    path.starts_with("/http/")
}

async fn handle(State(state): State<AppState>, req: Request) -> Response {
    serve(&state, req).await
}

/// Answers a request to `/http/<address>`; the request-level limits are the caller's.
pub(crate) async fn serve(state: &AppState, req: Request) -> Response {
    let started = std::time::Instant::now();
    let (parts, body) = req.into_parts();
    let live = state.live_full();
    let path = parts.uri.path().strip_prefix("/http").unwrap_or("");
    let Some(flow) = live.flows.route(path).cloned() else {
        discard(body).await;
        state.metrics().sender_status(404);
        return ApiError::not_found("no deployed flow serves this address").into_response();
    };
    let resp = process(state, live, flow.clone(), parts, body).await;
    let status = resp.status().as_u16();
    state.metrics().sender_status(status);
    flow.stats.record(status, started.elapsed());
    resp
}

async fn process(
    state: &AppState,
    live: Arc<crate::state::Live>,
    flow: Arc<DeployedFlow>,
    parts: axum::http::request::Parts,
    body: Body,
) -> Response {
    let path = parts.uri.path().strip_prefix("/http").unwrap_or("");
    if parts.method != Method::POST && parts.method != Method::PUT {
        discard(body).await;
        return ApiError::method_not_allowed("POST, PUT").into_response();
    }
    let (user, mut log) = if flow.flow.certificates.is_empty() {
        let principal = match crate::extract::authenticate_guarded(
            state,
            &live,
            &parts.headers,
            &parts.extensions,
            parts.uri.path(),
        )
        .await
        {
            Ok(p) => p,
            Err(answer) => {
                discard(body).await;
                return answer.into_response();
            }
        };
        if let Err(wait) = state
            .rate()
            .check(&live.security, &principal, std::time::Instant::now())
        {
            state
                .metrics()
                .rate_limited
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            discard(body).await;
            return ApiError::rate_limited(wait).into_response();
        }
        let mut log = MplDraft::start(&flow, &principal.name);
        if let Err(missing) = require_any_or_partner(&principal, &flow.flow.roles, |u| {
            live.directory.is_authorized_user(u)
        }) {
            let message = format!("{} is not authorized for this flow: {missing}", principal.name);
            let denial = Denial {
                authenticator: Some(principal.kind.authenticator().into()),
                required_roles: missing.required.iter().map(|r| r.to_string()).collect(),
                ..Denial::new("role", "missing_role")
            };
            discard(body).await;
            return log.denied(state, ApiError::forbidden(message), denial).await;
        }
        (Some(principal.name), log)
    } else {
        // Client Certificate authorization: the subject and issuer DNs of the connection's
        // certificate must match an allowed pair. The user, if the certificate is bound to a key
        // or mapped to a user, reaches the flow; an unbound certificate sets none (as in SAP).
        let Some(cert) = parts.extensions.get::<PeerCertificate>() else {
            let source = crate::extract::peer_of(&parts.extensions);
            let answer = auth_failed(state, AuthFailure::Missing, &source, parts.uri.path());
            discard(body).await;
            return answer.into_response();
        };
        let authenticated = state
            .authn()
            .certificate(&live.security, &cert.sha256, now_ms())
            .ok();
        let authenticator = authenticated.as_ref().map(|p| p.kind.authenticator().to_owned());
        let user = authenticated.map(|p| p.name);
        let shown = user
            .clone()
            .unwrap_or_else(|| Arc::from(cert.subject_text.as_ref()));
        let mut log = MplDraft::start(&flow, &shown);
        let allowed = match (&cert.subject, &cert.issuer) {
            (Some(s), Some(i)) => flow.flow.certificates.iter().any(|(fs, fi)| fs == s && fi == i),
            _ => false,
        };
        if !allowed {
            let message = format!(
                "the client certificate (subject {}, issuer {}) is not allowed for this flow",
                cert.subject_text, cert.issuer_text
            );
            let denial = Denial {
                authenticator,
                subject: Some(cert.subject_text.to_string()),
                issuer: Some(cert.issuer_text.to_string()),
                ..Denial::new("client-certificate", "certificate_not_allowed")
            };
            discard(body).await;
            return log.denied(state, ApiError::forbidden(message), denial).await;
        }
        (user, log)
    };
    drop(live);
    let limit = flow.flow.max_body_bytes;
    if let Some(len) = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        && len > limit
    {
        return log.failed(state, ApiError::too_large(limit)).await;
    }
    let mut msg = Message::new(bytes::Bytes::new());
    copy_headers(&parts.headers, &mut msg);
    if let Some(user) = &user {
        msg.set_header(USER_HEADER, user.as_ref());
    }
    if flow.flow.streams() {
        set_camel_headers(&mut msg, &parts, path);
        return stream_through(state, &flow, log, msg, body, limit).await;
    }
    let mut body = Limited::new(body, limit as usize);
    // A flow whose first step can refuse from the start of the body (a partner check on a header
    // or an EDI envelope) refuses before the rest of a large message is read.
    let mut head = bytes::BytesMut::new();
    if let Some(prefix) = flow.flow.precheck_prefix() {
        while head.len() < prefix {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        head.extend_from_slice(data);
                    }
                }
                Some(Err(e)) => return log.failed(state, body_error(&*e, limit)).await,
                None => break,
            }
        }
        msg.body = head.clone().freeze();
        let refused = {
            let live = state.live();
            let env = Env {
                directory: &live.directory,
            };
            flow.flow.precheck(&msg, &env)
        };
        if let Err(e) = refused {
            discard(body).await;
            return log.step_failed(state, e, StatusCode::FORBIDDEN).await;
        }
    }
    msg.body = match body.collect().await {
        Ok(rest) if head.is_empty() => rest.to_bytes(),
        Ok(rest) => {
            head.extend_from_slice(&rest.to_bytes());
            head.freeze()
        }
        Err(e) => return log.failed(state, body_error(&*e, limit)).await,
    };
    set_camel_headers(&mut msg, &parts, path);
    let processed = run_steps(state, &flow, msg);
    log.partner = processed.partner;
    let next = match processed.outcome {
        Ok(next) => next,
        Err(e) => {
            return log.step_failed(state, e, StatusCode::INTERNAL_SERVER_ERROR).await;
        }
    };
    match next {
        Next::Reply(reply) => {
            let resp = reply_response(&flow, reply);
            log.completed(state, resp).await
        }
        Next::Forward(receiver, request) => {
            let guid = log.guid.clone();
            match receiver.send(&request, &[(MPL_HEADER, guid.as_str())]).await {
                Ok(reply) if reply.status < 400 => {
                    let resp = reply_response(&flow, reply);
                    log.completed(state, resp).await
                }
                // The back end refused the message: the sender gets its answer, the MPL says so.
                Ok(reply) => {
                    let error = format!("the receiver answered {}", reply.status);
                    let resp = reply_response(&flow, reply);
                    log.failed_with(state, resp, error).await
                }
                Err(e) => {
                    let e = e.to_step_error();
                    log.step_failed(state, e, StatusCode::BAD_GATEWAY).await
                }
            }
        }
        Next::Enqueue {
            queue,
            request,
            idempotency_key,
        } => enqueue(state, log, queue, request, idempotency_key).await,
    }
}

/// The longest idempotency key accepted.
const MAX_IDEMPOTENCY_KEY: usize = 200;

/// Commits the message to its queue and answers 202 only then; a re-sent message with a key
/// already seen within the window is answered with the first one's id and not stored again.
async fn enqueue(
    state: &AppState,
    mut log: MplDraft,
    queue: &QueueReceiver,
    request: Outgoing,
    idempotency_key: Option<String>,
) -> Response {
    if idempotency_key
        .as_ref()
        .is_some_and(|k| k.is_empty() || k.len() > MAX_IDEMPOTENCY_KEY)
    {
        let message = format!("the idempotency key must be 1 to {MAX_IDEMPOTENCY_KEY} characters");
        return log.failed(state, ApiError::bad_request(message)).await;
    }
    let now = now_ms();
    let partner = log.partner.clone().unwrap_or_default();
    let window = queue
        .idempotency
        .as_ref()
        .map(|(_, w)| w.as_millis() as i64)
        .unwrap_or(0);
    let new = NewQueued {
        message: QueuedMessage {
            guid: log.guid.clone(),
            queue: queue.name.clone(),
            flow_id: log.flow_id.clone(),
            partner: partner.clone(),
            user: log.user.clone(),
            ordered: queue.ordered,
            method: request.method,
            url: request.url,
            headers: request.headers,
            body: request.body.to_vec(),
            status: QueueStatus::Queued,
            attempts: 0,
            next_attempt_at: now,
            created_at: now,
            updated_at: now,
            last_error: None,
            last_http_status: None,
            idempotency_key,
        },
        mpl: Mpl {
            guid: log.guid.clone(),
            flow_id: log.flow_id.clone(),
            status: MplStatus::Processing,
            user: log.user.clone(),
            sender: partner,
            receiver: String::new(),
            log_start: log.start,
            log_end: now,
            http_status: 202,
            error: None,
            denial: None,
        },
        idempotent_since: now - window,
    };
    let (guid, replay) = match state.enqueuer().enqueue(new).await {
        Ok(Enqueued::Stored) => (log.guid.clone(), None),
        Ok(Enqueued::Duplicate { guid, status }) => (guid, Some(status)),
        Err(e) => {
            tracing::warn!(flow = %log.flow_id, error = %e, "message not stored in its queue");
            let error = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the message could not be stored and was not accepted; send it again later",
            );
            return log.failed(state, error).await;
        }
    };
    let mut resp = StatusCode::ACCEPTED.into_response();
    set_mpl_header(&mut resp, &guid);
    if let Some(status) = replay {
        let h = resp.headers_mut();
        h.insert("postern-idempotent-replay", HeaderValue::from_static("true"));
        h.insert("postern-queue-status", HeaderValue::from_static(status.as_str()));
    }
    resp
}

/// Runs the steps on the headers alone and streams the body to the back end and its answer
/// back (see [`crate::forward`]); only for flows that [stream](postern_flow::Flow::streams).
async fn stream_through(
    state: &AppState,
    flow: &Arc<DeployedFlow>,
    mut log: MplDraft,
    msg: Message,
    body: Body,
    limit: u64,
) -> Response {
    let processed = run_steps(state, flow, msg);
    log.partner = processed.partner;
    let (receiver, request) = match processed.outcome {
        Ok(Next::Forward(receiver, request)) => (receiver, request),
        Ok(_) => {
            discard(body).await;
            let e = ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "flow_error",
                "flow cannot stream",
            );
            return log.failed(state, e).await;
        }
        Err(e) => {
            discard(body).await;
            return log.step_failed(state, e, StatusCode::INTERNAL_SERVER_ERROR).await;
        }
    };
    let (body, over) = crate::forward::SenderBody::new(body, limit);
    let guid = log.guid.clone();
    let sent = receiver
        .send_streaming(
            &request,
            reqwest::Body::wrap(body),
            &[(MPL_HEADER, guid.as_str())],
        )
        .await;
    match sent {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let (headers, content_type) = HttpReceiver::returned_headers(resp.headers());
            let body = crate::forward::answer_body(resp, receiver.max_response());
            let answer = answer(flow, status, &headers, content_type, body);
            if status < 400 {
                log.completed(state, answer).await
            } else {
                log.failed_with(state, answer, format!("the receiver answered {status}"))
                    .await
            }
        }
        Err(_) if over.load(std::sync::atomic::Ordering::Relaxed) => {
            log.failed(state, ApiError::too_large(limit)).await
        }
        Err(e) => {
            let e = e.to_step_error();
            log.step_failed(state, e, StatusCode::BAD_GATEWAY).await
        }
    }
}

/// Runs a flow's steps against the Partner Directory of this moment.
fn run_steps<'f>(state: &AppState, flow: &'f DeployedFlow, msg: Message) -> postern_flow::Processed<'f> {
    let live = state.live();
    let env = Env {
        directory: &live.directory,
    };
    flow.flow.process(msg, &env)
}

fn set_camel_headers(msg: &mut Message, parts: &axum::http::request::Parts, path: &str) {
    msg.set_header("CamelHttpMethod", parts.method.as_str());
    msg.set_header("CamelHttpPath", path);
    if let Some(q) = parts.uri.query() {
        msg.set_header("CamelHttpQuery", q);
    }
}

/// The sender's answer from a flow's reply (or a back end's answer).
fn reply_response(flow: &DeployedFlow, reply: Reply) -> Response {
    answer(
        flow,
        reply.status,
        &reply.headers,
        reply.content_type,
        Body::from(reply.body),
    )
}

/// An answer with a status, headers (invalid ones left out and logged), content type and body.
fn answer(
    flow: &DeployedFlow,
    status: u16,
    headers: &[(String, String)],
    content_type: Option<String>,
    body: Body,
) -> Response {
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let h = resp.headers_mut();
    for (name, value) in headers {
        match (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) {
            (Ok(n), Ok(v)) => {
                h.append(n, v);
            }
            _ => {
                tracing::warn!(flow = %flow.flow.id, header = %name, "reply header value is not valid HTTP; left out")
            }
        }
    }
    if let Some(ct) = content_type.and_then(|c| HeaderValue::try_from(c).ok()) {
        h.insert(CONTENT_TYPE, ct);
    }
    resp
}

/// The answer for a body that could not be read: over the flow's limit, or broken off.
fn body_error(e: &(dyn std::error::Error + Send + Sync + 'static), limit: u64) -> ApiError {
    if e.is::<http_body_util::LengthLimitError>() {
        return ApiError::too_large(limit);
    }
    // A body that stalled past the body timeout (the limits layer's error, somewhere in the chain).
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<crate::limits::BodyTimedOut>() {
            return ApiError::new(StatusCode::REQUEST_TIMEOUT, "request_timeout", s.to_string());
        }
        source = s.source();
    }
    ApiError::bad_request("the request body could not be read")
}

/// Most of an unread request body read and dropped before an early error answer.
const DISCARD_LIMIT: usize = 64 * 1024;
/// Longest time spent reading it.
const DISCARD_TIME: std::time::Duration = std::time::Duration::from_secs(1);

/// Reads and drops a small request body before an early answer. Answering without reading makes
/// HTTP/2 reset the stream and HTTP/1.1 close the connection, which many clients report as an
/// error instead of showing the 401/403/404. Bounded in size and time, so it cannot be used to
/// hold the server.
async fn discard<B>(mut body: B)
where
    B: axum::body::HttpBody<Data = bytes::Bytes> + Unpin,
{
    let drain = async {
        let mut seen = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            if let Some(data) = frame.data_ref() {
                seen += data.len();
                if seen > DISCARD_LIMIT {
                    break;
                }
            }
        }
    };
    let _ = tokio::time::timeout(DISCARD_TIME, drain).await;
}

/// Request headers that never reach a flow: credentials, hop-by-hop headers, and headers only
/// the runtime may set (SAP removes `Camel*` and sets `SapAuthenticatedUserName` itself).
fn copy_headers(headers: &HeaderMap, msg: &mut Message) {
    const DROP: [&str; 10] = [
        "authorization",
        "proxy-authorization",
        "cookie",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "sapauthenticatedusername",
    ];
    for (name, value) in headers {
        let n = name.as_str();
        if DROP.contains(&n) || n.starts_with("camel") {
            continue;
        }
        if let Ok(v) = value.to_str() {
            msg.set_header(n, v);
        }
    }
}

/// The MPL of one message, finished when the answer is known.
struct MplDraft {
    guid: String,
    flow_id: String,
    user: String,
    start: i64,
    /// The partner a partner check established; the MPL's `Sender`.
    partner: Option<String>,
    /// Whether a successful message is logged (`log_level: info`).
    log_successes: bool,
    /// Why the message was refused, when a check refused it.
    denial: Option<Denial>,
}

impl MplDraft {
    fn start(flow: &Arc<DeployedFlow>, user: &str) -> Self {
        Self {
            guid: new_guid(),
            flow_id: flow.flow.id.to_string(),
            user: user.to_owned(),
            start: now_ms(),
            partner: None,
            log_successes: flow.flow.log_successes,
            denial: None,
        }
    }

    async fn failed(&mut self, state: &AppState, error: ApiError) -> Response {
        let status = error.status.as_u16();
        self.finish(state, MplStatus::Failed, status, Some(error.message.clone()))
            .await;
        let guid = self.guid.clone();
        let mut resp = error.with_id(&guid).into_response();
        set_mpl_header(&mut resp, &guid);
        resp
    }

    /// Answers a refusal by a check and logs it with its decision trace.
    async fn denied(&mut self, state: &AppState, error: ApiError, denial: Denial) -> Response {
        self.denial = Some(denial);
        self.failed(state, error).await
    }

    /// Answers a step's or receiver's error (`status` when its own is not a valid code), with
    /// the step's decision trace when it refused the message.
    async fn step_failed(&mut self, state: &AppState, e: StepError, status: StatusCode) -> Response {
        let status = StatusCode::from_u16(e.status).unwrap_or(status);
        self.denial = e.denial.map(|d| *d);
        self.failed(state, ApiError::new(status, e.kind, e.message)).await
    }

    /// Hands on an answer that is a failure all the same (a back end's 4xx).
    async fn failed_with(&mut self, state: &AppState, mut resp: Response, error: String) -> Response {
        self.finish(state, MplStatus::Failed, resp.status().as_u16(), Some(error))
            .await;
        set_mpl_header(&mut resp, &self.guid);
        resp
    }

    async fn completed(&mut self, state: &AppState, mut resp: Response) -> Response {
        self.finish(state, MplStatus::Completed, resp.status().as_u16(), None)
            .await;
        set_mpl_header(&mut resp, &self.guid);
        resp
    }

    async fn finish(&mut self, state: &AppState, status: MplStatus, http_status: u16, error: Option<String>) {
        if status == MplStatus::Completed && !self.log_successes {
            return;
        }
        let entry = Mpl {
            guid: self.guid.clone(),
            flow_id: std::mem::take(&mut self.flow_id),
            status,
            user: std::mem::take(&mut self.user),
            sender: self.partner.take().unwrap_or_default(),
            receiver: String::new(),
            log_start: self.start,
            log_end: now_ms(),
            http_status,
            error,
            denial: self.denial.take(),
        };
        state.mpl().send(entry).await;
    }
}

fn set_mpl_header(resp: &mut Response, guid: &str) {
    if let Ok(v) = HeaderValue::try_from(guid) {
        resp.headers_mut().insert(MPL_HEADER, v);
    }
}
