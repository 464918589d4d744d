//! `postern role ...`: user roles.

use clap::Subcommand;
use serde_json::json;

use super::client::{Client, seg, table};

#[derive(Subcommand)]
pub(crate) enum RoleCommand {
    /// Create a custom role (a-z A-Z 0-9 _ .).
    Create {
        /// Role name.
        name: String,
        /// Description.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List roles.
    List,
    /// Show one role.
    Show {
        /// Role name.
        name: String,
    },
    /// Change a custom role's description.
    Update {
        /// Role name.
        name: String,
        /// New description.
        #[arg(long)]
        description: String,
    },
    /// Delete a custom role (refused while an instance, user or flow uses it).
    Delete {
        /// Role name.
        name: String,
    },
    /// Print all role names as {"roles": [...]}, ready for instance parameters.
    Export,
}

pub(crate) async fn run(cmd: RoleCommand, c: &Client) -> anyhow::Result<()> {
    match cmd {
        RoleCommand::Create { name, description } => {
            let v = c
                .post(
                    "/admin/v1/user-roles",
                    json!({ "name": name, "description": description }),
                )
                .await?;
            c.print(&v, |_| println!("role {name} created"));
        }
        RoleCommand::List => {
            let v = c.get("/admin/v1/user-roles").await?;
            c.print(&v, |v| table(v, &["name", "owner", "description", "modifiedAt"]));
        }
        RoleCommand::Show { name } => {
            let v = c.get(&format!("/admin/v1/user-roles/{}", seg(&name))).await?;
            c.print(&v, |v| {
                table(
                    &json!([v]),
                    &["name", "owner", "description", "createdAt", "modifiedAt"],
                )
            });
        }
        RoleCommand::Update { name, description } => {
            let v = c
                .patch(
                    &format!("/admin/v1/user-roles/{}", seg(&name)),
                    json!({ "description": description }),
                )
                .await?;
            c.print(&v, |_| println!("role {name} updated"));
        }
        RoleCommand::Delete { name } => {
            c.delete(&format!("/admin/v1/user-roles/{}", seg(&name))).await?;
            c.print(&json!({ "deleted": name }), |_| println!("role {name} deleted"));
        }
        RoleCommand::Export => {
            let v = c.get("/admin/v1/user-roles-export").await?;
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
    }
    Ok(())
}
