//! Receivers: where a message goes after the steps.

mod reply;

pub use reply::{ReplyBody, ReplyReceiver};
