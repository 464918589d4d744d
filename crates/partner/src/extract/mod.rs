//! Extractors: read the partner id a message names, from a header or from the payload (XPath on
//! XML, JSONPath on JSON, the EDIFACT UNB or X12 ISA envelope, the IDoc control record).
//!
//! An [`Extractor`] is compiled once when a flow is deployed ([`Extractor::compile`]) and then
//! shared by all request workers. Extraction runs on the request path and on untrusted input, so
//! every extractor bounds its work: size and depth [`Limits`], no DTDs or external entities in XML,
//! a fixed prefix for EDI envelopes. Errors ([`ExtractError`]) are the sender's doing and their
//! messages are safe to return to the sender: short, and never more than [`MAX_ECHO`] characters of
//! the payload.
//!
//! XPath expressions made only of child steps (`/p:Order/p:Header/p:SenderId`, optionally ending in
//! `/text()` or `/@attr`) run on a streaming reader that stops at the first match; anything else
//! (predicates, functions, `//`) runs on a DOM. The two agree on every well-formed document; the
//! streaming reader checks well-formedness only as far as it reads.
//!
//! XML DOCTYPE policy: a DOCTYPE declaration anywhere is refused (`Malformed`) by every XML
//! extractor before any entity could be declared, so entity expansion bombs and external entities
//! cannot occur; SOAP forbids DTDs too, and B2B payloads do not use them.

mod edifact;
mod header;
mod idoc;
mod json;
mod stream;
mod x12;
mod xml;
mod xpath;

/// The most payload characters an error message repeats back to the sender.
pub const MAX_ECHO: usize = 100;

/// Where the partner id is read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// An HTTP header; the name is matched case-insensitively.
    Header(String),
    /// An XPath 1.0 expression on an XML payload.
    XPath {
        /// The expression, e.g. `/p:Order/p:Header/p:SenderId`.
        expr: String,
        /// `(prefix, namespace URI)` pairs for the prefixes the expression uses.
        namespaces: Vec<(String, String)>,
    },
    /// An RFC 9535 JSONPath query on a JSON payload, e.g. `$.order.sender.id`.
    JsonPath(String),
    /// The EDIFACT interchange header: UNB sender id (S002/0004) and its qualifier (S002/0007).
    Edifact,
    /// The X12 interchange header: ISA06 sender id and ISA05 qualifier.
    X12,
    /// The IDoc XML control record: `EDI_DC40/SNDPRN` and the partner type `SNDPRT`.
    Idoc,
}

/// Bounds on the work one extraction may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest XML payload (XPath, IDoc) in bytes; larger ones are refused unread.
    pub max_xml_bytes: usize,
    /// Largest JSON payload in bytes; larger ones are refused unread.
    pub max_json_bytes: usize,
    /// Largest XML payload an XPath that needs the DOM (predicates, functions, `//`) parses: the
    /// tree costs about 40 times the payload. Simple paths stream and only `max_xml_bytes` applies.
    pub max_dom_bytes: usize,
    /// Deepest element nesting in XML (the root element is level 1) and deepest array/object
    /// nesting in JSON; JSON is further capped at 127 levels by serde_json.
    ///
    /// The XPath DOM path recurses once per level inside xmloxide, using about 1.5 KiB of stack per
    /// level in release builds and 12 KiB in debug builds (measured); keep this limit times that
    /// well below the stack of the threads that extract (2 MiB for tokio workers by default).
    pub max_depth: usize,
    /// How many leading bytes of an EDIFACT or X12 payload are searched for the envelope.
    pub edi_prefix: usize,
}

impl Default for Limits {
    /// 16 MiB for XML and JSON, 2 MiB for XML parsed into a DOM, 128 levels of nesting, a
    /// 4096-byte EDI prefix.
    fn default() -> Self {
        Self {
            max_xml_bytes: 16 << 20,
            max_json_bytes: 16 << 20,
            max_dom_bytes: 2 << 20,
            max_depth: 128,
            edi_prefix: 4096,
        }
    }
}

/// A compiled [`Source`], ready to run on many messages at once (`Send + Sync`).
#[derive(Debug)]
pub struct Extractor {
    engine: Engine,
    limits: Limits,
}

/// The partner named in a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// The partner id, trimmed and never empty.
    pub id: String,
    /// Its qualifier: EDIFACT 0007, X12 ISA05, IDoc SNDPRT; `None` for the other sources.
    pub qualifier: Option<String>,
}

/// Why a message names no usable partner; the sender's doing, and safe to show to the sender.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExtractError {
    /// The payload is well formed but the partner id is not there (or empty).
    #[error("{0}")]
    NotFound(String),
    /// The payload cannot be read: not well-formed XML, invalid JSON, a broken EDI envelope.
    #[error("{0}")]
    Malformed(String),
    /// The payload is over a size or nesting limit.
    #[error("{0}")]
    TooLarge(String),
}

/// A [`Source`] that cannot be compiled; the message names the problem for whoever deploys the flow.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CompileError(pub String);

/// The compiled form of each source.
#[derive(Debug)]
enum Engine {
    Header(header::HeaderExtractor),
    XPath(xpath::XPathExtractor),
    Json(json::JsonPathExtractor),
    Edifact,
    X12,
    Idoc,
}

impl Extractor {
    /// Compiles `source` once, at deploy time.
    ///
    /// # Errors
    /// A bad header name, an XPath or JSONPath that does not parse, an XPath that uses a namespace
    /// prefix missing from `namespaces`, a variable or an unknown function.
    pub fn compile(source: &Source, limits: Limits) -> Result<Extractor, CompileError> {
        let engine = match source {
            Source::Header(name) => Engine::Header(header::HeaderExtractor::compile(name)?),
            Source::XPath { expr, namespaces } => {
                Engine::XPath(xpath::XPathExtractor::compile(expr, namespaces)?)
            }
            Source::JsonPath(expr) => Engine::Json(json::JsonPathExtractor::compile(expr)?),
            Source::Edifact => Engine::Edifact,
            Source::X12 => Engine::X12,
            Source::Idoc => Engine::Idoc,
        };
        Ok(Extractor { engine, limits })
    }

    /// Whether [`extract`](Self::extract) reads the body (false only for a header source).
    pub fn needs_body(&self) -> bool {
        !matches!(self.engine, Engine::Header(_))
    }

    /// How many leading body bytes suffice to extract, when the answer does not depend on the
    /// rest: 0 for a header, the envelope prefix for EDIFACT and X12; `None` when the whole
    /// body may be needed.
    pub fn prefix_len(&self) -> Option<usize> {
        match self.engine {
            Engine::Header(_) => Some(0),
            Engine::Edifact | Engine::X12 => Some(self.limits.edi_prefix),
            _ => None,
        }
    }

    /// A short description for logs and the console, e.g. `xpath /Order/Header/SenderId`.
    pub fn describe(&self) -> String {
        match &self.engine {
            Engine::Header(h) => format!("header {}", h.name()),
            Engine::XPath(x) => format!("xpath {}", x.expr()),
            Engine::Json(j) => format!("jsonpath {}", j.expr()),
            Engine::Edifact => "edifact UNB sender".to_owned(),
            Engine::X12 => "x12 ISA sender".to_owned(),
            Engine::Idoc => "idoc EDI_DC40 sender partner".to_owned(),
        }
    }

    /// Reads the partner id from one message.
    ///
    /// `header` looks a request header up by name; it is called with the lowercased name, so a
    /// case-insensitive map such as `http::HeaderMap` or a lowercase-keyed one both work.
    ///
    /// # Errors
    /// [`ExtractError`]: the id is missing or empty, the payload is malformed, or over [`Limits`].
    pub fn extract<'h>(
        &self,
        header: &dyn Fn(&str) -> Option<&'h str>,
        body: &[u8],
    ) -> Result<Found, ExtractError> {
        let limits = &self.limits;
        match &self.engine {
            Engine::Header(h) => h.extract(header),
            Engine::XPath(x) => x.extract(body, limits),
            Engine::Json(j) => j.extract(body, limits),
            Engine::Edifact => edifact::extract(body, limits.edi_prefix),
            Engine::X12 => x12::extract(body, limits.edi_prefix),
            Engine::Idoc => idoc::extract(body, limits),
        }
    }
}

/// A trimmed, non-empty id, or `None`.
fn non_empty(value: &str) -> Option<String> {
    let value = value.trim();
    (!value.is_empty()).then(|| value.to_owned())
}

/// Payload-derived text made safe for an error message: at most [`MAX_ECHO`] characters, control
/// characters shown as `?`.
fn clip(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(MAX_ECHO)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if text.chars().nth(MAX_ECHO).is_some() {
        out.push('…');
    }
    out
}

/// The part of an EDI payload searched for the envelope: the first `prefix` bytes, without a
/// UTF-8 byte order mark and leading whitespace.
fn edi_head(body: &[u8], prefix: usize) -> &[u8] {
    strip_bom(&body[..body.len().min(prefix)]).trim_ascii_start()
}

/// Strips a UTF-8 byte order mark.
fn strip_bom(body: &[u8]) -> &[u8] {
    body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body)
}

#[cfg(test)]
mod tests;
