//! The limit server for benchmarks: a bare hyper 1.x server on the same tokio runtime settings as
//! Postern that drains the request body and answers `200 ok`. Whatever Postern does per request
//! (routing, authentication, role check, logging) shows up as the distance to this server.
//!
//! Usage: `bench-bare --addr 127.0.0.1:PORT`

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

async fn answer(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    // Read the body like a real endpoint must, so both servers do the same I/O.
    let _ = req.into_body().collect().await;
    Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
}

fn addr_from_args() -> Result<SocketAddr, String> {
    let mut args = std::env::args().skip(1);
    match (args.next().as_deref(), args.next()) {
        (Some("--addr"), Some(a)) => a.parse().map_err(|e| format!("--addr {a}: {e}")),
        _ => Err("usage: bench-bare --addr 127.0.0.1:PORT".into()),
    }
}

#[tokio::main]
async fn main() {
    let addr = match addr_from_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let listener = match TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("binding {addr}: {e}");
            std::process::exit(1);
        }
    };
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tcp), service_fn(answer))
                .await;
        });
    }
}
