//! A small load generator for mutual TLS, because wrk cannot present a client certificate.
//! Each of `--connections` tasks POSTs the body to the URL until `--duration` ends, over one
//! keep-alive connection, or (`--new-connection-per-request`) over a fresh TCP + TLS connection
//! per request. Prints `RESULT <req/s> <p50 ms> <p99 ms> <errors> <non-2xx> <requests>`, the line
//! the bench script reads from wrk too.
//!
//! Usage: `bench-mtls --url https://127.0.0.1:PORT/path --ca CA.pem --identity CERT_AND_KEY.pem
//!         [--connections 64] [--duration 10] [--body FILE] [--new-connection-per-request]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

struct Args {
    host: String,
    port: u16,
    path: String,
    ca: String,
    identity: String,
    connections: usize,
    duration: Duration,
    body: Bytes,
    new_connection: bool,
}

fn args() -> Result<Args, String> {
    let mut url = None;
    let (mut ca, mut identity, mut body) = (None, None, Bytes::from_static(b"<Order/>"));
    let (mut connections, mut duration, mut new_connection) = (64usize, 10u64, false);
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--url" => url = Some(value()?),
            "--ca" => ca = Some(value()?),
            "--identity" => identity = Some(value()?),
            "--connections" => connections = value()?.parse().map_err(|e| format!("--connections: {e}"))?,
            "--duration" => duration = value()?.parse().map_err(|e| format!("--duration: {e}"))?,
            "--body" => {
                body = std::fs::read(value()?)
                    .map_err(|e| format!("--body: {e}"))?
                    .into()
            }
            "--new-connection-per-request" => new_connection = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let url = url.ok_or("--url is required")?;
    let rest = url.strip_prefix("https://").ok_or("--url must be https://")?;
    let (authority, path) = rest
        .split_once('/')
        .map(|(a, p)| (a, format!("/{p}")))
        .unwrap_or((rest, "/".into()));
    let (host, port) = authority.rsplit_once(':').ok_or("--url needs host:port")?;
    Ok(Args {
        host: host.to_owned(),
        port: port.parse().map_err(|e| format!("port: {e}"))?,
        path,
        ca: ca.ok_or("--ca is required")?,
        identity: identity.ok_or("--identity is required")?,
        connections: connections.max(1),
        duration: Duration::from_secs(duration.max(1)),
        body,
        new_connection,
    })
}

fn tls(a: &Args) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&a.ca).map_err(|e| format!("--ca: {e}"))? {
        roots
            .add(c.map_err(|e| format!("--ca: {e}"))?)
            .map_err(|e| format!("--ca: {e}"))?;
    }
    let chain = CertificateDer::pem_file_iter(&a.identity)
        .map_err(|e| format!("--identity: {e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("--identity: {e}"))?;
    let key = PrivateKeyDer::from_pem_file(&a.identity).map_err(|e| format!("--identity key: {e}"))?;
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| format!("client certificate: {e}"))?;
    Ok(Arc::new(config))
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    errors: u64,
    non_2xx: u64,
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(a: &Args, connector: &TlsConnector) -> Result<Sender, String> {
    let tcp = TcpStream::connect((a.host.as_str(), a.port))
        .await
        .map_err(|e| e.to_string())?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let name = ServerName::try_from(a.host.clone()).map_err(|e| e.to_string())?;
    let tls = connector.connect(name, tcp).await.map_err(|e| e.to_string())?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    Ok(sender)
}

async fn worker(a: Arc<Args>, connector: TlsConnector, deadline: Instant) -> Tally {
    let mut t = Tally::default();
    let mut sender: Option<Sender> = None;
    while Instant::now() < deadline {
        let start = Instant::now();
        if sender.is_none() || a.new_connection {
            match connect(&a, &connector).await {
                Ok(s) => sender = Some(s),
                Err(_) => {
                    t.errors += 1;
                    continue;
                }
            }
        }
        let Some(s) = sender.as_mut() else { continue };
        let req = Request::post(a.path.as_str())
            .header("host", a.host.as_str())
            .header("content-type", "application/xml")
            .header(
                "connection",
                if a.new_connection { "close" } else { "keep-alive" },
            )
            .body(Full::new(a.body.clone()));
        let Ok(req) = req else {
            t.errors += 1;
            continue;
        };
        match s.send_request(req).await {
            Ok(resp) => {
                let ok = resp.status().is_success();
                let _ = resp.into_body().collect().await;
                t.latencies_us
                    .push(start.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                if !ok {
                    t.non_2xx += 1;
                }
            }
            Err(_) => {
                t.errors += 1;
                sender = None;
            }
        }
    }
    t
}

#[tokio::main]
async fn main() {
    let a = match args() {
        Ok(a) => Arc::new(a),
        Err(e) => {
            eprintln!("bench-mtls: {e}");
            std::process::exit(2);
        }
    };
    let connector = match tls(&a) {
        Ok(c) => TlsConnector::from(c),
        Err(e) => {
            eprintln!("bench-mtls: {e}");
            std::process::exit(2);
        }
    };
    let started = Instant::now();
    let deadline = started + a.duration;
    let tasks: Vec<_> = (0..a.connections)
        .map(|_| tokio::spawn(worker(a.clone(), connector.clone(), deadline)))
        .collect();
    let mut all = Tally::default();
    for t in tasks {
        if let Ok(t) = t.await {
            all.latencies_us.extend(t.latencies_us);
            all.errors += t.errors;
            all.non_2xx += t.non_2xx;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.latencies_us.sort_unstable();
    let pct = |p: f64| -> f64 {
        if all.latencies_us.is_empty() {
            return 0.0;
        }
        let i = ((all.latencies_us.len() as f64 * p).ceil() as usize).clamp(1, all.latencies_us.len()) - 1;
        f64::from(all.latencies_us[i]) / 1000.0
    };
    println!(
        "RESULT {:.1} {:.3} {:.3} {} {} {}",
        all.latencies_us.len() as f64 / elapsed,
        pct(0.50),
        pct(0.99),
        all.errors,
        all.non_2xx,
        all.latencies_us.len()
    );
}
