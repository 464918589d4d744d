//! The X12 extractor: the interchange sender (ISA06, qualifier ISA05) from the ISA segment that
//! starts the payload.
//!
//! ISA is fixed-width (106 bytes, element separator at byte 3, component separator ISA16 at byte
//! 104, segment terminator at byte 105), but senders do not always pad; the segment is split at
//! the element separator instead of at fixed offsets, and must have all 16 elements.

use super::{ExtractError, Found, edi_head, non_empty};

/// Longest ISA segment accepted (106 bytes when padded as the standard says).
const MAX_ISA_LEN: usize = 256;

/// Reads ISA06 and ISA05 from the first `prefix` bytes.
pub(super) fn extract(body: &[u8], prefix: usize) -> Result<Found, ExtractError> {
    let head = edi_head(body, prefix);
    if head.is_empty() {
        return Err(ExtractError::NotFound(
            "no ISA segment: the payload is empty or blank".to_owned(),
        ));
    }
    if !head.starts_with(b"ISA") {
        return Err(if b"ISA".starts_with(head) {
            truncated()
        } else {
            ExtractError::NotFound(format!(
                "no ISA segment at the start of the payload (looked at the first {prefix} bytes)"
            ))
        });
    }
    let separator = *head.get(3).ok_or_else(truncated)?;
    if separator.is_ascii_alphanumeric() || separator.is_ascii_whitespace() {
        return Err(malformed("invalid ISA element separator"));
    }
    let isa = &head[..head.len().min(MAX_ISA_LEN)];
    // ISA01..ISA15 each end at a separator; ISA16 is the one byte after the 16th.
    let mut elements: [&[u8]; 15] = [&[]; 15];
    let mut rest = &isa[4..];
    for element in &mut elements {
        let end = rest.iter().position(|&b| b == separator).ok_or_else(|| {
            if isa.len() < head.len() {
                malformed("ISA segment does not have 16 elements")
            } else {
                truncated()
            }
        })?;
        *element = &rest[..end];
        rest = &rest[end + 1..];
    }
    let (&component, &terminator) = match rest {
        [component, terminator, ..] => (component, terminator),
        _ => return Err(truncated()),
    };
    let delimiter = |b: u8| !b.is_ascii_alphanumeric() && b != separator;
    if !delimiter(component) || !delimiter(terminator) || component == terminator {
        return Err(malformed(
            "invalid ISA16 component separator or segment terminator",
        ));
    }
    let text = |raw: &[u8]| {
        std::str::from_utf8(raw)
            .map_err(|_| malformed("ISA sender is not valid UTF-8"))
            .map(non_empty)
    };
    let id = text(elements[5])?.ok_or_else(|| malformed("ISA06 (interchange sender id) is empty"))?;
    let qualifier = text(elements[4])?;
    Ok(Found { id, qualifier })
}

fn truncated() -> ExtractError {
    malformed("truncated ISA segment")
}

fn malformed(what: &str) -> ExtractError {
    ExtractError::Malformed(what.to_owned())
}
