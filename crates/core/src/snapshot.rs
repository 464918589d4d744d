//! The security snapshot: everything the request path needs to authenticate and authorize a
//! caller, in immutable lookup tables. It is built aside from store rows and swapped in whole;
//! readers never wait and never touch the database.

use std::collections::HashMap;
use std::sync::Arc;

use crate::ids::{KeyName, RoleName};
use crate::model::{CertMapping, Plan, ServiceInstance, ServiceKey, TechnicalUser};

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
    /// Names of the instance's certificate keys.
    pub cert_keys: Vec<KeyName>,
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

impl Client {
    /// Whether the instance still has a key of this name (of any type).
    pub fn has_key(&self, key: &str) -> bool {
        self.secrets.iter().any(|s| s.key.as_str() == key) || self.cert_keys.iter().any(|k| k.as_str() == key)
    }
}

/// What a client certificate authenticates as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertSubject {
    /// The client of a certificate key.
    Key {
        /// The client.
        client: Arc<Client>,
        /// The key the certificate is bound to.
        key: KeyName,
    },
    /// A user, by a certificate-to-user mapping; the user's roles authorize it.
    User {
        /// The mapped user name.
        name: String,
        /// That user's roles (empty when no technical user of that name exists).
        roles: RoleSet,
    },
}

/// A client certificate bound to a key or mapped to a user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertBinding {
    /// Whom it authenticates.
    pub subject: CertSubject,
    /// Expiry, Unix ms.
    pub not_after: i64,
}

/// Immutable lookup tables for authentication and authorization.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    clients: HashMap<String, Arc<Client>>,
    users: HashMap<String, Arc<User>>,
    certs: HashMap<[u8; 32], CertBinding>,
}

impl Snapshot {
    /// Builds the tables from store rows.
    pub fn build(
        instances: &[ServiceInstance],
        keys: &[ServiceKey],
        users: &[TechnicalUser],
        mappings: &[CertMapping],
    ) -> Self {
        let mut by_instance: HashMap<&str, Vec<KeySecret>> = HashMap::new();
        let mut certs_by_instance: HashMap<&str, Vec<&ServiceKey>> = HashMap::new();
        for key in keys.iter().filter(|k| k.certificate.is_some()) {
            certs_by_instance
                .entry(key.instance.as_str())
                .or_default()
                .push(key);
        }
        for key in keys.iter().filter(|k| k.certificate.is_none()) {
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
        let mut certs = HashMap::new();
        let clients = instances
            .iter()
            .map(|i| {
                let cert_keys = certs_by_instance.remove(i.name.as_str()).unwrap_or_default();
                let client = Arc::new(Client {
                    client_id: i.client_id.clone(),
                    instance: i.name.to_string(),
                    plan: i.plan,
                    roles: RoleSet::new(i.roles.clone()),
                    secrets: by_instance.remove(i.name.as_str()).unwrap_or_default(),
                    cert_keys: cert_keys.iter().map(|k| k.name.clone()).collect(),
                    grant_types: i.grant_types.clone(),
                    token_validity: i.token_validity,
                });
                for k in cert_keys {
                    if let Some(c) = &k.certificate {
                        certs.insert(
                            c.sha256,
                            CertBinding {
                                subject: CertSubject::Key {
                                    client: client.clone(),
                                    key: k.name.clone(),
                                },
                                not_after: c.not_after,
                            },
                        );
                    }
                }
                (i.client_id.clone(), client)
            })
            .collect();
        let users: HashMap<String, Arc<User>> = users
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
        for m in mappings {
            let roles = users.get(&m.user).map(|u| u.roles.clone()).unwrap_or_default();
            certs.entry(m.sha256).or_insert(CertBinding {
                subject: CertSubject::User {
                    name: m.user.clone(),
                    roles,
                },
                not_after: m.not_after,
            });
        }
        Self {
            clients,
            users,
            certs,
        }
    }

    /// What a client certificate (by SHA-256 of its DER) is bound or mapped to.
    pub fn certificate(&self, sha256: &[u8; 32]) -> Option<&CertBinding> {
        self.certs.get(sha256)
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
