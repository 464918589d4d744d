//! The JSONPath extractor (RFC 9535, serde_json_path) on a JSON payload.

use serde_json::Value;
use serde_json_path::JsonPath;

use super::{CompileError, ExtractError, Found, Limits, clip, non_empty, strip_bom};

/// The deepest nesting serde_json parses (its recursion limit of 128 refuses the 128th level).
const SERDE_JSON_DEPTH: usize = 127;

/// A compiled JSONPath source.
#[derive(Debug)]
pub(super) struct JsonPathExtractor {
    expr: String,
    path: JsonPath,
}

impl JsonPathExtractor {
    /// Parses `expr` as an RFC 9535 query.
    pub(super) fn compile(expr: &str) -> Result<Self, CompileError> {
        let path = JsonPath::parse(expr).map_err(|e| {
            CompileError(format!(
                "JSONPath `{}`: {} (at position {})",
                clip(expr),
                e.message(),
                e.position()
            ))
        })?;
        Ok(Self {
            expr: expr.to_owned(),
            path,
        })
    }

    /// The query as configured.
    pub(super) fn expr(&self) -> &str {
        &self.expr
    }

    /// The first value the query selects: a string as is, a number or boolean as its JSON text.
    pub(super) fn extract(&self, body: &[u8], limits: &Limits) -> Result<Found, ExtractError> {
        if body.len() > limits.max_json_bytes {
            return Err(ExtractError::TooLarge(format!(
                "JSON payload of {} bytes is over the limit of {} bytes",
                body.len(),
                limits.max_json_bytes
            )));
        }
        let body = strip_bom(body);
        let max_depth = limits.max_depth.min(SERDE_JSON_DEPTH);
        if max_depth < SERDE_JSON_DEPTH && nesting_exceeds(body, max_depth) {
            return Err(too_deep(max_depth));
        }
        let value: Value = serde_json::from_slice(body).map_err(|e| {
            if e.to_string().starts_with("recursion limit exceeded") {
                too_deep(max_depth)
            } else {
                let what = e.to_string();
                let what = what.split(" at line ").next().unwrap_or_default();
                ExtractError::Malformed(format!(
                    "invalid JSON at line {}, column {}: {}",
                    e.line(),
                    e.column(),
                    clip(what)
                ))
            }
        })?;
        let selected = self.path.query(&value).first().ok_or_else(|| {
            ExtractError::NotFound(format!("jsonpath {} selects nothing", clip(&self.expr)))
        })?;
        let text = match selected {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null => return Err(self.non_scalar("null")),
            Value::Array(_) => return Err(self.non_scalar("an array")),
            Value::Object(_) => return Err(self.non_scalar("an object")),
        };
        let id = non_empty(&text).ok_or_else(|| {
            ExtractError::NotFound(format!("jsonpath {} selects an empty value", clip(&self.expr)))
        })?;
        Ok(Found { id, qualifier: None })
    }

    fn non_scalar(&self, kind: &str) -> ExtractError {
        ExtractError::Malformed(format!(
            "jsonpath {} selects a non-scalar value ({kind})",
            clip(&self.expr)
        ))
    }
}

fn too_deep(max_depth: usize) -> ExtractError {
    ExtractError::TooLarge(format!("JSON nesting is deeper than {max_depth} levels"))
}

/// Whether arrays and objects nest deeper than `max` (a byte scan that skips strings), for limits
/// below serde_json's own.
fn nesting_exceeds(body: &[u8], max: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in body {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}
