//! Who is calling: turns an `Authorization` header into a [`Principal`] using only the security
//! snapshot (no database). HTTP Basic carries either a service key's `clientid:clientsecret` or a
//! technical user's name and password.

use std::sync::Arc;

use postern_core::model::Plan;
use postern_core::snapshot::{RoleSet, Snapshot};

use crate::basic::{Malformed, parse_basic};
use crate::password::CachedVerifier;
use crate::secret::SecretHasher;

/// What kind of identity authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrincipalKind {
    /// A service key (`clientid`/`clientsecret`) of an instance.
    ServiceKey {
        /// Instance name.
        instance: String,
        /// The key whose secret matched.
        key: String,
        /// The instance's plan.
        plan: Plan,
    },
    /// A technical user with a password.
    User,
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The user name handed to flows as `SapAuthenticatedUserName`.
    pub name: Arc<str>,
    /// Roles the caller holds.
    pub roles: RoleSet,
    /// How it authenticated.
    pub kind: PrincipalKind,
}

/// Why authentication failed. All of them answer 401; the reason goes to metrics and the audit
/// log, never to the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthFailure {
    /// No `Authorization` header.
    Missing,
    /// The header could not be read.
    Malformed(Malformed),
    /// Neither a client id nor a user of that name.
    UnknownUser,
    /// Known client id, wrong secret.
    BadSecret,
    /// Known user, wrong password.
    BadPassword,
}

impl AuthFailure {
    /// A short label for metrics and the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthFailure::Missing => "missing",
            AuthFailure::Malformed(_) => "malformed",
            AuthFailure::UnknownUser => "unknown_user",
            AuthFailure::BadSecret => "bad_secret",
            AuthFailure::BadPassword => "bad_password",
        }
    }
}

/// Authenticates Basic credentials against a snapshot.
#[derive(Clone, Debug)]
pub struct Authenticator {
    secrets: SecretHasher,
    passwords: CachedVerifierHandle,
}

#[derive(Clone)]
struct CachedVerifierHandle(CachedVerifier);

impl std::fmt::Debug for CachedVerifierHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CachedVerifier(..)")
    }
}

impl Authenticator {
    /// An authenticator using the client-secret hasher and a password verifier.
    pub fn new(secrets: SecretHasher, passwords: CachedVerifier) -> Self {
        Self {
            secrets,
            passwords: CachedVerifierHandle(passwords),
        }
    }

    /// The hasher for client secrets.
    pub fn secret_hasher(&self) -> &SecretHasher {
        &self.secrets
    }

    /// Authenticates the value of an `Authorization` header (or its absence).
    pub async fn authenticate(
        &self,
        snapshot: &Snapshot,
        header: Option<&[u8]>,
    ) -> Result<Principal, AuthFailure> {
        let header = header.ok_or(AuthFailure::Missing)?;
        let creds = parse_basic(header).map_err(AuthFailure::Malformed)?;
        if let Some(client) = snapshot.client(&creds.user) {
            let hash = self.secrets.hash(&[creds.password.as_bytes()]);
            // Compare against every key so the time does not tell which key (if any) matched.
            let mut matched = None;
            for s in &client.secrets {
                if bool::from(subtle::ConstantTimeEq::ct_eq(&hash[..], &s.hash[..])) {
                    matched = Some(&s.key);
                }
            }
            let key = matched.ok_or(AuthFailure::BadSecret)?;
            return Ok(Principal {
                name: Arc::from(client.client_id.as_str()),
                roles: client.roles.clone(),
                kind: PrincipalKind::ServiceKey {
                    instance: client.instance.clone(),
                    key: key.to_string(),
                    plan: client.plan,
                },
            });
        }
        let user = snapshot.user(&creds.user).ok_or(AuthFailure::UnknownUser)?;
        if !self
            .passwords
            .0
            .verify(&user.name, &creds.password, &user.password_phc)
            .await
        {
            return Err(AuthFailure::BadPassword);
        }
        Ok(Principal {
            name: Arc::from(user.name.as_str()),
            roles: user.roles.clone(),
            kind: PrincipalKind::User,
        })
    }
}
