//! Running a message through a flow: steps in order, then the receiver.

use bytes::Bytes;

use crate::definition::{Flow, Receiver};
use crate::message::Message;
use crate::step::StepError;

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

impl Flow {
    /// Runs the steps and the receiver.
    pub fn process(&self, mut msg: Message) -> Outcome {
        for step in &self.steps {
            step.process(&mut msg)?;
        }
        match &self.receiver {
            Receiver::Reply(r) => Ok(r.reply(msg)),
        }
    }
}
