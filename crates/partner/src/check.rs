//! The partner authorization check (SAP's "Partner Authorization (Inbound)"): the authenticated
//! user's partner, from the authorized users, must be the partner the message names, directly
//! or as an alternative partner (agency + scheme + id).

use crate::directory::Directory;
use crate::extract::Found;

/// An (agency, scheme) pair the message's id is looked up under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scheme {
    /// `Agency`.
    pub agency: String,
    /// `Scheme`.
    pub scheme: String,
}

/// How the id read from the message becomes a Pid.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mapping {
    /// Look every id up as an alternative partner of this scheme.
    pub alternative: Option<Scheme>,
    /// Per qualifier the message carries (EDIFACT 0007, X12 ISA05, IDoc SNDPRT): the scheme to
    /// look the id up under. Takes precedence over `alternative`.
    pub qualifiers: Vec<(String, Scheme)>,
}

/// A passed check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Passed {
    /// The partner, the user's and the message's.
    pub pid: String,
    /// The id as the message carried it, when it was an alternative partner id.
    pub alternative_id: Option<String>,
}

/// Why the check failed; the text is safe to show the sender.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denied {
    /// The flow reached the check without an authenticated user.
    NoUser,
    /// The user is not an authorized user of any partner.
    NotAuthorized {
        /// The user.
        user: String,
    },
    /// The message's qualifier has no scheme in the step's configuration.
    UnknownQualifier {
        /// The qualifier.
        qualifier: String,
    },
    /// No alternative partner of that scheme has the message's id.
    UnknownAlternative {
        /// The scheme looked in.
        scheme: Scheme,
        /// The id.
        id: String,
    },
    /// The user sends for another partner than the message names.
    Mismatch {
        /// The user.
        user: String,
        /// The user's partner.
        user_pid: String,
        /// The partner the message names.
        message_pid: String,
    },
}

impl Denied {
    /// A stable code for the decision trace.
    pub fn code(&self) -> &'static str {
        match self {
            Denied::NoUser => "no_user",
            Denied::NotAuthorized { .. } => "not_an_authorized_user",
            Denied::UnknownQualifier { .. } => "unknown_qualifier",
            Denied::UnknownAlternative { .. } => "unknown_alternative_partner",
            Denied::Mismatch { .. } => "partner_mismatch",
        }
    }
}

impl std::fmt::Display for Denied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Denied::NoUser => write!(
                f,
                "partner check: no authenticated user (SapAuthenticatedUserName is empty)"
            ),
            Denied::NotAuthorized { user } => write!(
                f,
                "partner check: user {user} is not an authorized user of any partner"
            ),
            Denied::UnknownQualifier { qualifier } => write!(
                f,
                "partner check: the message's partner qualifier {qualifier:?} is not configured for this flow"
            ),
            Denied::UnknownAlternative { scheme, id } => write!(
                f,
                "partner check: no partner has alternative id {id:?} (agency {:?}, scheme {:?})",
                scheme.agency, scheme.scheme
            ),
            Denied::Mismatch {
                user,
                user_pid,
                message_pid,
            } => write!(
                f,
                "partner check: user {user} sends for partner {user_pid}, but the message names partner {message_pid}"
            ),
        }
    }
}

/// Runs the check for `user` against the partner `found` in the message.
pub fn check(
    dir: &Directory,
    user: Option<&str>,
    found: &Found,
    mapping: &Mapping,
) -> Result<Passed, Denied> {
    let user = user
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .ok_or(Denied::NoUser)?;
    let user_pid = dir.partner_of_user(user).ok_or_else(|| Denied::NotAuthorized {
        user: user.to_lowercase(),
    })?;
    let scheme = match (&found.qualifier, mapping.qualifiers.is_empty()) {
        (Some(q), false) => match mapping.qualifiers.iter().find(|(k, _)| k == q.trim()) {
            Some((_, s)) => Some(s),
            None if mapping.alternative.is_some() => mapping.alternative.as_ref(),
            None => {
                return Err(Denied::UnknownQualifier { qualifier: q.clone() });
            }
        },
        _ => mapping.alternative.as_ref(),
    };
    let (message_pid, alternative_id) = match scheme {
        None => (found.id.as_str(), None),
        Some(s) => {
            let pid = dir
                .partner_of_alternative(&s.agency, &s.scheme, &found.id)
                .ok_or_else(|| Denied::UnknownAlternative {
                    scheme: s.clone(),
                    id: found.id.clone(),
                })?;
            (pid, Some(found.id.clone()))
        }
    };
    if message_pid != user_pid {
        return Err(Denied::Mismatch {
            user: user.to_lowercase(),
            user_pid: user_pid.to_owned(),
            message_pid: message_pid.to_owned(),
        });
    }
    Ok(Passed {
        pid: user_pid.to_owned(),
        alternative_id,
    })
}

#[cfg(test)]
mod tests {
    use postern_core::partner::{AlternativePartner, Audit, AuthorizedUser};

    use super::*;

    fn dir() -> Directory {
        let audit = Audit {
            created_by: "t".into(),
            created_at: 0,
            modified_by: "t".into(),
            modified_at: 0,
        };
        let alt = |agency: &str, scheme: &str, id: &str, pid: &str| AlternativePartner {
            agency: agency.into(),
            scheme: scheme.into(),
            id: id.into(),
            pid: pid.into(),
            audit: audit.clone(),
        };
        let user = |u: &str, pid: &str| AuthorizedUser {
            user: u.into(),
            pid: pid.into(),
            audit: audit.clone(),
        };
        Directory::build(
            &[
                alt("016", "DUNS", "123456789", "ACME"),
                alt("016", "DUNS", "987654321", "GLOBEX"),
                alt("EDI", "14", "4000001000002", "ACME"),
            ],
            &[user("acme-user", "ACME"), user("globex-user", "GLOBEX")],
            &[],
        )
        .expect("fits")
    }

    fn found(id: &str, qualifier: Option<&str>) -> Found {
        Found {
            id: id.into(),
            qualifier: qualifier.map(Into::into),
        }
    }

    #[test]
    fn seed_scenario() {
        let d = dir();
        let duns = Mapping {
            alternative: Some(Scheme {
                agency: "016".into(),
                scheme: "DUNS".into(),
            }),
            qualifiers: vec![],
        };
        let ok = check(&d, Some("ACME-User"), &found("123456789", None), &duns).expect("own partner");
        assert_eq!(ok.pid, "ACME");
        assert_eq!(ok.alternative_id.as_deref(), Some("123456789"));
        let e = check(&d, Some("acme-user"), &found("987654321", None), &duns).expect_err("other partner");
        assert_eq!(
            e.to_string(),
            "partner check: user acme-user sends for partner ACME, but the message names partner GLOBEX"
        );
        assert!(matches!(
            check(&d, Some("acme-user"), &found("000", None), &duns),
            Err(Denied::UnknownAlternative { .. })
        ));
        assert_eq!(
            check(&d, Some("nobody"), &found("123456789", None), &duns),
            Err(Denied::NotAuthorized {
                user: "nobody".into()
            })
        );
        assert_eq!(check(&d, None, &found("x", None), &duns), Err(Denied::NoUser));
        // Without a mapping the message names the Pid itself.
        let direct = Mapping::default();
        assert!(check(&d, Some("globex-user"), &found("GLOBEX", None), &direct).is_ok());
        assert!(check(&d, Some("globex-user"), &found("ACME", None), &direct).is_err());
    }

    #[test]
    fn qualifiers_choose_the_scheme() {
        let d = dir();
        let m = Mapping {
            alternative: None,
            qualifiers: vec![(
                "14".into(),
                Scheme {
                    agency: "EDI".into(),
                    scheme: "14".into(),
                },
            )],
        };
        assert!(check(&d, Some("acme-user"), &found("4000001000002", Some("14")), &m).is_ok());
        assert_eq!(
            check(&d, Some("acme-user"), &found("4000001000002", Some("ZZ")), &m),
            Err(Denied::UnknownQualifier {
                qualifier: "ZZ".into()
            })
        );
        // No qualifier in the message: the id is the Pid.
        assert!(check(&d, Some("acme-user"), &found("ACME", None), &m).is_ok());
    }
}
