//! The partner id from an HTTP header.

use super::{CompileError, ExtractError, Found, non_empty};

/// A header source: the name as configured (for messages) and lowercased (for the lookup).
#[derive(Debug)]
pub(super) struct HeaderExtractor {
    name: String,
    lookup: String,
}

impl HeaderExtractor {
    /// Checks that `name` is an HTTP field name (RFC 9110 token).
    pub(super) fn compile(name: &str) -> Result<Self, CompileError> {
        let is_tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return Err(CompileError(format!("`{name}` is not a valid HTTP header name")));
        }
        Ok(Self {
            name: name.to_owned(),
            lookup: name.to_ascii_lowercase(),
        })
    }

    /// The header name as configured.
    pub(super) fn name(&self) -> &str {
        &self.name
    }

    /// The trimmed header value; a missing or blank header is [`ExtractError::NotFound`].
    pub(super) fn extract<'h>(
        &self,
        header: &dyn Fn(&str) -> Option<&'h str>,
    ) -> Result<Found, ExtractError> {
        let value = header(&self.lookup)
            .ok_or_else(|| ExtractError::NotFound(format!("header {} missing", self.name)))?;
        let id = non_empty(value)
            .ok_or_else(|| ExtractError::NotFound(format!("header {} is empty", self.name)))?;
        Ok(Found { id, qualifier: None })
    }
}
