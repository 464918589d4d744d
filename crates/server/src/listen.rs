//! The HTTPS listener: our own accept loop (tokio-rustls + hyper-util), so a slow TLS handshake
//! never blocks other clients, every handshake is bounded in time and in number, and the peer
//! address reaches handlers like on the plain listener. TLS 1.2 and 1.3 only; HTTP/2 and
//! HTTP/1.1 by ALPN.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::state::AppState;
use crate::tls::PeerCertificate;

/// Longest a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; further connections wait in the kernel's backlog.
const MAX_HANDSHAKES: usize = 1024;
/// Longest a client may take to send request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long shutdown waits for open connections to finish their requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves the app over TLS on `listener` until `shutdown` resolves; open connections then
/// finish their requests (bounded by a drain timeout).
pub async fn serve_tls(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let app = crate::app(state.clone());
    let graceful = GracefulShutdown::new();
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    tokio::pin!(shutdown);
    loop {
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
        let Ok(permit) = handshakes.clone().acquire_owned().await else {
            break;
        };
        // The configuration of this moment: certificate and trust-store changes apply to new
        // connections without a restart.
        let Some(config) = state.live().tls.clone() else {
            tracing::error!("HTTPS listener without a TLS configuration; closing the connection");
            continue;
        };
        let acceptor = TlsAcceptor::from(config);
        let (app, watcher) = (app.clone(), graceful.watcher());
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            drop(permit);
            let cert = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| PeerCertificate::read(c.as_ref()));
            let svc = app.map_request(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req.extensions_mut().insert(crate::tls::OverTls);
                if let Some(c) = &cert {
                    req.extensions_mut().insert(c.clone());
                }
                req
            });
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT);
            builder.http2().max_concurrent_streams(256);
            let conn =
                builder.serve_connection_with_upgrades(TokioIo::new(tls), TowerToHyperService::new(svc));
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some TLS connections were still open after the drain timeout");
    }
    Ok(())
}
