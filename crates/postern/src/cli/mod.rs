//! Command-line parsing and dispatch.

mod cert;
mod client;
mod connectivity;
mod credential;
mod expiring;
mod flow;
mod mpl;
mod partner;
mod queue;
mod role;
mod serve;
mod service;
mod tls;
mod token_keys;
mod user;

use clap::{Args, Parser, Subcommand};

pub(crate) use client::Client;

/// Postern: a self-hosted inbound gateway for integration flows.
#[derive(Parser)]
#[command(name = "postern", version, about, long_about = None)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    conn: Connection,
}

/// How management commands reach the server.
#[derive(Args, Clone)]
pub(crate) struct Connection {
    /// Base URL of the running server.
    #[arg(
        long,
        global = true,
        env = "POSTERN_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    url: String,
    /// Admin user (a technical user with Postern.Admin, or an api-plan client id).
    #[arg(long, global = true, env = "POSTERN_USER", default_value = "admin")]
    user: String,
    /// Its password or client secret (prefer the environment variable over the flag).
    #[arg(long, global = true, env = "POSTERN_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// PEM file of a CA to trust for https URLs (e.g. <data-dir>/tls/ca.pem).
    #[arg(long, global = true, env = "POSTERN_CA_CERT")]
    ca_cert: Option<std::path::PathBuf>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
}

// Parsed once per process: the size of `serve`'s options costs nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve(serve::ServeArgs),
    /// User roles (Monitor > Manage Security > User Roles).
    #[command(subcommand)]
    Role(role::RoleCommand),
    /// Service instances (plan integration-flow or api).
    #[command(subcommand)]
    Service(service::ServiceCommand),
    /// Service keys of an instance.
    #[command(subcommand, name = "service-key")]
    ServiceKey(service::KeyCommand),
    /// Technical users with passwords.
    #[command(subcommand)]
    User(user::UserCommand),
    /// Integration flows: deploy, undeploy, list.
    #[command(subcommand)]
    Flow(flow::FlowCommand),
    /// Message processing logs.
    #[command(subcommand)]
    Mpl(mpl::MplCommand),
    /// Durable queues of `queue` receivers: counts, messages, retry, discard.
    #[command(subcommand)]
    Queue(queue::QueueCommand),
    /// Credentials presented to back ends (Basic, bearer token, client certificate).
    #[command(subcommand)]
    Credential(credential::CredentialCommand),
    /// Certificate-to-user mappings.
    #[command(subcommand, name = "cert-mapping")]
    CertMapping(cert::MappingCommand),
    /// CAs whose client certificates the HTTPS listener accepts.
    #[command(subcommand)]
    Trust(cert::TrustCommand),
    /// Connectivity tests (TLS): a server's handshake and certificate chain.
    #[command(subcommand, name = "connectivity-test")]
    ConnectivityTest(connectivity::ConnectivityCommand),
    /// Token signing keys: list, rotate.
    #[command(subcommand, name = "token-keys")]
    TokenKeys(token_keys::TokenKeysCommand),
    /// Credentials (keys, certificates, CAs) whose validity ends within N days.
    Expiring(expiring::ExpiringArgs),
    /// The Partner Directory: export to and import from a JSON or CSV file.
    #[command(subcommand)]
    Partner(partner::PartnerCommand),
    /// The audit log, newest first; `audit verify` checks its hash chain.
    #[command(args_conflicts_with_subcommands = true)]
    Audit {
        #[command(subcommand)]
        action: Option<AuditCommand>,
        /// How many entries.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

#[derive(clap::Subcommand)]
pub(crate) enum AuditCommand {
    /// Recompute every entry's link in the hash chain; exits non-zero when an entry was changed
    /// or deleted, and prints the head link to record elsewhere.
    Verify,
}

pub(crate) async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::run(args).await,
        Command::Role(c) => role::run(c, &Client::new(&cli.conn)?).await,
        Command::Service(c) => service::run(c, &Client::new(&cli.conn)?).await,
        Command::ServiceKey(c) => service::run_key(c, &Client::new(&cli.conn)?).await,
        Command::User(c) => user::run(c, &Client::new(&cli.conn)?).await,
        Command::Flow(c) => flow::run(c, &Client::new(&cli.conn)?).await,
        Command::Mpl(c) => mpl::run(c, &Client::new(&cli.conn)?).await,
        Command::Queue(c) => queue::run(c, &Client::new(&cli.conn)?).await,
        Command::Credential(c) => credential::run(c, &Client::new(&cli.conn)?).await,
        Command::CertMapping(c) => cert::run_mapping(c, &Client::new(&cli.conn)?).await,
        Command::Trust(c) => cert::run_trust(c, &Client::new(&cli.conn)?).await,
        Command::ConnectivityTest(c) => connectivity::run(c, &Client::new(&cli.conn)?).await,
        Command::TokenKeys(c) => token_keys::run(c, &Client::new(&cli.conn)?).await,
        Command::Partner(c) => partner::run(c, &Client::new(&cli.conn)?).await,
        Command::Expiring(a) => expiring::run(a, &Client::new(&cli.conn)?).await,
        Command::Audit {
            action: Some(AuditCommand::Verify),
            ..
        } => {
            let client = Client::new(&cli.conn)?;
            let v = client.get("/admin/v1/audit/verify").await?;
            client.print(&v, |v| {
                if v["ok"] == true {
                    println!(
                        "audit log intact: {} entries, {} chained (head {} at entry {})",
                        v["entries"],
                        v["chained"],
                        v["head"].as_str().unwrap_or("-"),
                        v["headId"]
                    );
                } else {
                    println!("audit log TAMPERED: {}", v["reason"].as_str().unwrap_or("?"));
                }
            });
            if v["ok"] != true {
                anyhow::bail!("the audit log's hash chain is broken");
            }
            Ok(())
        }
        Command::Audit { limit, .. } => {
            let client = Client::new(&cli.conn)?;
            let v = client.get(&format!("/admin/v1/audit?limit={limit}")).await?;
            client.print(&v, |v| {
                client::table(v, &["id", "at", "actor", "action", "target", "source"]);
            });
            Ok(())
        }
    }
}
