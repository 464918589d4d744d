//! Monitor > Manage Security: user roles, technical users, service instances and their keys
//! (a new key's secret or certificate and private key shown once; credentials expiring soon
//! listed above the instances), certificate-to-user mappings, and the TLS connectivity test with
//! its certificate download.

use axum::Router;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use bytes::Bytes;
use postern_auth::admin::{self, GRANT_TYPES, InstanceParameters, KeyParameters};
use postern_auth::expiry;
use postern_core::model::{API_ROLES, ROLE_ADMIN};
use serde::Deserialize;
use serde_json::{Value, json};

use super::session::or_answer;
use super::{Done, Session, back, problem, render};
use crate::admin::{cert_mappings, connectivity, expiring, instances, roles, users};
use crate::state::{AppState, Scope};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/security/roles", get(roles_page).post(role_create))
        .route("/security/roles/export", get(roles_export))
        .route("/security/roles/{name}", post(role_update))
        .route("/security/roles/{name}/delete", post(role_delete))
        .route("/security/users", get(users_page).post(user_create))
        .route("/security/users/{name}", post(user_update))
        .route("/security/users/{name}/delete", post(user_delete))
        .route("/security/instances", get(instances_page).post(instance_create))
        .route("/security/instances/{name}", get(instance_page))
        .route("/security/instances/{name}/roles", post(instance_roles))
        .route("/security/instances/{name}/delete", post(instance_delete))
        .route("/security/instances/{name}/keys", post(key_create))
        .route("/security/instances/{name}/keys/{key}/delete", post(key_delete))
        .route(
            "/security/certificate-mappings",
            get(mappings_page).post(mapping_create),
        )
        .route("/security/certificate-mappings/{id}/delete", post(mapping_delete))
        .route("/security/connectivity", get(connectivity_page))
        .route("/security/connectivity/download", get(connectivity_download))
}

/// Values given as one field or repeated fields (`roles=a&roles=b`), or comma-separated.
#[derive(Deserialize, Default)]
#[serde(untagged)]
enum Many {
    #[default]
    None,
    One(String),
    List(Vec<String>),
}

impl Many {
    fn list(self) -> Vec<String> {
        let raw = match self {
            Many::None => Vec::new(),
            Many::One(s) => vec![s],
            Many::List(l) => l,
        };
        raw.iter()
            .flat_map(|s| s.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// The outcome of a page's change or load: a notice or an error shown on it, and its status.
struct Outcome {
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
}

impl Outcome {
    fn shown(notice: Option<String>) -> Self {
        Self {
            status: StatusCode::OK,
            notice,
            error: None,
        }
    }

    fn refused(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            notice: None,
            error: Some(message.into()),
        }
    }

    fn failed(e: impl Into<crate::error::ApiError>) -> Self {
        let (status, message) = problem(e);
        Self {
            status,
            notice: None,
            error: Some(message),
        }
    }
}

/// Renders a page from what was loaded for it, or the error page when loading failed.
fn listing(
    session: &Session,
    template: &str,
    section: &str,
    loaded: postern_core::Result<Value>,
    outcome: Outcome,
) -> Response {
    match loaded {
        Ok(mut values) => {
            values["notice"] = json!(outcome.notice);
            values["error"] = json!(outcome.error);
            render(outcome.status, template, session.page(section, values))
        }
        Err(e) => {
            let (status, message) = problem(e);
            session.error(status, &message)
        }
    }
}

// ------------------------------------------------------------------------------------ roles

async fn roles_list(s: &AppState, session: &Session, outcome: Outcome) -> Response {
    let loaded = s
        .store()
        .roles()
        .await
        .map(|all| json!({ "roles": all.iter().map(roles::view).collect::<Vec<_>>() }));
    listing(session, "roles.html", "roles", loaded, outcome)
}

async fn roles_page(State(s): State<AppState>, session: Session, Query(d): Query<Done>) -> Response {
    roles_list(&s, &session, Outcome::shown(d.done)).await
}

#[derive(Deserialize)]
struct RoleForm {
    name: String,
    #[serde(default)]
    description: String,
}

async fn role_create(State(s): State<AppState>, session: Session, body: Bytes) -> Response {
    let f: RoleForm = or_answer!(session.form(&body));
    let c = session.ctx(&s);
    match s
        .write_in(
            Scope::Nothing,
            admin::create_role(&c, f.name.trim(), &f.description),
        )
        .await
    {
        Ok(r) => back("/console/security/roles", &format!("Role {} created.", r.name)),
        Err(e) => roles_list(&s, &session, Outcome::failed(e)).await,
    }
}

#[derive(Deserialize)]
struct DescriptionForm {
    #[serde(default)]
    description: String,
}

async fn role_update(
    State(s): State<AppState>,
    session: Session,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let f: DescriptionForm = or_answer!(session.form(&body));
    let c = session.ctx(&s);
    match s
        .write_in(Scope::Nothing, admin::update_role(&c, &name, &f.description))
        .await
    {
        Ok(_) => back("/console/security/roles", &format!("Role {name} updated.")),
        Err(e) => roles_list(&s, &session, Outcome::failed(e)).await,
    }
}

async fn role_delete(
    State(s): State<AppState>,
    session: Session,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    or_answer!(session.confirm(&body));
    let c = session.ctx(&s);
    match s.write_in(Scope::Nothing, admin::delete_role(&c, &name)).await {
        Ok(()) => back("/console/security/roles", &format!("Role {name} deleted.")),
        Err(e) => roles_list(&s, &session, Outcome::failed(e)).await,
    }
}

/// "Download to JSON", as Manage Security > User Roles offers.
async fn roles_export(State(s): State<AppState>, session: Session) -> Response {
    match s.store().roles().await {
        Ok(all) => {
            let names: Vec<&str> = all.iter().map(|r| r.name.as_str()).collect();
            let body = serde_json::to_string_pretty(&json!({ "roles": names })).unwrap_or_default();
            let mut resp = body.into_response();
            let h = resp.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            h.insert(
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"user-roles.json\""),
            );
            resp
        }
        Err(e) => {
            let (status, message) = problem(e);
            session.error(status, &message)
        }
    }
}

// ------------------------------------------------------------------------------------ users

async fn users_list(s: &AppState, session: &Session, outcome: Outcome) -> Response {
    let loaded = async {
        let (all, roles) = (s.store().users().await?, s.store().roles().await?);
        let live = s.live();
        let mut role_names: Vec<String> = roles.iter().map(|r| r.name.to_string()).collect();
        role_names.extend(API_ROLES.iter().map(|r| (*r).to_owned()));
        role_names.push(ROLE_ADMIN.to_owned());
        role_names.sort();
        role_names.dedup();
        Ok(json!({
            "users": all.iter().map(|u| users::view_in(&live, u)).collect::<Vec<_>>(),
            "roles": role_names,
        }))
    };
    listing(session, "users.html", "users", loaded.await, outcome)
}

async fn users_page(State(s): State<AppState>, session: Session, Query(d): Query<Done>) -> Response {
    users_list(&s, &session, Outcome::shown(d.done)).await
}

#[derive(Deserialize)]
struct UserForm {
    name: String,
    password: String,
    #[serde(default)]
    roles: Many,
}

async fn user_create(State(s): State<AppState>, session: Session, body: Bytes) -> Response {
    let f: UserForm = or_answer!(session.form(&body));
    let c = session.ctx(&s);
    let roles = f.roles.list();
    match s
        .write_in(
            Scope::User(f.name.trim()),
            admin::create_user(&c, f.name.trim(), &f.password, &roles),
        )
        .await
    {
        Ok(u) => back("/console/security/users", &format!("User {} created.", u.name)),
        Err(e) => users_list(&s, &session, Outcome::failed(e)).await,
    }
}

#[derive(Deserialize)]
struct UserUpdateForm {
    #[serde(default)]
    roles: Many,
    #[serde(default)]
    password: String,
}

/// Sets a user's roles, and its password when one is given.
async fn user_update(
    State(s): State<AppState>,
    session: Session,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let f: UserUpdateForm = or_answer!(session.form(&body));
    let roles = f.roles.list();
    if name.eq_ignore_ascii_case(&session.user) && !roles.iter().any(|r| r == ROLE_ADMIN) {
        return users_list(
            &s,
            &session,
            Outcome::refused(
                StatusCode::CONFLICT,
                format!("You cannot take {ROLE_ADMIN} from the user you are logged in as."),
            ),
        )
        .await;
    }
    let password = (!f.password.is_empty()).then_some(f.password.as_str());
    let c = session.ctx(&s);
    match s
        .write_in(
            Scope::User(&name),
            admin::update_user(&c, &name, password, Some(&roles)),
        )
        .await
    {
        Ok(u) => back("/console/security/users", &format!("User {} updated.", u.name)),
        Err(e) => users_list(&s, &session, Outcome::failed(e)).await,
    }
}

async fn user_delete(
    State(s): State<AppState>,
    session: Session,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    or_answer!(session.confirm(&body));
    if name.eq_ignore_ascii_case(&session.user) {
        return users_list(
            &s,
            &session,
            Outcome::refused(
                StatusCode::CONFLICT,
                "You cannot delete the user you are logged in as.",
            ),
        )
        .await;
    }
    let c = session.ctx(&s);
    match s
        .write_in(Scope::User(&name), admin::delete_user(&c, &name))
        .await
    {
        Ok(()) => back("/console/security/users", &format!("User {name} deleted.")),
        Err(e) => users_list(&s, &session, Outcome::failed(e)).await,
    }
}

// -------------------------------------------------------------------------------- instances

/// Roles an instance of the plan may carry.
async fn plan_roles(s: &AppState) -> postern_core::Result<(Vec<String>, Vec<String>)> {
    let flow_roles = s
        .store()
        .roles()
        .await?
        .iter()
        .map(|r| r.name.to_string())
        .collect();
    Ok((flow_roles, API_ROLES.iter().map(|r| (*r).to_owned()).collect()))
}

async fn instances_list(s: &AppState, session: &Session, outcome: Outcome) -> Response {
    let loaded = async {
        let (all, keys) = (s.store().instances().await?, s.store().keys(None).await?);
        let (flow_roles, api_roles) = plan_roles(s).await?;
        let soon = expiring::listed(s, expiry::DEFAULT_DAYS, crate::extract::now_ms()).await?;
        Ok(json!({
            "expiring": soon,
            "expiring_days": expiry::DEFAULT_DAYS,
            "instances": all.iter().map(|i| instances::view(i, &keys)).collect::<Vec<_>>(),
            "flow_roles": flow_roles,
            "api_roles": api_roles,
            "grant_types": GRANT_TYPES,
        }))
    };
    listing(session, "instances.html", "instances", loaded.await, outcome)
}

async fn instances_page(State(s): State<AppState>, session: Session, Query(d): Query<Done>) -> Response {
    instances_list(&s, &session, Outcome::shown(d.done)).await
}

#[derive(Deserialize)]
struct InstanceForm {
    name: String,
    plan: String,
    #[serde(default)]
    roles: Many,
    #[serde(default)]
    grant_types: Many,
}

async fn instance_create(State(s): State<AppState>, session: Session, body: Bytes) -> Response {
    let f: InstanceForm = or_answer!(session.form(&body));
    let roles = f.roles.list();
    let grants = f.grant_types.list();
    let params = InstanceParameters {
        roles: (!roles.is_empty()).then_some(roles),
        grant_types: (!grants.is_empty()).then_some(grants),
        redirect_uris: None,
        token_validity: None,
        rate_limit: None,
    };
    let c = session.ctx(&s);
    let zone = s.config().zone.clone();
    match s
        .write_in(
            Scope::Instance(f.name.trim()),
            admin::create_instance(&c, f.name.trim(), &f.plan, params, &zone),
        )
        .await
    {
        Ok(i) => back(
            &format!("/console/security/instances/{}", i.name),
            &format!(
                "Service instance {} created. Create a key to give a sender its credentials.",
                i.name
            ),
        ),
        Err(e) => instances_list(&s, &session, Outcome::failed(e)).await,
    }
}

async fn instance_detail(s: &AppState, session: &Session, name: &str, outcome: Outcome) -> Response {
    let loaded = async {
        let Some(i) = s.store().instance(name).await? else {
            return Err(postern_core::Error::NotFound(format!("service instance {name}")));
        };
        let keys = s.store().keys(Some(name)).await?;
        let (flow_roles, api_roles) = plan_roles(s).await?;
        let choices = match i.plan {
            postern_core::model::Plan::Api => api_roles,
            postern_core::model::Plan::IntegrationFlow => flow_roles,
        };
        Ok(json!({ "i": instances::view(&i, &keys), "role_choices": choices }))
    };
    listing(session, "instance.html", "instances", loaded.await, outcome)
}

async fn instance_page(
    State(s): State<AppState>,
    session: Session,
    Path(name): Path<String>,
    Query(d): Query<Done>,
) -> Response {
    instance_detail(&s, &session, &name, Outcome::shown(d.done)).await
}

#[derive(Deserialize)]
struct RolesForm {
    #[serde(default)]
    roles: Many,
}

async fn instance_roles(
    State(s): State<AppState>,
    session: Session,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let f: RolesForm = or_answer!(session.form(&body));
    let params = InstanceParameters {
        roles: Some(f.roles.list()),
        grant_types: None,
        redirect_uris: None,
        token_validity: None,
        rate_limit: None,
    };
    let c = session.ctx(&s);
    match s
        .write_in(Scope::Instance(&name), admin::update_instance(&c, &name, params))
        .await
    {
        Ok(_) => back(
            &format!("/console/security/instances/{name}"),
            "Roles saved; the instance's keys carry them now.",
        ),
        Err(e) => instance_detail(&s, &session, &name, Outcome::failed(e)).await,
    }
}

async fn instance_delete(
    State(s): State<AppState>,
    session: Session,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    or_answer!(session.confirm(&body));
    let c = session.ctx(&s);
    match s
        .write_in(Scope::Instance(&name), admin::delete_instance(&c, &name))
        .await
    {
        Ok(()) => back(
            "/console/security/instances",
            &format!("Service instance {name} and its keys deleted."),
        ),
        Err(e) => instance_detail(&s, &session, &name, Outcome::failed(e)).await,
    }
}

#[derive(Deserialize)]
struct KeyForm {
    name: String,
    #[serde(default)]
    key_type: Option<String>,
    #[serde(default)]
    validity: Option<String>,
}

async fn key_create(
    State(s): State<AppState>,
    session: Session,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let f: KeyForm = or_answer!(session.form(&body));
    let validity = match f.validity.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
        None => None,
        Some(v) => match v.parse::<u32>() {
            Ok(days) => Some(days),
            Err(_) => {
                return instance_detail(
                    &s,
                    &session,
                    &name,
                    Outcome::refused(StatusCode::BAD_REQUEST, "Validity: give a number of days."),
                )
                .await;
            }
        },
    };
    let key_type = f.key_type.filter(|t| !t.is_empty());
    let certificate = key_type.as_deref() == Some("certificate");
    let params = KeyParameters {
        key_type,
        validity: if certificate { validity } else { None },
        ..KeyParameters::default()
    };
    let c = session.ctx(&s);
    let hasher = s.authn().secret_hasher().clone();
    let url = s.config().public_url.clone();
    let created = s
        .write_in(
            Scope::Instance(&name),
            admin::create_key(&c, &hasher, s.ca(), &name, f.name.trim(), params, &url),
        )
        .await;
    match created {
        Ok(doc) => {
            let document = serde_json::to_value(&doc).unwrap_or(Value::Null);
            let pretty = serde_json::to_string_pretty(&document).unwrap_or_default();
            render(
                StatusCode::CREATED,
                "key_created.html",
                session.page(
                    "instances",
                    json!({
                        "instance": name,
                        "key": f.name.trim(),
                        "doc": document,
                        "document_json": pretty,
                    }),
                ),
            )
        }
        Err(e) => instance_detail(&s, &session, &name, Outcome::failed(e)).await,
    }
}

async fn key_delete(
    State(s): State<AppState>,
    session: Session,
    Path((name, key)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    or_answer!(session.confirm(&body));
    let c = session.ctx(&s);
    match s
        .write_in(Scope::Instance(&name), admin::delete_key(&c, &name, &key))
        .await
    {
        Ok(()) => back(
            &format!("/console/security/instances/{name}"),
            &format!("Key {key} deleted; its credentials stopped working."),
        ),
        Err(e) => instance_detail(&s, &session, &name, Outcome::failed(e)).await,
    }
}

// ------------------------------------------------------------------ certificate mappings

async fn mappings_list(s: &AppState, session: &Session, outcome: Outcome) -> Response {
    let loaded = s
        .store()
        .cert_mappings()
        .await
        .map(|all| json!({ "mappings": all.iter().map(cert_mappings::view).collect::<Vec<_>>() }));
    listing(session, "cert_mappings.html", "mappings", loaded, outcome)
}

async fn mappings_page(State(s): State<AppState>, session: Session, Query(d): Query<Done>) -> Response {
    mappings_list(&s, &session, Outcome::shown(d.done)).await
}

/// Largest certificate file accepted.
const MAX_CERT_FILE: usize = 64 * 1024;

/// Upload (multipart): the user, and the certificate as a PEM or DER file or pasted PEM.
async fn mapping_create(State(s): State<AppState>, session: Session, form: Multipart) -> Response {
    let upload = or_answer!(session.upload(form, MAX_CERT_FILE).await);
    let (user, pasted, file) = (
        upload.text("user").trim().to_owned(),
        upload.text("pem"),
        upload.bytes("file"),
    );
    let certificate = if !file.is_empty() {
        match std::str::from_utf8(file) {
            Ok(text) if text.contains("-----BEGIN") => text.to_owned(),
            _ => base64::engine::general_purpose::STANDARD.encode(file),
        }
    } else {
        pasted
    };
    if certificate.trim().is_empty() {
        let outcome = Outcome {
            status: StatusCode::BAD_REQUEST,
            notice: None,
            error: Some("Choose a certificate file (PEM or DER) or paste a PEM certificate.".into()),
        };
        return mappings_list(&s, &session, outcome).await;
    }
    let c = session.ctx(&s);
    match s.write(admin::create_cert_mapping(&c, &user, &certificate)).await {
        Ok(m) => back(
            "/console/security/certificate-mappings",
            &format!("Certificate {} now authenticates as {}.", m.subject, m.user),
        ),
        Err(e) => mappings_list(&s, &session, Outcome::failed(e)).await,
    }
}

async fn mapping_delete(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    or_answer!(session.confirm(&body));
    let c = session.ctx(&s);
    match s.write(admin::delete_cert_mapping(&c, &id)).await {
        Ok(()) => back("/console/security/certificate-mappings", "Mapping deleted."),
        Err(e) => mappings_list(&s, &session, Outcome::failed(e)).await,
    }
}

// ------------------------------------------------------------------------- connectivity

#[derive(Deserialize, Default)]
struct ConnectivityQuery {
    #[serde(default)]
    host: String,
    #[serde(default)]
    port: String,
    #[serde(default)]
    validate: Option<String>,
    #[serde(default)]
    run: Option<String>,
}

impl ConnectivityQuery {
    fn body(&self) -> Result<connectivity::TestBody, String> {
        let port = match self.port.trim() {
            "" => None,
            p => Some(p.parse::<u16>().map_err(|_| "port: give 1 to 65535".to_owned())?),
        };
        Ok(connectivity::TestBody {
            host: self.host.clone(),
            port,
            validate_server_certificate: Some(self.validate.is_some()),
            timeout_seconds: None,
        })
    }
}

/// Connectivity Tests > TLS: the form, and with `run` the handshake's result and chain.
async fn connectivity_page(
    State(s): State<AppState>,
    session: Session,
    Query(q): Query<ConnectivityQuery>,
) -> Response {
    let mut values = json!({
        "host": q.host,
        "port": if q.port.is_empty() { "443".to_owned() } else { q.port.clone() },
        "validate": q.validate.is_some() || q.run.is_none(),
    });
    let mut status = StatusCode::OK;
    if q.run.is_some() {
        let checked = q
            .body()
            .and_then(|b| connectivity::check(&b).map_err(|e| e.message));
        match checked {
            Ok((host, port, validate, timeout)) => {
                match connectivity::probe(&s, &host, port, validate, timeout).await {
                    Ok(p) => {
                        values["result"] = json!({
                            "protocol": p.protocol,
                            "cipher": p.cipher,
                            "chain": p.chain.iter().enumerate().map(|(i, c)| connectivity::cert_view(i, c)).collect::<Vec<_>>(),
                        });
                        let mut dl = form_urlencoded::Serializer::new(String::new());
                        dl.append_pair("host", &host)
                            .append_pair("port", &port.to_string());
                        if validate {
                            dl.append_pair("validate", "on");
                        }
                        values["download"] =
                            Value::String(format!("/console/security/connectivity/download?{}", dl.finish()));
                    }
                    Err(e) => {
                        values["error"] = Value::String(e);
                        status = StatusCode::BAD_GATEWAY;
                    }
                }
            }
            Err(e) => {
                values["error"] = Value::String(e);
                status = StatusCode::BAD_REQUEST;
            }
        }
    }
    render(status, "connectivity.html", session.page("connectivity", values))
}

/// The chain as a `.zip` of `.cer` files, as the source document's "Download" button gives it.
async fn connectivity_download(
    State(s): State<AppState>,
    session: Session,
    Query(q): Query<ConnectivityQuery>,
) -> Response {
    let checked = q
        .body()
        .and_then(|b| connectivity::check(&b).map_err(|e| e.message));
    let (host, port, validate, timeout) = match checked {
        Ok(v) => v,
        Err(e) => return session.error(StatusCode::BAD_REQUEST, &e),
    };
    let probe = match connectivity::probe(&s, &host, port, validate, timeout).await {
        Ok(p) => p,
        Err(e) => return session.error(StatusCode::BAD_GATEWAY, &e),
    };
    match connectivity::zip_chain(&probe.chain) {
        Ok(zip) => {
            let mut resp = zip.into_response();
            let h = resp.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/zip"));
            if let Ok(v) = HeaderValue::from_str(&format!(
                "attachment; filename=\"{}.zip\"",
                connectivity::safe_name(&host)
            )) {
                h.insert(header::CONTENT_DISPOSITION, v);
            }
            resp
        }
        Err(e) => session.error(StatusCode::INTERNAL_SERVER_ERROR, &e),
    }
}
