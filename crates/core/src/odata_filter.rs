//! The OData v2 `$filter` parser of the MPL and Partner Directory APIs. It accepts comparisons
//! (`eq ne gt ge lt le`) joined by `and`, with string literals (`'it''s'`) and
//! `datetime'YYYY-MM-DDThh:mm:ss'`; fields are whitelisted, so nothing reaches SQL but bound
//! values. Input comes from the network: every malformed filter is an error message.

use crate::mpl::{CmpOp, Condition, Literal, MplField};
use crate::time::parse_datetime;

/// Longest `$filter` accepted.
pub const MAX_FILTER: usize = 4096;
/// Most comparisons in one `$filter`.
pub const MAX_CONDITIONS: usize = 32;

/// Maps an OData property name to a field.
pub fn field(name: &str) -> Option<MplField> {
    Some(match name {
        "MessageGuid" => MplField::MessageGuid,
        "IntegrationFlowName" | "IntegrationArtifact/Id" => MplField::IntegrationFlowName,
        "Status" => MplField::Status,
        "LogStart" => MplField::LogStart,
        "LogEnd" => MplField::LogEnd,
        "Sender" => MplField::Sender,
        "Receiver" => MplField::Receiver,
        _ => return None,
    })
}

#[derive(Debug, PartialEq)]
enum Token {
    Word(String),
    Text(String),
    Time(i64),
    Open,
    Close,
}

fn tokens(input: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = input.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '(' || c == ')' {
            chars.next();
            out.push(if c == '(' { Token::Open } else { Token::Close });
        } else if c == '\'' {
            chars.next();
            out.push(Token::Text(quoted(&mut chars)?));
        } else {
            let mut word = String::new();
            while let Some(&(_, c)) = chars.peek() {
                if c.is_whitespace() || c == '(' || c == ')' || c == '\'' {
                    break;
                }
                word.push(c);
                chars.next();
            }
            if word == "datetime" && matches!(chars.peek(), Some((_, '\''))) {
                chars.next();
                let text = quoted(&mut chars)?;
                let t = parse_datetime(&text).ok_or_else(|| format!("invalid datetime literal '{text}'"))?;
                out.push(Token::Time(t));
            } else if word.is_empty() {
                return Err(format!("unexpected character at position {i}"));
            } else {
                out.push(Token::Word(word));
            }
        }
    }
    Ok(out)
}

fn quoted(chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>) -> Result<String, String> {
    let mut s = String::new();
    loop {
        match chars.next() {
            Some((_, '\'')) => {
                if matches!(chars.peek(), Some((_, '\''))) {
                    chars.next();
                    s.push('\'');
                } else {
                    return Ok(s);
                }
            }
            Some((_, c)) => s.push(c),
            None => return Err("unterminated string literal".into()),
        }
    }
}

/// Parses an MPL `$filter` into conditions joined by `and`.
pub fn parse_filter(input: &str) -> Result<Vec<Condition>, String> {
    let found = parse_filter_with(input, |name| {
        field(name).map(|f| (f, matches!(f, MplField::LogStart | MplField::LogEnd)))
    })?;
    Ok(found
        .into_iter()
        .map(|(field, op, value)| Condition { field, op, value })
        .collect())
}

/// Parses a `$filter` into comparisons joined by `and`; `field` maps a property name to a field
/// and says whether it compares with datetime literals (`None`: not filterable).
pub fn parse_filter_with<F>(
    input: &str,
    field: impl Fn(&str) -> Option<(F, bool)>,
) -> Result<Vec<(F, CmpOp, Literal)>, String> {
    if input.len() > MAX_FILTER {
        return Err(format!("$filter longer than {MAX_FILTER} characters"));
    }
    // Parentheses only group; with `and` alone they change nothing, so they are dropped.
    let toks: Vec<Token> = tokens(input)?
        .into_iter()
        .filter(|t| !matches!(t, Token::Open | Token::Close))
        .collect();
    let mut out = Vec::new();
    let mut it = toks.into_iter();
    loop {
        let Some(Token::Word(name)) = it.next() else {
            return Err("expected a property name".into());
        };
        let (field, is_time) = field(&name).ok_or_else(|| format!("property {name} cannot be filtered"))?;
        let op = match it.next() {
            Some(Token::Word(op)) => match op.as_str() {
                "eq" => CmpOp::Eq,
                "ne" => CmpOp::Ne,
                "gt" => CmpOp::Gt,
                "ge" => CmpOp::Ge,
                "lt" => CmpOp::Lt,
                "le" => CmpOp::Le,
                other => {
                    return Err(format!(
                        "unsupported operator {other}; use eq, ne, gt, ge, lt, le"
                    ));
                }
            },
            _ => return Err(format!("expected an operator after {name}")),
        };
        let value = match (it.next(), is_time) {
            (Some(Token::Text(t)), false) => Literal::Text(t),
            (Some(Token::Time(t)), true) => Literal::Time(t),
            (_, true) => return Err(format!("{name} compares with datetime'YYYY-MM-DDThh:mm:ss'")),
            (_, false) => return Err(format!("{name} compares with a string literal in single quotes")),
        };
        out.push((field, op, value));
        if out.len() > MAX_CONDITIONS {
            return Err(format!("at most {MAX_CONDITIONS} comparisons"));
        }
        match it.next() {
            None => return Ok(out),
            Some(Token::Word(w)) if w == "and" => continue,
            Some(Token::Word(w)) if w == "or" => return Err("'or' is not supported; use 'and'".into()),
            Some(_) => return Err("expected 'and' or the end of the filter".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sap_examples() {
        let c = parse_filter(
            "Status eq 'COMPLETED' and LogStart gt datetime'2026-11-25T00:00:00' and (IntegrationArtifact/Id eq 'it''s')",
        )
        .expect("valid");
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].value, Literal::Text("COMPLETED".into()));
        assert_eq!((c[1].field, c[1].op), (MplField::LogStart, CmpOp::Gt));
        assert!(matches!(c[1].value, Literal::Time(_)));
        assert_eq!(c[2].value, Literal::Text("it's".into()));
    }

    #[test]
    fn rejects_bad_filters() {
        for bad in [
            "",
            "Status",
            "Status eq",
            "Status eq COMPLETED",
            "Status like 'x'",
            "Password eq 'x'",
            "Status eq 'a' or Status eq 'b'",
            "Status eq 'a",
            "LogEnd gt 'yesterday'",
            "LogEnd gt datetime'2026-02-30T00:00:00'",
            "Status eq 'a' Status eq 'b'",
        ] {
            assert!(parse_filter(bad).is_err(), "{bad}");
        }
        assert!(parse_filter(&"x".repeat(MAX_FILTER + 1)).is_err());
    }
}
