//! TLS configuration of the HTTPS listener: the server identity, TLS 1.2/1.3 only, ALPN h2 and
//! http/1.1, and *optional* client certificates: a client may connect without one (and use Basic
//! or a bearer token), but a certificate it presents must chain to Postern's CA or a CA in the
//! trust store and be within its validity, or the handshake fails.

use std::sync::Arc;

use postern_core::dn::Dn;
use rustls::RootCertStore;
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The server's certificate chain and private key, PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsIdentity {
    /// Leaf first.
    pub chain_pem: String,
    /// PKCS#8 (or PKCS#1/SEC1) private key.
    pub key_pem: String,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity").finish_non_exhaustive()
    }
}

/// Marks a request that arrived over TLS (the console sets `Secure` on its cookie then).
#[derive(Clone, Copy, Debug)]
pub(crate) struct OverTls;

/// The client certificate of a connection, read once per connection: SHA-256 (the key for
/// bound keys and mappings) and the subject and issuer DNs (for client-certificate channels).
#[derive(Clone, Debug)]
pub struct PeerCertificate {
    /// DER encoding.
    pub der: Arc<[u8]>,
    /// SHA-256 of the DER encoding.
    pub sha256: [u8; 32],
    /// Subject DN as the certificate states it.
    pub subject_text: Arc<str>,
    /// Issuer DN as the certificate states it.
    pub issuer_text: Arc<str>,
    /// Normalised subject DN (None when it does not parse).
    pub subject: Option<Dn>,
    /// Normalised issuer DN.
    pub issuer: Option<Dn>,
}

impl PeerCertificate {
    /// Reads a DER certificate the TLS handshake already verified.
    pub fn read(der: &[u8]) -> Self {
        let info = postern_auth::cert::info(der, "client certificate").ok();
        let (subject_text, issuer_text) = info
            .as_ref()
            .map(|i| (i.subject.clone(), i.issuer.clone()))
            .unwrap_or_default();
        Self {
            der: Arc::from(der),
            sha256: postern_auth::cert::sha256(der),
            subject: Dn::parse(&subject_text).ok(),
            issuer: Dn::parse(&issuer_text).ok(),
            subject_text: Arc::from(subject_text.as_str()),
            issuer_text: Arc::from(issuer_text.as_str()),
        }
    }
}

/// Builds the listener's configuration; `client_roots` are DER CA certificates whose client
/// certificates are accepted. Roots that do not parse are skipped and returned as errors.
pub(crate) fn server_config(
    identity: &TlsIdentity,
    client_roots: &[Vec<u8>],
) -> Result<(Arc<ServerConfig>, Vec<String>), String> {
    let chain = CertificateDer::pem_slice_iter(identity.chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("certificate: {e}"))?;
    if chain.is_empty() {
        return Err("certificate: no PEM certificate found".into());
    }
    let key = PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes())
        .map_err(|e| format!("private key: {e}"))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = RootCertStore::empty();
    let mut skipped = Vec::new();
    for der in client_roots {
        if let Err(e) = roots.add(CertificateDer::from(der.clone())) {
            skipped.push(format!("trusted CA skipped: {e}"));
        }
    }
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?;
    let builder = if roots.is_empty() {
        builder.with_no_client_auth()
    } else {
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .allow_unauthenticated()
            .build()
            .map_err(|e| format!("client certificate verifier: {e}"))?;
        builder.with_client_cert_verifier(verifier)
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| format!("certificate and key: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((Arc::new(config), skipped))
}
