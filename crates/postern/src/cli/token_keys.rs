//! `postern token-keys ...`: the access-token signing keys.

use clap::Subcommand;

use super::client::{Client, cell, table};

#[derive(Subcommand)]
pub(crate) enum TokenKeysCommand {
    /// List signing keys (public data only): which one signs, which are still published.
    List,
    /// Start signing with a new key; the previous one stays published until its tokens expire.
    Rotate,
}

pub(crate) async fn run(cmd: TokenKeysCommand, c: &Client) -> anyhow::Result<()> {
    match cmd {
        TokenKeysCommand::List => {
            let v = c.get("/admin/v1/token-keys").await?;
            c.print(&v, |v| {
                table(
                    v,
                    &["kid", "alg", "signing", "published", "createdAt", "retiredAt"],
                )
            });
        }
        TokenKeysCommand::Rotate => {
            let v = c
                .post("/admin/v1/token-keys/rotate", serde_json::json!({}))
                .await?;
            c.print(&v, |v| {
                println!("new signing key {} ({})", cell(v.get("kid")), cell(v.get("alg")))
            });
        }
    }
    Ok(())
}
