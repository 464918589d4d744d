//! `postern service ...` and `postern service-key ...`: instances and keys, like
//! `cf create-service it-rt integration-flow NAME -c params.json` and `cf create-service-key`.

use clap::Subcommand;
use serde_json::{Value, json};

use super::client::{Client, cell, parameters, seg, table};

#[derive(Subcommand)]
pub(crate) enum ServiceCommand {
    /// Create a service instance.
    Create {
        /// Instance name (up to 32 of A-Z a-z 0-9 . _ -).
        name: String,
        /// Plan: integration-flow (senders) or api (admin API clients).
        #[arg(long, default_value = "integration-flow")]
        plan: String,
        /// Parameters as JSON or a JSON file: {"roles": [...], "grant-types": [...], ...}.
        #[arg(short = 'c', long = "parameters")]
        parameters: Option<String>,
    },
    /// Change an instance's parameters (as `cf update-service -c`): those given replace the
    /// instance's, the others stay; its keys carry the new roles at once.
    Update {
        /// Instance name.
        name: String,
        /// Parameters as JSON or a JSON file: {"roles": [...], "grant-types": [...], ...}.
        #[arg(short = 'c', long = "parameters")]
        parameters: String,
    },
    /// List instances.
    List,
    /// Show one instance with its keys.
    Show {
        /// Instance name.
        name: String,
    },
    /// Delete an instance and all its keys.
    Delete {
        /// Instance name.
        name: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum KeyCommand {
    /// Create a key and print the key document (the secret is shown only this once).
    Create {
        /// Instance name.
        instance: String,
        /// Key name.
        name: String,
        /// Parameters as JSON or a JSON file: {"key-type": "clientsecret"}.
        #[arg(short = 'c', long = "parameters")]
        parameters: Option<String>,
    },
    /// List an instance's keys (never their secrets).
    List {
        /// Instance name.
        instance: String,
    },
    /// Set when a key stops authenticating (rotation with overlap: create the new key, move the
    /// senders, let the old one expire), or remove its expiry.
    #[command(group(clap::ArgGroup::new("expiry").required(true).args(["expires_at", "no_expiry"])))]
    Update {
        /// Instance name.
        instance: String,
        /// Key name.
        name: String,
        /// RFC 3339 time from which the key no longer authenticates, e.g. 2026-12-31T23:59:59Z
        /// (a past time stops it at once).
        #[arg(long)]
        expires_at: Option<String>,
        /// The key does not expire.
        #[arg(long)]
        no_expiry: bool,
    },
    /// Delete a key; its secret stops working at once.
    Delete {
        /// Instance name.
        instance: String,
        /// Key name.
        name: String,
    },
}

pub(crate) async fn run(cmd: ServiceCommand, c: &Client) -> anyhow::Result<()> {
    match cmd {
        ServiceCommand::Create {
            name,
            plan,
            parameters: p,
        } => {
            let body = json!({ "name": name, "plan": plan, "parameters": parameters(p.as_deref())? });
            let v = c.post("/admin/v1/service-instances", body).await?;
            c.print(&v, |v| {
                println!("service instance {name} created (plan {plan})");
                println!("clientid: {}", cell(v.get("clientid")));
                println!("roles:    {}", cell(v.pointer("/parameters/roles")));
            });
        }
        ServiceCommand::List => {
            let v = c.get("/admin/v1/service-instances").await?;
            c.print(&v, |v| {
                let rows: Vec<Value> = v
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|i| {
                        json!({
                            "name": i["name"], "plan": i["plan"], "roles": i["parameters"]["roles"],
                            "keys": i["keys"].as_array().map(Vec::len).unwrap_or(0), "clientid": i["clientid"],
                        })
                    })
                    .collect();
                table(&Value::Array(rows), &["name", "plan", "roles", "keys", "clientid"]);
            });
        }
        ServiceCommand::Show { name } => {
            let v = c
                .get(&format!("/admin/v1/service-instances/{}", seg(&name)))
                .await?;
            c.print(&v, |v| {
                println!("name:        {}", cell(v.get("name")));
                println!("plan:        {}", cell(v.get("plan")));
                println!("clientid:    {}", cell(v.get("clientid")));
                println!("roles:       {}", cell(v.pointer("/parameters/roles")));
                println!("grant-types: {}", cell(v.pointer("/parameters/grant-types")));
                println!(
                    "created:     {} by {}",
                    cell(v.get("createdAt")),
                    cell(v.get("createdBy"))
                );
                println!();
                table(
                    &v["keys"],
                    &[
                        "name",
                        "keyType",
                        "createdAt",
                        "createdBy",
                        "expiresAt",
                        "validUntil",
                    ],
                );
            });
        }
        ServiceCommand::Update { name, parameters: p } => {
            let body = json!({ "parameters": parameters(Some(&p))? });
            let v = c
                .patch(&format!("/admin/v1/service-instances/{}", seg(&name)), body)
                .await?;
            c.print(&v, |v| {
                println!("service instance {name} updated");
                println!("roles:       {}", cell(v.pointer("/parameters/roles")));
                println!("grant-types: {}", cell(v.pointer("/parameters/grant-types")));
            });
        }
        ServiceCommand::Delete { name } => {
            c.delete(&format!("/admin/v1/service-instances/{}", seg(&name)))
                .await?;
            c.print(&json!({ "deleted": name }), |_| {
                println!("service instance {name} deleted")
            });
        }
    }
    Ok(())
}

pub(crate) async fn run_key(cmd: KeyCommand, c: &Client) -> anyhow::Result<()> {
    match cmd {
        KeyCommand::Create {
            instance,
            name,
            parameters: p,
        } => {
            let body = json!({ "name": name, "parameters": parameters(p.as_deref())? });
            let v = c
                .post(
                    &format!("/admin/v1/service-instances/{}/keys", seg(&instance)),
                    body,
                )
                .await?;
            // The document is the point of this command: always print it whole.
            if !c.json() {
                eprintln!(
                    "service key {name} created; store the document below, the secret is not shown again:"
                );
            }
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        KeyCommand::List { instance } => {
            let v = c
                .get(&format!("/admin/v1/service-instances/{}/keys", seg(&instance)))
                .await?;
            c.print(&v, |v| {
                table(
                    v,
                    &[
                        "name",
                        "keyType",
                        "createdAt",
                        "createdBy",
                        "expiresAt",
                        "validUntil",
                    ],
                )
            });
        }
        KeyCommand::Update {
            instance,
            name,
            expires_at,
            no_expiry: _,
        } => {
            // clap's group makes exactly one of --expires-at and --no-expiry present.
            let body = json!({ "expires-at": expires_at });
            let v = c
                .patch(
                    &format!(
                        "/admin/v1/service-instances/{}/keys/{}",
                        seg(&instance),
                        seg(&name)
                    ),
                    body,
                )
                .await?;
            c.print(&v, |v| match v.get("expiresAt") {
                Some(at) => println!("service key {name} of {instance} expires at {}", cell(Some(at))),
                None => println!("service key {name} of {instance} does not expire"),
            });
        }
        KeyCommand::Delete { instance, name } => {
            c.delete(&format!(
                "/admin/v1/service-instances/{}/keys/{}",
                seg(&instance),
                seg(&name)
            ))
            .await?;
            c.print(&json!({ "deleted": name }), |_| {
                println!("service key {name} of {instance} deleted")
            });
        }
    }
    Ok(())
}
