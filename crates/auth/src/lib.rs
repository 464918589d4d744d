//! Authentication and authorization for Postern: reading HTTP Basic credentials, verifying
//! generated client secrets (keyed hash) and human passwords (argon2id behind a bounded cache),
//! the role check that hands out a [`authz::Permit`], and the admin services that create and
//! delete roles, service instances, keys and technical users.

pub mod admin;
pub mod authn;
pub mod authz;
pub mod basic;
pub mod cert;
pub mod expiry;
pub mod password;
pub mod pki;
pub mod secret;
pub mod token;

pub use authn::{AuthFailure, Authenticator, Principal, PrincipalKind};
