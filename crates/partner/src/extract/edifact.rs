//! The EDIFACT extractor: the interchange sender (UNB S002) read from the start of the payload,
//! honouring the UNA service string advice and the release character.

use super::{ExtractError, Found, clip, edi_head, non_empty};

/// The delimiters of an interchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Delimiters {
    component: u8,
    element: u8,
    release: Option<u8>,
    terminator: u8,
}

/// ISO 9735 defaults for syntax level A when there is no UNA: `:+.? '`.
const LEVEL_A: Delimiters = Delimiters {
    component: b':',
    element: b'+',
    release: Some(b'?'),
    terminator: b'\'',
};
/// Syntax level B (information separators, no release character), recognised when `UNB` is
/// followed by IS3.
const LEVEL_B: Delimiters = Delimiters {
    component: 0x1F,
    element: 0x1D,
    release: None,
    terminator: 0x1C,
};

/// Reads UNB S002/0004 (sender id) and S002/0007 (its qualifier) from the first `prefix` bytes.
pub(super) fn extract(body: &[u8], prefix: usize) -> Result<Found, ExtractError> {
    let head = edi_head(body, prefix);
    if head.is_empty() {
        return Err(ExtractError::NotFound(
            "no UNB segment: the payload is empty or blank".to_owned(),
        ));
    }
    let (delimiters, rest) = match head.strip_prefix(b"UNA") {
        Some(advice) => (service_string_advice(advice)?, advice[6..].trim_ascii_start()),
        None if head.get(3) == Some(&LEVEL_B.element) => (LEVEL_B, head),
        None => (LEVEL_A, head),
    };
    if !rest.starts_with(b"UNB") {
        return Err(if b"UNB".starts_with(rest) || b"UNA".starts_with(rest) {
            truncated()
        } else {
            ExtractError::NotFound(format!(
                "no UNB segment at the start of the payload (looked at the first {prefix} bytes)"
            ))
        });
    }
    let segment = match rest.get(3) {
        Some(&b) if b == delimiters.element => &rest[4..],
        Some(_) => return Err(malformed("UNB is not followed by the data element separator")),
        None => return Err(truncated()),
    };
    let end = segment_end(segment, &delimiters).ok_or_else(|| {
        malformed(&format!(
            "truncated UNB segment (no segment terminator in the first {prefix} bytes)"
        ))
    })?;
    sender(&segment[..end], &delimiters)
}

/// The delimiters from the six characters after `UNA`.
fn service_string_advice(advice: &[u8]) -> Result<Delimiters, ExtractError> {
    let [component, element, _decimal, release, _reserved, terminator, ..] = *advice else {
        return Err(malformed("truncated UNA service string advice"));
    };
    let release = (release != b' ').then_some(release);
    let delimiters = Delimiters {
        component,
        element,
        release,
        terminator,
    };
    let used = [Some(component), Some(element), Some(terminator), release];
    let valid = used
        .iter()
        .flatten()
        .all(|&b| !b.is_ascii_alphanumeric() && b != b' ')
        && used
            .iter()
            .enumerate()
            .all(|(i, a)| a.is_none() || !used[i + 1..].contains(a));
    if !valid {
        return Err(malformed(
            "invalid UNA service string advice (delimiters must be distinct symbols)",
        ));
    }
    Ok(delimiters)
}

/// Builds the result from the UNB data after `UNB+`, up to the segment terminator.
fn sender(data: &[u8], delimiters: &Delimiters) -> Result<Found, ExtractError> {
    let mut elements = split(data, delimiters.element, delimiters.release);
    let syntax = elements.next().unwrap_or_default();
    let syntax = split(syntax, delimiters.component, delimiters.release)
        .next()
        .unwrap_or_default();
    let s002 = elements
        .next()
        .ok_or_else(|| malformed("UNB has no interchange sender (S002)"))?;
    let mut components = split(s002, delimiters.component, delimiters.release);
    let text = |raw: &[u8]| decode(unescape(raw, delimiters.release), syntax);
    let id = text(components.next().unwrap_or_default())?;
    let id = non_empty(&id).ok_or_else(|| malformed("UNB interchange sender id (S002/0004) is empty"))?;
    let qualifier = match components.next() {
        Some(raw) => non_empty(&text(raw)?),
        None => None,
    };
    Ok(Found { id, qualifier })
}

/// The index of the segment terminator, skipping released characters.
fn segment_end(data: &[u8], delimiters: &Delimiters) -> Option<usize> {
    let mut i = 0;
    while let Some(&b) = data.get(i) {
        if Some(b) == delimiters.release {
            i += 2;
        } else if b == delimiters.terminator {
            return Some(i);
        } else {
            i += 1;
        }
    }
    None
}

/// Splits `data` at `separator` except where the release character escapes it (raw parts).
fn split(data: &[u8], separator: u8, release: Option<u8>) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(data);
    std::iter::from_fn(move || {
        let part = rest?;
        let mut i = 0;
        while let Some(&b) = part.get(i) {
            if Some(b) == release {
                i += 2;
            } else if b == separator {
                rest = Some(&part[i + 1..]);
                return Some(&part[..i]);
            } else {
                i += 1;
            }
        }
        rest = None;
        Some(part)
    })
}

/// Removes release characters, keeping the character each one escapes.
fn unescape(raw: &[u8], release: Option<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.iter();
    while let Some(&b) = bytes.next() {
        if Some(b) == release {
            out.extend(bytes.next());
        } else {
            out.push(b);
        }
    }
    out
}

/// UTF-8 text; ISO 8859-1 bytes under syntax identifier UNOC.
fn decode(bytes: Vec<u8>, syntax: &[u8]) -> Result<String, ExtractError> {
    String::from_utf8(bytes).or_else(|e| {
        if syntax == b"UNOC" {
            Ok(e.into_bytes().into_iter().map(char::from).collect())
        } else {
            Err(malformed(&format!(
                "UNB sender is not valid UTF-8 (syntax identifier {})",
                clip(&String::from_utf8_lossy(syntax))
            )))
        }
    })
}

fn truncated() -> ExtractError {
    malformed("truncated EDIFACT interchange header")
}

fn malformed(what: &str) -> ExtractError {
    ExtractError::Malformed(what.to_owned())
}
