//! `/connectivity-tests/tls`: SAP's *Connectivity Test (TLS)*. Connects to a host, reports the
//! handshake (protocol, cipher suite) and the server's certificate chain, and hands the chain out
//! as a `.zip` of `.cer` files (DER) with the root marked, so a sender can import the root to
//! trust that server (pointed at Postern, it yields Postern's CA).

use std::io::Write;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use postern_auth::cert::{CertInfo, hex, info};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::time;
use crate::error::ApiError;
use crate::extract::{Admin, ApiJson};
use crate::state::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/connectivity-tests/tls", post(test))
        .route("/connectivity-tests/tls/download", post(download))
}

/// Default time for connecting plus the handshake.
const DEFAULT_TIMEOUT_SECS: u64 = 10;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct TestBody {
    pub(crate) host: String,
    #[serde(default)]
    pub(crate) port: Option<u16>,
    #[serde(default)]
    pub(crate) validate_server_certificate: Option<bool>,
    #[serde(default)]
    pub(crate) timeout_seconds: Option<u64>,
}

/// What the handshake showed.
pub(crate) struct Probe {
    pub(crate) protocol: String,
    pub(crate) cipher: String,
    pub(crate) chain: Vec<CertInfo>,
}

async fn test(
    State(s): State<AppState>,
    _a: Admin,
    ApiJson(body): ApiJson<TestBody>,
) -> Result<Json<Value>, ApiError> {
    let (host, port, validate, timeout) = check(&body)?;
    let base = json!({ "host": host, "port": port, "validateServerCertificate": validate });
    let mut out = base;
    match probe(&s, &host, port, validate, timeout).await {
        Ok(p) => {
            out["success"] = json!(true);
            out["protocol"] = json!(p.protocol);
            out["cipherSuite"] = json!(p.cipher);
            out["certificates"] =
                Value::Array(p.chain.iter().enumerate().map(|(i, c)| cert_view(i, c)).collect());
        }
        Err(e) => {
            out["success"] = json!(false);
            out["error"] = json!(e);
        }
    }
    Ok(Json(out))
}

async fn download(
    State(s): State<AppState>,
    _a: Admin,
    ApiJson(body): ApiJson<TestBody>,
) -> Result<Response, ApiError> {
    let (host, port, validate, timeout) = check(&body)?;
    let p = probe(&s, &host, port, validate, timeout)
        .await
        .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, "connectivity_failed", e))?;
    let zip = zip_chain(&p.chain).map_err(|e| ApiError::from_domain(postern_core::Error::Internal(e)))?;
    let mut resp = zip.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/zip"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{}.zip\"", safe_name(&host))) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

/// Host names and IP addresses only: no scheme, path, port or user part.
pub(crate) fn check(body: &TestBody) -> Result<(String, u16, bool, Duration), ApiError> {
    let host = body.host.trim();
    let ip = host.parse::<IpAddr>().is_ok();
    let name_ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
        });
    if !(ip || name_ok) {
        return Err(ApiError::bad_request(
            "host: give a host name or IP address only (no scheme, path or port), e.g. partner.example.com",
        ));
    }
    let port = body.port.unwrap_or(443);
    if port == 0 {
        return Err(ApiError::bad_request("port: give 1 to 65535"));
    }
    let secs = body.timeout_seconds.unwrap_or(DEFAULT_TIMEOUT_SECS);
    if !(1..=60).contains(&secs) {
        return Err(ApiError::bad_request("timeoutSeconds: give 1 to 60"));
    }
    Ok((
        host.to_owned(),
        port,
        body.validate_server_certificate.unwrap_or(true),
        Duration::from_secs(secs),
    ))
}

pub(crate) async fn probe(
    s: &AppState,
    host: &str,
    port: u16,
    validate: bool,
    timeout: Duration,
) -> Result<Probe, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?;
    let config = if validate {
        let extra = extra_roots(s).await;
        let verifier = rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider)
            .map_err(|e| format!("cannot load the trust store: {e}"))?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(DangerAcceptAnyServerCertificate(provider)))
            .with_no_client_auth()
    };
    let name = ServerName::try_from(host.to_owned()).map_err(|e| format!("host: {e}"))?;
    let work = async {
        let tcp = TcpStream::connect((host, port))
            .await
            .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
        let tls = TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake with {host}:{port} failed: {e}"))?;
        let conn = tls.get_ref().1;
        let chain = conn
            .peer_certificates()
            .unwrap_or_default()
            .iter()
            .map(|c| info(c.as_ref(), "server certificate").map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Probe {
            protocol: conn
                .protocol_version()
                .map(|v| format!("{v:?}"))
                .unwrap_or_default(),
            cipher: conn
                .negotiated_cipher_suite()
                .map(|c| format!("{:?}", c.suite()))
                .unwrap_or_default(),
            chain,
        })
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| format!("no TLS answer from {host}:{port} within {} s", timeout.as_secs()))?
}

/// Postern's CA and the trust store, besides the system roots.
async fn extra_roots(s: &AppState) -> Vec<CertificateDer<'static>> {
    let mut pems = vec![s.ca().cert_pem().to_owned()];
    if let Ok(cas) = s.store().trusted_cas().await {
        pems.extend(cas.into_iter().map(|c| c.pem));
    }
    pems.iter()
        .filter_map(|p| postern_auth::cert::pem_certificates(p, "ca").ok())
        .flatten()
        .map(CertificateDer::from)
        .collect()
}

fn is_root(c: &CertInfo) -> bool {
    c.is_ca && postern_core::dn::Dn::parse(&c.subject).ok() == postern_core::dn::Dn::parse(&c.issuer).ok()
}

pub(crate) fn cert_view(i: usize, c: &CertInfo) -> Value {
    json!({
        "position": i,
        "subject": c.subject,
        "issuer": c.issuer,
        "serialNumber": c.serial,
        "validFrom": time(c.not_before),
        "validUntil": time(c.not_after),
        "sha256": hex(&c.sha256),
        "ca": c.is_ca,
        "root": is_root(c),
        "file": file_name(i, c),
    })
}

fn file_name(i: usize, c: &CertInfo) -> String {
    let cn = c
        .subject
        .split(',')
        .find_map(|p| p.trim().strip_prefix("CN="))
        .unwrap_or("certificate");
    let kind = if is_root(c) { "root-" } else { "" };
    format!("{:02}-{kind}{}.cer", i + 1, safe_name(cn))
}

pub(crate) fn safe_name(s: &str) -> String {
    let out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if out.is_empty() { "certificate".into() } else { out }
}

pub(crate) fn zip_chain(chain: &[CertInfo]) -> Result<Vec<u8>, String> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (i, c) in chain.iter().enumerate() {
        w.start_file(file_name(i, c), options)
            .map_err(|e| e.to_string())?;
        w.write_all(&c.der).map_err(|e| e.to_string())?;
    }
    Ok(w.finish().map_err(|e| e.to_string())?.into_inner())
}

/// Accepts any server certificate — used only when the operator unticks *Validate Server
/// Certificate* to read a chain — while still checking the handshake signatures, so the peer
/// proves it holds the key of the certificate it shows.
#[derive(Debug)]
struct DangerAcceptAnyServerCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for DangerAcceptAnyServerCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
