//! `postern connectivity-test tls HOST[:PORT]`: SAP's Connectivity Test (TLS) from the command
//! line: the handshake, the server's chain, and optionally the chain as a `.zip` of `.cer` files.

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::json;

use super::client::{Client, cell, table};

#[derive(Subcommand)]
pub(crate) enum ConnectivityCommand {
    /// Test a TLS endpoint and show its certificate chain.
    Tls {
        /// Host name or IP address, optionally with :PORT (default 443).
        target: String,
        /// Do not validate the server certificate (to read a chain that does not validate).
        #[arg(long)]
        no_validate: bool,
        /// Write the chain as a zip of .cer files (DER), the root marked, to this file.
        #[arg(long, value_name = "FILE.zip")]
        download: Option<String>,
        /// Seconds for connecting and the handshake.
        #[arg(long, default_value_t = 10)]
        timeout: u64,
    },
}

pub(crate) async fn run(cmd: ConnectivityCommand, c: &Client) -> anyhow::Result<()> {
    let ConnectivityCommand::Tls {
        target,
        no_validate,
        download,
        timeout,
    } = cmd;
    let (host, port) = match target.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (
            h.to_owned(),
            p.parse::<u16>().context("the port is not a number")?,
        ),
        _ => (target.clone(), 443),
    };
    let body = json!({ "host": host, "port": port, "validateServerCertificate": !no_validate, "timeoutSeconds": timeout });
    let v = c.post("/admin/v1/connectivity-tests/tls", body.clone()).await?;
    c.print(&v, |v| {
        if v["success"] == true {
            println!(
                "TLS handshake with {host}:{port} succeeded: {} {}",
                cell(v.get("protocol")),
                cell(v.get("cipherSuite"))
            );
            println!();
            table(
                &v["certificates"],
                &["position", "subject", "issuer", "validUntil", "root", "file"],
            );
        } else {
            println!(
                "TLS connectivity test of {host}:{port} failed: {}",
                cell(v.get("error"))
            );
        }
    });
    if v["success"] != true {
        bail!("the connectivity test failed");
    }
    if let Some(file) = download {
        let zip = c
            .post_bytes("/admin/v1/connectivity-tests/tls/download", body)
            .await?;
        std::fs::write(&file, &zip).with_context(|| format!("writing {file}"))?;
        if !c.json() {
            println!("\nwrote {file} ({} bytes)", zip.len());
        }
    }
    Ok(())
}
