//! Reading `Authorization` headers. Input comes from the network: every malformed form is an
//! error value, never a panic, and nothing here copies the credential into an error.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Longest `Authorization` header value we decode; longer ones are refused unread.
pub const MAX_HEADER_LEN: usize = 4096;

/// User and password from an HTTP Basic header: the decoded `user:password` text, kept whole
/// (one allocation per request instead of three) and split where its first `:` is.
#[derive(PartialEq, Eq)]
pub struct BasicCredentials {
    text: String,
    colon: usize,
}

impl BasicCredentials {
    /// The user part (client id or user name).
    pub fn user(&self) -> &str {
        &self.text[..self.colon]
    }

    /// The password part (client secret or password).
    pub fn password(&self) -> &str {
        &self.text[self.colon + 1..]
    }
}

impl std::fmt::Debug for BasicCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicCredentials")
            .field("user", &self.user())
            .finish_non_exhaustive()
    }
}

/// Why a header could not be read; the text is safe to log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    /// Longer than [`MAX_HEADER_LEN`].
    TooLong,
    /// Not `Basic <base64>`.
    NotBasic,
    /// The base64 does not decode.
    BadBase64,
    /// The decoded bytes are not UTF-8.
    NotUtf8,
    /// No `:` between user and password.
    NoColon,
    /// Empty user name.
    EmptyUser,
}

impl Malformed {
    /// A short reason for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Malformed::TooLong => "header too long",
            Malformed::NotBasic => "not a Basic credential",
            Malformed::BadBase64 => "invalid base64",
            Malformed::NotUtf8 => "not UTF-8",
            Malformed::NoColon => "no ':' between user and password",
            Malformed::EmptyUser => "empty user",
        }
    }
}

/// Parses `Basic <base64(user:password)>` (scheme case-insensitive, RFC 7617).
pub fn parse_basic(value: &[u8]) -> Result<BasicCredentials, Malformed> {
    if value.len() > MAX_HEADER_LEN {
        return Err(Malformed::TooLong);
    }
    let Some(rest) = strip_scheme(value, b"basic") else {
        return Err(Malformed::NotBasic);
    };
    let encoded = trim(rest);
    if encoded.is_empty() {
        return Err(Malformed::BadBase64);
    }
    let decoded = STANDARD.decode(encoded).map_err(|_| Malformed::BadBase64)?;
    let text = String::from_utf8(decoded).map_err(|_| Malformed::NotUtf8)?;
    let colon = text.find(':').ok_or(Malformed::NoColon)?;
    if colon == 0 {
        return Err(Malformed::EmptyUser);
    }
    Ok(BasicCredentials { text, colon })
}

/// The rest after `<scheme> ` when the value starts with that scheme (ASCII case-insensitive).
pub fn strip_scheme<'a>(value: &'a [u8], scheme: &[u8]) -> Option<&'a [u8]> {
    let n = scheme.len();
    if value.len() > n && value[..n].eq_ignore_ascii_case(scheme) && value[n] == b' ' {
        Some(&value[n + 1..])
    } else {
        None
    }
}

fn trim(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(raw: &str) -> Vec<u8> {
        format!("Basic {}", STANDARD.encode(raw)).into_bytes()
    }

    #[test]
    fn reads_user_and_password() {
        let c = parse_basic(&basic("sb-x!b1|it-rt-p!b1:a:b$c")).expect("valid");
        assert_eq!(c.user(), "sb-x!b1|it-rt-p!b1");
        assert_eq!(c.password(), "a:b$c");
        assert!(parse_basic(b"bAsIc dTpw").is_ok());
    }

    #[test]
    fn malformed_values_are_errors() {
        assert_eq!(parse_basic(b""), Err(Malformed::NotBasic));
        assert_eq!(parse_basic(b"Basic"), Err(Malformed::NotBasic));
        assert_eq!(parse_basic(b"Bearer abc"), Err(Malformed::NotBasic));
        assert_eq!(parse_basic(b"Basic !!!"), Err(Malformed::BadBase64));
        assert_eq!(parse_basic(b"Basic  "), Err(Malformed::BadBase64));
        assert_eq!(parse_basic(&basic("nocolon")), Err(Malformed::NoColon));
        assert_eq!(parse_basic(&basic(":pw")), Err(Malformed::EmptyUser));
        let mut bad = b"Basic ".to_vec();
        bad.extend(STANDARD.encode([0xff, 0xfe, b':', b'x']).bytes());
        assert_eq!(parse_basic(&bad), Err(Malformed::NotUtf8));
        assert_eq!(parse_basic(&vec![b'a'; 10 * 1024]), Err(Malformed::TooLong));
    }

    #[test]
    fn debug_never_shows_the_password() {
        let c = parse_basic(&basic("u:hunter2")).expect("valid");
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
