//! The flow YAML: parsed strictly (unknown keys are errors), validated, and compiled into a
//! [`Flow`]. Every error names the field and, where it can be found, the line.
//!
//! ```yaml
//! id: orders-inbound
//! log_level: info                 # or none: only failed messages get an MPL
//! sender:
//!   adapter: https
//!   address: /orders              # served at /http/orders
//!   authorization: user-role      # the only option so far
//!   roles: [ESBMessaging.send]    # any one of them lets a caller in
//!   max_body_bytes: 41943040
//! steps:
//!   - content_modifier: { headers: { sender_user: "${header.SapAuthenticatedUserName}" } }
//!   - partner_authorization:
//!       partner: { xpath: "/o:Order/o:Header/o:SenderId", namespaces: { o: "urn:example:order" } }
//!       # or { header: X-Partner-Id } / { jsonpath: "$.order.sender" } / edifact / x12 / idoc
//!       alternative: { agency: "016", scheme: "DUNS" }   # optional: the id is an alternative id
//!       qualifiers: { "14": { agency: "EDI", scheme: "GLN" } } # optional, per EDI qualifier
//!   - script: { source: "if message.getHeader(\"X-Test\") == () { throw \"no X-Test\" }" }
//! receiver:
//!   reply: { status: 200, body: "ok" }   # or echo: true; or http / queue (see receivers.rs)
//! ```

use serde::Deserialize;
use serde_norway::{Mapping, Value};

use postern_core::Error;
use postern_core::dn::Dn;
use postern_core::ids::{FlowAddress, FlowId, RoleName};
use postern_core::model::ROLE_SEND;

use crate::expr::Template;
use crate::receiver::{HttpReceiver, QueueReceiver, ReplyBody, ReplyReceiver};
use crate::step::{ContentModifier, PartnerAuthorization, Script, Step};
use postern_partner::check::{Mapping as PartnerMapping, Scheme};
use postern_partner::extract::{Extractor, Limits, Source};

/// Largest flow document accepted.
pub const MAX_YAML_BYTES: usize = 1 << 20;
/// Default `max_body_bytes` (40 MiB, SAP's default maximum message size for HTTPS senders).
pub const DEFAULT_MAX_BODY: u64 = 40 * 1024 * 1024;
/// Largest `max_body_bytes` a flow may set while bodies are held in memory.
pub const MAX_MAX_BODY: u64 = 256 * 1024 * 1024;
/// Most steps a flow may have.
pub const MAX_STEPS: usize = 100;

/// A compiled, deployable flow.
#[derive(Debug)]
pub struct Flow {
    /// Flow id.
    pub id: FlowId,
    /// Sender address.
    pub address: FlowAddress,
    /// *User Role* authorization: roles, any one of which authorizes a caller (empty for
    /// client-certificate authorization).
    pub roles: Vec<RoleName>,
    /// *Client Certificate* authorization: allowed (subject, issuer) DN pairs (empty for
    /// user-role authorization).
    pub certificates: Vec<(Dn, Dn)>,
    /// Body limit in bytes.
    pub max_body_bytes: u64,
    /// Whether messages that succeed get an MPL (`log_level: info`, the default) or only
    /// failed ones do (`log_level: none`, SAP's log level *None*).
    pub log_successes: bool,
    pub(crate) steps: Vec<Box<dyn Step>>,
    /// Where messages go after the steps.
    pub receiver: Receiver,
}

impl Flow {
    /// The back-end credential the receiver presents, if any.
    pub fn credential(&self) -> Option<&str> {
        match &self.receiver {
            Receiver::Http(h) => h.credential(),
            Receiver::Queue(q) => q.target.credential(),
            Receiver::Reply(_) => None,
        }
    }

    /// Binds the receiver's credential (see [`HttpReceiver::bind`]).
    pub fn bind_credentials(
        &mut self,
        lookup: &dyn Fn(&str) -> Option<crate::receiver::BackendCredential>,
    ) -> Result<(), Error> {
        let (receiver, field) = match &mut self.receiver {
            Receiver::Http(h) => (h, "receiver.http.credential"),
            Receiver::Queue(q) => (&mut q.target, "receiver.queue.target.http.credential"),
            Receiver::Reply(_) => return Ok(()),
        };
        receiver.bind(lookup).map_err(|m| Error::invalid(field, m))
    }

    /// The step kinds, in order (for status pages).
    pub fn step_kinds(&self) -> Vec<&'static str> {
        self.steps.iter().map(|s| s.kind()).collect()
    }
}

/// A flow's receiver.
#[derive(Debug)]
pub enum Receiver {
    /// Answers the sender directly.
    Reply(ReplyReceiver),
    /// Forwards to a back end and answers with its answer.
    Http(HttpReceiver),
    /// Stores durably, answers 202, delivers later.
    Queue(QueueReceiver),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FlowDoc {
    id: String,
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
    sender: SenderDoc,
    #[serde(default)]
    log_level: Option<String>,
    #[serde(default)]
    steps: Vec<StepDoc>,
    receiver: ReceiverDoc,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SenderDoc {
    adapter: String,
    address: String,
    #[serde(default)]
    authorization: Option<String>,
    #[serde(default)]
    roles: Option<Vec<String>>,
    #[serde(default)]
    max_body_bytes: Option<u64>,
    #[serde(default)]
    certificates: Option<Vec<CertDoc>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CertDoc {
    subject: String,
    issuer: String,
}

/// One step: a map with exactly one key, the step kind.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepDoc {
    #[serde(default)]
    content_modifier: Option<ContentModifierDoc>,
    #[serde(default)]
    partner_authorization: Option<PartnerAuthorizationDoc>,
    #[serde(default)]
    script: Option<ScriptDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScriptDoc {
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    file: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PartnerAuthorizationDoc {
    partner: PartnerDoc,
    #[serde(default)]
    alternative: Option<SchemeDoc>,
    #[serde(default)]
    qualifiers: Option<std::collections::BTreeMap<String, SchemeDoc>>,
}

/// `edifact` / `x12` / `idoc`, or a map naming a header, an XPath or a JSONPath.
#[derive(Deserialize)]
#[serde(untagged)]
enum PartnerDoc {
    Format(String),
    Path(PartnerPathDoc),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PartnerPathDoc {
    #[serde(default)]
    header: Option<String>,
    #[serde(default)]
    xpath: Option<String>,
    #[serde(default)]
    namespaces: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default)]
    jsonpath: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SchemeDoc {
    agency: String,
    scheme: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContentModifierDoc {
    #[serde(default)]
    headers: Mapping,
    #[serde(default)]
    properties: Mapping,
}

/// The receiver: a map with exactly one key, the receiver kind.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReceiverDoc {
    #[serde(default)]
    reply: Option<ReplyDoc>,
    #[serde(default)]
    http: Option<receivers::HttpDoc>,
    #[serde(default)]
    queue: Option<receivers::QueueDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplyDoc {
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    echo: Option<bool>,
    #[serde(default)]
    headers: Mapping,
    #[serde(default)]
    content_type: Option<String>,
}

/// Parses and compiles a flow document. Roles are checked against the store by the deploy
/// service, not here.
pub fn parse_flow(yaml: &str) -> Result<Flow, Error> {
    if yaml.len() > MAX_YAML_BYTES {
        return Err(Error::invalid(
            "flow",
            format!("document larger than {MAX_YAML_BYTES} bytes"),
        ));
    }
    let doc: FlowDoc = serde_norway::from_str(yaml).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!(" (line {}, column {})", l.line(), l.column()));
        Error::invalid(
            "flow",
            format!("{}{}", strip_location(&e.to_string()), at.unwrap_or_default()),
        )
    })?;
    let at = |field: &str, key: &str, e: Error| located(yaml, field, key, e);
    let id = FlowId::parse(&doc.id).map_err(|e| at("id", "id", e))?;
    let sender = doc.sender;
    if sender.adapter != "https" {
        return Err(at(
            "sender.adapter",
            "adapter",
            Error::invalid(
                "sender.adapter",
                format!("unknown adapter {:?}; use https", sender.adapter),
            ),
        ));
    }
    let address = FlowAddress::parse(&sender.address).map_err(|e| at("sender.address", "address", e))?;
    let (roles, certificates) = match sender.authorization.as_deref() {
        None | Some("user-role") => {
            if sender.certificates.is_some() {
                return Err(at(
                    "sender.certificates",
                    "certificates",
                    Error::invalid(
                        "sender.certificates",
                        "applies to authorization: client-certificate only",
                    ),
                ));
            }
            (roles(sender.roles, yaml)?, Vec::new())
        }
        Some("client-certificate") => {
            if sender.roles.is_some() {
                return Err(at(
                    "sender.roles",
                    "roles",
                    Error::invalid("sender.roles", "applies to authorization: user-role only"),
                ));
            }
            (
                Vec::new(),
                certificates(sender.certificates.unwrap_or_default(), yaml)?,
            )
        }
        Some(other) => {
            return Err(at(
                "sender.authorization",
                "authorization",
                Error::invalid(
                    "sender.authorization",
                    format!("unknown authorization {other:?}; use user-role or client-certificate"),
                ),
            ));
        }
    };
    let max_body_bytes = sender.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY);
    if max_body_bytes == 0 || max_body_bytes > MAX_MAX_BODY {
        return Err(at(
            "sender.max_body_bytes",
            "max_body_bytes",
            Error::invalid(
                "sender.max_body_bytes",
                format!("must be between 1 and {MAX_MAX_BODY}"),
            ),
        ));
    }
    if doc.steps.len() > MAX_STEPS {
        return Err(at(
            "steps",
            "steps",
            Error::invalid("steps", format!("at most {MAX_STEPS} steps")),
        ));
    }
    let mut steps: Vec<Box<dyn Step>> = Vec::with_capacity(doc.steps.len());
    for (i, step) in doc.steps.into_iter().enumerate() {
        let field = format!("steps[{i}]");
        match step {
            StepDoc {
                content_modifier: Some(cm),
                partner_authorization: None,
                script: None,
            } => {
                let headers = templates(&cm.headers, &format!("{field}.content_modifier.headers"), yaml)?;
                let properties = templates(
                    &cm.properties,
                    &format!("{field}.content_modifier.properties"),
                    yaml,
                )?;
                steps.push(Box::new(ContentModifier::new(headers, properties)));
            }
            StepDoc {
                content_modifier: None,
                partner_authorization: Some(pa),
                script: None,
            } => {
                let f = format!("{field}.partner_authorization");
                steps.push(Box::new(partner_authorization(pa, &f, yaml)?));
            }
            StepDoc {
                content_modifier: None,
                partner_authorization: None,
                script: Some(sc),
            } => {
                let f = format!("{field}.script");
                let source = match (sc.source, sc.file) {
                    (Some(src), None) => src,
                    (None, Some(file)) => {
                        return Err(Error::invalid(
                            f,
                            format!(
                                "file {file:?} is read by `postern flow deploy FILE`, which sends its text as `source`; \
                                 over the API give the script text in `source`"
                            ),
                        ));
                    }
                    _ => {
                        return Err(Error::invalid(
                            f,
                            "give the script in source (or file with `postern flow deploy`)",
                        ));
                    }
                };
                let script = Script::compile(&source).map_err(|e| {
                    located(
                        yaml,
                        &f,
                        "script",
                        Error::invalid(&f, format!("does not compile: {e}")),
                    )
                })?;
                steps.push(Box::new(script));
            }
            _ => {
                return Err(Error::invalid(
                    field,
                    "name one step kind: content_modifier, partner_authorization or script",
                ));
            }
        }
    }
    let receiver = match doc.receiver {
        ReceiverDoc {
            reply: Some(r),
            http: None,
            queue: None,
        } => Receiver::Reply(reply(r, yaml)?),
        ReceiverDoc {
            reply: None,
            http: Some(h),
            queue: None,
        } => Receiver::Http(receivers::http(h, "receiver.http", yaml)?),
        ReceiverDoc {
            reply: None,
            http: None,
            queue: Some(q),
        } => receivers::queue(q, yaml)?,
        _ => {
            return Err(located(
                yaml,
                "receiver",
                "receiver",
                Error::invalid("receiver", "name exactly one receiver kind: reply, http or queue"),
            ));
        }
    };
    let log_successes = match doc.log_level.as_deref() {
        None | Some("info") => true,
        Some("none") => false,
        Some(_) => {
            return Err(located(
                yaml,
                "log_level",
                "log_level",
                Error::invalid(
                    "log_level",
                    "must be info (every message) or none (failed messages only)",
                ),
            ));
        }
    };
    Ok(Flow {
        id,
        address,
        roles,
        log_successes,
        certificates,
        max_body_bytes,
        steps,
        receiver,
    })
}

fn partner_authorization(
    doc: PartnerAuthorizationDoc,
    field: &str,
    yaml: &str,
) -> Result<PartnerAuthorization, Error> {
    let partner_field = format!("{field}.partner");
    let source = match doc.partner {
        PartnerDoc::Format(name) => match name.as_str() {
            "edifact" => Source::Edifact,
            "x12" => Source::X12,
            "idoc" => Source::Idoc,
            other => {
                return Err(Error::invalid(
                    partner_field,
                    format!(
                        "unknown format {other:?}; use edifact, x12, idoc, or a map with header, xpath or jsonpath"
                    ),
                ));
            }
        },
        PartnerDoc::Path(p) => match (p.header, p.xpath, p.jsonpath) {
            (Some(h), None, None) if p.namespaces.is_none() => Source::Header(h),
            (None, Some(x), None) => Source::XPath {
                expr: x,
                namespaces: p.namespaces.unwrap_or_default().into_iter().collect(),
            },
            (None, None, Some(j)) if p.namespaces.is_none() => Source::JsonPath(j),
            _ => {
                return Err(Error::invalid(
                    partner_field,
                    "give exactly one of header, xpath (with optional namespaces) or jsonpath",
                ));
            }
        },
    };
    let extractor = Extractor::compile(&source, Limits::default()).map_err(|e| {
        located(
            yaml,
            &partner_field,
            "partner",
            Error::invalid(&partner_field, e.to_string()),
        )
    })?;
    let scheme = |d: SchemeDoc, at: &str| -> Result<Scheme, Error> {
        postern_core::partner::check_agency(&format!("{at}.agency"), &d.agency)?;
        postern_core::partner::check_agency(&format!("{at}.scheme"), &d.scheme)?;
        Ok(Scheme {
            agency: d.agency,
            scheme: d.scheme,
        })
    };
    let alternative = doc
        .alternative
        .map(|d| scheme(d, &format!("{field}.alternative")))
        .transpose()?;
    let mut qualifiers = Vec::new();
    for (q, d) in doc.qualifiers.unwrap_or_default() {
        if q.is_empty() || q.len() > 35 {
            return Err(Error::invalid(
                format!("{field}.qualifiers"),
                "qualifiers have 1 to 35 characters",
            ));
        }
        let at = format!("{field}.qualifiers.{q}");
        qualifiers.push((q, scheme(d, &at)?));
    }
    if !qualifiers.is_empty() && !matches!(source, Source::Edifact | Source::X12 | Source::Idoc) {
        return Err(Error::invalid(
            format!("{field}.qualifiers"),
            "only edifact, x12 and idoc messages carry a qualifier",
        ));
    }
    Ok(PartnerAuthorization::new(
        extractor,
        PartnerMapping {
            alternative,
            qualifiers,
        },
    ))
}

fn roles(given: Option<Vec<String>>, yaml: &str) -> Result<Vec<RoleName>, Error> {
    let role_names = given.unwrap_or_else(|| vec![ROLE_SEND.to_owned()]);
    if role_names.is_empty() || role_names.len() > 20 {
        return Err(located(
            yaml,
            "sender.roles",
            "roles",
            Error::invalid("sender.roles", "give between 1 and 20 roles"),
        ));
    }
    role_names
        .iter()
        .map(|r| {
            RoleName::parse(r).map_err(|e| {
                located(
                    yaml,
                    "sender.roles",
                    r,
                    Error::invalid("sender.roles", e.to_string()),
                )
            })
        })
        .collect()
}

fn certificates(given: Vec<CertDoc>, yaml: &str) -> Result<Vec<(Dn, Dn)>, Error> {
    if given.is_empty() || given.len() > 100 {
        return Err(located(
            yaml,
            "sender.certificates",
            "certificates",
            Error::invalid(
                "sender.certificates",
                "give between 1 and 100 {subject, issuer} pairs",
            ),
        ));
    }
    given
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let field = format!("sender.certificates[{i}]");
            let subject = Dn::parse(&c.subject).map_err(|m| {
                located(
                    yaml,
                    &field,
                    &c.subject,
                    Error::invalid(format!("{field}.subject"), m),
                )
            })?;
            let issuer = Dn::parse(&c.issuer).map_err(|m| {
                located(
                    yaml,
                    &field,
                    &c.issuer,
                    Error::invalid(format!("{field}.issuer"), m),
                )
            })?;
            Ok((subject, issuer))
        })
        .collect()
}

fn reply(r: ReplyDoc, yaml: &str) -> Result<ReplyReceiver, Error> {
    let status = r.status.unwrap_or(200);
    if !(200..=599).contains(&status) {
        return Err(located(
            yaml,
            "receiver.reply.status",
            "status",
            Error::invalid(
                "receiver.reply.status",
                "must be an HTTP status between 200 and 599",
            ),
        ));
    }
    let body = match (r.echo.unwrap_or(false), r.body) {
        (true, Some(_)) => {
            return Err(located(
                yaml,
                "receiver.reply",
                "echo",
                Error::invalid("receiver.reply", "give either body or echo: true, not both"),
            ));
        }
        (true, None) => ReplyBody::Echo,
        (false, Some(b)) => ReplyBody::Template(Template::compile(&b).map_err(|m| {
            located(
                yaml,
                "receiver.reply.body",
                "body",
                Error::invalid("receiver.reply.body", m),
            )
        })?),
        (false, None) => ReplyBody::Empty,
    };
    let headers = templates(&r.headers, "receiver.reply.headers", yaml)?;
    if let Some(ct) = &r.content_type
        && (ct.is_empty() || ct.len() > 200 || !ct.bytes().all(|b| (0x20..0x7f).contains(&b)))
    {
        return Err(Error::invalid(
            "receiver.reply.content_type",
            "must be a short printable ASCII media type",
        ));
    }
    Ok(ReplyReceiver::new(status, headers, body, r.content_type))
}

/// Compiles a `name: template` mapping; names must be valid HTTP-style tokens.
fn templates(map: &Mapping, field: &str, yaml: &str) -> Result<Vec<(String, Template)>, Error> {
    let mut out = Vec::with_capacity(map.len());
    for (k, v) in map {
        let name = scalar(k).ok_or_else(|| Error::invalid(field, "names must be text"))?;
        if name.is_empty() || name.len() > 200 || !name.bytes().all(is_token_byte) {
            return Err(located(
                yaml,
                field,
                &name,
                Error::invalid(field, format!("invalid name {name:?}")),
            ));
        }
        let text = scalar(v).ok_or_else(|| {
            located(
                yaml,
                field,
                &name,
                Error::invalid(
                    format!("{field}.{name}"),
                    "value must be text, a number or a boolean",
                ),
            )
        })?;
        let t = Template::compile(&text)
            .map_err(|m| located(yaml, field, &name, Error::invalid(format!("{field}.{name}"), m)))?;
        out.push((name, t));
    }
    Ok(out)
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Adds the line where `key` first appears in the document to an `Invalid` error.
fn located(yaml: &str, field: &str, key: &str, e: Error) -> Error {
    let message = match e {
        Error::Invalid { message, .. } => message,
        other => other.to_string(),
    };
    let line = yaml
        .lines()
        .position(|l| l.contains(key))
        .map(|i| format!(" (line {})", i + 1))
        .unwrap_or_default();
    Error::invalid(field, format!("{message}{line}"))
}

/// serde_norway appends " at line X column Y" itself; we add our own uniform suffix.
fn strip_location(text: &str) -> &str {
    match text.find(" at line ") {
        Some(i) => &text[..i],
        None => text,
    }
}

mod receivers;
#[cfg(test)]
mod tests;
