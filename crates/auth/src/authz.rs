//! The role check. A passed check hands out a [`Permit`], which the code behind the check takes
//! as a parameter: code that did not check cannot obtain one.

use postern_core::ids::RoleName;

use crate::authn::Principal;

/// Proof that a principal holds one of the roles an action requires.
#[derive(Debug)]
pub struct Permit<'a> {
    /// Who was permitted.
    pub principal: &'a Principal,
    /// The role that granted it.
    pub role: RoleName,
}

/// A failed role check: the roles that would have allowed the action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissingRole {
    /// Any one of these would do.
    pub required: Vec<RoleName>,
}

impl std::fmt::Display for MissingRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.required.iter().map(RoleName::as_str).collect();
        write!(f, "the caller lacks the required role ({})", names.join(" or "))
    }
}

/// Checks that `principal` holds one of `required`, counting the `ESBMessaging.send` grant the
/// Partner Directory gives every authorized user (`is_authorized_user` is asked only when the
/// principal's own roles do not suffice, so the common path costs nothing extra).
pub fn require_any_or_partner<'a>(
    principal: &'a Principal,
    required: &[RoleName],
    is_authorized_user: impl FnOnce(&str) -> bool,
) -> Result<Permit<'a>, MissingRole> {
    require_any(principal, required).or_else(|missing| {
        match required
            .iter()
            .find(|r| r.as_str() == postern_core::model::ROLE_SEND)
        {
            Some(send) if is_authorized_user(&principal.name) => Ok(Permit {
                principal,
                role: send.clone(),
            }),
            _ => Err(missing),
        }
    })
}

/// Checks that `principal` holds at least one of `required`.
pub fn require_any<'a>(principal: &'a Principal, required: &[RoleName]) -> Result<Permit<'a>, MissingRole> {
    match principal.roles.first_of(required) {
        Some(role) => Ok(Permit {
            principal,
            role: role.clone(),
        }),
        None => Err(MissingRole {
            required: required.to_vec(),
        }),
    }
}
