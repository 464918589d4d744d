//! XML input shared by the XPath and IDoc extractors: the size limit, character decoding, the
//! DOCTYPE policy, and [`XmlStream`], a pull reader over quick-xml that enforces the depth limit
//! and the well-formedness rules the streaming extractors rely on.

use std::borrow::Cow;

use quick_xml::XmlVersion;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::attributes::Attribute;
use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::name::{NamespaceResolver, QName, ResolveResult};
use quick_xml::reader::Reader;

use super::{ExtractError, Limits, clip, strip_bom};

/// The answer to any DOCTYPE declaration (see the module docs of [`super`]).
pub(super) const DOCTYPE_REFUSED: &str =
    "XML with a DOCTYPE declaration is not accepted (DTDs and entity declarations are refused)";

/// The payload as text: size-checked, BOM stripped, decoded to UTF-8.
///
/// UTF-8 (the common case) is borrowed; UTF-16 with a BOM or an 8-bit encoding named in the XML
/// declaration is transcoded.
pub(super) fn text<'b>(body: &'b [u8], limits: &Limits) -> Result<Cow<'b, str>, ExtractError> {
    if body.len() > limits.max_xml_bytes {
        return Err(ExtractError::TooLarge(format!(
            "XML payload of {} bytes is over the limit of {} bytes",
            body.len(),
            limits.max_xml_bytes
        )));
    }
    let utf16 = body.starts_with(b"\xFE\xFF") || body.starts_with(b"\xFF\xFE");
    let body = strip_bom(body);
    if !utf16 && !declares_other_encoding(body) {
        return std::str::from_utf8(body).map(Cow::Borrowed).map_err(|e| {
            ExtractError::Malformed(format!(
                "XML payload is not valid UTF-8 (at byte {}) and declares no other encoding",
                e.valid_up_to()
            ))
        });
    }
    xmloxide::encoding::decode_to_utf8(body)
        .map(|s| Cow::Owned(s.strip_prefix('\u{FEFF}').map(str::to_owned).unwrap_or(s)))
        .map_err(|e| ExtractError::Malformed(format!("cannot decode XML payload: {}", clip(&e.message))))
}

/// Whether the XML declaration names an encoding other than UTF-8 or ASCII.
fn declares_other_encoding(body: &[u8]) -> bool {
    if !body.starts_with(b"<?xml") {
        return false;
    }
    let head = &body[..body.len().min(256)];
    let Some(end) = head.windows(2).position(|w| w == b"?>") else {
        return false;
    };
    let decl = &head[..end];
    let Some(at) = decl.windows(8).position(|w| w == b"encoding") else {
        return false;
    };
    let rest = decl[at + 8..].trim_ascii_start();
    let Some(rest) = rest.strip_prefix(b"=") else {
        return false;
    };
    let rest = rest.trim_ascii_start();
    let Some((&quote, rest)) = rest.split_first() else {
        return false;
    };
    let Some(len) = rest.iter().position(|&b| b == quote) else {
        return false;
    };
    let label = rest[..len].to_ascii_lowercase();
    !matches!(label.as_slice(), b"utf-8" | b"utf8" | b"us-ascii" | b"ascii")
}

/// One step of [`XmlStream`].
pub(super) enum Item<'a> {
    /// An element starts; [`XmlStream::depth`] is now its level (root = 1). Empty elements are
    /// reported as an `Open` followed by a `Close`.
    Open(BytesStart<'a>),
    /// An element ends; [`XmlStream::depth`] is now its parent's level.
    Close,
    /// Character data inside an element: text, a CDATA section or a resolved reference, with line
    /// ends normalized. Consecutive `Text` items belong to one XPath text node.
    Text(Cow<'a, str>),
    /// A comment or processing instruction (it separates text nodes).
    Other,
    /// The end of a well-formed document.
    End,
}

/// A pull reader with the depth limit, the DOCTYPE policy and the document-level well-formedness
/// checks (one root, nothing but markup outside it, every element closed).
///
/// Namespace declarations are read only for the elements a caller [declares](Self::declare): the
/// streaming extractors need names resolved only along the path they are matching, and skipping
/// the other elements' attributes makes a full scan markedly cheaper.
pub(super) struct XmlStream<'a> {
    reader: Reader<&'a [u8]>,
    resolver: NamespaceResolver,
    /// The levels of the elements whose declarations are in `resolver`, innermost last.
    scopes: Vec<usize>,
    text: &'a str,
    depth: usize,
    max_depth: usize,
    root_seen: bool,
    started: bool,
    /// An empty element was reported as `Open`; its `Close` comes next.
    pending_close: bool,
}

impl<'a> XmlStream<'a> {
    /// A reader over `text` allowing `max_depth` levels of elements.
    pub(super) fn new(text: &'a str, max_depth: usize) -> Self {
        let mut reader = Reader::from_str(text);
        let config = reader.config_mut();
        config.check_end_names = true;
        config.check_comments = true;
        Self {
            reader,
            resolver: NamespaceResolver::default(),
            scopes: Vec::new(),
            text,
            depth: 0,
            max_depth,
            root_seen: false,
            started: false,
            pending_close: false,
        }
    }

    /// The level of the innermost open element (0 outside the root).
    pub(super) fn depth(&self) -> usize {
        self.depth
    }

    /// The next item of the document.
    pub(super) fn next(&mut self) -> Result<Item<'a>, ExtractError> {
        if std::mem::take(&mut self.pending_close) {
            return Ok(self.close());
        }
        loop {
            let event = self.reader.read_event().map_err(|e| {
                let offset = self.reader.error_position();
                self.error_at(offset, &e.to_string())
            })?;
            let first = !std::mem::replace(&mut self.started, true);
            match event {
                Event::Start(start) => return self.open(start),
                Event::Empty(start) => {
                    let item = self.open(start)?;
                    self.pending_close = true;
                    return Ok(item);
                }
                Event::End(_) => return Ok(self.close()),
                Event::Text(text) if self.depth == 0 => {
                    if !text.trim_ascii().is_empty() {
                        return Err(self.syntax_error("text outside the root element"));
                    }
                }
                Event::Text(text) => return Ok(Item::Text(text.xml10_content())),
                Event::CData(data) if self.depth > 0 => return Ok(Item::Text(data.xml10_content())),
                Event::GeneralRef(reference) if self.depth > 0 => {
                    return self.reference(&reference).map(Item::Text);
                }
                Event::CData(_) | Event::GeneralRef(_) => {
                    return Err(self.syntax_error("character data outside the root element"));
                }
                Event::Comment(_) | Event::PI(_) if self.depth > 0 => return Ok(Item::Other),
                Event::Comment(_) | Event::PI(_) => {}
                Event::Decl(_) if first => {}
                Event::Decl(_) => return Err(self.syntax_error("XML declaration not at the start")),
                Event::DocType(_) => return Err(ExtractError::Malformed(DOCTYPE_REFUSED.to_owned())),
                Event::Eof if self.depth > 0 => {
                    return Err(self.syntax_error("unexpected end of document (unclosed element)"));
                }
                Event::Eof if !self.root_seen => return Err(self.syntax_error("no root element")),
                Event::Eof => return Ok(Item::End),
            }
        }
    }

    /// Reads the rest of the current element and returns its string-value (all descendant text).
    pub(super) fn string_value(&mut self) -> Result<String, ExtractError> {
        let level = self.depth;
        let mut value = String::new();
        loop {
            match self.next()? {
                Item::Text(text) => value.push_str(&text),
                Item::Close if self.depth < level => return Ok(value),
                Item::End => return Err(self.syntax_error("unexpected end of document")),
                Item::Open(_) | Item::Close | Item::Other => {}
            }
        }
    }

    /// Reads the namespace declarations of the element just opened, so names inside it resolve.
    /// Every ancestor of an element whose names are resolved must have been declared.
    pub(super) fn declare(&mut self, start: &BytesStart<'_>) -> Result<(), ExtractError> {
        self.resolver
            .push(start)
            .map_err(|e| self.syntax_error(&e.to_string()))?;
        self.scopes.push(self.depth);
        Ok(())
    }

    /// The namespace URI of an element name; `None` when it is in no namespace.
    pub(super) fn element_ns(&self, name: QName<'_>) -> Result<Option<&str>, ExtractError> {
        self.namespace(self.resolver.resolve_element(name).0)
    }

    /// The namespace URI of an attribute name; `None` for an unprefixed attribute.
    pub(super) fn attribute_ns(&self, name: QName<'_>) -> Result<Option<&str>, ExtractError> {
        self.namespace(self.resolver.resolve_attribute(name).0)
    }

    /// The attributes of `start` in document order, without namespace declarations.
    pub(super) fn attributes<'s>(
        &self,
        start: &'s BytesStart<'a>,
    ) -> impl Iterator<Item = Result<Attribute<'s>, ExtractError>> + 's {
        start
            .attributes()
            .map(|attr| {
                attr.map_err(|e| ExtractError::Malformed(format!("bad attribute: {}", clip(&e.to_string()))))
            })
            .filter(|attr| {
                attr.as_ref().map_or(true, |a| {
                    let key = a.key.as_ref();
                    key != "xmlns" && !key.starts_with("xmlns:")
                })
            })
    }

    /// An attribute value after XML attribute-value normalization.
    pub(super) fn attribute_value(&self, attr: &Attribute<'_>) -> Result<String, ExtractError> {
        attr.normalized_value(XmlVersion::Implicit1_0)
            .map(Cow::into_owned)
            .map_err(|e| self.syntax_error(&e.to_string()))
    }

    fn close(&mut self) -> Item<'a> {
        self.depth = self.depth.saturating_sub(1);
        while self.scopes.last().is_some_and(|&level| level > self.depth) {
            self.scopes.pop();
            self.resolver.pop();
        }
        Item::Close
    }

    fn open(&mut self, start: BytesStart<'a>) -> Result<Item<'a>, ExtractError> {
        if self.depth == 0 && std::mem::replace(&mut self.root_seen, true) {
            return Err(self.syntax_error("content after the root element"));
        }
        self.depth += 1;
        if self.depth > self.max_depth {
            return Err(too_deep(self.max_depth));
        }
        Ok(Item::Open(start))
    }

    /// Resolves a character reference or one of the five predefined entities; with DTDs refused,
    /// any other entity is undeclared.
    fn reference(&self, reference: &BytesRef<'a>) -> Result<Cow<'a, str>, ExtractError> {
        match reference.resolve_char_ref() {
            Ok(Some(c)) if is_xml_char(c) => Ok(Cow::Owned(c.to_string())),
            Ok(Some(_)) | Err(_) => Err(self.syntax_error("invalid character reference")),
            Ok(None) => resolve_predefined_entity(reference)
                .map(Cow::Borrowed)
                .ok_or_else(|| self.syntax_error(&format!("undeclared entity &{};", clip(reference)))),
        }
    }

    fn namespace<'r>(&'r self, result: ResolveResult<'r>) -> Result<Option<&'r str>, ExtractError> {
        match result {
            ResolveResult::Bound(ns) => Ok(Some(ns.0)),
            ResolveResult::Unbound => Ok(None),
            ResolveResult::Unknown(prefix) => {
                Err(self.syntax_error(&format!("unbound namespace prefix '{}'", clip(&prefix))))
            }
        }
    }

    /// A well-formedness error found in the last event read.
    fn syntax_error(&self, what: &str) -> ExtractError {
        self.error_at(self.reader.buffer_position(), what)
    }

    /// A well-formedness error at byte `offset`, with line and column.
    fn error_at(&self, offset: u64, what: &str) -> ExtractError {
        let offset = usize::try_from(offset).unwrap_or(usize::MAX);
        let (line, column) = line_column(self.text, offset);
        ExtractError::Malformed(format!(
            "XML is not well-formed at line {line}, column {column}: {}",
            clip(what)
        ))
    }
}

/// The message for XML nested deeper than `max_depth` (shared with the DOM path).
pub(super) fn too_deep(max_depth: usize) -> ExtractError {
    ExtractError::TooLarge(format!("XML nesting is deeper than {max_depth} levels"))
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub(super) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (
        before.matches('\n').count() + 1,
        before[line_start..].chars().count() + 1,
    )
}

/// XML 1.0 `Char`.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Compares a namespace URI as written in an `xmlns` attribute with an expected URI.
pub(super) fn ns_eq(raw: &str, uri: &str) -> bool {
    if raw.contains('&') {
        quick_xml::escape::unescape(raw).is_ok_and(|u| u == uri)
    } else {
        raw == uri
    }
}
