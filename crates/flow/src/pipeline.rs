//! Running a message through a flow: steps in order, then the receiver.

use bytes::Bytes;
use postern_core::mpl::Denial;

use crate::definition::{Flow, Receiver};
use crate::message::Message;
use crate::receiver::{HttpReceiver, Outgoing, QueueReceiver};
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

/// Where a message that passed the steps goes next.
#[derive(Debug)]
pub enum Next<'f> {
    /// The answer, ready.
    Reply(Reply),
    /// To a back end; its answer is the sender's.
    Forward(&'f HttpReceiver, Outgoing),
    /// Into a durable queue, then 202.
    Enqueue {
        /// The queue.
        queue: &'f QueueReceiver,
        /// The delivery to store.
        request: Outgoing,
        /// The sender's idempotency key, when the queue names a header and the message has it.
        idempotency_key: Option<String>,
    },
}

impl Next<'_> {
    /// The reply, for flows answering directly (`None` otherwise).
    pub fn into_reply(self) -> Option<Reply> {
        match self {
            Next::Reply(r) => Some(r),
            _ => None,
        }
    }
}

/// The result of processing one message.
pub type Outcome<'f> = Result<Next<'f>, StepError>;

/// What processing produced: the outcome and the partner the message was checked for.
#[derive(Debug)]
pub struct Processed<'f> {
    /// Where the message goes, or why it stopped.
    pub outcome: Outcome<'f>,
    /// The Pid a partner check established (`SAP_PartnerID`), if any.
    pub partner: Option<String>,
}

impl Flow {
    /// Whether the body can go from the sender to the back end as it arrives: an `http`
    /// receiver whose templates do not read it, after steps that do not read it either.
    pub fn streams(&self) -> bool {
        match &self.receiver {
            Receiver::Http(h) => !h.reads_body() && self.steps.iter().all(|s| !s.needs_body()),
            _ => false,
        }
    }

    /// When the first step can refuse a message from the start of its body alone (a partner
    /// check on a header or an EDI envelope), how many bytes it needs.
    pub fn precheck_prefix(&self) -> Option<usize> {
        self.steps.first()?.prefix()
    }

    /// Runs the first step's early refusal on a message whose body may be cut after
    /// [`precheck_prefix`](Self::precheck_prefix) bytes. A pass decides nothing: the full
    /// message still runs through every step.
    pub fn precheck(&self, msg: &Message, env: &Env<'_>) -> Result<(), StepError> {
        match self.steps.first() {
            Some(step) if step.prefix().is_some() => {
                step.precheck(msg, env).map_err(|e| traced(step.kind(), e))
            }
            _ => Ok(()),
        }
    }

    /// Runs the steps (not the receiver) on a copy of a message and reports each step's outcome,
    /// stopping at the first that refuses: what `explain` shows. Steps are pure (they change
    /// only the message), so nothing is forwarded or stored.
    pub fn explain(&self, mut msg: Message, env: &Env<'_>) -> Vec<(&'static str, Result<(), StepError>)> {
        let mut out = Vec::with_capacity(self.steps.len());
        for step in &self.steps {
            let r = step.process(&mut msg, env).map_err(|e| traced(step.kind(), e));
            let failed = r.is_err();
            out.push((step.kind(), r));
            if failed {
                break;
            }
        }
        out
    }

    /// Runs the steps and prepares the receiver's part (rendering its templates against the
    /// message and the Partner Directory of the moment).
    pub fn process(&self, mut msg: Message, env: &Env<'_>) -> Processed<'_> {
        for step in &self.steps {
            if let Err(e) = step.process(&mut msg, env) {
                return Processed {
                    outcome: Err(traced(step.kind(), e)),
                    partner: msg.property("SAP_PartnerID").map(str::to_owned),
                };
            }
        }
        let partner = msg.property("SAP_PartnerID").map(str::to_owned);
        let outcome = match &self.receiver {
            Receiver::Reply(r) => Ok(Next::Reply(r.reply(msg))),
            Receiver::Http(h) => h
                .prepare(msg, Some(env.directory))
                .map(|out| Next::Forward(h, out)),
            Receiver::Queue(q) => {
                let idempotency_key = q
                    .idempotency
                    .as_ref()
                    .and_then(|(header, _)| msg.header(header))
                    .map(str::to_owned);
                q.target
                    .prepare(msg, Some(env.directory))
                    .map(|request| Next::Enqueue {
                        queue: q,
                        request,
                        idempotency_key,
                    })
            }
        };
        Processed { outcome, partner }
    }
}

/// A step's refusal with its decision trace: the step's own, or one naming the step and the
/// error kind. Failures on our side (5xx) are not refusals and get none.
fn traced(step: &'static str, mut e: StepError) -> StepError {
    if e.denial.is_none() && (400..500).contains(&e.status) {
        e.denial = Some(Box::new(Denial::new(step, e.kind)));
    }
    e
}
