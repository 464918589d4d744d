//! `/service-instances` and their `/keys`: what `cf create-service it-rt integration-flow` and
//! `cf create-service-key` do. A key's secret appears once, in the creation answer.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use postern_auth::admin::{self, InstanceParameters, KeyParameters};
use postern_core::model::{ServiceInstance, ServiceKey};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ctx, now, time};
use crate::error::ApiError;
use crate::extract::{Admin, ApiJson};
use crate::state::{AppState, Scope};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/service-instances", get(list).post(create))
        .route("/service-instances/{name}", get(one).patch(update).delete(remove))
        .route("/service-instances/{name}/keys", get(keys).post(create_key))
        .route(
            "/service-instances/{name}/keys/{key}",
            delete(remove_key).get(one_key).patch(update_key),
        )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    plan: String,
    #[serde(default)]
    parameters: InstanceParameters,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    parameters: InstanceParameters,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyBody {
    name: String,
    #[serde(default)]
    parameters: KeyParameters,
}

/// `PATCH .../keys/{key}`: `{"expires-at": "<RFC 3339>"}` sets the key's expiry, `null` clears it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyUpdateBody {
    /// Required (a missing field is refused): `null` is the explicit "never".
    #[serde(rename = "expires-at")]
    expires_at: Value,
}

pub(crate) fn view(i: &ServiceInstance, keys: &[ServiceKey]) -> Value {
    json!({
        "name": i.name,
        "plan": i.plan.as_str(),
        "clientid": i.client_id,
        "parameters": {
            "roles": i.roles,
            "grant-types": i.grant_types,
            "redirect-uris": i.redirect_uris,
            "access-token-validity": i.token_validity,
            "rate-limit": i.rate_limit,
        },
        "createdAt": time(i.created_at),
        "createdBy": i.created_by,
        "keys": keys.iter().filter(|k| k.instance == i.name).map(key_view).collect::<Vec<_>>(),
    })
}

/// A key as listed: never its secret or hash; for certificate keys the certificate's fingerprint
/// and expiry.
pub(crate) fn key_view(k: &ServiceKey) -> Value {
    let mut v = json!({
        "name": k.name,
        "instance": k.instance,
        "keyType": k.key_type.as_str(),
        "createdAt": time(k.created_at),
        "createdBy": k.created_by,
    });
    if let Some(c) = &k.certificate {
        v["sha256"] = Value::String(postern_auth::cert::hex(&c.sha256));
        v["validUntil"] = Value::String(time(c.not_after));
    }
    if let Some(at) = k.expires_at {
        v["expiresAt"] = Value::String(time(at));
    }
    v
}

async fn list(State(s): State<AppState>, _a: Admin) -> Result<Json<Value>, ApiError> {
    let (instances, keys) = (s.store().instances().await?, s.store().keys(None).await?);
    Ok(Json(Value::Array(
        instances.iter().map(|i| view(i, &keys)).collect(),
    )))
}

async fn one(
    State(s): State<AppState>,
    _a: Admin,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let i = s
        .store()
        .instance(&name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("service instance {name} not found")))?;
    let keys = s.store().keys(Some(&name)).await?;
    Ok(Json(view(&i, &keys)))
}

async fn create(
    State(s): State<AppState>,
    a: Admin,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let c = ctx(&s, &a, now());
    let zone = s.config().zone.clone();
    let i = s
        .write_in(
            Scope::Instance(&body.name),
            admin::create_instance(&c, &body.name, &body.plan, body.parameters, &zone),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(view(&i, &[]))))
}

/// `PATCH {"parameters": {...}}`: the parameters given replace the instance's.
async fn update(
    State(s): State<AppState>,
    a: Admin,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<UpdateBody>,
) -> Result<Json<Value>, ApiError> {
    let c = ctx(&s, &a, now());
    let i = s
        .write_in(
            Scope::Instance(&name),
            admin::update_instance(&c, &name, body.parameters),
        )
        .await?;
    let keys = s.store().keys(Some(&name)).await?;
    Ok(Json(view(&i, &keys)))
}

async fn remove(
    State(s): State<AppState>,
    a: Admin,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let c = ctx(&s, &a, now());
    s.write_in(Scope::Instance(&name), admin::delete_instance(&c, &name))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn keys(
    State(s): State<AppState>,
    _a: Admin,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if s.store().instance(&name).await?.is_none() {
        return Err(ApiError::not_found(format!("service instance {name} not found")));
    }
    let keys = s.store().keys(Some(&name)).await?;
    Ok(Json(Value::Array(keys.iter().map(key_view).collect())))
}

async fn one_key(
    State(s): State<AppState>,
    _a: Admin,
    Path((name, key)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let keys = s.store().keys(Some(&name)).await?;
    let k = keys
        .iter()
        .find(|k| k.name.as_str() == key)
        .ok_or_else(|| ApiError::not_found(format!("service key {key} of {name} not found")))?;
    Ok(Json(key_view(k)))
}

async fn create_key(
    State(s): State<AppState>,
    a: Admin,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<KeyBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let c = ctx(&s, &a, now());
    let hasher = s.authn().secret_hasher().clone();
    let url = s.config().public_url.clone();
    let doc = s
        .write_in(
            Scope::Instance(&name),
            admin::create_key(&c, &hasher, s.ca(), &name, &body.name, body.parameters, &url),
        )
        .await?;
    let body = serde_json::to_value(&doc)
        .map_err(|e| ApiError::from_domain(postern_core::Error::Internal(e.to_string())))?;
    Ok((StatusCode::CREATED, Json(body)))
}

async fn update_key(
    State(s): State<AppState>,
    a: Admin,
    Path((name, key)): Path<(String, String)>,
    ApiJson(body): ApiJson<KeyUpdateBody>,
) -> Result<Json<Value>, ApiError> {
    let expires_at = match &body.expires_at {
        Value::Null => None,
        Value::String(t) => Some(t.as_str()),
        _ => {
            return Err(ApiError::bad_request(
                "expires-at: give an RFC 3339 timestamp, or null for no expiry",
            ));
        }
    };
    let c = ctx(&s, &a, now());
    let k = s
        .write_in(
            Scope::Instance(&name),
            admin::update_key_expiry(&c, &name, &key, expires_at),
        )
        .await?;
    Ok(Json(key_view(&k)))
}

async fn remove_key(
    State(s): State<AppState>,
    a: Admin,
    Path((name, key)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let c = ctx(&s, &a, now());
    s.write_in(Scope::Instance(&name), admin::delete_key(&c, &name, &key))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
