//! The streaming XPath fast path: an absolute path of child steps, optionally ending in `text()`
//! or an attribute, matched on a pull reader that stops at the first match without building a tree.

use quick_xml::events::BytesStart;
use quick_xml::name::QName;
use xmloxide::xpath::ast::{Axis, Expr, NodeTest, Step};

use super::ExtractError;
use super::xml::{Item, XmlStream, ns_eq};

/// An expression of the form `/a/p:b/*/c` with an optional final `text()` or `@attr`.
#[derive(Debug)]
pub(super) struct SimplePath {
    steps: Vec<NameTest>,
    target: Target,
}

/// What the last element step leads to.
#[derive(Debug)]
enum Target {
    /// The element itself: its string-value.
    Element,
    /// Its first text-node child.
    Text,
    /// Its first attribute matching the test.
    Attribute(NameTest),
}

/// An XPath name test resolved against the flow's namespace bindings.
#[derive(Debug)]
struct NameTest {
    namespace: NsTest,
    /// The local name; `None` for `*` and `p:*`.
    local: Option<String>,
}

/// The namespace part of a [`NameTest`].
#[derive(Debug)]
enum NsTest {
    /// `*`: any namespace or none.
    Any,
    /// An unprefixed name: no namespace (XPath 1.0, whatever the document's default namespace).
    Null,
    /// A prefixed name: the URI bound to the prefix.
    Uri(String),
}

impl SimplePath {
    /// The fast-path form of `expr`, or `None` if it needs the DOM. Prefixes must already be known
    /// to be bound in `namespaces`.
    pub(super) fn from_ast(expr: &Expr, namespaces: &[(String, String)]) -> Option<Self> {
        let Expr::RootPath { steps } = expr else {
            return None;
        };
        let (last, init) = steps.split_last()?;
        if steps.iter().any(|s| !s.predicates.is_empty()) {
            return None;
        }
        let mut tests = init
            .iter()
            .map(|s| element_test(s, namespaces))
            .collect::<Option<Vec<_>>>()?;
        let target = match (last.axis, &last.node_test) {
            (Axis::Child, NodeTest::Text) if !tests.is_empty() => Target::Text,
            (Axis::Attribute, test) if !tests.is_empty() => Target::Attribute(name_test(test, namespaces)?),
            _ => {
                tests.push(element_test(last, namespaces)?);
                Target::Element
            }
        };
        Some(Self { steps: tests, target })
    }

    /// The string-value of the first node the path selects, or `None` if it selects nothing.
    pub(super) fn find(&self, xml: &mut XmlStream<'_>) -> Result<Option<String>, ExtractError> {
        // Invariant: the open elements at levels 1..=matched match steps[..matched].
        let mut matched = 0;
        loop {
            match xml.next()? {
                Item::Open(start) => {
                    let step = self.steps.get(matched);
                    let Some(step) =
                        step.filter(|step| xml.depth() == matched + 1 && step.local_matches(start.name()))
                    else {
                        continue;
                    };
                    // Only elements on the matching path need their namespace declarations.
                    xml.declare(&start)?;
                    if !step.namespace_matches(|| xml.element_ns(start.name()))? {
                        continue;
                    }
                    matched += 1;
                    if matched < self.steps.len() {
                        continue;
                    }
                    let found = match &self.target {
                        Target::Element => Some(xml.string_value()?),
                        Target::Attribute(test) => first_attribute(xml, &start, test)?,
                        Target::Text => first_text_child(xml)?,
                    };
                    if found.is_some() {
                        return Ok(found);
                    }
                    // Element and text targets have read through the element's end.
                    matched = matched.min(xml.depth());
                }
                Item::Close => matched = matched.min(xml.depth()),
                Item::Text(_) | Item::Other => {}
                Item::End => return Ok(None),
            }
        }
    }
}

impl NameTest {
    fn local_matches(&self, name: QName<'_>) -> bool {
        self.local
            .as_deref()
            .is_none_or(|local| name.local_name().as_ref() == local)
    }

    /// Whether the namespace passes; `resolve` gives the name's namespace URI.
    fn namespace_matches<'x>(
        &self,
        resolve: impl FnOnce() -> Result<Option<&'x str>, ExtractError>,
    ) -> Result<bool, ExtractError> {
        Ok(match &self.namespace {
            NsTest::Any => true,
            NsTest::Null => resolve()?.is_none(),
            NsTest::Uri(uri) => resolve()?.is_some_and(|ns| ns_eq(ns, uri)),
        })
    }
}

/// The value of the first attribute of `start` that passes `test`.
fn first_attribute(
    xml: &XmlStream<'_>,
    start: &BytesStart<'_>,
    test: &NameTest,
) -> Result<Option<String>, ExtractError> {
    for attr in xml.attributes(start) {
        let attr = attr?;
        if test.local_matches(attr.key) && test.namespace_matches(|| xml.attribute_ns(attr.key))? {
            return xml.attribute_value(&attr).map(Some);
        }
    }
    Ok(None)
}

/// Reads the current element up to its first non-empty text-node child and returns that node's
/// text; reads through the element's end and returns `None` if it has none.
fn first_text_child(xml: &mut XmlStream<'_>) -> Result<Option<String>, ExtractError> {
    let level = xml.depth();
    let mut run = String::new();
    loop {
        match xml.next()? {
            Item::Text(text) if xml.depth() == level => run.push_str(&text),
            Item::Text(_) => {}
            // A child element, comment or PI, or the element's end, closes the text node.
            Item::Open(_) | Item::Other | Item::Close if !run.is_empty() => return Ok(Some(run)),
            Item::Close if xml.depth() < level => return Ok(None),
            Item::Open(_) | Item::Other | Item::Close => {}
            Item::End => return Ok(None),
        }
    }
}

/// A child-axis element step without predicates.
fn element_test(step: &Step, namespaces: &[(String, String)]) -> Option<NameTest> {
    (step.axis == Axis::Child).then(|| name_test(&step.node_test, namespaces))?
}

fn name_test(test: &NodeTest, namespaces: &[(String, String)]) -> Option<NameTest> {
    let uri = |prefix: &str| {
        namespaces
            .iter()
            .find(|(p, _)| p == prefix)
            .map(|(_, uri)| NsTest::Uri(uri.clone()))
    };
    match test {
        NodeTest::Wildcard => Some(NameTest {
            namespace: NsTest::Any,
            local: None,
        }),
        NodeTest::PrefixWildcard(prefix) => Some(NameTest {
            namespace: uri(prefix)?,
            local: None,
        }),
        NodeTest::Name(name) => match name.split_once(':') {
            Some((prefix, local)) => Some(NameTest {
                namespace: uri(prefix)?,
                local: Some(local.to_owned()),
            }),
            None => Some(NameTest {
                namespace: NsTest::Null,
                local: Some(name.clone()),
            }),
        },
        _ => None,
    }
}
