//! Generated credentials and their keyed hashes.
//!
//! Client secrets are minted here with 256 bits of entropy, so a fast keyed hash (HMAC-SHA-256
//! under a server pepper) is as safe to store as a slow KDF while costing well under a
//! microsecond to verify; a stolen database without the pepper is useless.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::{hmac, rand};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

/// Keys a hash with the server pepper.
#[derive(Clone)]
pub struct SecretHasher {
    key: hmac::Key,
}

impl std::fmt::Debug for SecretHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretHasher(..)")
    }
}

impl SecretHasher {
    /// A hasher whose pepper is derived from the master key for one purpose.
    pub fn new(master_key: &[u8; 32], purpose: &str) -> Self {
        let master = hmac::Key::new(hmac::HMAC_SHA256, master_key);
        let derived = hmac::sign(&master, purpose.as_bytes());
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()),
        }
    }

    /// HMAC-SHA-256 of the parts, each length-prefixed so no two part lists collide.
    pub fn hash(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut ctx = hmac::Context::with_key(&self.key);
        for part in parts {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part);
        }
        let tag = ctx.sign();
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// Whether `secret` hashes to `expected`, compared in constant time.
    pub fn verify(&self, secret: &[u8], expected: &[u8; 32]) -> bool {
        self.hash(&[secret]).ct_eq(expected).into()
    }
}

/// Seals small secrets at rest (AES-256-GCM, random nonce) under a key derived from the master
/// key for one purpose.
pub struct Sealer {
    key: LessSafeKey,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    /// A sealer whose key is derived from the master key for `purpose`.
    pub fn new(master_key: &[u8; 32], purpose: &str) -> Self {
        let master = hmac::Key::new(hmac::HMAC_SHA256, master_key);
        let derived = hmac::sign(&master, purpose.as_bytes());
        // A 32-byte key always fits AES-256; the constructor only rejects wrong lengths.
        #[allow(clippy::expect_used)]
        let unbound = UnboundKey::new(&AES_256_GCM, derived.as_ref()).expect("32-byte AES-256 key");
        Self {
            key: LessSafeKey::new(unbound),
        }
    }

    /// `nonce || ciphertext || tag`.
    pub fn seal(&self, plain: &[u8]) -> Vec<u8> {
        let nonce = random::<NONCE_LEN>();
        let mut buf = plain.to_vec();
        // Sealing fails only for inputs beyond AES-GCM's size limit (64 GiB); keys are tiny.
        #[allow(clippy::expect_used)]
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut buf)
            .expect("AES-GCM seals small inputs");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        out
    }

    /// Opens what [`Sealer::seal`] produced; `None` when it was sealed under another key or changed.
    pub fn open(&self, sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = body.to_vec();
        let plain = self.key.open_in_place(nonce, Aad::empty(), &mut buf).ok()?;
        Some(plain.to_vec())
    }
}

/// Fills a buffer from the system CSPRNG.
pub fn random<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    // The CSPRNG failing means the process cannot produce any secret safely; stopping is right.
    #[allow(clippy::expect_used)]
    rand::fill(&mut out).expect("system random number generator failed");
    out
}

/// A random UUID (version 4) in its usual text form.
pub fn uuid_v4() -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut b = random::<16>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut out = String::with_capacity(36);
    for (i, x) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(char::from(HEX[usize::from(x >> 4)]));
        out.push(char::from(HEX[usize::from(x & 0x0f)]));
    }
    out
}

/// A new client id in the shape SAP's service keys use: `sb-<uuid>!b<n>|it-rt-<zone>!b<n>`.
pub fn new_client_id(zone: &str) -> String {
    format!("sb-{}!b1|it-rt-{zone}!b1", uuid_v4())
}

/// A new client secret: `<uuid>$<43 base64url chars>`, 256 random bits after the `$`.
pub fn new_client_secret() -> String {
    format!("{}${}", uuid_v4(), URL_SAFE_NO_PAD.encode(random::<32>()))
}

/// A new human-readable generated password (bootstrap admin): 32 random bytes, base64url.
pub fn new_password() -> String {
    URL_SAFE_NO_PAD.encode(random::<32>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_keyed_and_verify() {
        let a = SecretHasher::new(&[1; 32], "client-secret");
        let b = SecretHasher::new(&[2; 32], "client-secret");
        let h = a.hash(&[b"s3cret"]);
        assert!(a.verify(b"s3cret", &h));
        assert!(!a.verify(b"s3cres", &h));
        assert!(!b.verify(b"s3cret", &h));
        assert_ne!(a.hash(&[b"ab", b"c"]), a.hash(&[b"a", b"bc"]));
    }

    #[test]
    fn sealing_round_trips_and_detects_the_wrong_key() {
        let a = Sealer::new(&[1; 32], "token keys");
        let sealed = a.seal(b"private key");
        assert_eq!(a.open(&sealed).as_deref(), Some(&b"private key"[..]));
        assert_ne!(a.seal(b"private key"), sealed, "random nonce");
        assert_eq!(Sealer::new(&[2; 32], "token keys").open(&sealed), None);
        let mut tampered = sealed.clone();
        tampered[20] ^= 1;
        assert_eq!(a.open(&tampered), None);
        assert_eq!(a.open(b"short"), None);
    }

    #[test]
    fn generated_values_have_the_sap_shape() {
        let id = new_client_id("postern");
        assert!(id.starts_with("sb-") && id.ends_with("|it-rt-postern!b1"), "{id}");
        let s = new_client_secret();
        let (uuid, tail) = s.split_once('$').expect("has $");
        assert_eq!(uuid.len(), 36);
        assert_eq!(tail.len(), 43);
        assert_ne!(new_client_secret(), s);
    }

    #[test]
    fn uuids_are_version_4_in_the_canonical_form() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let u = uuid_v4();
            let groups: Vec<&str> = u.split('-').collect();
            assert_eq!(
                groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
                [8, 4, 4, 4, 12],
                "{u}"
            );
            assert!(
                u.bytes()
                    .all(|c| c == b'-' || c.is_ascii_digit() || (b'a'..=b'f').contains(&c)),
                "{u}"
            );
            assert!(groups[2].starts_with('4'), "version 4: {u}");
            assert!(
                groups[3].starts_with(['8', '9', 'a', 'b']),
                "RFC 9562 variant: {u}"
            );
            assert!(seen.insert(u));
        }
    }
}
