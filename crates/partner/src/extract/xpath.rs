//! The XPath extractor: compiles an XPath 1.0 expression with its namespace bindings and runs it
//! on the streaming fast path ([`super::stream`]) when it is a simple path, on an xmloxide DOM
//! otherwise.
//!
//! xmloxide 0.5.0 departs from XPath 1.0 in ways this module corrects, so both paths agree:
//! * an unprefixed name test matches an element or attribute in *any* namespace (by local name);
//!   the DOM expression is rewritten to `*[local-name()='n' and namespace-uri()='']` (for
//!   attributes `@n[namespace-uri()='']`);
//! * a CDATA section is a text node of its own instead of part of the surrounding text node; the
//!   string-value of a selected text node joins its adjacent text and CDATA siblings;
//! * line ends inside attribute values are not normalized before attribute-value normalization
//!   (`\r\n` becomes two spaces); the input's line ends are normalized before parsing;
//! * every reference, even `&amp;`, counts toward the entity-expansion limit (10 000 by default);
//!   with DTDs refused no other entity can exist, so the limit is lifted out of reach.

use std::borrow::Cow;

use xmloxide::Document;
use xmloxide::parser::{ParseOptions, parse_str_with_options};
use xmloxide::tree::{NodeId, NodeKind};
use xmloxide::xpath::ast::{Axis, Expr, NodeTest, Step};
use xmloxide::xpath::{XPathContext, XPathNode, XPathValue, parser};

use super::stream::SimplePath;
use super::xml::{DOCTYPE_REFUSED, XmlStream, text, too_deep};
use super::{CompileError, ExtractError, Found, Limits, clip};

/// The namespace every XML document binds to the `xml` prefix.
const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";
/// Expressions longer than this are refused: xmloxide parses and evaluates operator chains and
/// brackets recursively, and about 700 chained operators overflow a 2 MiB stack in a debug build.
const MAX_EXPR_LEN: usize = 512;
/// Deepest bracket nesting accepted in an expression.
const MAX_EXPR_NESTING: usize = 32;

/// A compiled XPath source: always the DOM form, and the streaming form when the expression is a
/// simple path.
#[derive(Debug)]
pub(super) struct XPathExtractor {
    expr: String,
    /// The expression with unprefixed name tests rewritten (see the module docs).
    dom: Expr,
    namespaces: Vec<(String, String)>,
    stream: Option<SimplePath>,
}

impl XPathExtractor {
    /// Parses and checks `expr`; prefixes must be bound in `namespaces`.
    pub(super) fn compile(expr: &str, namespaces: &[(String, String)]) -> Result<Self, CompileError> {
        let fail = |why: String| CompileError(format!("XPath `{}`: {why}", clip(expr)));
        check_size(expr).map_err(fail)?;
        let namespaces = bindings(namespaces).map_err(fail)?;
        let ast =
            parser::parse(expr).map_err(|e| fail(format!("{} (at position {})", e.message, e.position)))?;
        let mut dom = ast.clone();
        rewrite(&mut dom, &namespaces).map_err(fail)?;
        dry_run(&dom, &namespaces).map_err(fail)?;
        let stream = SimplePath::from_ast(&ast, &namespaces);
        Ok(Self {
            expr: expr.to_owned(),
            dom,
            namespaces,
            stream,
        })
    }

    /// The expression as configured.
    pub(super) fn expr(&self) -> &str {
        &self.expr
    }

    /// Evaluates the expression on `body` and returns the trimmed, non-empty string-value.
    pub(super) fn extract(&self, body: &[u8], limits: &Limits) -> Result<Found, ExtractError> {
        let value = match &self.stream {
            Some(path) => path.find(&mut XmlStream::new(&text(body, limits)?, limits.max_depth))?,
            None => self.select_dom(body, limits)?,
        };
        let value = value
            .ok_or_else(|| ExtractError::NotFound(format!("xpath {} selects nothing", clip(&self.expr))))?;
        super::non_empty(&value)
            .map(|id| Found { id, qualifier: None })
            .ok_or_else(|| {
                ExtractError::NotFound(format!("xpath {} selects an empty value", clip(&self.expr)))
            })
    }

    /// The streaming form, if the expression has one.
    #[cfg(test)]
    pub(super) fn stream(&self) -> Option<&SimplePath> {
        self.stream.as_ref()
    }

    /// The untrimmed string-value of the expression on a DOM of `body`; `None` for an empty
    /// node-set.
    pub(super) fn select_dom(&self, body: &[u8], limits: &Limits) -> Result<Option<String>, ExtractError> {
        if body.len() > limits.max_dom_bytes {
            return Err(ExtractError::TooLarge(format!(
                "XML payload of {} bytes is over the limit of {} bytes for this XPath (simple paths \
                 like /a:Order/a:Header/a:SenderId stream and take larger payloads)",
                body.len(),
                limits.max_dom_bytes
            )));
        }
        let text = text(body, limits)?;
        refuse_doctype(&text, limits.max_depth)?;
        let text = normalize_line_ends(&text);
        let doc = parse_str_with_options(&text, &parse_options(limits)).map_err(|e| {
            if e.message.starts_with("maximum nesting depth exceeded") {
                too_deep(limits.max_depth)
            } else {
                ExtractError::Malformed(format!(
                    "XML is not well-formed at line {}, column {}: {}",
                    e.location.line,
                    e.location.column,
                    clip(&e.message)
                ))
            }
        })?;
        let mut context = XPathContext::new(&doc, doc.root());
        for (prefix, uri) in &self.namespaces {
            context.set_namespace(prefix, uri);
        }
        let value = context.evaluate(&self.dom).map_err(|e| {
            let why = clip(&e.to_string());
            ExtractError::NotFound(format!("xpath {} cannot be evaluated: {why}", clip(&self.expr)))
        })?;
        Ok(match value {
            XPathValue::NodeSet(nodes) => nodes.iter().min().map(|&node| string_value(&doc, node)),
            other => Some(other.to_xpath_string()),
        })
    }
}

/// Refuses expressions whose size or nesting could exhaust the recursive parser's stack.
fn check_size(expr: &str) -> Result<(), String> {
    if expr.len() > MAX_EXPR_LEN {
        return Err(format!("longer than {MAX_EXPR_LEN} characters"));
    }
    let mut depth = 0usize;
    for b in expr.bytes() {
        match b {
            b'(' | b'[' => depth += 1,
            b')' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth > MAX_EXPR_NESTING {
            return Err(format!("nested deeper than {MAX_EXPR_NESTING} brackets"));
        }
    }
    Ok(())
}

/// Validates the `(prefix, uri)` bindings and adds the implicit `xml` one.
fn bindings(namespaces: &[(String, String)]) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = vec![("xml".to_owned(), XML_NS.to_owned())];
    for (prefix, uri) in namespaces {
        if prefix.is_empty() || prefix.contains(':') || prefix.chars().any(char::is_whitespace) {
            return Err(format!("namespace prefix `{prefix}` is not a valid prefix"));
        }
        if prefix == "xmlns" || uri.is_empty() {
            return Err(format!("namespace prefix `{prefix}` cannot be bound to `{uri}`"));
        }
        match out.iter().find(|(p, _)| p == prefix) {
            Some((_, bound)) if bound != uri => {
                return Err(format!(
                    "namespace prefix `{prefix}` is bound to both `{bound}` and `{uri}`"
                ));
            }
            Some(_) => {}
            None => out.push((prefix.clone(), uri.clone())),
        }
    }
    Ok(out)
}

/// Checks prefixes and variables and rewrites unprefixed name tests for the DOM (module docs).
fn rewrite(expr: &mut Expr, namespaces: &[(String, String)]) -> Result<(), String> {
    match expr {
        Expr::Number(_) | Expr::String(_) => Ok(()),
        Expr::Variable(name) => Err(format!("uses variable `${name}`; variables are not supported")),
        Expr::BinaryOp { left, right, .. } | Expr::Union(left, right) => {
            rewrite(left, namespaces)?;
            rewrite(right, namespaces)
        }
        Expr::UnaryNeg(inner) => rewrite(inner, namespaces),
        Expr::FunctionCall { args, .. } => args.iter_mut().try_for_each(|a| rewrite(a, namespaces)),
        Expr::Path { steps } | Expr::RootPath { steps } => rewrite_steps(steps, namespaces),
        Expr::Filter { expr, predicates } => {
            rewrite(expr, namespaces)?;
            predicates.iter_mut().try_for_each(|p| rewrite(p, namespaces))
        }
        Expr::FilterPath { expr, steps } => {
            rewrite(expr, namespaces)?;
            rewrite_steps(steps, namespaces)
        }
    }
}

fn rewrite_steps(steps: &mut [Step], namespaces: &[(String, String)]) -> Result<(), String> {
    for step in steps {
        step.predicates
            .iter_mut()
            .try_for_each(|p| rewrite(p, namespaces))?;
        let prefix = match &step.node_test {
            NodeTest::PrefixWildcard(prefix) => Some(prefix.as_str()),
            NodeTest::Name(name) => name.split_once(':').map(|(prefix, _)| prefix),
            _ => None,
        };
        if let Some(prefix) = prefix {
            if !namespaces.iter().any(|(p, _)| p == prefix) {
                return Err(format!(
                    "namespace prefix `{prefix}` is not declared in the flow's namespace mapping"
                ));
            }
            continue;
        }
        let NodeTest::Name(local) = &step.node_test else {
            continue;
        };
        let predicate = match step.axis {
            Axis::Namespace => continue,
            Axis::Attribute => "namespace-uri() = ''".to_owned(),
            _ => format!("local-name() = '{local}' and namespace-uri() = ''"),
        };
        let predicate = parser::parse(&predicate).map_err(|e| e.message)?;
        if step.axis != Axis::Attribute {
            step.node_test = NodeTest::Wildcard;
        }
        step.predicates.insert(0, predicate);
    }
    Ok(())
}

/// Evaluates the expression once on a tiny document, so unknown functions and wrong argument
/// counts fail at deploy time rather than on the first message.
fn dry_run(ast: &Expr, namespaces: &[(String, String)]) -> Result<(), String> {
    let doc = Document::parse_str("<x/>").map_err(|e| e.message)?;
    let mut context = XPathContext::new(&doc, doc.root());
    for (prefix, uri) in namespaces {
        context.set_namespace(prefix, uri);
    }
    context.evaluate(ast).map(drop).map_err(|e| e.to_string())
}

fn parse_options(limits: &Limits) -> ParseOptions {
    ParseOptions::default()
        .max_depth(u32::try_from(limits.max_depth).unwrap_or(u32::MAX))
        // No DTD can declare entities (refuse_doctype), so only `&amp;`-style references and
        // character references count here; each takes at least 4 bytes of input.
        .max_entity_expansions(u32::try_from(limits.max_xml_bytes / 4 + 1).unwrap_or(u32::MAX))
}

/// Reads the prolog with the streaming reader, which refuses a DOCTYPE, before xmloxide sees it
/// (a DOCTYPE anywhere else is not well-formed, and xmloxide refuses it).
fn refuse_doctype(text: &str, max_depth: usize) -> Result<(), ExtractError> {
    match XmlStream::new(text, max_depth).next() {
        Err(ExtractError::Malformed(m)) if m == DOCTYPE_REFUSED => Err(ExtractError::Malformed(m)),
        // Other errors are left to xmloxide, so the DOM path reports its own well-formedness errors.
        _ => Ok(()),
    }
}

/// XML 1.0 §2.11: `\r\n` and lone `\r` become `\n` before parsing.
fn normalize_line_ends(text: &str) -> Cow<'_, str> {
    if text.contains('\r') {
        Cow::Owned(text.replace("\r\n", "\n").replace('\r', "\n"))
    } else {
        Cow::Borrowed(text)
    }
}

/// The XPath string-value of a node; a text or CDATA node includes its adjacent text siblings.
fn string_value(doc: &Document, node: XPathNode) -> String {
    let id = match node {
        XPathNode::Attribute { owner, index } => {
            let index = usize::try_from(index).unwrap_or(usize::MAX);
            return doc
                .attributes(owner)
                .get(index)
                .map(|a| a.value.clone())
                .unwrap_or_default();
        }
        XPathNode::Node(id) => id,
    };
    match &doc.node(id).kind {
        NodeKind::Text { .. } | NodeKind::CData { .. } => {
            let mut first = id;
            while let Some(prev) = doc.prev_sibling(first).filter(|&p| is_text(doc, p)) {
                first = prev;
            }
            let mut value = String::new();
            let mut next = Some(first);
            while let Some(n) = next.filter(|&n| is_text(doc, n)) {
                value.push_str(doc.node_text(n).unwrap_or_default());
                next = doc.next_sibling(n);
            }
            value
        }
        NodeKind::Comment { .. } | NodeKind::ProcessingInstruction { .. } => {
            doc.node_text(id).unwrap_or_default().to_owned()
        }
        _ => doc.text_content(id),
    }
}

fn is_text(doc: &Document, id: NodeId) -> bool {
    matches!(doc.node(id).kind, NodeKind::Text { .. } | NodeKind::CData { .. })
}
