//! Receivers: where a message goes after the steps.

mod http;
mod queue;
mod reply;

pub use http::{
    BackendCredential, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_RESPONSE, DEFAULT_TIMEOUT, DeliveryError,
    Forward, HttpReceiver, HttpSettings, Outgoing, Secret, shown_url,
};
pub use queue::{AfterFailure, MAX_IDEMPOTENCY_WINDOW, QueueReceiver};
pub use reply::{ReplyBody, ReplyReceiver};
