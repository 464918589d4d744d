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

/// Largest binary parameter value, in bytes (SAP's API limit, 256 KiB).
pub const MAX_BINARY_VALUE: usize = 262_144;
/// Longest binary parameter content type.
pub const MAX_CONTENT_TYPE: usize = 300;
/// The binary parameter content types SAP accepts; text types may carry `;encoding=...`.
pub const CONTENT_TYPES: [&str; 9] = ["xml", "xsl", "xsd", "json", "text", "zip", "gz", "zlib", "crt"];

/// Checks a binary parameter content type: one of [`CONTENT_TYPES`], the text types (`xml`,
/// `xsl`, `xsd`, `json`, `text`) optionally followed by `;encoding=<charset>`.
pub fn check_content_type(value: &str) -> Result<(), Error> {
    let bad = || {
        Error::invalid(
            "ContentType",
            format!(
                "use one of {} (text types may add ;encoding=UTF-8)",
                CONTENT_TYPES.join(", ")
            ),
        )
    };
    if value.len() > MAX_CONTENT_TYPE {
        return Err(bad());
    }
    let (base, params) = match value.split_once(';') {
        Some((b, p)) => (b.trim(), Some(p.trim())),
        None => (value.trim(), None),
    };
    if !CONTENT_TYPES.contains(&base) {
        return Err(bad());
    }
    match params {
        None => Ok(()),
        Some(p) if matches!(base, "xml" | "xsl" | "xsd" | "json" | "text") => {
            let charset = p.strip_prefix("encoding=").ok_or_else(bad)?;
            if charset.is_empty()
                || charset.len() > 40
                || !charset
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                return Err(bad());
            }
            Ok(())
        }
        Some(_) => Err(bad()),
    }
}

/// Checks an agency or scheme: 1 to 120 characters, no control characters.
pub fn check_agency(field: &str, value: &str) -> Result<(), Error> {
    check_text(field, value, MAX_AGENCY)
}

/// Checks free text of 1 to `max` characters without control characters.
pub fn check_text(field: &str, value: &str, max: usize) -> Result<(), Error> {
    if value.is_empty() || value.chars().count() > max {
        return Err(Error::invalid(field, format!("give 1 to {max} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(field, "control characters are not allowed"));
    }
    Ok(())
}

/// Checks and lower-cases an authorized user name (SAP stores and compares them lower-case).
pub fn normalize_user(value: &str) -> Result<String, Error> {
    check_text("User", value, MAX_USER)?;
    if value.chars().any(char::is_whitespace) {
        return Err(Error::invalid("User", "spaces are not allowed"));
    }
    Ok(value.to_lowercase())
}

/// A binary parameter of a partner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BinaryParameter {
    /// `Pid`.
    pub pid: String,
    /// `Id`.
    pub id: String,
    /// `ContentType`.
    pub content_type: String,
    /// The decoded value (the API carries it base64-encoded).
    pub value: Vec<u8>,
    /// Audit fields.
    pub audit: Audit,
}

/// One change to the Partner Directory. A list of them is applied in one transaction: all or
/// nothing. Changes that name a Pid create the partner when it does not exist yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PartnerChange {
    /// Deletes a partner and everything that belongs to it, except the kinds in `keep`.
    DeletePartner {
        /// The partner.
        pid: String,
        /// Entity kinds to keep (SAP's `exclude` query option).
        keep: Vec<PartnerKind>,
    },
    /// Adds an alternative partner; conflict when (agency, scheme, id) or (agency, scheme, pid) is taken.
    InsertAlternative(AlternativePartner),
    /// Points an alternative partner at another Pid (only `pid` and `audit.modified_*` are used).
    UpdateAlternative(AlternativePartner),
    /// Deletes an alternative partner.
    DeleteAlternative {
        /// `Agency`.
        agency: String,
        /// `Scheme`.
        scheme: String,
        /// `Id`.
        id: String,
    },
    /// Adds an authorized user; conflict when the user already belongs to a partner.
    InsertUser(AuthorizedUser),
    /// Moves an authorized user to another Pid.
    UpdateUser(AuthorizedUser),
    /// Deletes an authorized user.
    DeleteUser {
        /// `User`, lower-case.
        user: String,
    },
    /// Adds a string parameter.
    InsertString(StringParameter),
    /// Changes a string parameter's value.
    UpdateString(StringParameter),
    /// Deletes a string parameter.
    DeleteString {
        /// `Pid`.
        pid: String,
        /// `Id`.
        id: String,
    },
    /// Adds a binary parameter.
    InsertBinary(BinaryParameter),
    /// Changes a binary parameter's content type and value.
    UpdateBinary(BinaryParameter),
    /// Deletes a binary parameter.
    DeleteBinary {
        /// `Pid`.
        pid: String,
        /// `Id`.
        id: String,
    },
}

/// The kinds of entries a partner owns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PartnerKind {
    /// `AlternativePartners`.
    AlternativePartners,
    /// `AuthorizedUsers`.
    AuthorizedUsers,
    /// `StringParameters`.
    StringParameters,
    /// `BinaryParameters`.
    BinaryParameters,
}

impl PartnerKind {
    /// Parses SAP's entity set name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "AlternativePartners" => Self::AlternativePartners,
            "AuthorizedUsers" => Self::AuthorizedUsers,
            "StringParameters" => Self::StringParameters,
            "BinaryParameters" => Self::BinaryParameters,
            _ => return None,
        })
    }
}

/// What an applied change did to the entries the request path reads (the in-memory directory
/// applies these; other nodes learn of them by key). `None` values mean "removed".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PartnerDelta {
    /// An alternative partner now names `pid`, or was removed.
    Alternative {
        /// `Agency`.
        agency: String,
        /// `Scheme`.
        scheme: String,
        /// `Id`.
        id: String,
        /// The Pid it names now.
        pid: Option<String>,
    },
    /// An authorized user now belongs to `pid`, or was removed.
    User {
        /// `User`.
        user: String,
        /// Its partner now.
        pid: Option<String>,
    },
    /// A string parameter's value now, or removed.
    String {
        /// `Pid`.
        pid: String,
        /// `Id`.
        id: String,
        /// The value now.
        value: Option<String>,
    },
    /// A binary parameter was written or removed (its value stays in the store).
    Binary {
        /// `Pid`.
        pid: String,
        /// `Id`.
        id: String,
    },
    /// A partner was deleted (its entries have their own deltas).
    PartnerRemoved {
        /// `Pid`.
        pid: String,
    },
}

/// A Partner Directory entity set the API lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartnerSet {
    /// `Partners`.
    Partners,
    /// `AlternativePartners`.
    AlternativePartners,
    /// `AuthorizedUsers`.
    AuthorizedUsers,
    /// `StringParameters`.
    StringParameters,
    /// `BinaryParameters`.
    BinaryParameters,
}

/// A filterable, sortable property of a Partner Directory entity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartnerField {
    /// `Pid`.
    Pid,
    /// `Id`.
    Id,
    /// `Agency`.
    Agency,
    /// `Scheme`.
    Scheme,
    /// `User`.
    User,
    /// `Value` (string parameters).
    Value,
    /// `ContentType`.
    ContentType,
    /// `CreatedBy`.
    CreatedBy,
    /// `LastModifiedBy`.
    LastModifiedBy,
    /// `CreatedTime`.
    CreatedTime,
    /// `LastModifiedTime`.
    LastModifiedTime,
}

impl PartnerField {
    /// The property of `set` with this OData name.
    pub fn parse(set: PartnerSet, name: &str) -> Option<Self> {
        use PartnerField as F;
        use PartnerSet as S;
        let f = match name {
            "Pid" => F::Pid,
            "Id" => F::Id,
            "Agency" => F::Agency,
            "Scheme" => F::Scheme,
            "User" => F::User,
            "Value" => F::Value,
            "ContentType" => F::ContentType,
            "CreatedBy" => F::CreatedBy,
            "LastModifiedBy" => F::LastModifiedBy,
            "CreatedTime" => F::CreatedTime,
            "LastModifiedTime" => F::LastModifiedTime,
            _ => return None,
        };
        let ok = match set {
            S::Partners => matches!(f, F::Pid),
            S::AlternativePartners => matches!(f, F::Pid | F::Id | F::Agency | F::Scheme) || f.is_audit(),
            S::AuthorizedUsers => matches!(f, F::Pid | F::User) || f.is_audit(),
            S::StringParameters => matches!(f, F::Pid | F::Id | F::Value) || f.is_audit(),
            S::BinaryParameters => matches!(f, F::Pid | F::Id | F::ContentType) || f.is_audit(),
        };
        ok.then_some(f)
    }

    fn is_audit(self) -> bool {
        matches!(
            self,
            Self::CreatedBy | Self::LastModifiedBy | Self::CreatedTime | Self::LastModifiedTime
        )
    }

    /// Whether values of this field are times (compared with `datetime'...'`).
    pub fn is_time(self) -> bool {
        matches!(self, Self::CreatedTime | Self::LastModifiedTime)
    }
}

/// A comparison in a Partner Directory query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartnerCondition {
    /// The property.
    pub field: PartnerField,
    /// The operator.
    pub op: crate::mpl::CmpOp,
    /// The value.
    pub value: crate::mpl::Literal,
}

/// A page of one entity set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartnerQuery {
    /// The set.
    pub set: PartnerSet,
    /// Comparisons joined by `and`.
    pub conditions: Vec<PartnerCondition>,
    /// Sort field and descending flag; the key order otherwise.
    pub order_by: Option<(PartnerField, bool)>,
    /// Page size.
    pub top: u32,
    /// Rows to skip.
    pub skip: u32,
}

/// A row of a Partner Directory query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PartnerRow {
    /// A partner.
    Partner(String),
    /// An alternative partner.
    Alternative(AlternativePartner),
    /// An authorized user.
    User(AuthorizedUser),
    /// A string parameter.
    String(StringParameter),
    /// A binary parameter.
    Binary(BinaryParameter),
}

/// Receives the Partner Directory's rows one at a time, as the store reads them (to build the
/// in-memory directory without holding every row at once).
pub trait DirectorySink {
    /// An alternative partner.
    fn alternative(&mut self, agency: &str, scheme: &str, id: &str, pid: &str);
    /// An authorized user (lower-case).
    fn user(&mut self, user: &str, pid: &str);
    /// A string parameter.
    fn string(&mut self, pid: &str, id: &str, value: &str);
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

    #[test]
    fn content_types_and_users() {
        for ok in ["xml", "crt", "text;encoding=UTF-8", "json; encoding=ISO-8859-1"] {
            assert!(check_content_type(ok).is_ok(), "{ok}");
        }
        for bad in [
            "pdf",
            "zip;encoding=UTF-8",
            "xml;charset=UTF-8",
            "text;encoding=",
            "",
        ] {
            assert!(check_content_type(bad).is_err(), "{bad}");
        }
        assert_eq!(normalize_user("Partner-A").expect("valid"), "partner-a");
        assert!(normalize_user("a b").is_err());
        assert!(normalize_user(&"u".repeat(151)).is_err());
    }
}
