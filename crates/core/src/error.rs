//! The error kinds shared by the domain crates. Each kind says who caused it, which decides the
//! status a caller sees: `Invalid`/`NotFound`/`Conflict` are the caller's doing (4xx),
//! `Unavailable`/`Internal` are ours (5xx).

/// Result with Postern's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A domain error, in domain words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Input that breaks a rule; `field` names what was wrong.
    #[error("{field}: {message}")]
    Invalid {
        /// The offending field (JSON key, YAML path, parameter name).
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The named thing does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The request conflicts with the current state (duplicate, still in use).
    #[error("{0}")]
    Conflict(String),
    /// The request is understood but not allowed (built-in item, wrong plan).
    #[error("{0}")]
    Forbidden(String),
    /// A dependency (the database) cannot serve right now.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A bug or an impossible state on our side.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// Shorthand for [`Error::Invalid`].
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}
