//! `/user-roles`: list, create, change the description, delete (refused with 409 while in use),
//! and export as `{"roles": [...]}` for instance parameters.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use postern_auth::admin;
use postern_core::model::Role;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ctx, now, time};
use crate::error::ApiError;
use crate::extract::{Admin, ApiJson};
use crate::state::{AppState, Scope};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/user-roles", get(list).post(create))
        .route(
            "/user-roles/{name}",
            get(one).patch(update).put(update).delete(remove),
        )
        .route("/user-roles-export", get(export))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    #[serde(default)]
    description: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    description: String,
}

pub(crate) fn view(r: &Role) -> Value {
    json!({
        "name": r.name,
        "description": r.description,
        "builtin": r.builtin,
        "owner": if r.builtin { "SAP" } else { "Tenant Administrator" },
        "createdAt": time(r.created_at),
        "modifiedAt": time(r.modified_at),
    })
}

async fn list(State(s): State<AppState>, _a: Admin) -> Result<Json<Value>, ApiError> {
    let roles = s.store().roles().await?;
    Ok(Json(Value::Array(roles.iter().map(view).collect())))
}

async fn one(
    State(s): State<AppState>,
    _a: Admin,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let role = s
        .store()
        .role(&name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("role {name} not found")))?;
    Ok(Json(view(&role)))
}

async fn create(
    State(s): State<AppState>,
    a: Admin,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let c = ctx(&s, &a, now());
    let role = s
        .write_in(
            Scope::Nothing,
            admin::create_role(&c, &body.name, &body.description),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(view(&role))))
}

async fn update(
    State(s): State<AppState>,
    a: Admin,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<UpdateBody>,
) -> Result<Json<Value>, ApiError> {
    let c = ctx(&s, &a, now());
    let role = s
        .write_in(Scope::Nothing, admin::update_role(&c, &name, &body.description))
        .await?;
    Ok(Json(view(&role)))
}

async fn remove(
    State(s): State<AppState>,
    a: Admin,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let c = ctx(&s, &a, now());
    s.write_in(Scope::Nothing, admin::delete_role(&c, &name)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn export(State(s): State<AppState>, _a: Admin) -> Result<Json<Value>, ApiError> {
    let roles = s.store().roles().await?;
    let names: Vec<&str> = roles.iter().map(|r| r.name.as_str()).collect();
    Ok(Json(json!({ "roles": names })))
}
