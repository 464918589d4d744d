//! Human-chosen passwords: argon2id (OWASP parameters: 19 MiB, 2 passes, 1 lane) in PHC strings,
//! verified on a blocking thread, with a bounded cache of recent successful verifications so a
//! sender using Basic with a password does not pay ~40 ms of CPU per request.

use std::sync::Arc;

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use quick_cache::sync::Cache;

use crate::secret::{SecretHasher, random};

/// Shortest password accepted for technical users.
pub const MIN_PASSWORD_LEN: usize = 12;
/// Longest password accepted (argon2 input bound).
pub const MAX_PASSWORD_LEN: usize = 1024;

fn argon2() -> Argon2<'static> {
    // Constant, valid OWASP parameters; `Params::new` only fails on out-of-range values.
    #[allow(clippy::expect_used)]
    let params = Params::new(19 * 1024, 2, 1, None).expect("static argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password into a PHC string.
pub fn hash_password(password: &str) -> Result<String, String> {
    argon2()
        .hash_password_with_salt(password.as_bytes(), &random::<16>())
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Checks a password against a PHC string (slow: call off the async runtime).
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordVerifier::<str>::verify_password(&argon2(), password.as_bytes(), phc).is_ok()
}

/// Verifies passwords, remembering recent successes.
///
/// The cache key is a keyed hash of (user, password, stored PHC): a changed password or a
/// rotated hash can never hit an old entry, and the cache holds no password. Capacity-bounded;
/// quick_cache evicts by S3-FIFO. Failures are not cached.
#[derive(Clone)]
pub struct CachedVerifier {
    hasher: SecretHasher,
    cache: Arc<Cache<[u8; 32], ()>>,
}

impl CachedVerifier {
    /// A verifier remembering up to `capacity` successes.
    pub fn new(hasher: SecretHasher, capacity: usize) -> Self {
        Self {
            hasher,
            cache: Arc::new(Cache::new(capacity.max(1))),
        }
    }

    /// Whether `password` is right for `user` whose stored hash is `phc`.
    pub async fn verify(&self, user: &str, password: &str, phc: &str) -> bool {
        if password.len() > MAX_PASSWORD_LEN {
            return false;
        }
        let key = self
            .hasher
            .hash(&[user.as_bytes(), password.as_bytes(), phc.as_bytes()]);
        if self.cache.get(&key).is_some() {
            return true;
        }
        let (password, phc) = (password.to_owned(), phc.to_owned());
        let ok = tokio::task::spawn_blocking(move || verify_password(&password, &phc))
            .await
            .unwrap_or(false);
        if ok {
            self.cache.insert(key, ());
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_verify_and_cache() {
        let phc = hash_password("correct horse battery").expect("hash");
        assert!(phc.starts_with("$argon2id$"));
        let v = CachedVerifier::new(SecretHasher::new(&[3; 32], "pw"), 8);
        assert!(v.verify("u", "correct horse battery", &phc).await);
        assert!(v.verify("u", "correct horse battery", &phc).await);
        assert!(!v.verify("u", "wrong horse battery", &phc).await);
        assert!(!v.verify("u", "x", "not a phc").await);
    }
}
