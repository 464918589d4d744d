//! The records Postern keeps: user roles, service instances and their keys, technical users,
//! deployed flows and audit entries. Times are Unix milliseconds.

use serde::{Deserialize, Serialize};

use crate::ids::{FlowId, InstanceName, KeyName, RoleName, UserName};

/// The built-in role that lets a sender process messages (SAP's default *User Role*).
pub const ROLE_SEND: &str = "ESBMessaging.send";
/// SAP's second predefined technical role; built in, not assigned by default.
pub const ROLE_API_INVOKE: &str = "API.invoke";
/// API role: full access to the admin APIs (native and SAP-compatible).
pub const ROLE_ADMIN: &str = "Postern.Admin";
/// API role: read message processing logs (SAP's `MonitoringDataRead`).
pub const ROLE_MONITORING: &str = "MonitoringDataRead";
/// API role: read and change the Partner Directory through `/api/v1` (SAP's role collection
/// `AuthGroup_TenantPartnerDirectoryConfigurator`).
pub const ROLE_PARTNER_DIRECTORY: &str = "AuthGroup_TenantPartnerDirectoryConfigurator";
/// Roles an `api`-plan instance or a technical user may hold to use the admin APIs.
pub const API_ROLES: [&str; 3] = [ROLE_ADMIN, ROLE_MONITORING, ROLE_PARTNER_DIRECTORY];
/// Built-in user roles: they always exist and cannot be changed or deleted.
pub const BUILTIN_ROLES: [&str; 2] = [ROLE_SEND, ROLE_API_INVOKE];

/// A user role, as under *Monitor > Manage Security > User Roles*.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    /// Role name.
    pub name: RoleName,
    /// Free text; the only editable field.
    pub description: String,
    /// Built-in (SAP-owned) roles cannot be changed or deleted.
    pub builtin: bool,
    /// Creation time.
    pub created_at: i64,
    /// Last change of the description.
    pub modified_at: i64,
}

/// The plan of a service instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Plan {
    /// Senders calling integration flow endpoints.
    #[serde(rename = "integration-flow")]
    IntegrationFlow,
    /// API clients calling the admin APIs.
    #[serde(rename = "api")]
    Api,
}

impl Plan {
    /// The plan's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Plan::IntegrationFlow => "integration-flow",
            Plan::Api => "api",
        }
    }

    /// Default access-token validity in seconds (SAP: 3600 for flows, 43200 for the API).
    pub fn default_token_validity(self) -> u32 {
        match self {
            Plan::IntegrationFlow => 3600,
            Plan::Api => 43200,
        }
    }
}

/// A service instance: an OAuth client with roles and grant types.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceInstance {
    /// Instance name.
    pub name: InstanceName,
    /// Plan.
    pub plan: Plan,
    /// The OAuth client id all keys of this instance share.
    pub client_id: String,
    /// Roles granted to whoever authenticates with a key of this instance.
    pub roles: Vec<RoleName>,
    /// OAuth grant types.
    pub grant_types: Vec<String>,
    /// Redirect URIs (authorization-code grant only; usually empty).
    pub redirect_uris: Vec<String>,
    /// Access-token validity in seconds (3600..=86400).
    pub token_validity: u32,
    /// How fast each key of the instance may send (`None`: no limit).
    pub rate_limit: Option<RateLimit>,
    /// Creation time.
    pub created_at: i64,
    /// Who created it.
    pub created_by: String,
}

/// A token-bucket rate: requests per second on average, in bursts of up to `burst`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    /// Average requests per second (1..=1,000,000).
    #[serde(rename = "requests-per-second")]
    pub per_second: u32,
    /// Most requests at once after a quiet period (per_second..=10 × per_second, default per_second).
    pub burst: u32,
}

/// The type of a service key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyType {
    /// ClientId/Secret: a generated secret, stored only as a keyed hash.
    #[serde(rename = "clientsecret")]
    ClientSecret,
    /// A client certificate Postern's CA issued (the private key is handed out once, not kept).
    #[serde(rename = "certificate")]
    Certificate,
    /// A client certificate the sender brought.
    #[serde(rename = "certificate_external")]
    CertificateExternal,
}

impl KeyType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::ClientSecret => "clientsecret",
            KeyType::Certificate => "certificate",
            KeyType::CertificateExternal => "certificate_external",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "clientsecret" => Some(Self::ClientSecret),
            "certificate" => Some(Self::Certificate),
            "certificate_external" => Some(Self::CertificateExternal),
            _ => None,
        }
    }
}

/// The client certificate bound to a certificate key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoundCertificate {
    /// The certificate, PEM.
    pub pem: String,
    /// SHA-256 of its DER encoding.
    pub sha256: [u8; 32],
    /// Expiry, Unix ms.
    pub not_after: i64,
}

/// A CA whose client certificates the HTTPS listener accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedCa {
    /// SHA-256 of the DER certificate.
    pub sha256: [u8; 32],
    /// The certificate, PEM.
    pub pem: String,
    /// Subject DN.
    pub subject: String,
    /// Expiry, Unix ms.
    pub not_after: i64,
    /// When it was added.
    pub created_at: i64,
    /// Who added it.
    pub created_by: String,
}

/// A service key (binding) of an instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceKey {
    /// The instance it belongs to.
    pub instance: InstanceName,
    /// Key name, unique within the instance.
    pub name: KeyName,
    /// Key type.
    pub key_type: KeyType,
    /// Keyed hash (HMAC-SHA-256 under the server pepper) of the client secret; empty for
    /// certificate keys.
    pub secret_hash: Vec<u8>,
    /// The bound client certificate of a certificate key.
    pub certificate: Option<BoundCertificate>,
    /// When the key stops authenticating (Unix ms), for rotation with overlap; `None`: never
    /// (a certificate key still ends with its certificate).
    pub expires_at: Option<i64>,
    /// Creation time.
    pub created_at: i64,
    /// Who created it.
    pub created_by: String,
}

/// A technical user ("a user from the identity service") with a password and roles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TechnicalUser {
    /// User name (lower-case).
    pub name: UserName,
    /// argon2id PHC string of the password.
    pub password_phc: String,
    /// Roles: user roles and API roles.
    pub roles: Vec<RoleName>,
    /// Creation time.
    pub created_at: i64,
}

/// A deployed flow as stored: the YAML it was deployed from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredFlow {
    /// Flow id.
    pub id: FlowId,
    /// The YAML document.
    pub yaml: String,
    /// Deployment time.
    pub deployed_at: i64,
    /// Who deployed it.
    pub deployed_by: String,
}

/// One entry of the audit log: a change to security data, or a failed authentication.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Sequence number (assigned by the store).
    pub id: i64,
    /// When it happened.
    pub at: i64,
    /// Who did it (user name, client id, or `-` when unauthenticated).
    pub actor: String,
    /// What was done, e.g. `service-key.create`, `auth.failed`.
    pub action: String,
    /// What it was done to.
    pub target: String,
    /// Details without secrets.
    pub detail: String,
    /// Where the request came from (peer address).
    pub source: String,
}

/// A token signing key as stored: the private half sealed under the master key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenKey {
    /// Key id (the JWT `kid`).
    pub kid: String,
    /// JWS algorithm, e.g. `EdDSA`.
    pub alg: String,
    /// The sealed PKCS#8 private key.
    pub private_enc: Vec<u8>,
    /// The raw public key.
    pub public_key: Vec<u8>,
    /// Creation time.
    pub created_at: i64,
    /// When a newer key replaced it (it still verifies tokens until they expire).
    pub retired_at: Option<i64>,
}

/// A credential Postern presents to a back end, as stored: the secret part (password, token or
/// private key PEM) sealed under the master key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCredential {
    /// Its name, which flows use.
    pub name: String,
    /// `basic`, `bearer` or `certificate`.
    pub kind: String,
    /// The user of a `basic` credential (empty otherwise).
    pub user: String,
    /// The certificate chain (PEM) of a `certificate` credential (empty otherwise).
    pub certificate: String,
    /// The sealed secret.
    pub secret_enc: Vec<u8>,
    /// Last change, Unix ms.
    pub modified_at: i64,
    /// Who made it.
    pub modified_by: String,
}

/// Postern's local CA as stored: one per deployment, shared by every node of a database, its
/// private key sealed under the master key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCa {
    /// The CA certificate (PEM).
    pub cert_pem: String,
    /// The sealed PKCS#8 private key (PEM bytes).
    pub key_enc: Vec<u8>,
    /// When it was stored.
    pub created_at: i64,
}

/// A certificate-to-user mapping: the whole certificate authenticates as `user`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertMapping {
    /// Id: the first 32 hex digits of the certificate's SHA-256.
    pub id: String,
    /// SHA-256 of the DER certificate.
    pub sha256: [u8; 32],
    /// The user it maps to (lower-case).
    pub user: String,
    /// The certificate, PEM.
    pub pem: String,
    /// Subject DN.
    pub subject: String,
    /// Issuer DN.
    pub issuer: String,
    /// Serial number.
    pub serial: String,
    /// Expiry, Unix ms.
    pub not_after: i64,
    /// Creation time.
    pub created_at: i64,
    /// Who created it.
    pub created_by: String,
}
