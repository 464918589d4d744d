//! Limits of the HTTP edge that are not a single endpoint's business: how long a client may take
//! (headers, body, idle keep-alive), how much it may send in the request head (header count and
//! size, URL length), how many connections are open at once, and how long shutdown waits for
//! requests in flight. The connection-level limits are applied by the accept loop
//! ([`crate::listen`]); the request-level ones by [`layer`], which also gives every plain-text
//! rejection of axum's extractors (an over-long body, say) our JSON error shape.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, Version, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::sync::Semaphore;
use tokio::time::Sleep;

use crate::error::ApiError;

/// Limits of both listeners; [`Limits::default`] holds the documented defaults.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Longest a client may take to send a request head (HTTP/1); a connection that has not
    /// sent a whole head by then is closed.
    pub header_timeout: Duration,
    /// Longest a request body may stall (no bytes arriving while a handler waits for them)
    /// before the request is answered 408.
    pub body_timeout: Duration,
    /// An open connection with no request in flight (until its answer is written) for this long
    /// is closed.
    pub idle_timeout: Duration,
    /// Most header lines in one request (HTTP/1: hyper answers 431 without a body; HTTP/2: 431
    /// in our JSON shape).
    pub max_headers: usize,
    /// Most bytes of a request head (HTTP/1: request line and headers; HTTP/2: the decoded
    /// header list); over it the protocol layer answers 431 without a body.
    pub max_header_bytes: usize,
    /// Longest request target (path and query) in bytes; over it: 414.
    pub max_uri_bytes: usize,
    /// How long shutdown waits for requests in flight before it closes their connections.
    pub drain_timeout: Duration,
    max_connections: usize,
    connections: Arc<Semaphore>,
}

/// The smallest header-byte limit hyper's HTTP/1 read buffer accepts.
const MIN_HEADER_BYTES: usize = 8 * 1024;

impl Default for Limits {
    fn default() -> Self {
        Self::new(10_000)
    }
}

impl Limits {
    /// The default limits with `max_connections` open connections at most (both listeners
    /// together; at least 1).
    pub fn new(max_connections: usize) -> Self {
        let max_connections = max_connections.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(120),
            max_headers: 100,
            max_header_bytes: 64 * 1024,
            max_uri_bytes: 8 * 1024,
            drain_timeout: Duration::from_secs(30),
            max_connections,
            connections: Arc::new(Semaphore::new(max_connections)),
        }
    }

    /// Most connections open at once.
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// The permits of open connections, shared by both listeners.
    pub(crate) fn connections(&self) -> Arc<Semaphore> {
        self.connections.clone()
    }

    /// The header-byte limit as hyper's HTTP/1 buffer takes it (it refuses less than 8 KiB).
    pub(crate) fn header_buffer(&self) -> usize {
        self.max_header_bytes.max(MIN_HEADER_BYTES)
    }
}

/// Wraps the application in the request-level limits.
pub(crate) fn layer(app: Router, limits: &Limits) -> Router {
    app.layer(axum::middleware::from_fn_with_state(
        Arc::new(RequestLimits::new(limits)),
        guard,
    ))
}

/// What the request-level limits check per request: by [`layer`] for the routed application,
/// and by [`RequestLimits::run`] for the sender endpoint, which the listener serves directly.
pub(crate) struct RequestLimits {
    max_headers: usize,
    max_uri_bytes: usize,
    body_timeout: Duration,
}

impl RequestLimits {
    pub(crate) fn new(limits: &Limits) -> Self {
        Self {
            max_headers: limits.max_headers,
            max_uri_bytes: limits.max_uri_bytes,
            body_timeout: limits.body_timeout,
        }
    }

    /// The answer for a request whose head is over a limit; `None` when it is within them.
    fn refuse<B>(&self, req: &axum::http::Request<B>) -> Option<Response> {
        let target = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
        if target > self.max_uri_bytes {
            let e = ApiError::new(
                StatusCode::URI_TOO_LONG,
                "uri_too_long",
                format!("the request target exceeds {} bytes", self.max_uri_bytes),
            );
            return Some(closing(e.into_response(), req.version()));
        }
        // HTTP/1 heads over the count never get here (hyper answers 431 itself); HTTP/2 ones do.
        if req.headers().len() > self.max_headers {
            let e = ApiError::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "request_header_fields_too_large",
                format!("more than {} header fields", self.max_headers),
            );
            return Some(e.into_response());
        }
        None
    }

    /// Answers `req` with `handler` within the limits: a head over them is refused, a body that
    /// stalls past the body timeout fails to read and the answer becomes a 408. The handler's
    /// answer is returned as it is otherwise (no JSON rewrite: the routed application's
    /// [`layer`] adds that).
    pub(crate) async fn run<B, H, Fut>(&self, req: axum::http::Request<B>, handler: H) -> Response
    where
        B: HttpBody<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<axum::BoxError>,
        H: FnOnce(Request) -> Fut,
        Fut: Future<Output = Response>,
    {
        if let Some(refused) = self.refuse(&req) {
            return refused;
        }
        let version = req.version();
        if req.body().is_end_stream() {
            return handler(req.map(Body::new)).await;
        }
        let expired = Arc::new(AtomicBool::new(false));
        let timeout = self.body_timeout;
        let flag = expired.clone();
        let req = req.map(|body| Body::new(TimedBody::new(body, timeout, flag)));
        let resp = handler(req).await;
        if expired.load(Ordering::Acquire) {
            return closing(timed_out(resp, timeout), version);
        }
        resp
    }
}

/// The request body stalled longer than the body timeout.
#[derive(Debug)]
pub(crate) struct BodyTimedOut;

impl std::fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body stalled longer than the body timeout")
    }
}

impl std::error::Error for BodyTimedOut {}

async fn guard(State(limits): State<Arc<RequestLimits>>, req: Request, next: Next) -> Response {
    // A flow's answer is the flow's business (a reply or a forwarded answer may well be a
    // plain-text 4xx); the sender endpoint writes its own errors in the JSON shape already.
    let flow_answer = crate::sender::is_sender_path(req.uri().path());
    let resp = limits.run(req, |req| next.run(req)).await;
    if flow_answer {
        return resp;
    }
    json_rejection(resp).await
}

/// The 408 that replaces whatever a handler answered after its body stalled; it keeps the
/// message id of a sender request so the answer and its MPL still match.
fn timed_out(original: Response, timeout: Duration) -> Response {
    let id = original
        .headers()
        .get("SAP_MessageProcessingLogID")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut e = ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
        format!(
            "the request body stalled for more than {} s",
            timeout.as_secs_f64()
        ),
    );
    if let Some(id) = &id {
        e = e.with_id(id);
    }
    let mut resp = e.into_response();
    if let Some(id) = id.and_then(|i| HeaderValue::from_str(&i).ok()) {
        resp.headers_mut().insert("SAP_MessageProcessingLogID", id);
    }
    resp
}

/// Asks an HTTP/1 client to close: the rest of its request was not read.
fn closing(mut resp: Response, version: Version) -> Response {
    if version <= Version::HTTP_11 {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// axum's own extractor rejections (body over the route's limit, a path or query that does not
/// parse) answer in plain text; they get our JSON shape here with the same status and text.
async fn json_rejection(resp: Response) -> Response {
    let status = resp.status();
    let plain = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    if !(plain && (status.is_client_error() || status.is_server_error())) {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let message: String = String::from_utf8_lossy(&text).chars().take(500).collect();
    let kind = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable_entity",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    };
    let mut out = ApiError::new(status, kind, message).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

/// A request body that fails with [`BodyTimedOut`] (and raises a flag) when the handler has
/// waited longer than the body timeout for its next frame. The clock runs only while a handler
/// waits, so a handler busy between reads never makes its client look slow.
struct TimedBody<B> {
    inner: B,
    timeout: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    waiting: bool,
    expired: Arc<AtomicBool>,
}

impl<B> TimedBody<B> {
    fn new(inner: B, timeout: Duration, expired: Arc<AtomicBool>) -> Self {
        Self {
            inner,
            timeout,
            sleep: None,
            waiting: false,
            expired,
        }
    }
}

impl<B> HttpBody for TimedBody<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        if this.expired.load(Ordering::Acquire) {
            return Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut))));
        }
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            this.waiting = false;
            return Poll::Ready(frame.map(|f| f.map_err(axum::Error::new)));
        }
        let deadline = tokio::time::Instant::now() + this.timeout;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !this.waiting {
            this.waiting = true;
            sleep.as_mut().reset(deadline);
        }
        ready!(sleep.as_mut().poll(cx));
        this.expired.store(true, Ordering::Release);
        Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::post;
    use tower::ServiceExt;

    fn app(limits: &Limits) -> Router {
        let r = Router::new()
            .route("/echo", post(|b: Bytes| async move { b }))
            .route(
                "/path/{n}",
                axum::routing::get(|_: axum::extract::Path<u32>| async {}),
            );
        layer(r, limits)
    }

    #[tokio::test]
    async fn long_target_is_414_in_json() {
        let limits = Limits::default();
        let uri = format!("/echo?q={}", "a".repeat(limits.max_uri_bytes));
        let resp = app(&limits)
            .oneshot(Request::post(uri).body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        assert_eq!(resp.status(), StatusCode::URI_TOO_LONG);
        let body = axum::body::to_bytes(resp.into_body(), 4096).await.expect("body");
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(v["error"], "uri_too_long");
    }

    #[tokio::test]
    async fn plain_text_rejection_becomes_json() {
        let resp = app(&Limits::default())
            .oneshot(Request::get("/path/x").body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        let body = axum::body::to_bytes(resp.into_body(), 4096).await.expect("body");
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(v["error"], "bad_request");
        assert!(v["messageId"].is_string());
    }

    /// One frame, then silence (the client stalls).
    struct Stall(bool);

    impl HttpBody for Stall {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
            if self.0 {
                return Poll::Pending;
            }
            self.0 = true;
            Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"abc")))))
        }
    }

    #[tokio::test]
    async fn stalled_body_is_408() {
        let limits = Limits {
            body_timeout: Duration::from_millis(200),
            ..Limits::default()
        };
        let resp = app(&limits)
            .oneshot(
                Request::post("/echo")
                    .body(Body::new(Stall(false)))
                    .expect("request"),
            )
            .await
            .expect("infallible");
        assert_eq!(resp.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(resp.headers()[header::CONNECTION], "close");
    }
}
