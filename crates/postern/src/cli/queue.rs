//! `postern queue ...`: durable queues of `queue` receivers through the native admin API —
//! counts per queue, messages by state, one message, and retry or discard.

use clap::Subcommand;
use serde_json::Value;

use super::client::{Client, cell, seg, table};

#[derive(Subcommand)]
pub(crate) enum QueueCommand {
    /// Each queue with its message counts by state.
    List,
    /// Messages, newest first.
    Messages {
        /// Only this queue.
        #[arg(long)]
        queue: Option<String>,
        /// Only this state: QUEUED, RETRY, DELIVERED, DEAD (the dead letter) or DISCARDED.
        #[arg(long)]
        status: Option<String>,
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// One message: its state, attempts, last error, headers and body.
    Show {
        /// The message GUID.
        guid: String,
    },
    /// Deliver a dead message (or one waiting for its next attempt) again now, with a fresh
    /// attempt count.
    Retry {
        /// The message GUID.
        guid: String,
    },
    /// Discard a message that is not delivered (it will not be delivered).
    Discard {
        /// The message GUID.
        guid: String,
    },
}

pub(crate) async fn run(cmd: QueueCommand, c: &Client) -> anyhow::Result<()> {
    match cmd {
        QueueCommand::List => {
            let v = c.get("/admin/v1/queues").await?;
            c.print(&v, |v| {
                let rows: Vec<Value> = v
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|q| {
                        let mut row = q["messages"].clone();
                        row["name"] = q["name"].clone();
                        row
                    })
                    .collect();
                table(
                    &Value::Array(rows),
                    &["name", "QUEUED", "RETRY", "DEAD", "DELIVERED", "DISCARDED"],
                );
            });
        }
        QueueCommand::Messages { queue, status, limit } => {
            let mut path = format!("/admin/v1/queue-messages?limit={limit}");
            if let Some(q) = queue {
                path.push_str(&format!("&queue={}", seg(&q)));
            }
            if let Some(s) = status {
                path.push_str(&format!("&status={}", seg(&s)));
            }
            let v = c.get(&path).await?;
            c.print(&v, |v| {
                table(
                    v,
                    &[
                        "messageGuid",
                        "queue",
                        "status",
                        "attempts",
                        "partner",
                        "lastError",
                    ],
                )
            });
        }
        QueueCommand::Show { guid } => {
            let v = c.get(&format!("/admin/v1/queue-messages/{}", seg(&guid))).await?;
            c.print(&v, |v| {
                for k in [
                    "messageGuid",
                    "queue",
                    "flow",
                    "status",
                    "attempts",
                    "nextAttemptAt",
                    "lastError",
                    "lastHttpStatus",
                    "partner",
                    "user",
                    "method",
                    "url",
                    "createdAt",
                    "updatedAt",
                    "bodyBytes",
                ] {
                    println!("{k:<16} {}", cell(v.get(k)));
                }
            });
        }
        QueueCommand::Retry { guid } => {
            c.post(
                &format!("/admin/v1/queue-messages/{}/retry", seg(&guid)),
                Value::Null,
            )
            .await?;
            if !c.json() {
                println!("message {guid} is due for delivery now");
            }
        }
        QueueCommand::Discard { guid } => {
            c.delete(&format!("/admin/v1/queue-messages/{}", seg(&guid)))
                .await?;
            if !c.json() {
                println!("message {guid} discarded");
            }
        }
    }
    Ok(())
}
