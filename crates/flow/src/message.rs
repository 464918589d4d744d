//! The message a flow works on: headers (case-insensitive names, as in HTTP and Camel),
//! exchange properties (case-sensitive) and the body.

use bytes::Bytes;

/// A message inside a flow.
#[derive(Clone, Debug, Default)]
pub struct Message {
    headers: Vec<(String, String)>,
    properties: Vec<(String, String)>,
    /// The payload.
    pub body: Bytes,
}

impl Message {
    /// A message with a body and nothing else.
    pub fn new(body: Bytes) -> Self {
        Self {
            body,
            ..Self::default()
        }
    }

    /// A header's value (name compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Sets a header, replacing any of the same name.
    pub fn set_header(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self
            .headers
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(slot) => slot.1 = value,
            None => self.headers.push((name.to_owned(), value)),
        }
    }

    /// Removes every header of that name.
    pub fn remove_header(&mut self, name: &str) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    /// Removes every header whose name starts with `prefix` (case-insensitive).
    pub fn remove_headers_with_prefix(&mut self, prefix: &str) {
        self.headers.retain(|(n, _)| {
            !(n.len() >= prefix.len() && n.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes()))
        });
    }

    /// All headers in order.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// All properties in order.
    pub fn properties(&self) -> &[(String, String)] {
        &self.properties
    }

    /// A property's value.
    pub fn property(&self, name: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sets a property.
    pub fn set_property(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self.properties.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value,
            None => self.properties.push((name.to_owned(), value)),
        }
    }
}
