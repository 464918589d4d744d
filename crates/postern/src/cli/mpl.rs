//! `postern mpl ...`: message processing logs, read through the SAP-compatible OData API.

use clap::Subcommand;
use serde_json::Value;

use super::client::{Client, cell, seg, table};

#[derive(Subcommand)]
pub(crate) enum MplCommand {
    /// List the newest message processing logs.
    List {
        /// Only this status (COMPLETED, FAILED).
        #[arg(long)]
        status: Option<String>,
        /// Only this flow.
        #[arg(long)]
        flow: Option<String>,
        /// How many.
        #[arg(long, default_value_t = 20)]
        top: u32,
    },
    /// Show one message processing log with its error.
    Show {
        /// The message GUID.
        guid: String,
    },
}

fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

pub(crate) async fn run(cmd: MplCommand, c: &Client) -> anyhow::Result<()> {
    match cmd {
        MplCommand::List { status, flow, top } => {
            let mut filter = Vec::new();
            if let Some(s) = status {
                filter.push(format!("Status eq {}", literal(&s)));
            }
            if let Some(f) = flow {
                filter.push(format!("IntegrationFlowName eq {}", literal(&f)));
            }
            let mut path = format!("/api/v1/MessageProcessingLogs?$orderby=LogEnd%20desc&$top={top}");
            if !filter.is_empty() {
                path.push_str(&format!("&$filter={}", seg(&filter.join(" and "))));
            }
            let v = c.get(&path).await?;
            let results = v.pointer("/d/results").cloned().unwrap_or(Value::Null);
            c.print(&results, |r| {
                table(
                    r,
                    &[
                        "MessageGuid",
                        "IntegrationFlowName",
                        "Status",
                        "AuthenticatedUser",
                        "HttpStatus",
                    ],
                );
            });
        }
        MplCommand::Show { guid } => {
            let key = seg(&literal(&guid));
            let v = c.get(&format!("/api/v1/MessageProcessingLogs({key})")).await?;
            let d = v.get("d").cloned().unwrap_or(Value::Null);
            c.print(&d, |d| {
                for k in [
                    "MessageGuid",
                    "IntegrationFlowName",
                    "Status",
                    "AuthenticatedUser",
                    "HttpStatus",
                    "LogStart",
                    "LogEnd",
                ] {
                    println!("{k:<20} {}", cell(d.get(k)));
                }
            });
            let error_path = format!("/api/v1/MessageProcessingLogs({key})/ErrorInformation/$value");
            if d["Status"] == "FAILED"
                && !c.json()
                && let Ok(e) = c.get(&error_path).await
            {
                println!("{:<20} {}", "Error", cell(Some(&e)));
            }
        }
    }
    Ok(())
}
