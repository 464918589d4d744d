//! Distinguished names as strings (RFC 4514), normalised for comparison: attribute order does not
//! matter, spacing around separators does not matter, attribute names compare by their short form
//! regardless of case (`commonName`, `cn`, `2.5.4.3` are all `CN`), and values compare as X.520's
//! caseIgnoreMatch does (case-insensitive, inner runs of spaces folded).

use std::fmt;

/// A parsed, normalised DN: its attribute-value pairs, sorted. Equality compares the normalised
/// pairs only, not the text it was written as.
#[derive(Clone, Debug)]
pub struct Dn {
    attrs: Vec<(String, String)>,
    text: String,
}

impl PartialEq for Dn {
    fn eq(&self, other: &Self) -> bool {
        self.attrs == other.attrs
    }
}

impl Eq for Dn {}

impl Dn {
    /// Parses an RFC 4514 string (also accepts `;` between RDNs, quoted values and `+` for
    /// multi-valued RDNs).
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.len() > 4096 {
            return Err("DN longer than 4096 characters".into());
        }
        let mut attrs = Vec::new();
        for rdn in split_unescaped(text, &[',', ';'])? {
            for ava in split_unescaped(&rdn, &['+'])? {
                let (name, value) = ava
                    .split_once('=')
                    .ok_or_else(|| format!("{:?} is not name=value", ava.trim()))?;
                let name = short_name(name.trim())?;
                let value = unescape(value.trim())?;
                if value.is_empty() {
                    return Err(format!("{name} has an empty value"));
                }
                attrs.push((name, fold(&value)));
            }
        }
        if attrs.is_empty() {
            return Err("empty DN".into());
        }
        attrs.sort();
        Ok(Self {
            attrs,
            text: text.trim().to_owned(),
        })
    }
}

impl fmt::Display for Dn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Splits on separators that are not escaped with `\` and not inside double quotes; the escapes
/// stay in the pieces for [`unescape`].
fn split_unescaped(text: &str, seps: &[char]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = text.chars();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                cur.push(c);
                cur.push(chars.next().ok_or("DN ends with a lone backslash")?);
            }
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            c if !quoted && seps.contains(&c) => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    if quoted {
        return Err("unterminated quote in DN".into());
    }
    out.push(cur);
    if out.iter().any(|p| p.trim().is_empty()) {
        return Err("empty component in DN".into());
    }
    Ok(out)
}

fn unescape(v: &str) -> Result<String, String> {
    let v = match v.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Some(inner) => inner,
        None => v,
    };
    let mut bytes = Vec::with_capacity(v.len());
    let mut chars = v.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0u8; 4];
            bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let next = chars.next().ok_or("DN value ends with a lone backslash")?;
        if next.is_ascii_hexdigit() && chars.peek().is_some_and(char::is_ascii_hexdigit) {
            let lo = chars.next().ok_or("bad escape")?;
            let hex = format!("{next}{lo}");
            bytes.push(u8::from_str_radix(&hex, 16).map_err(|_| "bad hex escape in DN")?);
        } else {
            let mut buf = [0u8; 4];
            bytes.extend_from_slice(next.encode_utf8(&mut buf).as_bytes());
        }
    }
    String::from_utf8(bytes).map_err(|_| "DN value is not UTF-8".into())
}

fn fold(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

fn short_name(name: &str) -> Result<String, String> {
    let upper = name.to_ascii_uppercase();
    let short = match upper.as_str() {
        "CN" | "COMMONNAME" | "2.5.4.3" | "OID.2.5.4.3" => "CN",
        "O" | "ORGANIZATIONNAME" | "2.5.4.10" => "O",
        "OU" | "ORGANIZATIONALUNITNAME" | "2.5.4.11" => "OU",
        "C" | "COUNTRYNAME" | "2.5.4.6" => "C",
        "L" | "LOCALITYNAME" | "2.5.4.7" => "L",
        "ST" | "S" | "STATEORPROVINCENAME" | "2.5.4.8" => "ST",
        "STREET" | "STREETADDRESS" | "2.5.4.9" => "STREET",
        "DC" | "DOMAINCOMPONENT" | "0.9.2342.19200300.100.1.25" => "DC",
        "UID" | "USERID" | "0.9.2342.19200300.100.1.1" => "UID",
        "E" | "EMAIL" | "EMAILADDRESS" | "1.2.840.113549.1.9.1" => "EMAILADDRESS",
        "SERIALNUMBER" | "2.5.4.5" => "SERIALNUMBER",
        "T" | "TITLE" | "2.5.4.12" => "TITLE",
        "GN" | "GIVENNAME" | "2.5.4.42" => "GIVENNAME",
        "SN" | "SURNAME" | "2.5.4.4" => "SN",
        other
            if !other.is_empty()
                && other
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-') =>
        {
            return Ok(other.to_owned());
        }
        _ => return Err(format!("{name:?} is not an attribute name")),
    };
    Ok(short.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(a: &str, b: &str) -> bool {
        Dn::parse(a).expect(a) == Dn::parse(b).expect(b)
    }

    #[test]
    fn normalises_order_spacing_names_and_case() {
        assert!(same(
            "CN=partner-a, OU=Clients, O=ACME",
            "o=ACME,ou=clients,commonName=Partner-A"
        ));
        assert!(same("CN=A  B,O=X", "cn = a b ; o = x"));
        assert!(same("2.5.4.3=x,O=y", "CN=x,O=y"));
        assert!(same("CN=a\\,b,O=x", "CN=\"a,b\",O=x"));
        assert!(same("CN=\\41BC", "CN=abc"));
        assert!(same("CN=a+UID=7,O=x", "UID=7,CN=a,O=x"));
        assert!(!same("CN=a,O=x", "CN=a,O=y"));
        assert!(!same("CN=a,O=x", "CN=a,O=x,C=DE"));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "CN",
            "CN=",
            ",CN=a",
            "CN=a,,O=b",
            "C N=a",
            "CN=a\\",
            "CN=\"a",
            "CN=\\ff\\fe",
        ] {
            assert!(Dn::parse(bad).is_err(), "{bad:?}");
        }
    }
}
