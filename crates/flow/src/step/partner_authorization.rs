//! `partner_authorization`: reads the partner the message names (header, XPath, JSONPath,
//! EDIFACT UNB, X12 ISA, IDoc control record), maps it to a Pid through the alternative partners
//! when configured, and lets the message on only when it is the partner of the authenticated user.

use postern_core::mpl::Denial;
use postern_partner::check::{Denied, Mapping, Passed, check};
use postern_partner::extract::{ExtractError, Extractor, Found};

use super::{Env, Step, StepError};
use crate::message::Message;

/// The header the sender adapter fills with the authenticated user.
const USER_HEADER: &str = "SapAuthenticatedUserName";

/// The compiled step.
#[derive(Debug)]
pub struct PartnerAuthorization {
    extractor: Extractor,
    mapping: Mapping,
}

impl PartnerAuthorization {
    /// A step reading the partner with `extractor` and mapping it with `mapping`.
    pub fn new(extractor: Extractor, mapping: Mapping) -> Self {
        Self { extractor, mapping }
    }
}

/// The refusal for `d`, with its decision trace.
fn denied(d: &Denied, found: &Found, source: String) -> StepError {
    let mut trace = Denial {
        source: Some(source),
        ..Denial::new("partner", d.code())
    };
    match d {
        Denied::NoUser | Denied::UnknownQualifier { .. } => {}
        Denied::NotAuthorized { .. } => trace.found_id = Some(found.id.clone()),
        Denied::UnknownAlternative { id, .. } => trace.found_id = Some(id.clone()),
        Denied::Mismatch {
            user_pid,
            message_pid,
            ..
        } => {
            trace.expected_partner = Some(user_pid.clone());
            trace.found_partner = Some(message_pid.clone());
            trace.found_id = Some(found.id.clone());
        }
    }
    StepError {
        status: 403,
        kind: "forbidden",
        message: d.to_string(),
        denial: Some(Box::new(trace)),
    }
}

impl PartnerAuthorization {
    /// Reads the partner and runs the check, without changing the message.
    fn decide(&self, msg: &Message, env: &Env<'_>) -> Result<Passed, StepError> {
        let header = |name: &str| msg.header(name);
        let found = self.extractor.extract(&header, &msg.body).map_err(|e| {
            let (status, kind) = match &e {
                ExtractError::TooLarge(_) => (413, "payload_too_large"),
                _ => (400, "bad_request"),
            };
            let source = self.extractor.describe();
            StepError {
                status,
                kind,
                message: format!("partner check: cannot read the partner ({source}): {e}"),
                denial: Some(Box::new(Denial {
                    source: Some(source),
                    ..Denial::new("partner", "unreadable_partner")
                })),
            }
        })?;
        check(env.directory, msg.header(USER_HEADER), &found, &self.mapping)
            .map_err(|d| denied(&d, &found, self.extractor.describe()))
    }
}

impl Step for PartnerAuthorization {
    fn kind(&self) -> &'static str {
        "partner_authorization"
    }

    fn process(&self, msg: &mut Message, env: &Env<'_>) -> Result<(), StepError> {
        let passed = self.decide(msg, env)?;
        msg.set_property("SAP_PartnerID", passed.pid.clone());
        msg.set_property("PartnerID", passed.pid);
        if let Some(alt) = passed.alternative_id {
            msg.set_property("AlternativePartnerID", alt);
        }
        Ok(())
    }

    fn needs_body(&self) -> bool {
        self.extractor.prefix_len() != Some(0)
    }

    fn prefix(&self) -> Option<usize> {
        self.extractor.prefix_len()
    }

    fn precheck(&self, msg: &Message, env: &Env<'_>) -> Result<(), StepError> {
        self.decide(msg, env).map(|_| ())
    }
}
