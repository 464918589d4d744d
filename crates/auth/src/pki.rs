//! Postern's own certificate authority: created on first start, it signs the server certificate
//! of the HTTPS listener (and, with certificate service keys, client certificates). Keys are
//! ECDSA P-256. Everything here is in memory; the caller persists the PEM texts.

use postern_core::Error;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, PKCS_RSA_SHA256, RsaKeySize,
};
use time::{Duration, OffsetDateTime};

/// Lifetime of a generated CA.
pub const CA_DAYS: i64 = 3650;
/// Lifetime of a generated server certificate (within what browsers accept).
pub const SERVER_DAYS: i64 = 397;

fn pki_error(e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("certificate generation: {e}"))
}

/// A CA certificate with its signing key.
pub struct LocalCa {
    cert_pem: String,
    key_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for LocalCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCa").finish_non_exhaustive()
    }
}

/// A freshly issued leaf: certificate and key, PEM.
pub struct Issued {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
    /// Expiry, Unix seconds.
    pub not_after: i64,
}

impl LocalCa {
    /// Creates a new CA named `CN=<name>, O=Postern`, valid from now for [`CA_DAYS`].
    pub fn generate(name: &str, now: OffsetDateTime) -> Result<Self, Error> {
        let key = KeyPair::generate().map_err(pki_error)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        dn.push(DnType::OrganizationName, "Postern");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = now - Duration::minutes(5);
        params.not_after = now + Duration::days(CA_DAYS);
        params.serial_number = Some(crate::secret::random::<16>().to_vec().into());
        let cert = params.self_signed(&key).map_err(pki_error)?;
        let key_pem = key.serialize_pem();
        Ok(Self {
            cert_pem: cert.pem(),
            key_pem,
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads a CA from its PEM certificate and key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, Error> {
        let key = KeyPair::from_pem(key_pem).map_err(|e| Error::invalid("ca key", e.to_string()))?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)
            .map_err(|e| Error::invalid("ca certificate", e.to_string()))?;
        Ok(Self {
            cert_pem: cert_pem.to_owned(),
            key_pem: key_pem.to_owned(),
            issuer,
        })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA private key, PEM (to persist; never log it).
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// Issues a TLS server certificate for host names and IP addresses.
    pub fn issue_server(&self, hostnames: &[String], now: OffsetDateTime) -> Result<Issued, Error> {
        if hostnames.is_empty() {
            return Err(Error::invalid("tls-hostname", "give at least one host name"));
        }
        let params = CertificateParams::new(hostnames.to_vec())
            .map_err(|e| Error::invalid("tls-hostname", e.to_string()))?;
        let key = KeyPair::generate().map_err(pki_error)?;
        let names: [(DnType, &str); 2] = [
            (DnType::CommonName, hostnames[0].as_str()),
            (DnType::OrganizationName, "Postern"),
        ];
        self.issue_leaf(
            params,
            key,
            &names,
            ExtendedKeyUsagePurpose::ServerAuth,
            now,
            SERVER_DAYS,
        )
    }

    /// Signs an end-entity certificate: the given names, key usages for TLS, one extended key
    /// usage, a random serial, valid from five minutes ago for `days`.
    fn issue_leaf(
        &self,
        mut params: CertificateParams,
        key: KeyPair,
        names: &[(DnType, &str)],
        eku: ExtendedKeyUsagePurpose,
        now: OffsetDateTime,
        days: i64,
    ) -> Result<Issued, Error> {
        let mut dn = DistinguishedName::new();
        for (t, v) in names {
            dn.push(t.clone(), *v);
        }
        params.distinguished_name = dn;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![eku];
        params.use_authority_key_identifier_extension = true;
        params.not_before = now - Duration::minutes(5);
        let not_after = now + Duration::days(days);
        params.not_after = not_after;
        params.serial_number = Some(crate::secret::random::<16>().to_vec().into());
        let cert = params.signed_by(&key, &self.issuer).map_err(pki_error)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            not_after: not_after.unix_timestamp(),
        })
    }
}

/// The key of a client certificate Postern generates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientKey {
    /// RSA with this many bits (2048, 3072, 4096), SAP's default kind.
    Rsa(u32),
    /// ECDSA on P-256 (`key-length: 256`): smaller and much faster to generate.
    EcP256,
}

impl ClientKey {
    /// Reads SAP's `key-length` parameter: 2048 (default), 3072, 4096, or 256 for ECDSA P-256.
    pub fn from_length(bits: Option<u32>) -> Result<Self, Error> {
        match bits.unwrap_or(2048) {
            b @ (2048 | 3072 | 4096) => Ok(ClientKey::Rsa(b)),
            256 => Ok(ClientKey::EcP256),
            other => Err(Error::invalid(
                "parameters.key-length",
                format!("{other} is not offered; use 2048, 3072 or 4096 (RSA) or 256 (ECDSA P-256)"),
            )),
        }
    }
}

impl LocalCa {
    /// Issues a TLS client certificate (EKU clientAuth) named `CN=<cn>, OU=Postern Clients, O=Postern`.
    pub fn issue_client(
        &self,
        cn: &str,
        key: ClientKey,
        days: u32,
        now: OffsetDateTime,
    ) -> Result<Issued, Error> {
        let pair = match key {
            ClientKey::EcP256 => KeyPair::generate(),
            ClientKey::Rsa(bits) => {
                let size = match bits {
                    3072 => RsaKeySize::_3072,
                    4096 => RsaKeySize::_4096,
                    _ => RsaKeySize::_2048,
                };
                KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, size)
            }
        }
        .map_err(pki_error)?;
        let names: [(DnType, &str); 3] = [
            (DnType::CommonName, cn),
            (DnType::OrganizationalUnitName, "Postern Clients"),
            (DnType::OrganizationName, "Postern"),
        ];
        self.issue_leaf(
            CertificateParams::default(),
            pair,
            &names,
            ExtendedKeyUsagePurpose::ClientAuth,
            now,
            i64::from(days),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_round_trips_and_issues() {
        let now = OffsetDateTime::now_utc();
        let ca = LocalCa::generate("Postern Test CA", now).expect("ca");
        let again = LocalCa::from_pem(ca.cert_pem(), ca.key_pem()).expect("reload");
        let leaf = again
            .issue_server(&["localhost".into(), "127.0.0.1".into()], now)
            .expect("leaf");
        assert!(leaf.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(leaf.key_pem.contains("PRIVATE KEY"));
        assert!(leaf.not_after > now.unix_timestamp());
        assert!(again.issue_server(&[], now).is_err());
        let client = again
            .issue_client("sender-1", ClientKey::EcP256, 30, now)
            .expect("client cert");
        let info = crate::cert::one_certificate(&client.cert_pem, "c").expect("parses");
        assert!(
            !info.is_ca && info.subject.contains("CN=sender-1"),
            "{}",
            info.subject
        );
        assert!(ClientKey::from_length(Some(1024)).is_err());
        assert!(LocalCa::from_pem("junk", ca.key_pem()).is_err());
    }
}
