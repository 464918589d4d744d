//! `/credentials`: what Postern presents to back ends (SAP's security material: *User
//! Credentials* for Basic, OAuth-style bearer tokens, key pairs for client certificates). The
//! secret part is sealed under the master key and never shown again; flows name a credential in
//! their `http` receiver (`credential: NAME`). Replacing one re-binds the flows using it at once.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use postern_auth::secret::Sealer;
use postern_core::model::StoredCredential;
use postern_flow::receiver::{BackendCredential, Secret};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ctx, now, time};
use crate::error::ApiError;
use crate::extract::{Admin, ApiJson};
use crate::state::{AppState, Scope};

/// Longest password, token or PEM accepted.
const MAX_SECRET: usize = 64 * 1024;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/credentials", get(list))
        .route("/credentials/{name}", get(one).put(put).delete(remove))
}

/// Opens a stored credential with this node's master key (`None` when it cannot).
pub(crate) fn open(sealer: &Sealer, c: &StoredCredential) -> Option<BackendCredential> {
    let secret = String::from_utf8(sealer.open(&c.secret_enc)?).ok()?;
    Some(match c.kind.as_str() {
        "basic" => BackendCredential::Basic {
            user: c.user.clone(),
            password: Secret(secret),
        },
        "bearer" => BackendCredential::Bearer {
            token: Secret(secret),
        },
        "certificate" => BackendCredential::Certificate {
            chain_pem: c.certificate.clone(),
            key_pem: Secret(secret),
        },
        _ => return None,
    })
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
enum CredentialDoc {
    Basic { user: String, password: String },
    Bearer { token: String },
    Certificate { certificate: String, key: String },
}

async fn list(State(s): State<AppState>, _a: Admin) -> Result<Json<Value>, ApiError> {
    let rows = s.store().credentials().await?;
    Ok(Json(Value::Array(rows.iter().map(|c| view(&s, c)).collect())))
}

async fn one(
    State(s): State<AppState>,
    _a: Admin,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let rows = s.store().credentials().await?;
    let c = rows
        .iter()
        .find(|c| c.name == name)
        .ok_or_else(|| ApiError::not_found(format!("no credential {name}")))?;
    Ok(Json(view(&s, c)))
}

async fn put(
    State(s): State<AppState>,
    a: Admin,
    Path(name): Path<String>,
    ApiJson(doc): ApiJson<CredentialDoc>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    check_name(&name)?;
    let (kind, user, certificate, secret) = match doc {
        CredentialDoc::Basic { user, password } => {
            if user.is_empty() || user.len() > 256 || user.contains(':') || user.chars().any(char::is_control)
            {
                return Err(ApiError::bad_request(
                    "user: 1 to 256 characters, no ':' or control characters",
                ));
            }
            bounded("password", &password)?;
            ("basic", user, String::new(), password)
        }
        CredentialDoc::Bearer { token } => {
            bounded("token", &token)?;
            if !token.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(ApiError::bad_request("token: printable ASCII without spaces"));
            }
            ("bearer", String::new(), String::new(), token)
        }
        CredentialDoc::Certificate { certificate, key } => {
            bounded("certificate", &certificate)?;
            bounded("key", &key)?;
            reqwest::Identity::from_pem(format!("{key}\n{certificate}").as_bytes()).map_err(|_| {
                ApiError::bad_request(
                    "certificate and key must be a PEM certificate chain and its PEM private key",
                )
            })?;
            ("certificate", String::new(), certificate, key)
        }
    };
    let at = now();
    let stored = StoredCredential {
        name: name.clone(),
        kind: kind.into(),
        user: user.clone(),
        certificate,
        secret_enc: s.sealer().seal(secret.as_bytes()),
        modified_at: at,
        modified_by: a.principal.name.to_string(),
    };
    let c = ctx(&s, &a, at);
    let created = s
        .write_in(Scope::Flows, async {
            let created = c.store.put_credential(&stored).await?;
            let action = if created {
                "credential.create"
            } else {
                "credential.replace"
            };
            c.audit(action, &name, json!({ "type": kind, "user": user }))
                .await?;
            Ok(created)
        })
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view(&s, &stored))))
}

async fn remove(
    State(s): State<AppState>,
    a: Admin,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let users = used_by(&s, &name);
    if !users.is_empty() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!(
                "credential {name} is used by flow(s) {}; undeploy or change them first",
                users.join(", ")
            ),
        ));
    }
    let c = ctx(&s, &a, now());
    s.write_in(Scope::Flows, async {
        if !c.store.delete_credential(&name).await? {
            return Err(postern_core::Error::NotFound(format!("credential {name}")));
        }
        c.audit("credential.delete", &name, json!({})).await
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

fn view(s: &AppState, c: &StoredCredential) -> Value {
    json!({
        "name": c.name,
        "type": c.kind,
        "user": (c.kind == "basic").then_some(&c.user),
        "modifiedAt": time(c.modified_at),
        "modifiedBy": c.modified_by,
        "usedBy": used_by(s, &c.name),
    })
}

/// The deployed flows presenting this credential.
fn used_by(s: &AppState, name: &str) -> Vec<String> {
    s.live()
        .flows
        .iter()
        .filter(|d| d.flow.credential() == Some(name))
        .map(|d| d.flow.id.to_string())
        .collect()
}

fn check_name(name: &str) -> Result<(), ApiError> {
    if name.is_empty()
        || name.len() > 100
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return Err(ApiError::bad_request(
            "name: 1 to 100 letters, digits, '.', '_' or '-'",
        ));
    }
    Ok(())
}

fn bounded(field: &str, value: &str) -> Result<(), ApiError> {
    if value.is_empty() || value.len() > MAX_SECRET {
        return Err(ApiError::bad_request(format!("{field}: 1 to {MAX_SECRET} bytes")));
    }
    Ok(())
}
