//! `postern user ...`: technical users.

use std::io::Read;

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::{Value, json};

use super::client::{Client, seg, table};

#[derive(Subcommand)]
pub(crate) enum UserCommand {
    /// Create a technical user.
    Create {
        /// User name (stored lower-case).
        name: String,
        /// Read the password from standard input (recommended).
        #[arg(long, conflicts_with = "new_password")]
        password_stdin: bool,
        /// The password (visible in the process list; prefer --password-stdin).
        #[arg(long)]
        new_password: Option<String>,
        /// A role to grant; repeat for several.
        #[arg(long = "role")]
        roles: Vec<String>,
    },
    /// List users.
    List,
    /// Show one user.
    Show {
        /// User name.
        name: String,
    },
    /// Change a user's password and/or roles (--role replaces all roles).
    Update {
        /// User name.
        name: String,
        /// Read a new password from standard input.
        #[arg(long)]
        password_stdin: bool,
        /// A role; repeat for several. Replaces the user's roles.
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Remove every role.
        #[arg(long, conflicts_with = "roles")]
        no_roles: bool,
    },
    /// Delete a user.
    Delete {
        /// User name.
        name: String,
    },
}

fn stdin_password() -> anyhow::Result<String> {
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .context("reading the password from standard input")?;
    let p = s.trim_end_matches(['\r', '\n']).to_owned();
    if p.is_empty() {
        bail!("no password on standard input");
    }
    Ok(p)
}

pub(crate) async fn run(cmd: UserCommand, c: &Client) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Create {
            name,
            password_stdin,
            new_password,
            roles,
        } => {
            let password = match (password_stdin, new_password) {
                (true, _) => stdin_password()?,
                (false, Some(p)) => p,
                (false, None) => bail!("give --password-stdin (or --new-password)"),
            };
            let v = c
                .post(
                    "/admin/v1/users",
                    json!({ "name": name, "password": password, "roles": roles }),
                )
                .await?;
            c.print(&v, |v| {
                println!("user {} created", v["name"].as_str().unwrap_or(&name))
            });
        }
        UserCommand::List => {
            let v = c.get("/admin/v1/users").await?;
            c.print(&v, |v| table(v, &["name", "roles", "createdAt"]));
        }
        UserCommand::Show { name } => {
            let v = c.get(&format!("/admin/v1/users/{}", seg(&name))).await?;
            c.print(&v, |v| table(&json!([v]), &["name", "roles", "createdAt"]));
        }
        UserCommand::Update {
            name,
            password_stdin,
            roles,
            no_roles,
        } => {
            let mut body = serde_json::Map::new();
            if password_stdin {
                body.insert("password".into(), Value::String(stdin_password()?));
            }
            if no_roles || !roles.is_empty() {
                body.insert("roles".into(), json!(roles));
            }
            if body.is_empty() {
                bail!("nothing to change: give --password-stdin, --role or --no-roles");
            }
            let v = c
                .patch(&format!("/admin/v1/users/{}", seg(&name)), Value::Object(body))
                .await?;
            c.print(&v, |_| println!("user {name} updated"));
        }
        UserCommand::Delete { name } => {
            c.delete(&format!("/admin/v1/users/{}", seg(&name))).await?;
            c.print(&json!({ "deleted": name }), |_| println!("user {name} deleted"));
        }
    }
    Ok(())
}
