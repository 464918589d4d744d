//! Flow steps. A step is a type implementing [`Step`]; one file per step kind.

mod content_modifier;
mod partner_authorization;
mod script;

pub use content_modifier::ContentModifier;
pub use partner_authorization::PartnerAuthorization;
use postern_core::mpl::Denial;
use postern_partner::Directory;
pub use script::{MAX_SCRIPT_BYTES, Script};

use crate::message::Message;

/// Why a step stopped the message; decides the sender's status and the MPL error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepError {
    /// HTTP status for the sender (4xx when the message is at fault, 5xx when we are).
    pub status: u16,
    /// Error kind for the JSON body (`forbidden`, `bad_request`, `flow_error`).
    pub kind: &'static str,
    /// A message safe to show the sender.
    pub message: String,
    /// For a refusal, the decision trace (which check, what it wanted, what it found); steps
    /// that give none are traced by their kind and error kind.
    pub denial: Option<Box<Denial>>,
}

/// What steps may read besides the message: the current snapshot's Partner Directory.
#[derive(Clone, Copy, Debug)]
pub struct Env<'a> {
    /// The Partner Directory.
    pub directory: &'a Directory,
}

/// One processing step of a flow, compiled at deploy time and shared by all messages.
pub trait Step: Send + Sync + std::fmt::Debug {
    /// The step kind as written in YAML.
    fn kind(&self) -> &'static str;
    /// Processes the message in place.
    fn process(&self, msg: &mut Message, env: &Env<'_>) -> Result<(), StepError>;

    /// Whether this step reads the body. A flow whose steps and receiver do not may stream the
    /// body from the sender to the back end without holding it.
    fn needs_body(&self) -> bool {
        true
    }

    /// How many leading body bytes this step needs to decide whether the message may go on, when
    /// that does not depend on the rest (`None`: the whole body, or the step never refuses).
    fn prefix(&self) -> Option<usize> {
        None
    }

    /// The refusal [`process`](Self::process) would give, decided on a message whose body may be
    /// cut after [`prefix`](Self::prefix) bytes; changes nothing.
    fn precheck(&self, _msg: &Message, _env: &Env<'_>) -> Result<(), StepError> {
        Ok(())
    }
}
