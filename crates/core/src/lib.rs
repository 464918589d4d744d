//! Postern's domain vocabulary: identifiers that are valid by construction, the records the
//! store keeps (roles, service instances and keys, technical users, message processing logs,
//! audit entries), the one error type every layer speaks, and the immutable security
//! [`snapshot::Snapshot`] the request path reads. No I/O, no async, no framework types.

pub mod dn;
pub mod error;
pub mod ids;
pub mod layered;
pub mod model;
pub mod mpl;
pub mod odata_filter;
pub mod partner;
pub mod snapshot;
pub mod time;

pub use error::{Error, Result};
