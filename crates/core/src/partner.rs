//! Partner Directory records (SAP Cloud Integration's PD): partners (`Pid`), alternative partners
//! (agency + scheme + id → Pid), authorized users (user → Pid) and string parameters, with SAP's
//! limits (`sap-reference.md` §5.1).

use crate::Error;

/// Longest Pid.
pub const MAX_PID: usize = 60;
/// Longest agency or scheme.
pub const MAX_AGENCY: usize = 120;
/// Longest alternative partner id (SAP's docs allow 225; its API spec says 60).
pub const MAX_ALT_ID: usize = 255;
/// Longest authorized user name.
pub const MAX_USER: usize = 150;
/// Longest string parameter id.
pub const MAX_PARAM_ID: usize = 255;
/// Longest string parameter value.
pub const MAX_STRING_VALUE: usize = 4000;

/// Checks a Pid or parameter id: `A-Z a-z 0-9 - . _ ~ < > @`.
pub fn check_pid(field: &str, value: &str, max: usize) -> Result<(), Error> {
    if value.is_empty() || value.chars().count() > max {
        return Err(Error::invalid(field, format!("give 1 to {max} characters")));
    }
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | '<' | '>' | '@')))
    {
        return Err(Error::invalid(
            field,
            format!("character {c:?} not allowed; use A-Z a-z 0-9 - . _ ~ < > @"),
        ));
    }
    Ok(())
}

/// Upper-case hex of the UTF-8 bytes (SAP's `Hexagency`/`Hexscheme`/`Hexid` key form).
pub fn hex_upper(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02X}")).collect()
}

/// Who created and last changed an entry, and when (Unix ms).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Audit {
    /// `CreatedBy`.
    pub created_by: String,
    /// `CreatedTime`.
    pub created_at: i64,
    /// `LastModifiedBy`.
    pub modified_by: String,
    /// `LastModifiedTime`.
    pub modified_at: i64,
}

/// An alternative partner: (agency, scheme, id) names a Pid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlternativePartner {
    /// `Agency`.
    pub agency: String,
    /// `Scheme`.
    pub scheme: String,
    /// `Id`.
    pub id: String,
    /// `Pid`.
    pub pid: String,
    /// Audit fields.
    pub audit: Audit,
}

/// An authorized user: the user may send as the partner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthorizedUser {
    /// `User`, lower-case.
    pub user: String,
    /// `Pid`.
    pub pid: String,
    /// Audit fields.
    pub audit: Audit,
}

/// A string parameter of a partner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StringParameter {
    /// `Pid`.
    pub pid: String,
    /// `Id`.
    pub id: String,
    /// `Value`.
    pub value: String,
    /// Audit fields.
    pub audit: Audit,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_rules_and_hex_keys() {
        assert!(check_pid("Pid", "ACME-01.x_~<>@", MAX_PID).is_ok());
        assert!(check_pid("Pid", "", MAX_PID).is_err());
        assert!(check_pid("Pid", "a b", MAX_PID).is_err());
        assert!(check_pid("Pid", &"a".repeat(61), MAX_PID).is_err());
        assert_eq!(hex_upper("my agency"), "6D79206167656E6379");
    }
}
