//! Integration flows: the YAML definition (parsed and validated at deploy time, with the
//! offending line in every error), the message a flow works on, the steps and receivers, and the
//! routing table the sender endpoint looks flows up in. Everything per-message is compiled once
//! at deploy time.

pub mod definition;
pub mod deploy;
pub mod expr;
pub mod message;
pub mod pipeline;
pub mod receiver;
pub mod stats;
pub mod step;
pub mod table;

pub use definition::{Flow, parse_flow};
pub use message::Message;
pub use pipeline::{Next, Outcome, Processed, Reply};
pub use step::Env;
pub use table::FlowTable;
