//! Reading X.509 certificates at the edge: PEM or DER in, the facts we match and show out
//! (SHA-256 fingerprint, subject and issuer DNs, serial, validity, CA flag). Input is untrusted:
//! every failure is an error value naming what is wrong.

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use postern_core::Error;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Largest certificate text accepted.
pub const MAX_PEM: usize = 64 * 1024;

/// What we need to know about a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    /// DER encoding.
    pub der: Vec<u8>,
    /// SHA-256 of the DER encoding.
    pub sha256: [u8; 32],
    /// Subject DN (RFC 4514 string form).
    pub subject: String,
    /// Issuer DN.
    pub issuer: String,
    /// Serial number, `0x`-prefixed hex (SAP's `certificatedetails.serialnumber` form).
    pub serial: String,
    /// Start of validity, Unix ms.
    pub not_before: i64,
    /// End of validity, Unix ms.
    pub not_after: i64,
    /// Whether it is a CA certificate (basic constraints CA=true).
    pub is_ca: bool,
}

/// SHA-256 of DER bytes.
pub fn sha256(der: &[u8]) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, der);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Lower-case hex of a fingerprint.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The DER certificates in a PEM text, in order. `field` names the input in errors.
pub fn pem_certificates(pem: &str, field: &str) -> Result<Vec<Vec<u8>>, Error> {
    if pem.len() > MAX_PEM {
        return Err(Error::invalid(field, format!("larger than {MAX_PEM} bytes")));
    }
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::invalid(field, format!("not a PEM certificate: {e}")))?;
    if certs.is_empty() {
        return Err(Error::invalid(
            field,
            "no PEM certificate found (-----BEGIN CERTIFICATE-----)",
        ));
    }
    Ok(certs.into_iter().map(|c| c.as_ref().to_vec()).collect())
}

/// Reads one certificate given as PEM, or as base64 DER (SAP's mapping API form).
pub fn one_certificate(text: &str, field: &str) -> Result<CertInfo, Error> {
    let der = if text.contains("-----BEGIN") {
        let mut certs = pem_certificates(text, field)?;
        if certs.len() != 1 {
            return Err(Error::invalid(
                field,
                "give the single client certificate, not a chain",
            ));
        }
        certs.remove(0)
    } else {
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        if compact.len() > MAX_PEM {
            return Err(Error::invalid(field, format!("larger than {MAX_PEM} bytes")));
        }
        STANDARD
            .decode(compact)
            .map_err(|_| Error::invalid(field, "neither PEM nor base64 DER"))?
    };
    info(&der, field)
}

/// Parses DER.
pub fn info(der: &[u8], field: &str) -> Result<CertInfo, Error> {
    let (rest, cert) = X509Certificate::from_der(der)
        .map_err(|e| Error::invalid(field, format!("not an X.509 certificate: {e}")))?;
    if !rest.is_empty() {
        return Err(Error::invalid(field, "trailing bytes after the certificate"));
    }
    let validity = cert.validity();
    let serial = cert.raw_serial_as_string().replace(':', "");
    Ok(CertInfo {
        der: der.to_vec(),
        sha256: sha256(der),
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        serial: format!("0x{serial}"),
        not_before: validity.not_before.timestamp() * 1000,
        not_after: validity.not_after.timestamp() * 1000,
        is_ca: cert.is_ca(),
    })
}

/// DER as PEM text.
pub fn to_pem(der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::LocalCa;

    #[test]
    fn reads_pem_and_base64_der() {
        let now = time::OffsetDateTime::now_utc();
        let ca = LocalCa::generate("Test CA", now).expect("ca");
        let ca_info = one_certificate(ca.cert_pem(), "c").expect("pem");
        assert!(ca_info.is_ca);
        assert!(ca_info.subject.contains("CN=Test CA"), "{}", ca_info.subject);
        assert!(ca_info.serial.starts_with("0x"));
        assert!(ca_info.not_after > ca_info.not_before);
        let b64 = STANDARD.encode(&ca_info.der);
        assert_eq!(one_certificate(&b64, "c").expect("der").sha256, ca_info.sha256);
        assert_eq!(
            one_certificate(&to_pem(&ca_info.der), "c").expect("round trip"),
            ca_info
        );
        for bad in [
            "",
            "junk",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        ] {
            assert!(one_certificate(bad, "c").is_err(), "{bad:?}");
        }
        let two = format!("{}{}", ca.cert_pem(), ca.cert_pem());
        assert!(one_certificate(&two, "c").is_err());
    }
}
