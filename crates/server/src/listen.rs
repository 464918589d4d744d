//! The listeners: one accept loop (hyper-util) for plain HTTP and for TLS (tokio-rustls), so both
//! apply the same [`Limits`]: a cap on open connections (further ones wait in the kernel's
//! backlog), a bounded TLS handshake, a header timeout, header count and size, an idle timeout,
//! and a drain on shutdown during which requests in flight finish. HTTP/2 and HTTP/1.1 on both
//! (by ALPN on TLS, by the connection preface on plain HTTP). The peer address (and on TLS the
//! client certificate) reaches handlers as request extensions.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::limits::{Limits, RequestLimits};
use crate::state::AppState;
use crate::tls::PeerCertificate;

/// Longest a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; further connections wait in the kernel's backlog.
const MAX_HANDSHAKES: usize = 1024;

/// Serves the app over plain HTTP on `listener` until `shutdown` resolves; requests in flight
/// then finish (bounded by the drain timeout).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    accept_loop(listener, state, limits, false, shutdown).await
}

/// Serves the app over TLS on `listener` until `shutdown` resolves; requests in flight then
/// finish (bounded by the drain timeout).
pub async fn serve_tls(
    listener: TcpListener,
    state: AppState,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    accept_loop(listener, state, limits, true, shutdown).await
}

/// What one connection needs besides its socket.
#[derive(Clone)]
struct Shared {
    app: Router,
    /// The sender endpoint's way past the router: the state and the request-level limits.
    state: AppState,
    limits: Arc<RequestLimits>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    idle_timeout: Duration,
}

async fn accept_loop(
    listener: TcpListener,
    state: AppState,
    limits: Limits,
    tls: bool,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let shared = Shared {
        app: crate::limits::layer(crate::app(state.clone()), &limits),
        state: state.clone(),
        limits: Arc::new(RequestLimits::new(&limits)),
        builder: Arc::new(builder(&limits)),
        idle_timeout: limits.idle_timeout,
    };
    // Every connection holds a receiver: `true` asks it to finish; the drain ends when all
    // receivers are gone.
    let (stop, stopping) = watch::channel(false);
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    let connections = limits.connections();
    tokio::pin!(shutdown);
    loop {
        // A free connection slot before accepting: at the cap, new connections wait in the
        // kernel's backlog instead of costing memory and file descriptors here.
        let slot = tokio::select! {
            slot = connections.clone().acquire_owned() => match slot {
                Ok(s) => s,
                Err(_) => break,
            },
            _ = &mut shutdown => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let (shared, watcher) = (shared.clone(), stopping.clone());
        if !tls {
            tokio::spawn(async move {
                let _slot = slot;
                connection(tcp, peer, None, shared, watcher).await;
            });
            continue;
        }
        let Ok(handshake) = handshakes.clone().acquire_owned().await else {
            break;
        };
        // The configuration of this moment: certificate and trust-store changes apply to new
        // connections without a restart.
        let Some(config) = state.live().tls.clone() else {
            tracing::error!("HTTPS listener without a TLS configuration; closing the connection");
            continue;
        };
        tokio::spawn(async move {
            let _slot = slot;
            let Some((stream, cert)) = accept_tls(TlsAcceptor::from(config), tcp, peer).await else {
                return;
            };
            drop(handshake);
            connection(stream, peer, Some(cert), shared, watcher).await;
        });
    }
    // Closed now, not after the drain: new connections are refused instead of waiting in a
    // backlog nobody reads.
    drop(listener);
    drop(stopping);
    let _ = stop.send(true);
    if tokio::time::timeout(limits.drain_timeout, stop.closed())
        .await
        .is_err()
    {
        tracing::warn!(tls, "some connections were still open after the drain timeout");
    }
    Ok(())
}

/// The HTTP/1 and HTTP/2 settings of every connection.
fn builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Over max_headers lines, or a head larger than the read buffer, hyper answers 431 itself
    // (without a body) and closes the connection. The header timer also runs while a
    // keep-alive connection waits for its next request.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_headers(limits.max_headers)
        .max_buf_size(limits.header_buffer());
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    builder
}

/// The TLS handshake, bounded in time; the stream and the client certificate (when one was
/// presented).
async fn accept_tls(
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
) -> Option<(
    tokio_rustls::server::TlsStream<TcpStream>,
    Option<PeerCertificate>,
)> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => {
            let cert = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| PeerCertificate::read(c.as_ref()));
            Some((tls, cert))
        }
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            None
        }
    }
}

/// Serves one connection until it ends, the drain ends it, or it has been idle too long.
/// `cert` is `Some` on TLS connections (holding the client certificate, if any).
async fn connection<IO>(
    io: IO,
    peer: SocketAddr,
    cert: Option<Option<PeerCertificate>>,
    shared: Shared,
    watcher: watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::new());
    let (app, state, limits) = (shared.app, shared.state, shared.limits);
    let requests = activity.clone();
    let svc = tower::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        if let Some(cert) = &cert {
            req.extensions_mut().insert(crate::tls::OverTls);
            if let Some(c) = cert {
                req.extensions_mut().insert(c.clone());
            }
        }
        let in_flight = requests.enter();
        // Flow messages go straight to the sender endpoint under the same request limits as
        // the router applies; everything else is routed.
        let direct = crate::sender::is_sender_path(req.uri().path());
        let (app, state, limits) = (app.clone(), state.clone(), limits.clone());
        async move {
            // Both boxed: the sender's and the router's futures are large, and hyper moves the
            // service's future into place (a copy of all of it, whichever branch runs, when
            // either is held inline).
            let resp = if direct {
                Box::pin(limits.run(req, |req| async move { crate::sender::serve(&state, req).await })).await
            } else {
                Box::pin(app.oneshot(req)).await?
            };
            // In flight until the answer's body is written (or dropped), not only until the
            // handler returns: a long download is not idle.
            Ok::<_, std::convert::Infallible>(resp.map(|body| {
                axum::body::Body::new(Answer {
                    body,
                    _in_flight: in_flight,
                })
            }))
        }
    });
    let conn = shared
        .builder
        .serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(svc));
    tokio::pin!(conn);
    let mut stop = watcher;
    let mut draining = false;
    // An idle connection asked to close gets this long to do so cleanly (TLS close_notify,
    // HTTP/2 GOAWAY) before it is dropped, so no client can hold it open by not cooperating.
    let mut give_up: Option<tokio::time::Instant> = None;
    loop {
        let deadline = give_up.unwrap_or_else(|| tokio::time::Instant::now() + shared.idle_timeout);
        tokio::select! {
            ended = conn.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = stop.wait_for(|s| *s), if !draining && give_up.is_none() => {
                // Requests in flight finish; the accept loop bounds the drain.
                conn.as_mut().graceful_shutdown();
                draining = true;
            }
            () = activity.idle(shared.idle_timeout), if !draining && give_up.is_none() => {
                tracing::debug!(%peer, "closing an idle connection");
                conn.as_mut().graceful_shutdown();
                give_up = Some(tokio::time::Instant::now() + shared.idle_timeout);
            }
            () = tokio::time::sleep_until(deadline), if give_up.is_some() => {
                tracing::debug!(%peer, "dropped an idle connection that did not close");
                return;
            }
        }
    }
}

/// When a connection last finished a request, and how many of its requests are in flight.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn enter(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    /// Resolves once no request has been in flight for `timeout`. Bytes alone (a head sent
    /// slowly, HTTP/2 pings) do not keep a connection open; a request being answered does,
    /// however long it takes.
    async fn idle(&self, timeout: Duration) {
        loop {
            let last = Duration::from_millis(self.last_ms.load(Ordering::Acquire));
            let quiet = self.start.elapsed().saturating_sub(last);
            let busy = self.in_flight.load(Ordering::Acquire) > 0;
            if !busy && quiet >= timeout {
                return;
            }
            let wait = if busy { timeout } else { timeout - quiet };
            tokio::time::sleep(wait.max(Duration::from_millis(10))).await;
        }
    }
}

/// A request being answered; the idle clock restarts when it ends.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let ms = u64::try_from(self.0.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.last_ms.store(ms, Ordering::Release);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An answer's body that keeps its request in flight until it is written or dropped.
struct Answer {
    body: axum::body::Body,
    /// Held for its `Drop`.
    _in_flight: InFlight,
}

impl hyper::body::Body for Answer {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}
