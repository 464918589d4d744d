//! `/users`: technical users with passwords (argon2id) and roles, for HTTP Basic at flow
//! endpoints and for the admin APIs.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use postern_auth::admin;
use postern_core::model::{ROLE_SEND, TechnicalUser};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ctx, now, time};
use crate::error::ApiError;
use crate::extract::{Admin, ApiJson};
use crate::state::{AppState, Live, Scope};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/users", get(list).post(create))
        .route("/users/{name}", get(one).patch(update).delete(remove))
        .route("/principals/{name}", get(principal))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    password: String,
    #[serde(default)]
    roles: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    roles: Option<Vec<String>>,
}

/// A user as shown: never the password hash. `grantedRoles` lists what the user holds without
/// an explicit assignment: `ESBMessaging.send` for an authorized user of the Partner Directory.
pub(crate) fn view_in(live: &Live, u: &TechnicalUser) -> Value {
    json!({
        "name": u.name,
        "roles": u.roles,
        "grantedRoles": granted(live, u.name.as_str()),
        "createdAt": time(u.created_at),
    })
}

fn view(s: &AppState, u: &TechnicalUser) -> Value {
    view_in(&s.live(), u)
}

/// Roles granted by the Partner Directory to `name`.
fn granted(live: &Live, name: &str) -> Vec<Value> {
    match live.directory.partner_of_user(name) {
        Some(pid) => vec![json!({ "role": ROLE_SEND, "grantedBy": "partner-directory", "pid": pid })],
        None => Vec::new(),
    }
}

async fn list(State(s): State<AppState>, _a: Admin) -> Result<Json<Value>, ApiError> {
    let users = s.store().users().await?;
    let live = s.live();
    Ok(Json(Value::Array(
        users.iter().map(|u| view_in(&live, u)).collect(),
    )))
}

/// `GET /principals/{name}`: what any user name a flow may see in `SapAuthenticatedUserName`
/// holds, and from where: a service key's client id (its instance's roles), `oauth_client_<id>`,
/// a technical user, a certificate-mapped user, and the Partner Directory's grant.
async fn principal(
    State(s): State<AppState>,
    _a: Admin,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let mappings = s
        .store()
        .cert_mappings()
        .await?
        .iter()
        .filter(|m| m.user.eq_ignore_ascii_case(&name))
        .count();
    let live = s.live();
    let mut roles: Vec<Value> = Vec::new();
    let client_id = name.strip_prefix("oauth_client_").unwrap_or(&name);
    if let Some(c) = live.security.client(client_id) {
        for r in c.roles.iter() {
            roles.push(json!({ "role": r, "grantedBy": "service-instance", "instance": c.instance }));
        }
    }
    let lower = name.to_lowercase();
    if let Some(u) = live.security.user(&lower) {
        for r in u.roles.iter() {
            roles.push(json!({ "role": r, "grantedBy": "technical-user" }));
        }
    }
    roles.extend(granted(&live, &name));
    Ok(Json(json!({
        "name": name,
        "certificateMappings": mappings,
        "partner": live.directory.partner_of_user(&name),
        "roles": roles,
    })))
}

async fn one(
    State(s): State<AppState>,
    _a: Admin,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let u = s
        .store()
        .user(&name.to_ascii_lowercase())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("user {name} not found")))?;
    Ok(Json(view(&s, &u)))
}

async fn create(
    State(s): State<AppState>,
    a: Admin,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let c = ctx(&s, &a, now());
    let u = s
        .write_in(
            Scope::User(&body.name),
            admin::create_user(&c, &body.name, &body.password, &body.roles),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(view(&s, &u))))
}

async fn update(
    State(s): State<AppState>,
    a: Admin,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<UpdateBody>,
) -> Result<Json<Value>, ApiError> {
    let c = ctx(&s, &a, now());
    let u = s
        .write_in(
            Scope::User(&name),
            admin::update_user(&c, &name, body.password.as_deref(), body.roles.as_deref()),
        )
        .await?;
    Ok(Json(view(&s, &u)))
}

async fn remove(
    State(s): State<AppState>,
    a: Admin,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let c = ctx(&s, &a, now());
    s.write_in(Scope::User(&name), admin::delete_user(&c, &name))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
