//! `postern cert-mapping ...` and `postern trust ...`: certificate-to-user mappings and the CAs
//! whose client certificates the HTTPS listener accepts.

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;

use super::client::{Client, cell, seg, table};

#[derive(Subcommand)]
pub(crate) enum MappingCommand {
    /// Map a client certificate (PEM or DER file) to a user; the user's roles authorize it.
    Create {
        /// The user name.
        #[arg(value_name = "USER")]
        user_name: String,
        /// The certificate file (PEM, or DER).
        file: String,
    },
    /// List mappings.
    List,
    /// Show a mapping with its certificate.
    Show {
        /// Mapping id.
        id: String,
    },
    /// Delete a mapping.
    Delete {
        /// Mapping id.
        id: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum TrustCommand {
    /// Trust a CA's client certificates (PEM or DER file of the CA certificate).
    Add {
        /// The CA certificate file.
        file: String,
    },
    /// List trusted CAs (Postern's own CA first).
    List,
    /// Stop trusting a CA.
    Remove {
        /// The CA's SHA-256 fingerprint (hex), as listed.
        sha256: String,
    },
}

/// A certificate file as text: PEM as it is, DER as base64.
fn certificate_text(file: &str) -> anyhow::Result<String> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {file}"))?;
    Ok(match String::from_utf8(bytes.clone()) {
        Ok(text) if text.contains("-----BEGIN") => text,
        _ => base64::Engine::encode(&base64::engine::general_purpose::STANDARD, bytes),
    })
}

pub(crate) async fn run_mapping(cmd: MappingCommand, c: &Client) -> anyhow::Result<()> {
    match cmd {
        MappingCommand::Create { user_name, file } => {
            let body = json!({ "user": user_name, "certificate": certificate_text(&file)? });
            let v = c.post("/admin/v1/certificate-user-mappings", body).await?;
            c.print(&v, |v| {
                println!(
                    "mapping {} created: {} -> {}",
                    cell(v.get("id")),
                    cell(v.get("subjectDn")),
                    cell(v.get("user"))
                )
            });
        }
        MappingCommand::List => {
            let v = c.get("/admin/v1/certificate-user-mappings").await?;
            c.print(&v, |v| {
                table(v, &["id", "user", "subjectDn", "issuerDn", "validUntil"])
            });
        }
        MappingCommand::Show { id } => {
            let v = c
                .get(&format!("/admin/v1/certificate-user-mappings/{}", seg(&id)))
                .await?;
            c.print(&v, |v| {
                for k in [
                    "id",
                    "user",
                    "subjectDn",
                    "issuerDn",
                    "serialNumber",
                    "sha256",
                    "validUntil",
                    "createdAt",
                ] {
                    println!("{k:<13} {}", cell(v.get(k)));
                }
                println!("\n{}", cell(v.get("certificate")));
            });
        }
        MappingCommand::Delete { id } => {
            c.delete(&format!("/admin/v1/certificate-user-mappings/{}", seg(&id)))
                .await?;
            c.print(&json!({ "deleted": id }), |_| println!("mapping {id} deleted"));
        }
    }
    Ok(())
}

pub(crate) async fn run_trust(cmd: TrustCommand, c: &Client) -> anyhow::Result<()> {
    match cmd {
        TrustCommand::Add { file } => {
            let v = c
                .post(
                    "/admin/v1/trusted-cas",
                    json!({ "certificate": certificate_text(&file)? }),
                )
                .await?;
            c.print(&v, |v| {
                println!("trusting {} ({})", cell(v.get("subject")), cell(v.get("sha256")))
            });
        }
        TrustCommand::List => {
            let v = c.get("/admin/v1/trusted-cas").await?;
            c.print(&v, |v| table(v, &["sha256", "subject", "validUntil", "builtin"]));
        }
        TrustCommand::Remove { sha256 } => {
            c.delete(&format!("/admin/v1/trusted-cas/{}", seg(&sha256)))
                .await?;
            c.print(&json!({ "removed": sha256 }), |_| {
                println!("no longer trusting {sha256}")
            });
        }
    }
    Ok(())
}
