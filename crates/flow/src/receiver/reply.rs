//! `reply`: answers the sender directly with a status, optional headers, and a body that is a
//! template or the request body itself (`echo: true`).

use bytes::Bytes;

use crate::expr::Template;
use crate::message::Message;
use crate::pipeline::Reply;

/// What the reply's body is.
#[derive(Debug)]
pub enum ReplyBody {
    /// No body.
    Empty,
    /// The request body as it is after the steps.
    Echo,
    /// A rendered template.
    Template(Template),
}

/// The compiled receiver.
#[derive(Debug)]
pub struct ReplyReceiver {
    status: u16,
    headers: Vec<(String, Template)>,
    body: ReplyBody,
    content_type: Option<String>,
}

impl ReplyReceiver {
    /// A receiver answering with these parts.
    pub fn new(
        status: u16,
        headers: Vec<(String, Template)>,
        body: ReplyBody,
        content_type: Option<String>,
    ) -> Self {
        Self {
            status,
            headers,
            body,
            content_type,
        }
    }

    /// Builds the reply for a processed message.
    pub fn reply(&self, msg: Message) -> Reply {
        let headers: Vec<(String, String)> = self
            .headers
            .iter()
            .map(|(n, t)| (n.clone(), t.render(&msg)))
            .collect();
        let (body, content_type) = match &self.body {
            ReplyBody::Empty => (Bytes::new(), self.content_type.clone()),
            ReplyBody::Echo => {
                let ct = self
                    .content_type
                    .clone()
                    .or_else(|| msg.header("content-type").map(str::to_owned));
                (msg.body, ct)
            }
            ReplyBody::Template(t) => (
                Bytes::from(t.render(&msg)),
                Some(
                    self.content_type
                        .clone()
                        .unwrap_or_else(|| "text/plain; charset=utf-8".into()),
                ),
            ),
        };
        Reply {
            status: self.status,
            headers,
            content_type,
            body,
        }
    }
}
