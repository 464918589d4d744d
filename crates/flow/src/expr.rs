//! Expressions in flow values, in Camel's *simple* style: `${header.NAME}`, `${property.NAME}`,
//! `${body}` and `${partner.NAME}` (the string parameter NAME of the partner a partner check
//! established, from the Partner Directory) inside literal text. Compiled once at deploy time.

use postern_partner::Directory;

use crate::message::Message;

/// One piece of a compiled template.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    Header(String),
    Property(String),
    Body,
    Partner(String),
}

/// A compiled template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Compiles `text`; the error says which expression is not understood.
    pub fn compile(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| format!("unclosed expression in {text:?}"))?;
            let inner = after[..end].trim();
            parts.push(if let Some(name) = inner.strip_prefix("header.") {
                Part::Header(checked_name(name)?)
            } else if let Some(name) = inner.strip_prefix("property.") {
                Part::Property(checked_name(name)?)
            } else if let Some(name) = inner.strip_prefix("partner.") {
                Part::Partner(checked_name(name)?)
            } else if inner == "body" || inner == "in.body" {
                Part::Body
            } else {
                return Err(format!(
                    "unknown expression ${{{inner}}}; use ${{header.NAME}}, ${{property.NAME}}, ${{partner.NAME}} or ${{body}}"
                ));
            });
            rest = &after[end + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Self { parts })
    }

    /// Whether the template reads nothing from the message.
    pub fn is_constant(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Text(_)))
    }

    /// Evaluates against a message; absent headers, properties and parameters read as empty
    /// text (partner parameters always do: see [`render_in`](Self::render_in)).
    pub fn render(&self, msg: &Message) -> String {
        self.render_in(msg, None)
    }

    /// Evaluates against a message and the Partner Directory of the moment.
    pub fn render_in(&self, msg: &Message, directory: Option<&Directory>) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Header(n) => out.push_str(msg.header(n).unwrap_or("")),
                Part::Property(n) => out.push_str(msg.property(n).unwrap_or("")),
                Part::Body => out.push_str(&String::from_utf8_lossy(&msg.body)),
                Part::Partner(n) => {
                    let value = directory
                        .zip(msg.property(PARTNER_PROPERTY))
                        .and_then(|(d, pid)| d.string_parameter(pid, n));
                    out.push_str(value.unwrap_or(""));
                }
            }
        }
        out
    }

    /// Whether the template reads the body.
    pub fn reads_body(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Body))
    }

    /// The partner parameters the template reads.
    pub fn partner_parameters(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Partner(n) => Some(n.as_str()),
            _ => None,
        })
    }
}

/// The property a partner check sets to the partner's Pid.
pub const PARTNER_PROPERTY: &str = "SAP_PartnerID";

fn checked_name(name: &str) -> Result<String, String> {
    if name.is_empty() || name.len() > 200 || !name.bytes().all(|b| b.is_ascii_graphic() && b != b'}') {
        return Err(format!("invalid name {name:?} in expression"));
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_and_renders() {
        let mut m = Message::new(b"hi".to_vec().into());
        m.set_header("SapAuthenticatedUserName", "alice");
        m.set_property("pid", "P1");
        let t = Template::compile(
            "u=${header.sapauthenticatedusername} p=${property.pid} b=${body} x=${header.none}",
        )
        .expect("valid");
        assert_eq!(t.render(&m), "u=alice p=P1 b=hi x=");
        assert!(Template::compile("plain").expect("valid").is_constant());
        assert!(Template::compile("${date}").is_err());
        assert!(Template::compile("${header.a").is_err());
        assert!(Template::compile("${header.}").is_err());
    }
}
