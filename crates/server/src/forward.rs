//! Streaming a sender's body to a back end and the back end's answer back, for flows whose steps
//! and `http` receiver do not read the body: a 40 MiB message then passes through in small
//! chunks instead of being held whole. The flow's body limit is counted as the body streams.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::body::Body;
use hyper::body::{Body as HttpBody, Frame, SizeHint};

/// The sender's body on its way to the back end, cut off (with an error) past `limit` bytes.
/// The `Mutex` only makes the body `Sync`, as the HTTP client asks; it is never contended
/// (one task polls it).
pub(crate) struct SenderBody {
    inner: std::sync::Mutex<Body>,
    seen: u64,
    limit: u64,
    over: Arc<AtomicBool>,
}

/// The body went over the flow's limit.
#[derive(Debug)]
pub(crate) struct OverLimit;

impl std::fmt::Display for OverLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("request body over the flow's limit")
    }
}

impl std::error::Error for OverLimit {}

impl SenderBody {
    /// Wraps a body; the flag is set when it goes over `limit`.
    pub(crate) fn new(body: Body, limit: u64) -> (Self, Arc<AtomicBool>) {
        let over = Arc::new(AtomicBool::new(false));
        let body = Self {
            inner: std::sync::Mutex::new(body),
            seen: 0,
            limit,
            over: over.clone(),
        };
        (body, over)
    }
}

impl HttpBody for SenderBody {
    type Data = bytes::Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let inner = this
            .inner
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.seen += data.len() as u64;
                    if this.seen > this.limit {
                        this.over.store(true, Ordering::Relaxed);
                        return Poll::Ready(Some(Err(Box::new(OverLimit))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Box::new(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self.inner.lock() {
            Ok(b) => b.size_hint(),
            Err(_) => SizeHint::default(),
        }
    }
}

/// The back end's answer body for the sender, cut off past `max` bytes.
pub(crate) fn answer_body(resp: reqwest::Response, max: usize) -> Body {
    Body::new(http_body_util::Limited::new(reqwest::Body::from(resp), max))
}
