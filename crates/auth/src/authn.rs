//! Who is calling: turns an `Authorization` header into a [`Principal`] using only the security
//! snapshot and the token keys (no database). HTTP Basic carries either a service key's
//! `clientid:clientsecret` or a technical user's name and password; `Bearer` carries an access
//! token from our token server.

use std::sync::Arc;

use postern_core::ids::RoleName;
use postern_core::model::Plan;
use postern_core::snapshot::{CertSubject, Client, RoleSet, Snapshot, User};

use crate::basic::{Malformed, parse_basic, strip_scheme};
use crate::password::CachedVerifier;
use crate::secret::SecretHasher;
use crate::token::{Claims, Confirmation, TokenError, TokenKeys};

/// The user name of a client authenticated with an access token (SAP's `oauth_client_<client ID>`).
pub fn oauth_user(client_id: &str) -> String {
    format!("oauth_client_{client_id}")
}

/// What kind of identity authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrincipalKind {
    /// A service key (`clientid`/`clientsecret`) of an instance.
    ServiceKey {
        /// Instance name.
        instance: Arc<str>,
        /// The key whose secret matched.
        key: Arc<str>,
        /// The instance's plan.
        plan: Plan,
    },
    /// A technical user with a password.
    User,
    /// A client certificate bound to a certificate key.
    Certificate {
        /// Instance name.
        instance: Arc<str>,
        /// The certificate key.
        key: Arc<str>,
        /// The instance's plan.
        plan: Plan,
    },
    /// A client certificate mapped to a user (certificate-to-user mapping).
    MappedCertificate,
    /// An access token issued to a service key.
    Token {
        /// Instance name.
        instance: Arc<str>,
        /// The key whose credentials obtained the token.
        key: String,
        /// The instance's plan.
        plan: Plan,
        /// The client id.
        client_id: Arc<str>,
    },
}

impl PrincipalKind {
    /// The authenticator that accepted the caller, as the decision trace names it.
    pub fn authenticator(&self) -> &'static str {
        match self {
            PrincipalKind::ServiceKey { .. } => "service-key",
            PrincipalKind::User => "user",
            PrincipalKind::Certificate { .. } => "certificate-key",
            PrincipalKind::MappedCertificate => "certificate-mapping",
            PrincipalKind::Token { .. } => "bearer",
        }
    }
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
    /// A bearer token that does not verify.
    Token(TokenError),
    /// A valid token whose instance or key has been deleted since.
    RevokedToken,
    /// A client certificate that chains to a trusted CA but is bound to no key (or its key was
    /// deleted), or has expired.
    UnknownCertificate,
    /// The right secret or certificate of a service key whose expiry has passed (the caller is
    /// answered as for a wrong secret or an unknown certificate).
    Expired,
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
            AuthFailure::Token(e) => e.as_str(),
            AuthFailure::RevokedToken => "revoked_token",
            AuthFailure::UnknownCertificate => "unknown_certificate",
            AuthFailure::Expired => "expired",
        }
    }

    /// Whether the caller tried a bearer token (the 401 then challenges with `Bearer error=...`).
    pub fn is_token(self) -> bool {
        matches!(self, AuthFailure::Token(_) | AuthFailure::RevokedToken)
    }

    /// The authenticator that refused the caller (`basic`, `service-key`, `user`, `bearer`,
    /// `certificate`), or `none` when nothing was presented.
    pub fn authenticator(self) -> &'static str {
        match self {
            AuthFailure::Missing => "none",
            AuthFailure::Malformed(_) | AuthFailure::UnknownUser => "basic",
            AuthFailure::BadSecret | AuthFailure::Expired => "service-key",
            AuthFailure::BadPassword => "user",
            AuthFailure::Token(_) | AuthFailure::RevokedToken => "bearer",
            AuthFailure::UnknownCertificate => "certificate",
        }
    }
}

/// Authenticates Basic credentials and bearer tokens against a snapshot.
#[derive(Clone, Debug)]
pub struct Authenticator {
    secrets: SecretHasher,
    passwords: CachedVerifierHandle,
    tokens: TokenCache,
}

/// Tokens whose signature verified, by keyed hash of the token: a token is immutable, so its
/// signature needs checking once. Each use still checks expiry, that the signing key is still
/// published, and (in [`bearer`]) that the client and key still exist. Capacity-bounded
/// (quick_cache, S3-FIFO eviction).
#[derive(Clone)]
struct TokenCache(Arc<quick_cache::sync::Cache<[u8; 32], Arc<Verified>>>);

/// A token whose signature verified: the `kid` that signed it and its claims.
type Verified = (String, Claims);

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenCache(..)")
    }
}

/// Verified tokens remembered.
pub const TOKEN_CACHE_CAPACITY: usize = 100_000;

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
            tokens: TokenCache(Arc::new(quick_cache::sync::Cache::new(TOKEN_CACHE_CAPACITY))),
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
        tokens: &TokenKeys,
        header: Option<&[u8]>,
        peer_certificate: Option<&[u8; 32]>,
    ) -> Result<Principal, AuthFailure> {
        let header = header.ok_or(AuthFailure::Missing)?;
        // The edge's clock; jsonwebtoken reads the same clock on the uncached path.
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        if let Some(token) = strip_scheme(header, b"bearer") {
            let claims = self.verified(tokens, token, now_ms / 1000)?;
            // RFC 8705: a certificate-bound token only counts on a connection with that certificate.
            if let Some(cnf) = &claims.1.cnf
                && peer_certificate.map(Confirmation::for_certificate).as_ref() != Some(cnf)
            {
                return Err(AuthFailure::Token(TokenError::Invalid));
            }
            return bearer(snapshot, &claims, now_ms);
        }
        let creds = parse_basic(header).map_err(AuthFailure::Malformed)?;
        if let Some(client) = snapshot.client(creds.user()) {
            let key = self.client_secret(client, creds.password(), now_ms)?;
            return Ok(Principal {
                name: client.client_id.clone(),
                roles: client.roles.clone(),
                kind: PrincipalKind::ServiceKey {
                    instance: client.instance.clone(),
                    key: key.clone(),
                    plan: client.plan,
                },
            });
        }
        let user = snapshot.user(creds.user()).ok_or(AuthFailure::UnknownUser)?;
        self.password(user, creds.password()).await
    }

    /// Authenticates the client certificate of the connection (by the SHA-256 of its DER).
    pub fn certificate(
        &self,
        snapshot: &Snapshot,
        sha256: &[u8; 32],
        now_ms: i64,
    ) -> Result<Principal, AuthFailure> {
        let binding = snapshot
            .certificate(sha256)
            .ok_or(AuthFailure::UnknownCertificate)?;
        if binding.not_after <= now_ms {
            return Err(AuthFailure::UnknownCertificate);
        }
        Ok(match &binding.subject {
            CertSubject::Key { client, key } if client.key_expired(key, now_ms) => {
                return Err(AuthFailure::Expired);
            }
            CertSubject::Key { client, key } => Principal {
                name: client.client_id.clone(),
                roles: client.roles.clone(),
                kind: PrincipalKind::Certificate {
                    instance: client.instance.clone(),
                    key: key.clone(),
                    plan: client.plan,
                },
            },
            CertSubject::User { name, roles } => Principal {
                name: Arc::from(name.as_str()),
                roles: roles.clone(),
                kind: PrincipalKind::MappedCertificate,
            },
        })
    }

    /// The claims of a token that verifies, from the cache when its signature was checked before.
    fn verified(&self, tokens: &TokenKeys, token: &[u8], now: i64) -> Result<Arc<Verified>, AuthFailure> {
        if token.len() > crate::basic::MAX_HEADER_LEN {
            return Err(AuthFailure::Token(TokenError::Malformed));
        }
        let key = self.secrets.hash(&[b"bearer", token]);
        if let Some(hit) = self.tokens.0.get(&key) {
            if !tokens.has_kid(&hit.0) {
                return Err(AuthFailure::Token(TokenError::UnknownKey));
            }
            if hit.1.exp + crate::token::LEEWAY_SECS as i64 <= now {
                return Err(AuthFailure::Token(TokenError::Expired));
            }
            return Ok(hit);
        }
        let text = std::str::from_utf8(token)
            .map_err(|_| AuthFailure::Token(TokenError::Malformed))?
            .trim();
        let verified = Arc::new(tokens.verify_with_kid(text).map_err(AuthFailure::Token)?);
        self.tokens.0.insert(key, verified.clone());
        Ok(verified)
    }

    /// Checks a service key's client secret: the key that matched, `BadSecret` when none did,
    /// `Expired` when the matching key's expiry has passed at `now_ms`. Every key is compared (in
    /// constant time), so the time taken does not tell which key matched.
    pub fn client_secret<'a>(
        &self,
        client: &'a Client,
        secret: &str,
        now_ms: i64,
    ) -> Result<&'a Arc<str>, AuthFailure> {
        let hash = self.secrets.hash(&[secret.as_bytes()]);
        let mut matched = None;
        for s in &client.secrets {
            if bool::from(subtle::ConstantTimeEq::ct_eq(&hash[..], &s.hash[..])) {
                matched = Some(&s.key);
            }
        }
        match matched {
            None => Err(AuthFailure::BadSecret),
            Some(key) if client.key_expired(key, now_ms) => Err(AuthFailure::Expired),
            Some(key) => Ok(key),
        }
    }

    /// Authenticates a technical user by name and password (the web console's login form).
    pub async fn user_password(
        &self,
        snapshot: &Snapshot,
        name: &str,
        password: &str,
    ) -> Result<Principal, AuthFailure> {
        let user = snapshot.user(name).ok_or(AuthFailure::UnknownUser)?;
        self.password(user, password).await
    }

    async fn password(&self, user: &User, password: &str) -> Result<Principal, AuthFailure> {
        if !self
            .passwords
            .0
            .verify(&user.name, password, &user.password_phc)
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

/// Verifies a bearer token and maps it to the client it was issued to. Roles are the token's
/// scope narrowed to what the instance holds now, and the key that obtained the token must still
/// exist: deleting a key or an instance, or removing a role, takes effect on the next request.
/// A token never outlives its key's expiry, even one set after the token was issued: it then
/// counts as expired.
fn bearer(snapshot: &Snapshot, verified: &Verified, now_ms: i64) -> Result<Principal, AuthFailure> {
    let claims = &verified.1;
    let client = snapshot
        .client(&claims.client_id)
        .ok_or(AuthFailure::RevokedToken)?;
    if !client.has_key(&claims.ext_attr.key) {
        return Err(AuthFailure::RevokedToken);
    }
    if client.key_expired(&claims.ext_attr.key, now_ms) {
        return Err(AuthFailure::Token(TokenError::Expired));
    }
    let roles: Vec<RoleName> = claims
        .scope
        .iter()
        .filter(|r| client.roles.contains(r))
        .filter_map(|r| RoleName::parse(r).ok())
        .collect();
    Ok(Principal {
        name: Arc::from(oauth_user(&client.client_id).as_str()),
        roles: RoleSet::new(roles),
        kind: PrincipalKind::Token {
            instance: client.instance.clone(),
            key: claims.ext_attr.key.clone(),
            plan: client.plan,
            client_id: client.client_id.clone(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Sealer;
    use crate::token::{ExtAttr, new_key};

    #[test]
    fn cached_tokens_still_expire_and_die_with_their_key() {
        let sealer = Sealer::new(&[5; 32], "t");
        let key = new_key(&sealer, 0).expect("key");
        let (tokens, _) = TokenKeys::build(std::slice::from_ref(&key), &sealer, "iss", 0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let claims = Claims {
            jti: "j".into(),
            sub: "c".into(),
            client_id: "c".into(),
            cid: "c".into(),
            azp: "c".into(),
            grant_type: "client_credentials".into(),
            scope: vec![],
            iat: now,
            exp: now + 60,
            iss: "iss".into(),
            zid: "z".into(),
            aud: vec![],
            ext_attr: ExtAttr {
                enhancer: "XSUAA".into(),
                serviceinstancename: "i".into(),
                key: "k".into(),
            },
            cnf: None,
        };
        let token = tokens.sign(&claims).expect("sign");
        let authn = Authenticator::new(
            SecretHasher::new(&[1; 32], "s"),
            CachedVerifier::new(SecretHasher::new(&[1; 32], "p"), 4),
        );
        assert!(authn.verified(&tokens, token.as_bytes(), now).is_ok());
        // Cached now; later than exp + leeway it is refused all the same.
        let late = now + 60 + LEEWAY + 1;
        assert_eq!(
            authn.verified(&tokens, token.as_bytes(), late).map(|_| ()),
            Err(AuthFailure::Token(TokenError::Expired))
        );
        // Once its key is no longer published, the cached token is refused too.
        let (other, _) = TokenKeys::build(&[new_key(&sealer, 0).expect("key")], &sealer, "iss", 0);
        assert_eq!(
            authn.verified(&other, token.as_bytes(), now).map(|_| ()),
            Err(AuthFailure::Token(TokenError::UnknownKey))
        );
    }

    const LEEWAY: i64 = crate::token::LEEWAY_SECS as i64;
}
