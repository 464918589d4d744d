//! Running a message through a flow: steps in order, then the receiver.

use bytes::Bytes;

use crate::definition::{Flow, Receiver};
use crate::message::Message;
use crate::step::{Env, StepError};

/// What the sender gets back from a flow that ran to its end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Extra response headers.
    pub headers: Vec<(String, String)>,
    /// Content type of the body, if any.
    pub content_type: Option<String>,
    /// The body.
    pub body: Bytes,
}

/// The result of processing one message.
pub type Outcome = Result<Reply, StepError>;

/// What processing produced: the outcome and the partner the message was checked for.
#[derive(Debug)]
pub struct Processed {
    /// The reply or why the message stopped.
    pub outcome: Outcome,
    /// The Pid a partner check established (`SAP_PartnerID`), if any.
    pub partner: Option<String>,
}

impl Flow {
    /// Runs the steps and the receiver.
    pub fn process(&self, mut msg: Message, env: &Env<'_>) -> Processed {
        for step in &self.steps {
            if let Err(e) = step.process(&mut msg, env) {
                return Processed {
                    outcome: Err(e),
                    partner: msg.property("SAP_PartnerID").map(str::to_owned),
                };
            }
        }
        let partner = msg.property("SAP_PartnerID").map(str::to_owned);
        let outcome = match &self.receiver {
            Receiver::Reply(r) => Ok(r.reply(msg)),
        };
        Processed { outcome, partner }
    }
}
