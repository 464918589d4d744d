//! `/users`: technical users with passwords (argon2id) and roles, for HTTP Basic at flow
//! endpoints and for the admin APIs.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use postern_auth::admin;
use postern_core::model::TechnicalUser;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ctx, now, time};
use crate::error::ApiError;
use crate::extract::{Admin, ApiJson};
use crate::state::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/users", get(list).post(create))
        .route("/users/{name}", get(one).patch(update).delete(remove))
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

/// A user as shown: never the password hash.
fn view(u: &TechnicalUser) -> Value {
    json!({ "name": u.name, "roles": u.roles, "createdAt": time(u.created_at) })
}

async fn list(State(s): State<AppState>, _a: Admin) -> Result<Json<Value>, ApiError> {
    let users = s.store().users().await?;
    Ok(Json(Value::Array(users.iter().map(view).collect())))
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
    Ok(Json(view(&u)))
}

async fn create(
    State(s): State<AppState>,
    a: Admin,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let c = ctx(&s, &a, now());
    let u = s
        .write(admin::create_user(&c, &body.name, &body.password, &body.roles))
        .await?;
    Ok((StatusCode::CREATED, Json(view(&u))))
}

async fn update(
    State(s): State<AppState>,
    a: Admin,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<UpdateBody>,
) -> Result<Json<Value>, ApiError> {
    let c = ctx(&s, &a, now());
    let u = s
        .write(admin::update_user(
            &c,
            &name,
            body.password.as_deref(),
            body.roles.as_deref(),
        ))
        .await?;
    Ok(Json(view(&u)))
}

async fn remove(
    State(s): State<AppState>,
    a: Admin,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let c = ctx(&s, &a, now());
    s.write(admin::delete_user(&c, &name)).await?;
    Ok(StatusCode::NO_CONTENT)
}
