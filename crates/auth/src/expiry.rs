//! Credentials that stop working at a known time: service keys with an expiry, certificate keys
//! and certificate-to-user mappings by their certificate's notAfter, trusted CAs, and (given by
//! the server) its own CA and server certificate. The admin API, the CLI, the console and the
//! metrics list them from here, so they agree on what "expiring within N days" means.

use postern_core::Result;
use postern_store::Store;

use crate::cert::one_certificate;

/// Days looked ahead when none are given.
pub const DEFAULT_DAYS: u32 = 30;
/// Most days one may look ahead (ten years).
pub const MAX_DAYS: u32 = 3650;

const DAY_MS: i64 = 86_400_000;

/// What kind of credential ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A ClientId/Secret service key with an expiry.
    ServiceKey,
    /// A certificate service key: its certificate's notAfter, or the key's expiry if earlier.
    CertificateKey,
    /// A certificate-to-user mapping, by its certificate's notAfter.
    CertificateMapping,
    /// A CA trusted for client certificates.
    TrustedCa,
    /// Postern's own CA (issues certificate keys).
    LocalCa,
    /// The HTTPS listener's certificate.
    ServerCertificate,
}

impl Kind {
    /// Every kind, in a fixed order (for gauges that report each kind, zero included).
    pub const ALL: [Kind; 6] = [
        Kind::ServiceKey,
        Kind::CertificateKey,
        Kind::CertificateMapping,
        Kind::TrustedCa,
        Kind::LocalCa,
        Kind::ServerCertificate,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ServiceKey => "service-key",
            Kind::CertificateKey => "certificate-key",
            Kind::CertificateMapping => "certificate-mapping",
            Kind::TrustedCa => "trusted-ca",
            Kind::LocalCa => "local-ca",
            Kind::ServerCertificate => "server-certificate",
        }
    }
}

/// One credential and when it stops working.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    /// What it is.
    pub kind: Kind,
    /// Which one: `instance/key`, the mapped user, or the CA's or server's subject.
    pub name: String,
    /// The certificate's subject DN, for certificates.
    pub subject: Option<String>,
    /// When it stops working, Unix ms.
    pub ends_at: i64,
}

impl Credential {
    /// Whole days from `now` to its end, rounded down (negative once it has ended).
    pub fn days_left(&self, now: i64) -> i64 {
        (self.ends_at - now).div_euclid(DAY_MS)
    }

    /// A certificate's entry, from its PEM (the first certificate of a chain); `None` when the
    /// PEM does not read.
    pub fn of_certificate(kind: Kind, pem: &str) -> Option<Self> {
        let der = crate::cert::pem_certificates(pem, "certificate")
            .ok()?
            .into_iter()
            .next()?;
        let info = crate::cert::info(&der, "certificate").ok()?;
        Some(Self {
            kind,
            name: info.subject.clone(),
            subject: Some(info.subject),
            ends_at: info.not_after,
        })
    }
}

/// Every stored credential that ends at a known time: keys with an expiry, certificate keys,
/// certificate mappings and trusted CAs.
pub async fn stored_credentials(store: &dyn Store) -> Result<Vec<Credential>> {
    let mut out = Vec::new();
    for k in store.keys(None).await? {
        let name = format!("{}/{}", k.instance, k.name);
        match &k.certificate {
            Some(c) => out.push(Credential {
                kind: Kind::CertificateKey,
                subject: one_certificate(&c.pem, "certificate").ok().map(|i| i.subject),
                name,
                ends_at: k.expires_at.map_or(c.not_after, |at| at.min(c.not_after)),
            }),
            None => {
                if let Some(at) = k.expires_at {
                    out.push(Credential {
                        kind: Kind::ServiceKey,
                        name,
                        subject: None,
                        ends_at: at,
                    });
                }
            }
        }
    }
    out.extend(store.cert_mappings().await?.into_iter().map(|m| Credential {
        kind: Kind::CertificateMapping,
        name: m.user,
        subject: Some(m.subject),
        ends_at: m.not_after,
    }));
    out.extend(store.trusted_cas().await?.into_iter().map(|ca| Credential {
        kind: Kind::TrustedCa,
        name: ca.subject.clone(),
        subject: Some(ca.subject),
        ends_at: ca.not_after,
    }));
    Ok(out)
}

/// Those of `all` that end within `days` of `now` (or have ended), soonest first.
pub fn within(mut all: Vec<Credential>, now: i64, days: u32) -> Vec<Credential> {
    let horizon = now.saturating_add(i64::from(days) * DAY_MS);
    all.retain(|c| c.ends_at <= horizon);
    all.sort_by(|a, b| (a.ends_at, a.kind, &a.name).cmp(&(b.ends_at, b.kind, &b.name)));
    all
}

/// How many days to look ahead: `DEFAULT_DAYS` when not given, at most `MAX_DAYS`.
pub fn days(given: Option<u32>) -> Result<u32> {
    match given {
        None => Ok(DEFAULT_DAYS),
        Some(d) if d <= MAX_DAYS => Ok(d),
        Some(_) => Err(postern_core::Error::invalid(
            "days",
            format!("give 0 to {MAX_DAYS} days"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(kind: Kind, name: &str, ends_at: i64) -> Credential {
        Credential {
            kind,
            name: name.into(),
            subject: None,
            ends_at,
        }
    }

    #[test]
    fn within_keeps_what_ends_before_the_horizon_soonest_first() {
        let now = 1_000 * DAY_MS;
        let all = vec![
            c(Kind::ServiceKey, "i/late", now + 100 * DAY_MS),
            c(Kind::ServiceKey, "i/soon", now + 10 * DAY_MS),
            c(Kind::TrustedCa, "CN=gone", now - DAY_MS),
            c(Kind::CertificateKey, "i/edge", now + 30 * DAY_MS),
        ];
        let names: Vec<_> = within(all, now, 30).into_iter().map(|c| c.name).collect();
        assert_eq!(names, ["CN=gone", "i/soon", "i/edge"]);
        assert_eq!(c(Kind::ServiceKey, "x", now + 10 * DAY_MS - 1).days_left(now), 9);
        assert_eq!(c(Kind::ServiceKey, "x", now - 1).days_left(now), -1);
    }

    #[test]
    fn days_default_and_bound() {
        assert_eq!(days(None).ok(), Some(DEFAULT_DAYS));
        assert_eq!(days(Some(0)).ok(), Some(0));
        assert_eq!(days(Some(MAX_DAYS)).ok(), Some(MAX_DAYS));
        assert!(days(Some(MAX_DAYS + 1)).is_err());
    }
}
