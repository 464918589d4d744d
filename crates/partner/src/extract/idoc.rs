//! The IDoc extractor: the sender partner (`SNDPRN`, type `SNDPRT`) of the first control record
//! (`IDOC/EDI_DC40`) of an IDoc XML document, read with the streaming reader, which stops there.
//!
//! Names are matched by local name in any namespace, so an IDoc wrapped in a SOAP envelope or
//! carrying a namespace is read the same way as a plain `ORDERS05` document.

use super::xml::{Item, XmlStream, text};
use super::{ExtractError, Found, Limits, non_empty};

/// Reads `SNDPRN` and `SNDPRT` from the first `EDI_DC40` child of an `IDOC` element.
pub(super) fn extract(body: &[u8], limits: &Limits) -> Result<Found, ExtractError> {
    let text = text(body, limits)?;
    let mut xml = XmlStream::new(&text, limits.max_depth);
    let mut idoc_level = None;
    loop {
        match xml.next()? {
            Item::Open(start) => match start.local_name().as_ref() {
                "IDOC" => idoc_level = Some(xml.depth()),
                "EDI_DC40" if idoc_level == Some(xml.depth() - 1) => return control_record(&mut xml),
                _ => {}
            },
            Item::Close if idoc_level.is_some_and(|level| xml.depth() < level) => idoc_level = None,
            Item::Close | Item::Text(_) | Item::Other => {}
            Item::End => {
                return Err(ExtractError::NotFound(
                    "no IDoc control record (IDOC/EDI_DC40) in the payload".to_owned(),
                ));
            }
        }
    }
}

/// Reads the control record the reader has just entered.
fn control_record(xml: &mut XmlStream<'_>) -> Result<Found, ExtractError> {
    let level = xml.depth();
    let (mut partner, mut partner_type) = (None, None);
    loop {
        match xml.next()? {
            Item::Open(start) if xml.depth() == level + 1 => match start.local_name().as_ref() {
                "SNDPRN" if partner.is_none() => partner = Some(xml.string_value()?),
                "SNDPRT" if partner_type.is_none() => partner_type = Some(xml.string_value()?),
                _ => {}
            },
            Item::Close if xml.depth() < level => break,
            Item::End => break,
            Item::Open(_) | Item::Close | Item::Text(_) | Item::Other => {}
        }
    }
    let id = partner.as_deref().and_then(non_empty).ok_or_else(|| {
        ExtractError::NotFound("IDoc control record EDI_DC40 has no SNDPRN (sender partner)".to_owned())
    })?;
    Ok(Found {
        id,
        qualifier: partner_type.as_deref().and_then(non_empty),
    })
}
