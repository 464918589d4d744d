//! OAuth access tokens: Ed25519-signed JWTs (`EdDSA`) whose signing keys live sealed in the
//! store, so every node signs and verifies alike. [`TokenKeys`] is the immutable set the request
//! path uses: the current signer, the verifiers by `kid`, and the pre-rendered JWKS document.

mod keys;

use std::collections::HashMap;

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use postern_core::Error;
use postern_core::model::TokenKey;
use serde::{Deserialize, Serialize};

pub use keys::{ensure_key, new_key, rotate};

/// The JWS algorithm of the tokens we issue.
pub const ALG: &str = "EdDSA";
/// Longest access-token validity an instance may set (seconds); retired keys stay published this
/// long so every token they signed can still be verified.
pub const MAX_VALIDITY_SECS: i64 = 86_400;
/// Clock skew tolerated on `exp`/`nbf` (seconds).
pub const LEEWAY_SECS: u64 = 30;

/// Extra attributes, in the place XSUAA puts them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtAttr {
    /// Always `XSUAA`, as in SAP's tokens.
    pub enhancer: String,
    /// The service instance the token was issued for.
    pub serviceinstancename: String,
    /// The service key whose credentials obtained it (deleting the key revokes the token).
    pub key: String,
}

/// The claims of a Postern access token (XSUAA client-credentials shape).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Token id.
    pub jti: String,
    /// The client id.
    pub sub: String,
    /// The client id.
    pub client_id: String,
    /// The client id.
    pub cid: String,
    /// The client id.
    pub azp: String,
    /// `client_credentials`.
    pub grant_type: String,
    /// The granted roles.
    pub scope: Vec<String>,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expires at, Unix seconds.
    pub exp: i64,
    /// Issuer: the token endpoint URL.
    pub iss: String,
    /// Zone (tenant).
    pub zid: String,
    /// Audience: the client id.
    pub aud: Vec<String>,
    /// Instance and key.
    pub ext_attr: ExtAttr,
    /// Confirmation (RFC 8705): the token is bound to this client certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

/// RFC 8705 §3.1 certificate-bound token confirmation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    /// base64url SHA-256 of the DER client certificate.
    #[serde(rename = "x5t#S256")]
    pub x5t_s256: String,
}

impl Confirmation {
    /// The confirmation for a certificate's SHA-256.
    pub fn for_certificate(sha256: &[u8; 32]) -> Self {
        Self {
            x5t_s256: URL_SAFE_NO_PAD.encode(sha256),
        }
    }
}

/// Why a bearer token was refused (all answer 401 `invalid_token`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenError {
    /// Not a JWT, or a header we do not accept (`alg`, missing `kid`).
    Malformed,
    /// Signed by a key we do not know.
    UnknownKey,
    /// Bad signature or claims that fail validation (issuer, shape).
    Invalid,
    /// Past `exp` (or before `nbf`).
    Expired,
}

impl TokenError {
    /// A short label for metrics and the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenError::Malformed => "malformed_token",
            TokenError::UnknownKey => "unknown_token_key",
            TokenError::Invalid => "invalid_token",
            TokenError::Expired => "expired_token",
        }
    }
}

/// The current signing key, opened once per snapshot: the key pair is parsed (and its public
/// half derived) when the set is built, and the JOSE header, the same for every token it signs,
/// is encoded then too. Signing a token is then one serialisation and one Ed25519 signature;
/// `jsonwebtoken::encode` re-parses the PKCS#8 document, a scalar multiplication as costly as
/// the signature itself, for every token.
struct Signer {
    kid: String,
    pair: Ed25519KeyPair,
    /// `base64url(header) + "."`.
    header: String,
}

impl Signer {
    /// Opens a PKCS#8 key; `None` when it does not parse or its public half is not `public`.
    fn new(kid: &str, pkcs8: &[u8], public: &[u8]) -> Option<Self> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8).ok()?;
        if pair.public_key().as_ref() != public {
            return None;
        }
        let header = serde_json::json!({ "typ": "JWT", "alg": ALG, "kid": kid });
        let mut encoded = URL_SAFE_NO_PAD.encode(header.to_string());
        encoded.push('.');
        Some(Self {
            kid: kid.to_owned(),
            pair,
            header: encoded,
        })
    }

    /// A compact JWS (RFC 7515 §7.1) of the claims.
    fn sign(&self, claims: &Claims) -> Result<String, Error> {
        let payload = serde_json::to_vec(claims)
            .map_err(|e| Error::Internal(format!("serialising token claims: {e}")))?;
        let mut token = String::with_capacity(self.header.len() + payload.len() * 4 / 3 + 90);
        token.push_str(&self.header);
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let signature = self.pair.sign(token.as_bytes());
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature.as_ref(), &mut token);
        Ok(token)
    }
}

/// Signing and verification keys, built from store rows.
#[derive(Default)]
pub struct TokenKeys {
    signer: Option<Signer>,
    verifiers: HashMap<String, DecodingKey>,
    jwks: serde_json::Value,
    validation: Option<Validation>,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys")
            .field("signer", &self.signer.as_ref().map(|s| &s.kid))
            .field("verifiers", &self.verifiers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl TokenKeys {
    /// Builds the set: the newest unretired key signs; every key not retired longer than a token
    /// can live verifies and is published. Keys that cannot be opened with `sealer` are skipped
    /// and returned by id (a node with the wrong master key).
    pub fn build(
        rows: &[TokenKey],
        sealer: &crate::secret::Sealer,
        issuer: &str,
        now_ms: i64,
    ) -> (Self, Vec<String>) {
        let mut keys = Self::default();
        let mut unreadable = Vec::new();
        let mut published = Vec::new();
        let horizon = now_ms - (MAX_VALIDITY_SECS + LEEWAY_SECS as i64) * 1000;
        for row in rows {
            if row.alg != ALG || row.retired_at.is_some_and(|r| r < horizon) {
                continue;
            }
            if row.retired_at.is_none() {
                match sealer
                    .open(&row.private_enc)
                    .and_then(|pkcs8| Signer::new(&row.kid, &pkcs8, &row.public_key))
                {
                    Some(signer) => keys.signer = Some(signer),
                    None => {
                        unreadable.push(row.kid.clone());
                        continue;
                    }
                }
            }
            keys.verifiers
                .insert(row.kid.clone(), DecodingKey::from_ed_der(&row.public_key));
            published.push(keys::jwk(&row.kid, &row.public_key));
        }
        keys.jwks = serde_json::json!({ "keys": published });
        let mut v = Validation::new(Algorithm::EdDSA);
        v.leeway = LEEWAY_SECS;
        v.validate_nbf = true;
        v.validate_aud = false;
        v.set_issuer(&[issuer]);
        v.set_required_spec_claims(&["exp", "iss", "sub"]);
        keys.validation = Some(v);
        (keys, unreadable)
    }

    /// The JWKS document (`{"keys": [...]}`).
    pub fn jwks(&self) -> &serde_json::Value {
        &self.jwks
    }

    /// The `kid` of the signing key, if there is one.
    pub fn current_kid(&self) -> Option<&str> {
        self.signer.as_ref().map(|s| s.kid.as_str())
    }

    /// Signs claims with the current key.
    pub fn sign(&self, claims: &Claims) -> Result<String, Error> {
        self.signer
            .as_ref()
            .ok_or_else(|| Error::Unavailable("no token signing key is available".into()))?
            .sign(claims)
    }

    /// Whether a key with this id still verifies tokens.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.verifiers.contains_key(kid)
    }

    /// Verifies a token's signature, issuer and lifetime.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        self.verify_with_kid(token).map(|(_, c)| c)
    }

    /// [`TokenKeys::verify`], also returning the `kid` that signed it.
    pub fn verify_with_kid(&self, token: &str) -> Result<(String, Claims), TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Malformed);
        }
        let kid = header.kid.ok_or(TokenError::Malformed)?;
        let key = self.verifiers.get(&kid).ok_or(TokenError::UnknownKey)?;
        let validation = self.validation.as_ref().ok_or(TokenError::UnknownKey)?;
        match jsonwebtoken::decode::<Claims>(token, key, validation) {
            Ok(data) => Ok((kid, data.claims)),
            Err(e) => Err(match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature
                | jsonwebtoken::errors::ErrorKind::ImmatureSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            }),
        }
    }
}

#[cfg(test)]
mod tests;
