//! Postern's storage: repository traits grouped by capability, and their implementations on
//! SQLite (the embedded default, one node) and PostgreSQL (several nodes on one database).
//! Callers hold an `Arc<dyn Store>`. Queries are plain runtime SQL (no compile-time database).

mod common;
mod credentials;
mod ctx;
mod postgres;
pub mod queue;
mod sqlite;

use async_trait::async_trait;
use postern_core::Result;
use postern_core::model::CertMapping;
use postern_core::model::{
    AuditEntry, Role, ServiceInstance, ServiceKey, StoredCa, StoredFlow, TechnicalUser, TokenKey, TrustedCa,
};
use postern_core::mpl::{Condition, Mpl, MplQuery};
use postern_core::partner::{
    AlternativePartner, AuthorizedUser, DirectorySink, PartnerChange, PartnerDelta, PartnerQuery, PartnerRow,
    StringParameter,
};

pub use common::audit_link;
pub use ctx::Ctx;
pub use postgres::PgStore;
pub use queue::QueueStore;
pub use sqlite::SqliteStore;

/// Who uses a role; a role in use cannot be deleted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoleUsage {
    /// Service instances that carry it.
    pub instances: Vec<String>,
    /// Technical users that hold it.
    pub users: Vec<String>,
    /// Deployed flows whose sender requires it.
    pub flows: Vec<String>,
}

impl RoleUsage {
    /// Whether nothing uses the role.
    pub fn is_empty(&self) -> bool {
        self.instances.is_empty() && self.users.is_empty() && self.flows.is_empty()
    }
}

/// User roles.
#[async_trait]
pub trait RoleStore {
    /// All roles, by name.
    async fn roles(&self) -> Result<Vec<Role>>;
    /// One role.
    async fn role(&self, name: &str) -> Result<Option<Role>>;
    /// Inserts a role; `Conflict` if the name exists.
    async fn insert_role(&self, role: &Role) -> Result<()>;
    /// Changes a role's description; false if there is no such role.
    async fn update_role_description(&self, name: &str, description: &str, now: i64) -> Result<bool>;
    /// Deletes a role unless something uses it: returns the usage instead of deleting then.
    /// `Ok(None)` when the role did not exist.
    async fn delete_role(&self, name: &str) -> Result<Option<RoleUsage>>;
}

/// Service instances and their keys.
#[async_trait]
pub trait InstanceStore {
    /// All instances, by name.
    async fn instances(&self) -> Result<Vec<ServiceInstance>>;
    /// One instance.
    async fn instance(&self, name: &str) -> Result<Option<ServiceInstance>>;
    /// Inserts an instance; `Conflict` if the name exists.
    async fn insert_instance(&self, instance: &ServiceInstance) -> Result<()>;
    /// Replaces an instance's roles, grant types, redirect URIs and token validity (its name,
    /// plan and client id stay); false if it does not exist.
    async fn update_instance(&self, instance: &ServiceInstance) -> Result<bool>;
    /// Deletes an instance and its keys; false if it did not exist.
    async fn delete_instance(&self, name: &str) -> Result<bool>;
    /// Keys of one instance, or of all instances.
    async fn keys(&self, instance: Option<&str>) -> Result<Vec<ServiceKey>>;
    /// Inserts a key; `Conflict` if the instance already has a key of that name.
    async fn insert_key(&self, key: &ServiceKey) -> Result<()>;
    /// Deletes a key; false if it did not exist.
    async fn delete_key(&self, instance: &str, name: &str) -> Result<bool>;
    /// Sets (or with `None` clears) when a key stops authenticating, Unix ms; false if there is
    /// no such key.
    async fn set_key_expiry(&self, instance: &str, name: &str, expires_at: Option<i64>) -> Result<bool>;
}

/// Technical users.
#[async_trait]
pub trait UserStore {
    /// All users, by name.
    async fn users(&self) -> Result<Vec<TechnicalUser>>;
    /// One user.
    async fn user(&self, name: &str) -> Result<Option<TechnicalUser>>;
    /// Inserts a user; `Conflict` if the name exists.
    async fn insert_user(&self, user: &TechnicalUser) -> Result<()>;
    /// Replaces a user's password hash and roles; false if there is no such user.
    async fn update_user(&self, user: &TechnicalUser) -> Result<bool>;
    /// Deletes a user; false if it did not exist.
    async fn delete_user(&self, name: &str) -> Result<bool>;
}

/// Deployed flows.
#[async_trait]
pub trait FlowStore {
    /// All deployed flows, by id.
    async fn flows(&self) -> Result<Vec<StoredFlow>>;
    /// Deploys (inserts or replaces) a flow with its normalised address and required roles.
    /// Returns true when it was new. `Conflict` if another flow has the address.
    async fn put_flow(&self, flow: &StoredFlow, address: &str, roles: &[String]) -> Result<bool>;
    /// Undeploys a flow; false if it was not deployed.
    async fn delete_flow(&self, id: &str) -> Result<bool>;
}

/// Message processing logs.
#[async_trait]
pub trait MplStore {
    /// Writes a batch in one transaction (a GUID seen twice keeps the first entry).
    async fn insert_mpls(&self, batch: &[Mpl]) -> Result<()>;
    /// Entries matching a query.
    async fn query_mpls(&self, query: &MplQuery) -> Result<Vec<Mpl>>;
    /// How many entries match the conditions.
    async fn count_mpls(&self, conditions: &[Condition]) -> Result<u64>;
}

/// The audit log.
#[async_trait]
pub trait AuditStore {
    /// Appends entries (ids are assigned by the store), each linked to the one before it.
    async fn append_audit(&self, entries: &[AuditEntry]) -> Result<()>;
    /// The newest entries, newest first, at most `limit`, with ids below `before` when given.
    async fn audit(&self, limit: u32, before: Option<i64>) -> Result<Vec<AuditEntry>>;
    /// Entries with ids above `after`, oldest first, at most `limit`, each with its chain link
    /// (`None` for entries written before the chain existed).
    async fn audit_chain(&self, after: i64, limit: u32) -> Result<Vec<(AuditEntry, Option<Vec<u8>>)>>;
}

/// Signing keys: the access-token signing keys and the local CA.
#[async_trait]
pub trait TokenKeyStore {
    /// All keys, oldest first.
    async fn token_keys(&self) -> Result<Vec<TokenKey>>;
    /// Adds a key and retires every other unretired key at `key.created_at`, in one transaction.
    async fn rotate_token_key(&self, key: &TokenKey) -> Result<()>;
    /// Deletes keys retired before `before` (their tokens have all expired).
    async fn purge_token_keys(&self, before: i64) -> Result<u64>;
    /// The local CA, when one is stored.
    async fn local_ca(&self) -> Result<Option<StoredCa>>;
    /// Stores `ca` unless a CA is stored already, and answers with the stored one: nodes
    /// starting together on an empty database agree on the first.
    async fn init_local_ca(&self, ca: &StoredCa) -> Result<StoredCa>;
}

/// CAs trusted for client certificates.
#[async_trait]
pub trait TrustStore {
    /// All trusted CAs, oldest first.
    async fn trusted_cas(&self) -> Result<Vec<TrustedCa>>;
    /// Adds a CA; `Conflict` if the same certificate is there.
    async fn insert_trusted_ca(&self, ca: &TrustedCa) -> Result<()>;
    /// Removes a CA by fingerprint; false if it was not there.
    async fn delete_trusted_ca(&self, sha256: &[u8; 32]) -> Result<bool>;
}

/// Certificate-to-user mappings.
#[async_trait]
pub trait CertMappingStore {
    /// All mappings, by user then id.
    async fn cert_mappings(&self) -> Result<Vec<CertMapping>>;
    /// Adds a mapping; `Conflict` if the certificate is mapped already.
    async fn insert_cert_mapping(&self, m: &CertMapping) -> Result<()>;
    /// Deletes a mapping by id; false if it was not there.
    async fn delete_cert_mapping(&self, id: &str) -> Result<bool>;
}

/// The Partner Directory. Writes are lists of changes applied in one transaction (all or nothing);
/// changes that name a Pid create the partner when it does not exist yet; deleting a partner
/// deletes what belongs to it.
#[async_trait]
pub trait PartnerStore {
    /// All alternative partners (to build the in-memory directory).
    async fn alternative_partners(&self) -> Result<Vec<AlternativePartner>>;
    /// All authorized users (to build the in-memory directory).
    async fn authorized_users(&self) -> Result<Vec<AuthorizedUser>>;
    /// All string parameters (to build the in-memory directory).
    async fn string_parameters(&self) -> Result<Vec<StringParameter>>;
    /// Streams every alternative partner, authorized user and string parameter into `sink`
    /// (key columns and values only), to build the in-memory directory at start.
    async fn load_directory(&self, sink: &mut (dyn DirectorySink + Send)) -> Result<()>;
    /// Applies changes in one transaction and says what they changed. The first failing change
    /// (`NotFound`, `Conflict`) rolls back all of them; with several changes the error names it.
    async fn apply_partner_changes(&self, changes: &[PartnerChange]) -> Result<Vec<PartnerDelta>>;
    /// A page of one entity set and the number of rows that match the conditions.
    async fn query_partners(&self, query: &PartnerQuery) -> Result<(Vec<PartnerRow>, u64)>;
}

/// A web console session: the SHA-256 of the id the browser holds, the user, the session's CSRF
/// token and its lifetime (Unix ms).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsoleSession {
    /// SHA-256 of the session id.
    pub id_hash: Vec<u8>,
    /// The logged-in user.
    pub user: String,
    /// The token every form of the session carries.
    pub csrf: String,
    /// Login time.
    pub created_at: i64,
    /// End of the session.
    pub expires_at: i64,
}

/// Web console sessions.
#[async_trait]
pub trait SessionStore {
    /// Stores a new session.
    async fn insert_session(&self, session: &ConsoleSession) -> Result<()>;
    /// The session with this id hash, if it has not expired at `now`.
    async fn session(&self, id_hash: &[u8], now: i64) -> Result<Option<ConsoleSession>>;
    /// Ends a session; false if there was none.
    async fn delete_session(&self, id_hash: &[u8]) -> Result<bool>;
    /// Deletes sessions that expired before `now`.
    async fn purge_sessions(&self, now: i64) -> Result<u64>;
}

/// One recorded change of the change feed (PostgreSQL): the table and the changed row's key
/// columns (Partner Directory tables) or `{}` (the others).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// Increases with every change (not necessarily in commit order).
    pub seq: i64,
    /// The table.
    pub entity: String,
    /// Key columns and values.
    pub key: serde_json::Value,
}

/// The change feed several nodes follow. SQLite serves one node and records nothing.
#[async_trait]
pub trait ChangeStore {
    /// Changes after `after`, and those recorded in the last `window_ms` (a transaction that
    /// took its sequence number earlier may commit later), oldest first, at most `limit`.
    async fn changes_after(&self, after: i64, window_ms: i64, limit: u32) -> Result<Vec<Change>>;
    /// The newest sequence number recorded or pruned, 0 when none.
    async fn last_change(&self) -> Result<i64>;
    /// Whether the database answers (one trivial query).
    async fn ping(&self) -> Result<()>;
    /// Deletes changes older than `older_than_ms` and moves the horizon past them.
    async fn prune_changes(&self, older_than_ms: i64) -> Result<u64>;
    /// The newest sequence number pruned (0 when none): a node whose last applied change is
    /// older missed changes it can no longer read and must reload everything.
    async fn pruned_through(&self) -> Result<i64>;
}

/// Everything a backend provides.
pub trait Store:
    RoleStore
    + InstanceStore
    + UserStore
    + FlowStore
    + MplStore
    + AuditStore
    + TokenKeyStore
    + TrustStore
    + CertMappingStore
    + PartnerStore
    + ChangeStore
    + SessionStore
    + QueueStore
    + CredentialStore
    + Send
    + Sync
{
}

impl<T> Store for T where
    T: RoleStore
        + InstanceStore
        + UserStore
        + FlowStore
        + MplStore
        + AuditStore
        + TokenKeyStore
        + TrustStore
        + CertMappingStore
        + PartnerStore
        + ChangeStore
        + SessionStore
        + QueueStore
        + CredentialStore
        + Send
        + Sync
{
}

/// Credentials presented to back ends.
#[async_trait]
pub trait CredentialStore {
    /// All credentials by name.
    async fn credentials(&self) -> Result<Vec<postern_core::model::StoredCredential>>;
    /// Creates or replaces a credential; true when it was new.
    async fn put_credential(&self, c: &postern_core::model::StoredCredential) -> Result<bool>;
    /// Deletes a credential; false when there was none.
    async fn delete_credential(&self, name: &str) -> Result<bool>;
}
