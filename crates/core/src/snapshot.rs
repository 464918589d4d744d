//! The security snapshot: everything the request path needs to authenticate and authorize a
//! caller, in immutable lookup tables. It is built aside from store rows and swapped in whole;
//! readers never wait and never touch the database.

use std::collections::HashMap;
use std::sync::Arc;

use crate::ids::{KeyName, RoleName};
use crate::model::{Plan, ServiceInstance, ServiceKey, TechnicalUser};

/// An immutable set of roles, shared by every principal that holds it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoleSet(Arc<[RoleName]>);

impl RoleSet {
    /// Builds a set from role names (duplicates removed).
    pub fn new(mut roles: Vec<RoleName>) -> Self {
        roles.sort();
        roles.dedup();
        Self(roles.into())
    }

    /// Whether the set holds `role`.
    pub fn contains(&self, role: &str) -> bool {
        self.0.iter().any(|r| r.as_str() == role)
    }

    /// The first of `wanted` that this set holds.
    pub fn first_of<'a>(&self, wanted: &'a [RoleName]) -> Option<&'a RoleName> {
        wanted.iter().find(|w| self.contains(w.as_str()))
    }

    /// The roles, sorted.
    pub fn iter(&self) -> impl Iterator<Item = &RoleName> {
        self.0.iter()
    }
}

/// One live secret of a client: the key it belongs to and the keyed hash of the secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySecret {
    /// The key (binding) name.
    pub key: KeyName,
    /// HMAC-SHA-256 of the secret under the server pepper.
    pub hash: [u8; 32],
}

/// An OAuth client: a service instance as the request path sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Client {
    /// Client id (the Basic user name).
    pub client_id: String,
    /// The instance name.
    pub instance: String,
    /// Its plan.
    pub plan: Plan,
    /// The instance's roles.
    pub roles: RoleSet,
    /// One entry per key of type ClientId/Secret.
    pub secrets: Vec<KeySecret>,
    /// The instance's OAuth grant types.
    pub grant_types: Vec<String>,
    /// Access-token validity in seconds.
    pub token_validity: u32,
}

/// A technical user as the request path sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// User name (lower-case).
    pub name: String,
    /// argon2id PHC string.
    pub password_phc: String,
    /// Roles.
    pub roles: RoleSet,
}

/// Immutable lookup tables for authentication and authorization.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    clients: HashMap<String, Arc<Client>>,
    users: HashMap<String, Arc<User>>,
}

impl Snapshot {
    /// Builds the tables from store rows.
    pub fn build(instances: &[ServiceInstance], keys: &[ServiceKey], users: &[TechnicalUser]) -> Self {
        let mut by_instance: HashMap<&str, Vec<KeySecret>> = HashMap::new();
        for key in keys {
            // A hash of the wrong length cannot match anything; skipping it is the safe reading.
            if let Ok(hash) = <[u8; 32]>::try_from(key.secret_hash.as_slice()) {
                by_instance
                    .entry(key.instance.as_str())
                    .or_default()
                    .push(KeySecret {
                        key: key.name.clone(),
                        hash,
                    });
            }
        }
        let clients = instances
            .iter()
            .map(|i| {
                let client = Client {
                    client_id: i.client_id.clone(),
                    instance: i.name.to_string(),
                    plan: i.plan,
                    roles: RoleSet::new(i.roles.clone()),
                    secrets: by_instance.remove(i.name.as_str()).unwrap_or_default(),
                    grant_types: i.grant_types.clone(),
                    token_validity: i.token_validity,
                };
                (i.client_id.clone(), Arc::new(client))
            })
            .collect();
        let users = users
            .iter()
            .map(|u| {
                let user = User {
                    name: u.name.to_string(),
                    password_phc: u.password_phc.clone(),
                    roles: RoleSet::new(u.roles.clone()),
                };
                (u.name.to_string(), Arc::new(user))
            })
            .collect();
        Self { clients, users }
    }

    /// The client with this id.
    pub fn client(&self, client_id: &str) -> Option<&Arc<Client>> {
        self.clients.get(client_id)
    }

    /// The technical user with this name (case-insensitive).
    pub fn user(&self, name: &str) -> Option<&Arc<User>> {
        if name.bytes().any(|b| b.is_ascii_uppercase()) {
            self.users.get(&name.to_ascii_lowercase())
        } else {
            self.users.get(name)
        }
    }
}
