//! Creating, sealing and rotating Ed25519 signing keys.

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use postern_core::model::TokenKey;
use postern_core::{Error, Result};
use postern_store::{Ctx, Store};

use super::{ALG, LEEWAY_SECS, MAX_VALIDITY_SECS};
use crate::secret::{Sealer, random};

/// A new key, its private half sealed.
pub fn new_key(sealer: &Sealer, now_ms: i64) -> Result<TokenKey> {
    // PKCS#8 v1: the form jsonwebtoken's EdDSA signer and JWK helpers expect.
    let pkcs8 = Ed25519KeyPair::generate_pkcs8v1(&aws_lc_rs::rand::SystemRandom::new())
        .map_err(|_| Error::Internal("Ed25519 key generation failed".into()))?;
    let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8.as_ref())
        .map_err(|_| Error::Internal("generated Ed25519 key is unreadable".into()))?;
    Ok(TokenKey {
        kid: URL_SAFE_NO_PAD.encode(random::<12>()),
        alg: ALG.into(),
        private_enc: sealer.seal(pkcs8.as_ref()),
        public_key: pair.public_key().as_ref().to_vec(),
        created_at: now_ms,
        retired_at: None,
    })
}

/// Creates the first signing key when there is none.
pub async fn ensure_key(store: &dyn Store, sealer: &Sealer, now_ms: i64) -> Result<bool> {
    let keys = store.token_keys().await?;
    if keys
        .iter()
        .any(|k| k.retired_at.is_none() && sealer.open(&k.private_enc).is_some())
    {
        return Ok(false);
    }
    if let Some(k) = keys.iter().find(|k| k.retired_at.is_none()) {
        return Err(Error::Unavailable(format!(
            "the token signing key {} cannot be opened with this master key; start with the master key it was sealed under",
            k.kid
        )));
    }
    store.rotate_token_key(&new_key(sealer, now_ms)?).await?;
    Ok(true)
}

/// Adds a new signing key; the previous one keeps verifying (and stays in the JWKS) until every
/// token it signed has expired. Keys retired longer ago than that are deleted.
pub async fn rotate(ctx: &Ctx<'_>, sealer: &Sealer) -> Result<TokenKey> {
    let key = new_key(sealer, ctx.now)?;
    ctx.store.rotate_token_key(&key).await?;
    let horizon = ctx.now - (MAX_VALIDITY_SECS + LEEWAY_SECS as i64) * 1000;
    let purged = ctx.store.purge_token_keys(horizon).await?;
    ctx.audit(
        "token-key.rotate",
        &key.kid,
        serde_json::json!({ "alg": ALG, "purged": purged }),
    )
    .await?;
    Ok(key)
}

/// The public JWK of a key (RFC 8037 OKP).
pub(super) fn jwk(kid: &str, public: &[u8]) -> serde_json::Value {
    serde_json::json!({
        "kty": "OKP",
        "crv": "Ed25519",
        "x": URL_SAFE_NO_PAD.encode(public),
        "kid": kid,
        "alg": ALG,
        "use": "sig",
    })
}
