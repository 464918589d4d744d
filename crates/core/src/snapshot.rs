//! The security snapshot: everything the request path needs to authenticate and authorize a
//! caller, in immutable lookup tables. It is built aside from store rows and swapped in whole;
//! readers never wait and never touch the database.

use std::collections::HashMap;
use std::sync::Arc;

use crate::ids::{KeyName, RoleName};
use crate::layered::Layered;
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
    /// The key (binding) name, shared with the principals it authenticates.
    pub key: Arc<str>,
    /// HMAC-SHA-256 of the secret under the server pepper.
    pub hash: [u8; 32],
}

/// An OAuth client: a service instance as the request path sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Client {
    /// Client id (the Basic user name), shared with the principals it authenticates.
    pub client_id: Arc<str>,
    /// The instance name, shared likewise.
    pub instance: Arc<str>,
    /// Its plan.
    pub plan: Plan,
    /// The instance's roles.
    pub roles: RoleSet,
    /// One entry per key of type ClientId/Secret.
    pub secrets: Vec<KeySecret>,
    /// Names of the instance's certificate keys.
    pub cert_keys: Vec<KeyName>,
    /// Keys (of any type) that expire, with their expiry in Unix ms.
    pub expiries: Vec<(KeyName, i64)>,
    /// The instance's OAuth grant types.
    pub grant_types: Vec<String>,
    /// Access-token validity in seconds.
    pub token_validity: u32,
    /// How fast each key may send.
    pub rate_limit: Option<crate::model::RateLimit>,
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
        self.secrets.iter().any(|s| &*s.key == key) || self.cert_keys.iter().any(|k| k.as_str() == key)
    }

    /// When the key of this name stops authenticating, Unix ms (`None`: never, or no such key).
    pub fn key_expires_at(&self, key: &str) -> Option<i64> {
        self.expiries
            .iter()
            .find(|(k, _)| k.as_str() == key)
            .map(|(_, at)| *at)
    }

    /// Whether the key of this name has expired at `now_ms`.
    pub fn key_expired(&self, key: &str, now_ms: i64) -> bool {
        self.key_expires_at(key).is_some_and(|at| at <= now_ms)
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
        key: Arc<str>,
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

/// What the snapshot remembers of an instance to replace it later: its client id and the
/// certificates bound to its keys.
#[derive(Clone, Debug, Default)]
struct InstanceEntry {
    client_id: String,
    certs: Vec<[u8; 32]>,
}

/// Immutable lookup tables for authentication and authorization. Each table is a [`Layered`]
/// map, so a change to one instance or user makes a new snapshot in amortised O(1), however many
/// keys and users there are.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    clients: Layered<String, Arc<Client>>,
    users: Layered<String, Arc<User>>,
    certs: Layered<[u8; 32], CertBinding>,
    instances: Layered<String, InstanceEntry>,
    /// Certificates mapped to each user (their bindings carry the user's roles).
    mapped: Layered<String, Vec<[u8; 32]>>,
}

/// Builds the client of an instance from its keys, with the bindings of its certificate keys.
fn client_of(i: &ServiceInstance, keys: &[&ServiceKey]) -> (Arc<Client>, Vec<([u8; 32], CertBinding)>) {
    let mut secrets = Vec::new();
    let mut cert_keys = Vec::new();
    for key in keys {
        if key.certificate.is_some() {
            cert_keys.push(*key);
        } else if let Ok(hash) = <[u8; 32]>::try_from(key.secret_hash.as_slice()) {
            // A hash of the wrong length cannot match anything; skipping it is the safe reading.
            secrets.push(KeySecret {
                key: Arc::from(key.name.as_str()),
                hash,
            });
        }
    }
    let client = Arc::new(Client {
        client_id: Arc::from(i.client_id.as_str()),
        instance: Arc::from(i.name.as_str()),
        plan: i.plan,
        roles: RoleSet::new(i.roles.clone()),
        secrets,
        cert_keys: cert_keys.iter().map(|k| k.name.clone()).collect(),
        expiries: keys
            .iter()
            .filter_map(|k| k.expires_at.map(|at| (k.name.clone(), at)))
            .collect(),
        grant_types: i.grant_types.clone(),
        token_validity: i.token_validity,
        rate_limit: i.rate_limit,
    });
    let bindings = cert_keys
        .iter()
        .filter_map(|k| {
            k.certificate.as_ref().map(|c| {
                (
                    c.sha256,
                    CertBinding {
                        subject: CertSubject::Key {
                            client: client.clone(),
                            key: Arc::from(k.name.as_str()),
                        },
                        not_after: c.not_after,
                    },
                )
            })
        })
        .collect();
    (client, bindings)
}

fn user_of(u: &TechnicalUser) -> Arc<User> {
    Arc::new(User {
        name: u.name.to_string(),
        password_phc: u.password_phc.clone(),
        roles: RoleSet::new(u.roles.clone()),
    })
}

impl Snapshot {
    /// Builds the tables from store rows.
    pub fn build(
        instances: &[ServiceInstance],
        keys: &[ServiceKey],
        users: &[TechnicalUser],
        mappings: &[CertMapping],
    ) -> Self {
        let mut keys_of: HashMap<&str, Vec<&ServiceKey>> = HashMap::new();
        for key in keys {
            keys_of.entry(key.instance.as_str()).or_default().push(key);
        }
        let mut certs = HashMap::new();
        let mut clients = HashMap::with_capacity(instances.len());
        let mut entries = HashMap::with_capacity(instances.len());
        for i in instances {
            let (client, bindings) =
                client_of(i, keys_of.get(i.name.as_str()).map_or(&[][..], Vec::as_slice));
            entries.insert(
                i.name.to_string(),
                InstanceEntry {
                    client_id: i.client_id.clone(),
                    certs: bindings.iter().map(|(sha, _)| *sha).collect(),
                },
            );
            certs.extend(bindings);
            clients.insert(i.client_id.clone(), client);
        }
        let users: HashMap<String, Arc<User>> =
            users.iter().map(|u| (u.name.to_string(), user_of(u))).collect();
        let mut mapped: HashMap<String, Vec<[u8; 32]>> = HashMap::new();
        for m in mappings {
            let roles = users.get(&m.user).map(|u| u.roles.clone()).unwrap_or_default();
            if let std::collections::hash_map::Entry::Vacant(v) = certs.entry(m.sha256) {
                v.insert(CertBinding {
                    subject: CertSubject::User {
                        name: m.user.clone(),
                        roles,
                    },
                    not_after: m.not_after,
                });
                mapped.entry(m.user.clone()).or_default().push(m.sha256);
            }
        }
        Self {
            clients: Layered::new(clients),
            users: Layered::new(users),
            certs: Layered::new(certs),
            instances: Layered::new(entries),
            mapped: Layered::new(mapped),
        }
    }

    /// A copy in which the instance `name` is as given (with all its keys), or gone (`None`).
    pub fn with_instance(&self, name: &str, now: Option<(&ServiceInstance, &[ServiceKey])>) -> Self {
        let mut next = self.clone();
        let old = self.instances.get(name).cloned().unwrap_or_default();
        let mut client_changes: Vec<(String, Option<Arc<Client>>)> = Vec::new();
        let mut cert_changes: Vec<([u8; 32], Option<CertBinding>)> =
            old.certs.iter().map(|sha| (*sha, None)).collect();
        if !old.client_id.is_empty() {
            client_changes.push((old.client_id.clone(), None));
        }
        match now {
            Some((i, keys)) => {
                let keys: Vec<&ServiceKey> = keys.iter().filter(|k| k.instance == i.name).collect();
                let (client, bindings) = client_of(i, &keys);
                let entry = InstanceEntry {
                    client_id: i.client_id.clone(),
                    certs: bindings.iter().map(|(sha, _)| *sha).collect(),
                };
                cert_changes.extend(bindings.into_iter().map(|(sha, b)| (sha, Some(b))));
                client_changes.push((i.client_id.clone(), Some(client)));
                next.instances = self.instances.with([(name.to_owned(), Some(entry))]);
            }
            None => next.instances = self.instances.with([(name.to_owned(), None)]),
        }
        next.clients = self.clients.with(client_changes);
        next.certs = self.certs.with(cert_changes);
        next
    }

    /// A copy in which the technical user `name` is as given, or gone (`None`); certificates
    /// mapped to the user carry its new roles.
    pub fn with_user(&self, name: &str, now: Option<&TechnicalUser>) -> Self {
        let mut next = self.clone();
        let user = now.map(user_of);
        let roles = user.as_ref().map(|u| u.roles.clone()).unwrap_or_default();
        if let Some(shas) = self.mapped.get(name) {
            let changes: Vec<([u8; 32], Option<CertBinding>)> = shas
                .iter()
                .filter_map(|sha| {
                    let b = self.certs.get(sha)?;
                    let CertSubject::User { name, .. } = &b.subject else {
                        return None;
                    };
                    Some((
                        *sha,
                        Some(CertBinding {
                            subject: CertSubject::User {
                                name: name.clone(),
                                roles: roles.clone(),
                            },
                            not_after: b.not_after,
                        }),
                    ))
                })
                .collect();
            next.certs = self.certs.with(changes);
        }
        next.users = self.users.with([(name.to_owned(), user)]);
        next
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{InstanceName, UserName};
    use crate::model::{BoundCertificate, KeyType};

    fn instance(name: &str, roles: &[&str]) -> ServiceInstance {
        ServiceInstance {
            name: InstanceName::parse(name).expect("name"),
            plan: Plan::IntegrationFlow,
            client_id: format!("sb-{name}"),
            roles: roles.iter().map(|r| RoleName::parse(r).expect("role")).collect(),
            grant_types: vec!["client_credentials".into()],
            redirect_uris: vec![],
            token_validity: 3600,
            rate_limit: None,
            created_at: 1,
            created_by: "t".into(),
        }
    }

    fn key(instance: &str, name: &str, cert: Option<u8>) -> ServiceKey {
        ServiceKey {
            instance: InstanceName::parse(instance).expect("instance"),
            name: KeyName::parse(name).expect("key"),
            key_type: if cert.is_some() {
                KeyType::Certificate
            } else {
                KeyType::ClientSecret
            },
            secret_hash: if cert.is_some() {
                vec![]
            } else {
                vec![name.len() as u8; 32]
            },
            certificate: cert.map(|b| BoundCertificate {
                pem: String::new(),
                sha256: [b; 32],
                not_after: 99,
            }),
            expires_at: None,
            created_at: 1,
            created_by: "t".into(),
        }
    }

    fn user(name: &str, roles: &[&str]) -> TechnicalUser {
        TechnicalUser {
            name: UserName::parse(name).expect("user"),
            password_phc: "phc".into(),
            roles: roles.iter().map(|r| RoleName::parse(r).expect("role")).collect(),
            created_at: 1,
        }
    }

    fn mapping(user: &str, b: u8) -> CertMapping {
        CertMapping {
            id: format!("m{b}"),
            sha256: [b; 32],
            user: user.into(),
            pem: String::new(),
            subject: String::new(),
            issuer: String::new(),
            serial: String::new(),
            not_after: 77,
            created_at: 1,
            created_by: "t".into(),
        }
    }

    /// Everything the request path can ask, for comparing snapshots.
    fn view(s: &Snapshot, clients: &[&str], users: &[&str], certs: &[u8]) -> String {
        format!(
            "{:?}\n{:?}\n{:?}",
            clients.iter().map(|c| s.client(c)).collect::<Vec<_>>(),
            users.iter().map(|u| s.user(u)).collect::<Vec<_>>(),
            certs.iter().map(|b| s.certificate(&[*b; 32])).collect::<Vec<_>>()
        )
    }

    #[test]
    fn key_expiries_reach_the_client_of_rebuilds_and_patches() {
        let i = instance("a", &["R1"]);
        let mut keys = vec![
            key("a", "old", None),
            key("a", "new", None),
            key("a", "cert", Some(3)),
        ];
        keys[0].expires_at = Some(1_000);
        keys[2].expires_at = Some(2_000);
        for s in [
            Snapshot::build(std::slice::from_ref(&i), &keys, &[], &[]),
            Snapshot::default().with_instance("a", Some((&i, &keys))),
        ] {
            let client = s.client("sb-a").expect("client");
            assert_eq!(client.key_expires_at("old"), Some(1_000));
            assert_eq!(client.key_expires_at("new"), None);
            assert!(!client.key_expired("old", 999));
            assert!(client.key_expired("old", 1_000));
            assert!(!client.key_expired("new", i64::MAX));
            let CertSubject::Key { client, key } = &s.certificate(&[3; 32]).expect("bound").subject else {
                panic!("a key binding");
            };
            assert!(client.key_expired(key, 2_000));
        }
    }

    #[test]
    fn changing_one_instance_or_user_equals_a_rebuild() {
        let before_instances = vec![instance("a", &["R1"]), instance("b", &["R2"])];
        let before_keys = vec![
            key("a", "k1", None),
            key("a", "c1", Some(1)),
            key("b", "k2", None),
        ];
        let users = vec![user("u1", &["R1"])];
        let mappings = vec![mapping("u1", 9)];
        let s = Snapshot::build(&before_instances, &before_keys, &users, &mappings);

        // Instance a: a role changes, key c1 goes, c2 and k3 come; b is deleted; c is new.
        let a2 = instance("a", &["R3"]);
        let keys_a2 = vec![
            key("a", "k1", None),
            key("a", "c2", Some(2)),
            key("a", "k3", None),
        ];
        let c = instance("c", &["R1"]);
        let keys_c = vec![key("c", "k9", None)];
        let patched = s
            .with_instance("a", Some((&a2, &keys_a2)))
            .with_instance("b", None)
            .with_instance("c", Some((&c, &keys_c)));
        let mut all_keys = keys_a2.clone();
        all_keys.extend(keys_c.clone());
        let rebuilt = Snapshot::build(&[a2, c], &all_keys, &users, &mappings);
        let (clients, names, certs) = (["sb-a", "sb-b", "sb-c"], ["u1", "u2"], [1u8, 2, 9]);
        assert_eq!(
            view(&patched, &clients, &names, &certs),
            view(&rebuilt, &clients, &names, &certs)
        );
        assert!(patched.client("sb-b").is_none());
        assert!(patched.certificate(&[1; 32]).is_none());

        // User u1 gets other roles (its mapped certificate follows); u2 is added; then u1 goes.
        let u1 = user("u1", &["R9"]);
        let u2 = user("u2", &["R1"]);
        let patched = patched.with_user("u1", Some(&u1)).with_user("u2", Some(&u2));
        let rebuilt = Snapshot::build(
            &[instance("a", &["R3"]), instance("c", &["R1"])],
            &all_keys,
            &[u1.clone(), u2.clone()],
            &mappings,
        );
        assert_eq!(
            view(&patched, &clients, &names, &certs),
            view(&rebuilt, &clients, &names, &certs)
        );
        let gone = patched.with_user("u1", None);
        let rebuilt = Snapshot::build(
            &[instance("a", &["R3"]), instance("c", &["R1"])],
            &all_keys,
            &[u2],
            &mappings,
        );
        assert_eq!(
            view(&gone, &clients, &names, &certs),
            view(&rebuilt, &clients, &names, &certs)
        );
    }
}
