//! `postern expiring [--days N]`: credentials whose validity ends within N days (default 30) or
//! has ended — service keys with an expiry, certificate keys, certificate mappings, trusted CAs,
//! Postern's CA and the server certificate — soonest first.

use clap::Args;

use super::client::{Client, table};

#[derive(Args)]
pub(crate) struct ExpiringArgs {
    /// Days to look ahead (0 to 3650; default 30).
    #[arg(long)]
    days: Option<u32>,
}

pub(crate) async fn run(args: ExpiringArgs, c: &Client) -> anyhow::Result<()> {
    let path = match args.days {
        Some(d) => format!("/admin/v1/expiring?days={d}"),
        None => "/admin/v1/expiring".to_owned(),
    };
    let v = c.get(&path).await?;
    c.print(&v, |v| {
        let items = &v["items"];
        if items.as_array().is_some_and(Vec::is_empty) {
            println!("nothing expires within {} days", v["days"]);
        } else {
            table(items, &["kind", "name", "notAfter", "daysLeft", "subject"]);
        }
    });
    Ok(())
}
