//! `postern flow ...`: deploy a YAML flow, undeploy, list, show.

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::json;

use super::client::{Client, cell, seg, table};

#[derive(Subcommand)]
pub(crate) enum FlowCommand {
    /// Deploy (or redeploy) a flow from a YAML file.
    Deploy {
        /// The flow file.
        file: String,
    },
    /// Undeploy a flow.
    Undeploy {
        /// Flow id.
        id: String,
    },
    /// List deployed flows with their endpoints.
    List,
    /// Show a deployed flow and its YAML.
    Show {
        /// Flow id.
        id: String,
    },
}

pub(crate) async fn run(cmd: FlowCommand, c: &Client) -> anyhow::Result<()> {
    match cmd {
        FlowCommand::Deploy { file } => {
            let yaml = std::fs::read_to_string(&file).with_context(|| format!("reading {file}"))?;
            let yaml = inline_scripts(&yaml, std::path::Path::new(&file))?;
            let id = flow_id(&yaml)?;
            let v = c.put_text(&format!("/admin/v1/flows/{}", seg(&id)), yaml).await?;
            c.print(&v, |v| {
                println!("flow {} deployed ({})", cell(v.get("id")), cell(v.get("status")));
                println!("endpoint: {}", cell(v.get("endpoint")));
                println!("roles:    {}", cell(v.get("roles")));
            });
        }
        FlowCommand::Undeploy { id } => {
            c.delete(&format!("/admin/v1/flows/{}", seg(&id))).await?;
            c.print(&json!({ "undeployed": id }), |_| println!("flow {id} undeployed"));
        }
        FlowCommand::List => {
            let v = c.get("/admin/v1/flows").await?;
            c.print(&v, |v| {
                table(v, &["id", "status", "endpoint", "roles", "deployedAt"])
            });
        }
        FlowCommand::Show { id } => {
            let v = c.get(&format!("/admin/v1/flows/{}", seg(&id))).await?;
            c.print(&v, |v| {
                println!("id:       {}", cell(v.get("id")));
                println!("status:   {}", cell(v.get("status")));
                println!("endpoint: {}", cell(v.get("endpoint")));
                println!("roles:    {}", cell(v.get("roles")));
                println!(
                    "deployed: {} by {}",
                    cell(v.get("deployedAt")),
                    cell(v.get("deployedBy"))
                );
                println!("\n{}", cell(v.get("yaml")));
            });
        }
    }
    Ok(())
}

/// The `id:` of a flow document, read from its top-level line (the server validates the rest).
fn flow_id(yaml: &str) -> anyhow::Result<String> {
    for line in yaml.lines() {
        if let Some(rest) = line.strip_prefix("id:") {
            let id = rest
                .split('#')
                .next()
                .unwrap_or("")
                .trim()
                .trim_matches(['"', '\'']);
            if !id.is_empty() {
                return Ok(id.to_owned());
            }
        }
    }
    bail!("the flow file has no top-level `id:` line")
}

/// Replaces every `script: { file: F }` step by `script: { source: <F's text> }`, F relative to
/// the flow file, so the server receives one self-contained document. A flow without script
/// files is sent as written (comments included).
fn inline_scripts(yaml: &str, flow_file: &std::path::Path) -> anyhow::Result<String> {
    use serde_norway::Value;
    let mut doc: Value = match serde_norway::from_str(yaml) {
        Ok(d) => d,
        // Let the server report what is wrong with the document.
        Err(_) => return Ok(yaml.to_owned()),
    };
    let mut changed = false;
    if let Some(steps) = doc.get_mut("steps").and_then(Value::as_sequence_mut) {
        for step in steps {
            let Some(script) = step.get_mut("script").and_then(Value::as_mapping_mut) else {
                continue;
            };
            let Some(file) = script.get("file").and_then(Value::as_str).map(str::to_owned) else {
                continue;
            };
            let path = flow_file
                .parent()
                .unwrap_or(std::path::Path::new("."))
                .join(&file);
            let source = std::fs::read_to_string(&path)
                .with_context(|| format!("reading the script {}", path.display()))?;
            script.remove("file");
            script.insert(Value::from("source"), Value::from(source));
            changed = true;
        }
    }
    Ok(if changed {
        serde_norway::to_string(&doc)?
    } else {
        yaml.to_owned()
    })
}
