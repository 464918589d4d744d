//! `/token-keys`: the token signing keys (public data only) and their rotation.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use postern_auth::token;
use serde_json::{Value, json};

use super::{ctx, now, time};
use crate::error::ApiError;
use crate::extract::Admin;
use crate::state::{AppState, Scope};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/token-keys", get(list))
        .route("/token-keys/rotate", post(rotate))
}

async fn list(State(s): State<AppState>, _a: Admin) -> Result<Json<Value>, ApiError> {
    let rows = s.store().token_keys().await?;
    let live = s.live();
    let current = live.tokens.current_kid();
    let published: Vec<&str> = live.tokens.jwks()["keys"]
        .as_array()
        .map(|a| a.iter().filter_map(|k| k["kid"].as_str()).collect())
        .unwrap_or_default();
    Ok(Json(Value::Array(
        rows.iter()
            .map(|k| {
                json!({
                    "kid": k.kid,
                    "alg": k.alg,
                    "createdAt": time(k.created_at),
                    "retiredAt": k.retired_at.map(time),
                    "signing": current == Some(k.kid.as_str()),
                    "published": published.contains(&k.kid.as_str()),
                })
            })
            .collect(),
    )))
}

async fn rotate(State(s): State<AppState>, a: Admin) -> Result<(StatusCode, Json<Value>), ApiError> {
    let c = ctx(&s, &a, now());
    let key = s
        .write_in(Scope::TokenKeys, token::rotate(&c, s.sealer()))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "kid": key.kid, "alg": key.alg, "createdAt": time(key.created_at) })),
    ))
}
