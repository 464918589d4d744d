//! Admin services: the business rules for user roles, service instances, service keys and
//! technical users. The native admin API and (through it) the CLI call these; each change is
//! written to the store and to the audit log, and the caller then publishes a new snapshot.

use postern_core::ids::{InstanceName, KeyName, RoleName, UserName};
use postern_core::model::CertMapping;
use postern_core::model::{
    API_ROLES, BoundCertificate, KeyType, Plan, ROLE_ADMIN, ROLE_MONITORING, ROLE_SEND, Role,
    ServiceInstance, ServiceKey, TechnicalUser, TrustedCa,
};
use postern_core::time::rfc3339;
use postern_core::{Error, Result};
use postern_store::{Ctx, Store};
use serde::{Deserialize, Serialize};

use crate::password::{MAX_PASSWORD_LEN, MIN_PASSWORD_LEN, hash_password};
use crate::pki::{ClientKey, LocalCa};
use crate::secret::{SecretHasher, new_client_id, new_client_secret};
use time::OffsetDateTime;

/// Grant types an instance may list (SAP's form offers these).
pub const GRANT_TYPES: [&str; 6] = [
    "client_credentials",
    "authorization_code",
    "password",
    "refresh_token",
    "urn:ietf:params:oauth:grant-type:saml2-bearer",
    "urn:ietf:params:oauth:grant-type:jwt-bearer",
];

/// Longest description of a role.
pub const MAX_DESCRIPTION: usize = 1000;

// ---------------------------------------------------------------------------------- user roles

/// Creates a custom user role.
pub async fn create_role(ctx: &Ctx<'_>, name: &str, description: &str) -> Result<Role> {
    let name = RoleName::parse(name)?;
    check_description(description)?;
    if API_ROLES.contains(&name.as_str()) {
        return Err(Error::Conflict(format!(
            "{name} is an API role name and cannot be a user role"
        )));
    }
    let role = Role {
        name,
        description: description.to_owned(),
        builtin: false,
        created_at: ctx.now,
        modified_at: ctx.now,
    };
    ctx.store.insert_role(&role).await.map_err(|e| match e {
        Error::Conflict(_) => Error::Conflict(format!("role {} already exists", role.name)),
        other => other,
    })?;
    ctx.audit(
        "role.create",
        role.name.as_str(),
        serde_json::json!({ "description": description }),
    )
    .await?;
    Ok(role)
}

/// Changes a custom role's description (its only editable field).
pub async fn update_role(ctx: &Ctx<'_>, name: &str, description: &str) -> Result<Role> {
    check_description(description)?;
    let role = existing_role(ctx.store, name).await?;
    if role.builtin {
        return Err(Error::Forbidden(format!(
            "{name} is a predefined role and cannot be changed"
        )));
    }
    ctx.store
        .update_role_description(name, description, ctx.now)
        .await?;
    ctx.audit(
        "role.update",
        name,
        serde_json::json!({ "description": description }),
    )
    .await?;
    Ok(Role {
        description: description.to_owned(),
        modified_at: ctx.now,
        ..role
    })
}

/// Deletes a custom role that nothing uses; otherwise `Conflict` naming what uses it.
pub async fn delete_role(ctx: &Ctx<'_>, name: &str) -> Result<()> {
    let role = existing_role(ctx.store, name).await?;
    if role.builtin {
        return Err(Error::Forbidden(format!(
            "{name} is a predefined role and cannot be deleted"
        )));
    }
    match ctx.store.delete_role(name).await? {
        None => Err(Error::NotFound(format!("role {name}"))),
        Some(usage) if !usage.is_empty() => {
            let mut users = Vec::new();
            if !usage.instances.is_empty() {
                users.push(format!("service instances {}", usage.instances.join(", ")));
            }
            if !usage.users.is_empty() {
                users.push(format!("users {}", usage.users.join(", ")));
            }
            if !usage.flows.is_empty() {
                users.push(format!("deployed flows {}", usage.flows.join(", ")));
            }
            Err(Error::Conflict(format!(
                "role {name} is in use by {}",
                users.join("; ")
            )))
        }
        Some(_) => ctx.audit("role.delete", name, serde_json::json!({})).await,
    }
}

async fn existing_role(store: &dyn Store, name: &str) -> Result<Role> {
    store
        .role(name)
        .await?
        .ok_or_else(|| Error::NotFound(format!("role {name}")))
}

fn check_description(d: &str) -> Result<()> {
    if d.chars().count() > MAX_DESCRIPTION {
        return Err(Error::invalid(
            "description",
            format!("at most {MAX_DESCRIPTION} characters"),
        ));
    }
    Ok(())
}

// --------------------------------------------------------------------------- service instances

/// Instance parameters, as `cf create-service ... -c` takes them.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceParameters {
    /// Roles; default `["ESBMessaging.send"]` (plan integration-flow) or `["MonitoringDataRead"]` (api).
    pub roles: Option<Vec<String>>,
    /// Grant types; default `["client_credentials"]`.
    #[serde(rename = "grant-types")]
    pub grant_types: Option<Vec<String>>,
    /// Redirect URIs (authorization code only).
    #[serde(rename = "redirect-uris")]
    pub redirect_uris: Option<Vec<String>>,
    /// Access-token validity in seconds, 3600..=86400.
    #[serde(rename = "access-token-validity")]
    pub token_validity: Option<u32>,
    /// Per-key rate limit `{"requests-per-second": N, "burst": M}`; `null` on update removes it.
    #[serde(rename = "rate-limit", default, deserialize_with = "present")]
    pub rate_limit: Option<Option<serde_json::Value>>,
}

/// Tells a field given as `null` (`Some(None)`) from one left out (`None`).
fn present<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Option<serde_json::Value>>, D::Error> {
    Ok(Some(Option::deserialize(d)?))
}

/// Reads and checks a `rate-limit` parameter.
fn rate_limit(v: &serde_json::Value) -> Result<postern_core::model::RateLimit> {
    const F: &str = "parameters.rate-limit";
    let obj = v
        .as_object()
        .ok_or_else(|| Error::invalid(F, "must be {\"requests-per-second\": N, \"burst\": M} or null"))?;
    if let Some(k) = obj.keys().find(|k| *k != "requests-per-second" && *k != "burst") {
        return Err(Error::invalid(F, format!("unknown field {k:?}")));
    }
    let number = |k: &str| obj.get(k).map(|n| n.as_u64().and_then(|n| u32::try_from(n).ok()));
    let per_second = match number("requests-per-second") {
        Some(Some(n)) if (1..=1_000_000).contains(&n) => n,
        _ => {
            return Err(Error::invalid(
                F,
                "requests-per-second must be a whole number from 1 to 1000000",
            ));
        }
    };
    let burst = match number("burst") {
        None => per_second,
        Some(Some(b)) if b >= per_second && u64::from(b) <= 10 * u64::from(per_second) => b,
        Some(_) => {
            return Err(Error::invalid(
                F,
                "burst must be a whole number from requests-per-second to 10 times it",
            ));
        }
    };
    Ok(postern_core::model::RateLimit { per_second, burst })
}

/// Creates a service instance with a new client id.
pub async fn create_instance(
    ctx: &Ctx<'_>,
    name: &str,
    plan: &str,
    params: InstanceParameters,
    zone: &str,
) -> Result<ServiceInstance> {
    let name = InstanceName::parse(name)?;
    let plan = match plan {
        "integration-flow" => Plan::IntegrationFlow,
        "api" => Plan::Api,
        other => {
            return Err(Error::invalid(
                "plan",
                format!("unknown plan {other:?}; use integration-flow or api"),
            ));
        }
    };
    let roles = instance_roles(ctx.store, plan, params.roles).await?;
    let grant_types = grant_types(params.grant_types)?;
    let redirect_uris = redirect_uris(params.redirect_uris.unwrap_or_default())?;
    let token_validity = token_validity(params.token_validity.unwrap_or(plan.default_token_validity()))?;
    let rate_limit = match &params.rate_limit {
        Some(Some(v)) => Some(rate_limit(v)?),
        _ => None,
    };
    let instance = ServiceInstance {
        name,
        plan,
        client_id: new_client_id(zone),
        roles,
        grant_types,
        redirect_uris,
        token_validity,
        rate_limit,
        created_at: ctx.now,
        created_by: ctx.actor.to_owned(),
    };
    ctx.store.insert_instance(&instance).await.map_err(|e| match e {
        Error::Conflict(_) => Error::Conflict(format!("service instance {} already exists", instance.name)),
        other => other,
    })?;
    ctx.audit(
        "service-instance.create",
        instance.name.as_str(),
        serde_json::json!({ "plan": plan.as_str(), "roles": instance.roles, "grant-types": instance.grant_types }),
    )
    .await?;
    Ok(instance)
}

async fn instance_roles(store: &dyn Store, plan: Plan, roles: Option<Vec<String>>) -> Result<Vec<RoleName>> {
    let roles = roles.unwrap_or_else(|| {
        vec![match plan {
            Plan::IntegrationFlow => ROLE_SEND.to_owned(),
            Plan::Api => ROLE_MONITORING.to_owned(),
        }]
    });
    if roles.is_empty() || roles.len() > 100 {
        return Err(Error::invalid("parameters.roles", "give between 1 and 100 roles"));
    }
    let mut out: Vec<RoleName> = Vec::with_capacity(roles.len());
    for r in &roles {
        let role = RoleName::parse(r).map_err(|e| Error::invalid("parameters.roles", e.to_string()))?;
        let known = match plan {
            Plan::Api => API_ROLES.contains(&role.as_str()),
            Plan::IntegrationFlow => store.role(role.as_str()).await?.is_some(),
        };
        if !known {
            let hint = match plan {
                Plan::Api => format!("plan api takes the API roles {}", API_ROLES.join(", ")),
                Plan::IntegrationFlow => "create it first under user roles".to_owned(),
            };
            return Err(Error::invalid(
                "parameters.roles",
                format!("role {role} does not exist; {hint}"),
            ));
        }
        if !out.contains(&role) {
            out.push(role);
        }
    }
    Ok(out)
}

fn grant_types(given: Option<Vec<String>>) -> Result<Vec<String>> {
    let given = given.unwrap_or_else(|| vec!["client_credentials".to_owned()]);
    if given.is_empty() {
        return Err(Error::invalid(
            "parameters.grant-types",
            "give at least one grant type",
        ));
    }
    for g in &given {
        if g == "client_x509" {
            return Err(Error::invalid(
                "parameters.grant-types",
                "client_x509 is deprecated; use client_credentials",
            ));
        }
        if !GRANT_TYPES.contains(&g.as_str()) {
            return Err(Error::invalid(
                "parameters.grant-types",
                format!("unknown grant type {g:?}; use one of {}", GRANT_TYPES.join(", ")),
            ));
        }
    }
    let mut out = given;
    out.dedup();
    Ok(out)
}

/// Changes an instance's parameters, as `cf update-service NAME -c` does: the parameters given
/// replace the instance's (roles, grant types, redirect URIs, token validity); those left out
/// stay. Its keys keep working with the new roles at once; tokens already issued lose a removed
/// role at once (their scope is narrowed to what the instance holds) and never gain one.
pub async fn update_instance(
    ctx: &Ctx<'_>,
    name: &str,
    params: InstanceParameters,
) -> Result<ServiceInstance> {
    let mut instance = ctx
        .store
        .instance(name)
        .await?
        .ok_or_else(|| Error::NotFound(format!("service instance {name}")))?;
    let before = instance.roles.clone();
    if params.roles.is_some() {
        instance.roles = instance_roles(ctx.store, instance.plan, params.roles).await?;
    }
    if params.grant_types.is_some() {
        instance.grant_types = grant_types(params.grant_types)?;
    }
    if let Some(uris) = params.redirect_uris {
        instance.redirect_uris = redirect_uris(uris)?;
    }
    if let Some(validity) = params.token_validity {
        instance.token_validity = token_validity(validity)?;
    }
    match &params.rate_limit {
        Some(Some(v)) => instance.rate_limit = Some(rate_limit(v)?),
        Some(None) => instance.rate_limit = None,
        None => {}
    }
    if !ctx.store.update_instance(&instance).await? {
        return Err(Error::NotFound(format!("service instance {name}")));
    }
    ctx.audit(
        "service-instance.update",
        name,
        serde_json::json!({
            "rolesBefore": before,
            "roles": instance.roles,
            "grant-types": instance.grant_types,
            "access-token-validity": instance.token_validity,
            "rate-limit": instance.rate_limit,
        }),
    )
    .await?;
    Ok(instance)
}

fn redirect_uris(uris: Vec<String>) -> Result<Vec<String>> {
    if uris.len() > 20 || uris.iter().any(|u| u.len() > 2048) {
        return Err(Error::invalid(
            "parameters.redirect-uris",
            "at most 20 URIs of 2048 characters",
        ));
    }
    Ok(uris)
}

fn token_validity(seconds: u32) -> Result<u32> {
    if !(3600..=86400).contains(&seconds) {
        return Err(Error::invalid(
            "parameters.access-token-validity",
            "must be between 3600 and 86400 seconds",
        ));
    }
    Ok(seconds)
}

/// Deletes an instance and all its keys.
pub async fn delete_instance(ctx: &Ctx<'_>, name: &str) -> Result<()> {
    if !ctx.store.delete_instance(name).await? {
        return Err(Error::NotFound(format!("service instance {name}")));
    }
    ctx.audit("service-instance.delete", name, serde_json::json!({}))
        .await
}

// -------------------------------------------------------------------------------- service keys

/// Key parameters, as `cf create-service-key ... -c` takes them.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyParameters {
    /// `clientsecret` (default), `certificate`, `certificate_external`.
    #[serde(rename = "key-type")]
    pub key_type: Option<String>,
    /// Certificate validity in days (certificate keys).
    pub validity: Option<u32>,
    /// Key length (certificate keys).
    #[serde(rename = "key-length")]
    pub key_length: Option<u32>,
    /// External certificate, PEM.
    #[serde(rename = "X.509")]
    pub x509: Option<String>,
    /// When the key stops authenticating, RFC 3339 (rotation with overlap); none: never.
    #[serde(rename = "expires-at")]
    pub expires_at: Option<String>,
}

/// The service key document a sender stores; shown once.
#[derive(Clone, Serialize)]
pub struct KeyDocument {
    /// Everything sits under `oauth`, as in SAP's service keys.
    pub oauth: OAuthCredentials,
}

/// The `oauth` part of a service key document.
#[derive(Clone, Serialize)]
pub struct OAuthCredentials {
    /// Client id.
    pub clientid: String,
    /// Client secret (shown once, never stored in clear); ClientId/Secret keys only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clientsecret: Option<String>,
    /// Certificate chain (generated keys: leaf then CA) or the bound certificate (external keys).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// Private key, PEM (generated certificate keys only; shown once, never stored).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Facts about the certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificatedetails: Option<CertificateDetails>,
    /// Base URL of the runtime (prefix of `/http/...`) or of the admin API (`api` plan).
    pub url: String,
    /// Token endpoint.
    pub tokenurl: String,
    /// Creation time, RFC 3339.
    pub createdate: String,
}

/// `certificatedetails` of a certificate key, as in SAP's documents.
#[derive(Clone, Serialize)]
pub struct CertificateDetails {
    /// Issuer DN.
    pub issuerdn: String,
    /// Subject DN.
    pub subjectdn: String,
    /// Serial number, `0x...`.
    pub serialnumber: String,
    /// Expiry, RFC 3339.
    pub validuntil: String,
}

/// Longest certificate validity, in days.
pub const MAX_CERT_DAYS: u32 = 365;

/// What a new key carries besides its name.
struct KeyMaterial {
    secret: Option<String>,
    secret_hash: Vec<u8>,
    certificate: Option<BoundCertificate>,
    chain: Option<String>,
    private_key: Option<String>,
    details: Option<CertificateDetails>,
}

/// Creates a key and returns its document: with the secret (ClientId/Secret), with a certificate
/// and private key Postern's CA issued (`certificate`), or echoing a bound certificate
/// (`certificate_external`).
#[allow(clippy::too_many_arguments)]
pub async fn create_key(
    ctx: &Ctx<'_>,
    hasher: &SecretHasher,
    ca: &LocalCa,
    instance: &str,
    name: &str,
    params: KeyParameters,
    base_url: &str,
) -> Result<KeyDocument> {
    let key_name = KeyName::parse(name)?;
    let inst = ctx
        .store
        .instance(instance)
        .await?
        .ok_or_else(|| Error::NotFound(format!("service instance {instance}")))?;
    let key_type = match params.key_type.as_deref() {
        None | Some("clientsecret") | Some("ClientId/Secret") => KeyType::ClientSecret,
        Some("certificate") => KeyType::Certificate,
        Some("certificate_external") => KeyType::CertificateExternal,
        Some(other) => {
            return Err(Error::invalid(
                "parameters.key-type",
                format!("unknown key type {other:?}; use clientsecret, certificate or certificate_external"),
            ));
        }
    };
    let expires_at = params
        .expires_at
        .as_deref()
        .map(|t| key_expiry(t, ctx.now, true))
        .transpose()?;
    let m = match key_type {
        KeyType::ClientSecret => secret_material(hasher, &params)?,
        _ => certificate_material(ctx, ca, &inst, &key_name, key_type, &params).await?,
    };
    let fingerprint = m.certificate.as_ref().map(|c| crate::cert::hex(&c.sha256));
    let key = ServiceKey {
        instance: inst.name.clone(),
        name: key_name,
        key_type,
        secret_hash: m.secret_hash,
        certificate: m.certificate,
        expires_at,
        created_at: ctx.now,
        created_by: ctx.actor.to_owned(),
    };
    let taken = ctx
        .store
        .keys(Some(instance))
        .await?
        .iter()
        .any(|k| k.name == key.name);
    ctx.store.insert_key(&key).await.map_err(|e| match e {
        Error::Conflict(_) if taken => {
            Error::Conflict(format!("service key {name} already exists on {instance}"))
        }
        Error::Conflict(_) => Error::Conflict(
            "this certificate is already bound to a service key; a certificate can serve one key only".into(),
        ),
        other => other,
    })?;
    ctx.audit(
        "service-key.create",
        &format!("{instance}/{name}"),
        serde_json::json!({
            "key-type": key_type.as_str(),
            "clientid": inst.client_id,
            "sha256": fingerprint,
            "expires-at": expires_at.map(rfc3339),
        }),
    )
    .await?;
    let base = base_url.trim_end_matches('/');
    Ok(KeyDocument {
        oauth: OAuthCredentials {
            clientid: inst.client_id,
            clientsecret: m.secret,
            certificate: m.chain,
            key: m.private_key,
            certificatedetails: m.details,
            url: base.to_owned(),
            tokenurl: format!("{base}/oauth/token"),
            createdate: rfc3339(ctx.now),
        },
    })
}

fn secret_material(hasher: &SecretHasher, params: &KeyParameters) -> Result<KeyMaterial> {
    if params.validity.is_some() || params.key_length.is_some() || params.x509.is_some() {
        return Err(Error::invalid(
            "parameters",
            "validity, key-length and X.509 apply to certificate keys only",
        ));
    }
    let secret = new_client_secret();
    Ok(KeyMaterial {
        secret_hash: hasher.hash(&[secret.as_bytes()]).to_vec(),
        secret: Some(secret),
        certificate: None,
        chain: None,
        private_key: None,
        details: None,
    })
}

async fn certificate_material(
    ctx: &Ctx<'_>,
    ca: &LocalCa,
    inst: &ServiceInstance,
    key_name: &KeyName,
    key_type: KeyType,
    params: &KeyParameters,
) -> Result<KeyMaterial> {
    if !inst.grant_types.iter().any(|g| g == "client_credentials") {
        return Err(Error::invalid(
            "parameters.key-type",
            "certificate keys need the client_credentials grant on the instance",
        ));
    }
    let days = params.validity.unwrap_or(MAX_CERT_DAYS);
    if !(1..=MAX_CERT_DAYS).contains(&days) {
        return Err(Error::invalid(
            "parameters.validity",
            format!("give 1 to {MAX_CERT_DAYS} days"),
        ));
    }
    let mut private_key = None;
    let (pem, chain, info) = if key_type == KeyType::Certificate {
        if params.x509.is_some() {
            return Err(Error::invalid(
                "parameters.X.509",
                "applies to certificate_external keys only",
            ));
        }
        let alg = ClientKey::from_length(params.key_length)?;
        let cn = format!("{}/{}", inst.name, key_name);
        let now = OffsetDateTime::from_unix_timestamp(ctx.now / 1000)
            .map_err(|e| Error::Internal(e.to_string()))?;
        // RSA key generation takes up to a second: keep it off the async workers.
        let issue = || ca.issue_client(&cn, alg, days, now);
        let issued = match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(issue)?,
            _ => issue()?,
        };
        private_key = Some(issued.key_pem);
        let info = crate::cert::one_certificate(&issued.cert_pem, "certificate")?;
        let chain = format!("{}{}", issued.cert_pem, ca.cert_pem());
        (issued.cert_pem, chain, info)
    } else {
        if params.key_length.is_some() {
            return Err(Error::invalid(
                "parameters.key-length",
                "applies to generated certificate keys only",
            ));
        }
        let pem = params
            .x509
            .as_deref()
            .ok_or_else(|| Error::invalid("parameters.X.509", "give the client certificate (PEM) to bind"))?;
        let info = crate::cert::one_certificate(pem, "parameters.X.509")?;
        check_external(&info, ctx.now)?;
        let leaf = crate::cert::to_pem(&info.der);
        (leaf.clone(), leaf, info)
    };
    Ok(KeyMaterial {
        secret: None,
        secret_hash: Vec::new(),
        details: Some(CertificateDetails {
            issuerdn: info.issuer.clone(),
            subjectdn: info.subject.clone(),
            serialnumber: info.serial.clone(),
            validuntil: rfc3339(info.not_after),
        }),
        certificate: Some(BoundCertificate {
            pem,
            sha256: info.sha256,
            not_after: info.not_after,
        }),
        chain: Some(chain),
        private_key,
    })
}

/// An external certificate must be a valid, current end-entity certificate.
fn check_external(info: &crate::cert::CertInfo, now: i64) -> Result<()> {
    if info.is_ca {
        return Err(Error::invalid(
            "parameters.X.509",
            "this is a CA certificate; bind the client's own certificate",
        ));
    }
    if info.not_after <= now {
        return Err(Error::invalid("parameters.X.509", "the certificate has expired"));
    }
    if info.not_before > now {
        return Err(Error::invalid(
            "parameters.X.509",
            "the certificate is not valid yet",
        ));
    }
    Ok(())
}

/// Reads a key's `expires-at`: an RFC 3339 timestamp; at creation it must lie ahead of `now`
/// (a key born expired is a mistake), a change may give a past time to stop the key at once.
fn key_expiry(text: &str, now: i64, future: bool) -> Result<i64> {
    let at = postern_core::time::parse_rfc3339(text).ok_or_else(|| {
        Error::invalid(
            "expires-at",
            "give an RFC 3339 timestamp with a zone, e.g. 2026-12-31T23:59:59Z",
        )
    })?;
    if future && at <= now {
        return Err(Error::invalid("expires-at", "must lie in the future"));
    }
    Ok(at)
}

/// Sets when a key stops authenticating (`Some` RFC 3339 time) or makes it last (`None`); the
/// change takes effect on every node at that time, without a restart. Audited with the expiry
/// before and after.
pub async fn update_key_expiry(
    ctx: &Ctx<'_>,
    instance: &str,
    name: &str,
    expires_at: Option<&str>,
) -> Result<ServiceKey> {
    let expires_at = expires_at.map(|t| key_expiry(t, ctx.now, false)).transpose()?;
    let mut key = ctx
        .store
        .keys(Some(instance))
        .await?
        .into_iter()
        .find(|k| k.name.as_str() == name)
        .ok_or_else(|| Error::NotFound(format!("service key {name} of {instance}")))?;
    if !ctx.store.set_key_expiry(instance, name, expires_at).await? {
        return Err(Error::NotFound(format!("service key {name} of {instance}")));
    }
    ctx.audit(
        "service-key.update",
        &format!("{instance}/{name}"),
        serde_json::json!({
            "expires-at-before": key.expires_at.map(rfc3339),
            "expires-at": expires_at.map(rfc3339),
        }),
    )
    .await?;
    key.expires_at = expires_at;
    Ok(key)
}

/// Deletes a key; its secret or certificate stops working at once.
pub async fn delete_key(ctx: &Ctx<'_>, instance: &str, name: &str) -> Result<()> {
    if !ctx.store.delete_key(instance, name).await? {
        return Err(Error::NotFound(format!("service key {name} of {instance}")));
    }
    ctx.audit(
        "service-key.delete",
        &format!("{instance}/{name}"),
        serde_json::json!({}),
    )
    .await
}

// ------------------------------------------------------------------------------ technical users

/// Creates a technical user with a password and roles.
pub async fn create_user(
    ctx: &Ctx<'_>,
    name: &str,
    password: &str,
    roles: &[String],
) -> Result<TechnicalUser> {
    let name = UserName::parse(name)?;
    let roles = user_roles(ctx.store, roles).await?;
    let user = TechnicalUser {
        password_phc: hashed(password).await?,
        name,
        roles,
        created_at: ctx.now,
    };
    ctx.store.insert_user(&user).await.map_err(|e| match e {
        Error::Conflict(_) => Error::Conflict(format!("user {} already exists", user.name)),
        other => other,
    })?;
    ctx.audit(
        "user.create",
        user.name.as_str(),
        serde_json::json!({ "roles": user.roles }),
    )
    .await?;
    Ok(user)
}

/// Changes a user's password and/or roles.
pub async fn update_user(
    ctx: &Ctx<'_>,
    name: &str,
    password: Option<&str>,
    roles: Option<&[String]>,
) -> Result<TechnicalUser> {
    let name = UserName::parse(name)?;
    let mut user = ctx
        .store
        .user(name.as_str())
        .await?
        .ok_or_else(|| Error::NotFound(format!("user {name}")))?;
    if let Some(p) = password {
        user.password_phc = hashed(p).await?;
    }
    if let Some(r) = roles {
        let new_roles = user_roles(ctx.store, r).await?;
        if user.roles.iter().any(|r| r.as_str() == ROLE_ADMIN)
            && !new_roles.iter().any(|r| r.as_str() == ROLE_ADMIN)
        {
            ensure_other_admin(ctx.store, name.as_str()).await?;
        }
        user.roles = new_roles;
    }
    ctx.store.update_user(&user).await?;
    ctx.audit(
        "user.update",
        name.as_str(),
        serde_json::json!({ "roles": user.roles, "password_changed": password.is_some() }),
    )
    .await?;
    Ok(user)
}

/// Deletes a user; the last holder of `Postern.Admin` cannot be deleted.
pub async fn delete_user(ctx: &Ctx<'_>, name: &str) -> Result<()> {
    let name = name.to_ascii_lowercase();
    let user = ctx
        .store
        .user(&name)
        .await?
        .ok_or_else(|| Error::NotFound(format!("user {name}")))?;
    if user.roles.iter().any(|r| r.as_str() == ROLE_ADMIN) {
        ensure_other_admin(ctx.store, &name).await?;
    }
    ctx.store.delete_user(&name).await?;
    ctx.audit("user.delete", &name, serde_json::json!({})).await
}

async fn ensure_other_admin(store: &dyn Store, except: &str) -> Result<()> {
    let others = store
        .users()
        .await?
        .into_iter()
        .any(|u| u.name.as_str() != except && u.roles.iter().any(|r| r.as_str() == ROLE_ADMIN));
    if others {
        Ok(())
    } else {
        Err(Error::Conflict(format!(
            "{except} is the last user with {ROLE_ADMIN}; give the role to another user first"
        )))
    }
}

async fn user_roles(store: &dyn Store, roles: &[String]) -> Result<Vec<RoleName>> {
    if roles.len() > 100 {
        return Err(Error::invalid("roles", "at most 100 roles"));
    }
    let mut out = Vec::with_capacity(roles.len());
    for r in roles {
        let role = RoleName::parse(r).map_err(|e| Error::invalid("roles", e.to_string()))?;
        if !API_ROLES.contains(&role.as_str()) && store.role(role.as_str()).await?.is_none() {
            return Err(Error::invalid("roles", format!("role {role} does not exist")));
        }
        if !out.contains(&role) {
            out.push(role);
        }
    }
    Ok(out)
}

async fn hashed(password: &str) -> Result<String> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_LEN || password.len() > MAX_PASSWORD_LEN {
        return Err(Error::invalid(
            "password",
            format!("must have {MIN_PASSWORD_LEN} to {MAX_PASSWORD_LEN} characters"),
        ));
    }
    let p = password.to_owned();
    tokio::task::spawn_blocking(move || hash_password(&p))
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
        .map_err(Error::Internal)
}

// ---------------------------------------------------------------------------------- trust store

/// Adds a CA whose client certificates the HTTPS listener accepts (PEM or base64 DER).
pub async fn add_trusted_ca(ctx: &Ctx<'_>, certificate: &str) -> Result<TrustedCa> {
    let info = crate::cert::one_certificate(certificate, "certificate")?;
    if !info.is_ca {
        return Err(Error::invalid(
            "certificate",
            "not a CA certificate; bind client certificates as certificate_external keys instead",
        ));
    }
    if info.not_after <= ctx.now {
        return Err(Error::invalid("certificate", "the CA certificate has expired"));
    }
    let ca = TrustedCa {
        sha256: info.sha256,
        pem: crate::cert::to_pem(&info.der),
        subject: info.subject.clone(),
        not_after: info.not_after,
        created_at: ctx.now,
        created_by: ctx.actor.to_owned(),
    };
    ctx.store.insert_trusted_ca(&ca).await.map_err(|e| match e {
        Error::Conflict(_) => Error::Conflict("this CA is already trusted".into()),
        other => other,
    })?;
    ctx.audit(
        "trusted-ca.add",
        &crate::cert::hex(&ca.sha256),
        serde_json::json!({ "subject": ca.subject }),
    )
    .await?;
    Ok(ca)
}

/// Removes a trusted CA by its SHA-256 fingerprint (hex).
pub async fn remove_trusted_ca(ctx: &Ctx<'_>, sha256_hex: &str) -> Result<()> {
    let bytes: Vec<u8> = (0..sha256_hex.len())
        .step_by(2)
        .filter_map(|i| {
            sha256_hex
                .get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect();
    let sha: [u8; 32] = bytes
        .try_into()
        .map_err(|_| Error::invalid("sha256", "give the 64 hex digits of the CA's SHA-256 fingerprint"))?;
    if sha256_hex.len() != 64 || !ctx.store.delete_trusted_ca(&sha).await? {
        return Err(Error::NotFound(format!("trusted CA {sha256_hex}")));
    }
    ctx.audit("trusted-ca.remove", sha256_hex, serde_json::json!({}))
        .await
}

// ---------------------------------------------------------------- certificate-to-user mappings

/// Maps a client certificate (PEM or base64 DER) to a user; that user's roles authorize it.
pub async fn create_cert_mapping(ctx: &Ctx<'_>, user: &str, certificate: &str) -> Result<CertMapping> {
    let user = UserName::parse(user).map_err(|e| Error::invalid("user", e.to_string()))?;
    let info = crate::cert::one_certificate(certificate, "certificate")?;
    if info.is_ca {
        return Err(Error::invalid(
            "certificate",
            "this is a CA certificate; map the client's own certificate",
        ));
    }
    if info.not_after <= ctx.now {
        return Err(Error::invalid("certificate", "the certificate has expired"));
    }
    let hex = crate::cert::hex(&info.sha256);
    let mapping = CertMapping {
        id: hex[..32].to_owned(),
        sha256: info.sha256,
        user: user.to_string(),
        pem: crate::cert::to_pem(&info.der),
        subject: info.subject,
        issuer: info.issuer,
        serial: info.serial,
        not_after: info.not_after,
        created_at: ctx.now,
        created_by: ctx.actor.to_owned(),
    };
    let bound_to_key = ctx
        .store
        .keys(None)
        .await?
        .iter()
        .any(|k| k.certificate.as_ref().is_some_and(|c| c.sha256 == mapping.sha256));
    if bound_to_key {
        return Err(Error::Conflict(
            "this certificate is bound to a certificate service key".into(),
        ));
    }
    ctx.store
        .insert_cert_mapping(&mapping)
        .await
        .map_err(|e| match e {
            Error::Conflict(_) => {
                Error::Conflict("this certificate is mapped already; delete that mapping first".into())
            }
            other => other,
        })?;
    ctx.audit(
        "cert-mapping.create",
        &mapping.id,
        serde_json::json!({ "user": mapping.user, "subject": mapping.subject, "issuer": mapping.issuer }),
    )
    .await?;
    Ok(mapping)
}

/// Deletes a mapping; its certificate stops authenticating at once.
pub async fn delete_cert_mapping(ctx: &Ctx<'_>, id: &str) -> Result<()> {
    if !ctx.store.delete_cert_mapping(id).await? {
        return Err(Error::NotFound(format!("certificate-to-user mapping {id}")));
    }
    ctx.audit("cert-mapping.delete", id, serde_json::json!({})).await
}
