//! TLS material for the HTTPS listener: the operator's own certificate and key, or Postern's
//! local CA (created once per deployment and kept in the database) and a server certificate it
//! issues for the configured host names, renewed when the names change or 30 days before it
//! expires.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use postern_auth::pki::LocalCa;
use postern_auth::secret::Sealer;
use postern_core::model::StoredCa;
use postern_server::TlsIdentity;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Postern's CA and where its certificate lives (senders import that file to trust Postern).
pub(crate) struct Ca {
    pub(crate) ca: LocalCa,
    pub(crate) file: PathBuf,
}

#[derive(Serialize, Deserialize, PartialEq)]
struct ServerMeta {
    hostnames: Vec<String>,
    not_after: i64,
}

/// Renew the generated server certificate this long before it expires.
const RENEW_BEFORE_SECS: i64 = 30 * 86_400;

/// Loads the deployment's CA from the database (every node of a PostgreSQL deployment shares
/// it), storing one on first start: the CA of `<data-dir>/tls/` when an earlier version or the
/// operator left one there, else a new one. Its certificate is written to `<data-dir>/tls/ca.pem`
/// for senders to import; the private key stays in the database, sealed under the master key.
pub(crate) async fn load_ca(
    data_dir: &Path,
    store: &dyn postern_store::Store,
    sealer: &Sealer,
) -> anyhow::Result<Ca> {
    let dir = data_dir.join("tls");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let (ca_cert, ca_key) = (dir.join("ca.pem"), dir.join("ca.key"));
    let stored = match store.local_ca().await? {
        Some(stored) => stored,
        None => {
            let (offered, origin) = if ca_cert.exists() && ca_key.exists() {
                let ca = LocalCa::from_pem(&read(&ca_cert)?, &read(&ca_key)?)
                    .with_context(|| format!("loading the CA in {}", dir.display()))?;
                (ca, "imported the CA of the data directory into the database")
            } else {
                let suffix: String = postern_auth::secret::random::<4>()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                let ca = LocalCa::generate(&format!("Postern Local CA {suffix}"), OffsetDateTime::now_utc())?;
                (ca, "created the local CA")
            };
            let stored = store
                .init_local_ca(&StoredCa {
                    cert_pem: offered.cert_pem().to_owned(),
                    key_enc: sealer.seal(offered.key_pem().as_bytes()),
                    created_at: OffsetDateTime::now_utc().unix_timestamp() * 1000,
                })
                .await?;
            if stored.cert_pem == offered.cert_pem() {
                tracing::info!(ca = %ca_cert.display(), "{origin}; senders import this file to trust Postern");
            }
            stored
        }
    };
    let key = sealer
        .open(&stored.key_enc)
        .and_then(|k| String::from_utf8(k).ok())
        .with_context(|| {
            "the master key does not open this database's CA key: every node of a deployment needs \
             the same master key (POSTERN_MASTER_KEY or the same master.key file)"
        })?;
    let ca = LocalCa::from_pem(&stored.cert_pem, &key).context("loading the CA stored in the database")?;
    if std::fs::read_to_string(&ca_cert).ok().as_deref() != Some(ca.cert_pem()) {
        write_atomic(&ca_cert, ca.cert_pem(), false)?;
        if ca_key.exists() {
            tracing::warn!(
                file = %ca_key.display(),
                "this CA key is not the deployment's CA (which is in the database); it is not used"
            );
        }
    }
    Ok(Ca { ca, file: ca_cert })
}

/// The listener's identity: the operator's certificate and key, or a server certificate the
/// local CA issued for `hostnames` (chain: leaf, then the CA).
pub(crate) fn identity(
    data_dir: &Path,
    ca: &LocalCa,
    hostnames: &[String],
    cert: Option<&Path>,
    key: Option<&Path>,
) -> anyhow::Result<TlsIdentity> {
    match (cert, key) {
        (Some(c), Some(k)) => {
            return Ok(TlsIdentity {
                chain_pem: read(c)?,
                key_pem: read(k)?,
            });
        }
        (None, None) => {}
        _ => bail!("--tls-cert and --tls-key go together"),
    }
    let dir = data_dir.join("tls");
    let now = OffsetDateTime::now_utc();
    let (srv_cert, srv_key, srv_meta) = (
        dir.join("server.pem"),
        dir.join("server.key"),
        dir.join("server.json"),
    );
    let meta: Option<ServerMeta> = std::fs::read_to_string(&srv_meta)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let fresh = meta
        .as_ref()
        .is_some_and(|m| m.hostnames == hostnames && m.not_after - now.unix_timestamp() > RENEW_BEFORE_SECS)
        && srv_cert.exists()
        && srv_key.exists();
    if !fresh {
        let issued = ca.issue_server(hostnames, now)?;
        write_atomic(&srv_key, &issued.key_pem, true)?;
        write_atomic(&srv_cert, &issued.cert_pem, false)?;
        let meta = ServerMeta {
            hostnames: hostnames.to_vec(),
            not_after: issued.not_after,
        };
        write_atomic(&srv_meta, &serde_json::to_string(&meta)?, false)?;
        tracing::info!(hostnames = ?hostnames, "issued a server certificate from the local CA");
    }
    Ok(TlsIdentity {
        chain_pem: format!("{}{}", read(&srv_cert)?, ca.cert_pem()),
        key_pem: read(&srv_key)?,
    })
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// Writes a file through a temporary sibling and a rename; private files get mode 0600.
fn write_atomic(path: &Path, text: &str, private: bool) -> anyhow::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    opts.mode(if private { 0o600 } else { 0o644 });
    let mut f = opts
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
