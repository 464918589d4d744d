//! `postern credential ...`: credentials Postern presents to back ends (Basic, bearer token,
//! client certificate). Secrets are read from stdin or files, never from arguments (they would
//! show in the process list and shell history), and never printed.

use std::io::Read;

use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use serde_json::json;

use super::client::{Client, seg, table};

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Kind {
    /// HTTP Basic: `--user` and the password on stdin.
    Basic,
    /// `Authorization: Bearer`: the token on stdin.
    Bearer,
    /// A TLS client certificate: `--certificate` and `--key` files (PEM).
    Certificate,
}

#[derive(Subcommand)]
pub(crate) enum CredentialCommand {
    /// Create or replace a credential (flows using it switch at once).
    Put {
        /// Its name, as flows give it in `credential:`.
        name: String,
        /// What it is.
        #[arg(long = "type", value_enum)]
        kind: Kind,
        /// The user of a Basic credential.
        #[arg(long)]
        user: Option<String>,
        /// Read the password (basic) or token (bearer) from stdin.
        #[arg(long)]
        secret_stdin: bool,
        /// The certificate chain file (PEM), for a certificate credential.
        #[arg(long)]
        certificate: Option<std::path::PathBuf>,
        /// The private key file (PEM), for a certificate credential.
        #[arg(long)]
        key: Option<std::path::PathBuf>,
    },
    /// List credentials (without secrets) and the flows using each.
    List,
    /// Delete a credential no deployed flow uses.
    Delete {
        /// Its name.
        name: String,
    },
}

pub(crate) async fn run(cmd: CredentialCommand, c: &Client) -> anyhow::Result<()> {
    match cmd {
        CredentialCommand::Put {
            name,
            kind,
            user,
            secret_stdin,
            certificate,
            key,
        } => {
            let body = match kind {
                Kind::Basic => json!({
                    "type": "basic",
                    "user": user.context("--user is required for a basic credential")?,
                    "password": stdin_secret(secret_stdin, "password")?,
                }),
                Kind::Bearer => json!({ "type": "bearer", "token": stdin_secret(secret_stdin, "token")? }),
                Kind::Certificate => {
                    let read = |p: Option<std::path::PathBuf>, what: &str| -> anyhow::Result<String> {
                        let p = p.with_context(|| {
                            format!("--{what} FILE is required for a certificate credential")
                        })?;
                        std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))
                    };
                    json!({
                        "type": "certificate",
                        "certificate": read(certificate, "certificate")?,
                        "key": read(key, "key")?,
                    })
                }
            };
            let v = c
                .put_json(&format!("/admin/v1/credentials/{}", seg(&name)), body)
                .await?;
            c.print(&v, |v| {
                println!(
                    "credential {} saved (type {})",
                    name,
                    v["type"].as_str().unwrap_or("")
                )
            });
        }
        CredentialCommand::List => {
            let v = c.get("/admin/v1/credentials").await?;
            c.print(&v, |v| {
                table(v, &["name", "type", "user", "usedBy", "modifiedAt"])
            });
        }
        CredentialCommand::Delete { name } => {
            c.delete(&format!("/admin/v1/credentials/{}", seg(&name))).await?;
            if !c.json() {
                println!("credential {name} deleted");
            }
        }
    }
    Ok(())
}

fn stdin_secret(asked: bool, what: &str) -> anyhow::Result<String> {
    anyhow::ensure!(asked, "give the {what} on stdin with --secret-stdin");
    let mut s = String::new();
    std::io::stdin().read_to_string(&mut s).context("reading stdin")?;
    let s = s.trim_end_matches(['\r', '\n']).to_owned();
    anyhow::ensure!(!s.is_empty(), "the {what} on stdin is empty");
    Ok(s)
}
