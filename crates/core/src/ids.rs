//! Identifiers that can only hold valid values: each is parsed once at the edge (`parse`), and the
//! rest of the code can rely on its rules. Rules follow SAP Cloud Integration where it has one
//! (see `sap-reference.md` §1.1, §3.1, §3.4).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Error;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $field:literal, $check:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Parses and validates a value; the error names the field.
            pub fn parse(value: &str) -> Result<Self, Error> {
                let check: fn(&str) -> Result<String, String> = $check;
                check(value).map(Self).map_err(|m| Error::invalid($field, m))
            }

            /// The value as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

fn charset(value: &str, max: usize, allowed: impl Fn(char) -> bool, what: &str) -> Result<String, String> {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    if value.chars().count() > max {
        return Err(format!("at most {max} characters"));
    }
    match value.chars().find(|c| !allowed(*c)) {
        Some(c) => Err(format!("character {c:?} not allowed; use {what}")),
        None => Ok(value.to_owned()),
    }
}

fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

string_id!(
    /// A service instance name: up to 32 characters of `A-Z a-z 0-9 . _ -`.
    InstanceName,
    "name",
    |v| charset(v, 32, name_char, "A-Z a-z 0-9 . _ -")
);

string_id!(
    /// A service key name: up to 32 characters of `A-Z a-z 0-9 . _ -`.
    KeyName,
    "name",
    |v| charset(v, 32, name_char, "A-Z a-z 0-9 . _ -")
);

string_id!(
    /// A user role name: `a-z A-Z 0-9 _ .`, up to 100 characters.
    RoleName,
    "name",
    |v| charset(v, 100, |c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.'), "a-z A-Z 0-9 _ .")
);

string_id!(
    /// An integration flow id: up to 100 characters of `A-Z a-z 0-9 . _ -`.
    FlowId,
    "id",
    |v| charset(v, 100, name_char, "A-Z a-z 0-9 . _ -")
);

string_id!(
    /// A technical user name, stored lower-case (user names compare case-insensitively, as SAP's
    /// Partner Directory does): up to 150 visible ASCII characters, no `:` (HTTP Basic splits on it).
    UserName,
    "name",
    |v| charset(v, 150, |c| c.is_ascii_graphic() && c != ':', "visible ASCII without ':'")
        .map(|s| s.to_ascii_lowercase())
);

/// A sender address of the HTTPS adapter, served at `/http<address>`.
///
/// Rules from SAP's HTTPS sender adapter: starts with `/`; characters `A-Z a-z 0-9 _ / ~ - . $ *`;
/// `$` only right after the first `/`; `*` only as a trailing `/*` (matches every sub-path);
/// a segment cannot start with `.`, `-` or `~`; no empty segments. Addresses are case-insensitive,
/// so the stored form is lower-case.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowAddress {
    path: String,
    wildcard: bool,
}

impl FlowAddress {
    /// Parses an address such as `/orders` or `/partners/*`.
    pub fn parse(value: &str) -> Result<Self, Error> {
        let err = |m: &str| Error::invalid("sender.address", m.to_owned());
        if !value.starts_with('/') {
            return Err(err("must start with '/'"));
        }
        if value.len() > 255 {
            return Err(err("at most 255 characters"));
        }
        let (body, wildcard) = match value.strip_suffix("/*") {
            Some(rest) => (rest, true),
            None => (value, false),
        };
        if body.is_empty() || body == "/" {
            return Err(err("needs at least one path segment"));
        }
        for (i, segment) in body[1..].split('/').enumerate() {
            if segment.is_empty() {
                return Err(err("empty path segment"));
            }
            if segment.starts_with(['.', '-', '~']) {
                return Err(err("a segment cannot start with '.', '-' or '~'"));
            }
            for (j, c) in segment.chars().enumerate() {
                let ok = c.is_ascii_alphanumeric()
                    || matches!(c, '_' | '~' | '-' | '.')
                    || (c == '$' && i == 0 && j == 0);
                if !ok {
                    return Err(err(&format!("character {c:?} not allowed here")));
                }
            }
        }
        Ok(Self {
            path: body.to_ascii_lowercase(),
            wildcard,
        })
    }

    /// The path without a trailing `/*`, lower-case.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether the address ends in `/*` and so serves every sub-path.
    pub fn is_wildcard(&self) -> bool {
        self.wildcard
    }
}

impl fmt::Display for FlowAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path)?;
        if self.wildcard {
            f.write_str("/*")?;
        }
        Ok(())
    }
}

impl Serialize for FlowAddress {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for FlowAddress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_sap_charsets() {
        assert!(InstanceName::parse("orders-inbound_1.x").is_ok());
        assert!(InstanceName::parse("").is_err());
        assert!(InstanceName::parse(&"a".repeat(33)).is_err());
        assert!(InstanceName::parse("with space").is_err());
        assert!(RoleName::parse("Orders.Send_1").is_ok());
        assert!(RoleName::parse("Orders-Send").is_err());
        assert_eq!(
            UserName::parse("Alice@ACME").map(|u| u.0).ok(),
            Some("alice@acme".into())
        );
        assert!(UserName::parse("a:b").is_err());
    }

    #[test]
    fn addresses() {
        let a = FlowAddress::parse("/Orders/In").expect("valid");
        assert_eq!(a.path(), "/orders/in");
        assert!(!a.is_wildcard());
        let w = FlowAddress::parse("/partners/*").expect("valid");
        assert!(w.is_wildcard());
        assert_eq!(w.to_string(), "/partners/*");
        assert!(FlowAddress::parse("/$batch").is_ok());
        for bad in [
            "orders", "/", "/a//b", "/a/$b", "/.a", "/a*", "/a/*/b", "/a b", "/-x",
        ] {
            assert!(FlowAddress::parse(bad).is_err(), "{bad}");
        }
    }
}
