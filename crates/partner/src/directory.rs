//! The Partner Directory as the request path reads it: alternative partners, authorized users and
//! string parameters in persistent hash maps ([`imbl`]). A change copies a few tree nodes, not the
//! whole directory, so a directory of a million alternative partners is updated in microseconds
//! and swapped in atomically with the rest of the snapshot. Binary parameters stay in the store.

use std::collections::HashMap;
use std::sync::Arc;

use imbl::HashMap as PMap;
use postern_core::partner::{AlternativePartner, AuthorizedUser, PartnerDelta, StringParameter};

/// An (agency, scheme) pair, interned: directories hold few of them and millions of ids.
type SchemeId = usize;

/// The in-memory directory. Cloning is O(1); changes are O(log n).
#[derive(Clone, Debug, Default)]
pub struct Directory {
    /// The (agency, scheme) pairs; the index is the [`SchemeId`].
    schemes: Arc<Vec<(Box<str>, Box<str>)>>,
    /// Per scheme: alternative id → Pid.
    alternatives: Arc<Vec<PMap<Arc<str>, Arc<str>>>>,
    /// Per scheme: Pid → alternative id (SAP makes this unique too).
    alternative_of: Arc<Vec<PMap<Arc<str>, Arc<str>>>>,
    /// Lower-case user → Pid.
    users: PMap<Arc<str>, Arc<str>>,
    /// Pid → its authorized users, sorted.
    users_of: PMap<Arc<str>, Arc<[Arc<str>]>>,
    /// Pid → parameter id → value.
    strings: PMap<Arc<str>, PMap<Arc<str>, Arc<str>>>,
}

impl Directory {
    /// Builds the directory from the store's rows.
    pub fn build(
        alternatives: &[AlternativePartner],
        users: &[AuthorizedUser],
        strings: &[StringParameter],
    ) -> Self {
        let mut d = Directory::default();
        let mut pids: std::collections::HashSet<Arc<str>> = std::collections::HashSet::new();
        let mut pid = |p: &str| -> Arc<str> {
            if let Some(found) = pids.get(p) {
                return found.clone();
            }
            let new: Arc<str> = Arc::from(p);
            pids.insert(new.clone());
            new
        };
        let mut schemes: Vec<(Box<str>, Box<str>)> = Vec::new();
        let mut alts: Vec<Vec<(Arc<str>, Arc<str>)>> = Vec::new();
        for a in alternatives {
            let s = match schemes
                .iter()
                .position(|(g, c)| **g == *a.agency && **c == *a.scheme)
            {
                Some(s) => s,
                None => {
                    schemes.push((Box::from(a.agency.as_str()), Box::from(a.scheme.as_str())));
                    alts.push(Vec::new());
                    schemes.len() - 1
                }
            };
            alts[s].push((Arc::from(a.id.as_str()), pid(&a.pid)));
        }
        d.alternative_of = Arc::new(
            alts.iter()
                .map(|list| list.iter().map(|(id, p)| (p.clone(), id.clone())).collect())
                .collect(),
        );
        d.alternatives = Arc::new(alts.into_iter().map(|list| list.into_iter().collect()).collect());
        d.schemes = Arc::new(schemes);
        let mut by_pid: HashMap<Arc<str>, Vec<Arc<str>>> = HashMap::new();
        let mut user_rows = Vec::with_capacity(users.len());
        for u in users {
            let name: Arc<str> = Arc::from(u.user.as_str());
            let p = pid(&u.pid);
            by_pid.entry(p.clone()).or_default().push(name.clone());
            user_rows.push((name, p));
        }
        d.users = user_rows.into_iter().collect();
        d.users_of = by_pid
            .into_iter()
            .map(|(p, mut list)| {
                list.sort();
                (p, Arc::from(list))
            })
            .collect();
        type Params = Vec<(Arc<str>, Arc<str>)>;
        let mut by_pid: HashMap<Arc<str>, Params> = HashMap::new();
        for s in strings {
            by_pid
                .entry(pid(&s.pid))
                .or_default()
                .push((Arc::from(s.id.as_str()), Arc::from(s.value.as_str())));
        }
        d.strings = by_pid
            .into_iter()
            .map(|(p, list)| (p, list.into_iter().collect()))
            .collect();
        d
    }

    /// Applies what a committed change did.
    pub fn apply(&mut self, deltas: &[PartnerDelta]) {
        for delta in deltas {
            match delta {
                PartnerDelta::Alternative {
                    agency,
                    scheme,
                    id,
                    pid,
                } => self.set_alternative(agency, scheme, id, pid.as_deref()),
                PartnerDelta::User { user, pid } => self.set_user(user, pid.as_deref()),
                PartnerDelta::String { pid, id, value } => {
                    let mut params = self.strings.get(pid.as_str()).cloned().unwrap_or_default();
                    match value {
                        Some(v) => {
                            params.insert(Arc::from(id.as_str()), Arc::from(v.as_str()));
                        }
                        None => {
                            params.remove(id.as_str());
                        }
                    }
                    if params.is_empty() {
                        self.strings.remove(pid.as_str());
                    } else {
                        self.strings.insert(Arc::from(pid.as_str()), params);
                    }
                }
                PartnerDelta::Binary { .. } | PartnerDelta::PartnerRemoved { .. } => {}
            }
        }
    }

    /// Directories hold a handful of (agency, scheme) pairs: a scan beats hashing two strings.
    fn scheme(&self, agency: &str, scheme: &str) -> Option<SchemeId> {
        self.schemes
            .iter()
            .position(|(g, c)| **g == *agency && **c == *scheme)
    }

    fn set_alternative(&mut self, agency: &str, scheme: &str, id: &str, pid: Option<&str>) {
        let s = match self.scheme(agency, scheme) {
            Some(s) => s,
            None if pid.is_none() => return,
            None => {
                Arc::make_mut(&mut self.schemes).push((Box::from(agency), Box::from(scheme)));
                Arc::make_mut(&mut self.alternatives).push(PMap::new());
                Arc::make_mut(&mut self.alternative_of).push(PMap::new());
                self.schemes.len() - 1
            }
        };
        let alternatives = &mut Arc::make_mut(&mut self.alternatives)[s];
        let alternative_of = &mut Arc::make_mut(&mut self.alternative_of)[s];
        if let Some(old) = alternatives.remove(id) {
            alternative_of.remove(&old);
        }
        if let Some(pid) = pid {
            let id: Arc<str> = Arc::from(id);
            let pid: Arc<str> = Arc::from(pid);
            alternatives.insert(id.clone(), pid.clone());
            alternative_of.insert(pid, id);
        }
    }

    fn set_user(&mut self, user: &str, pid: Option<&str>) {
        let name: Arc<str> = Arc::from(user);
        if let Some(old) = self.users.remove(&name) {
            let rest: Vec<Arc<str>> = self
                .users_of
                .get(&old)
                .map(|l| l.iter().filter(|u| **u != name).cloned().collect())
                .unwrap_or_default();
            if rest.is_empty() {
                self.users_of.remove(&old);
            } else {
                self.users_of.insert(old, Arc::from(rest));
            }
        }
        if let Some(pid) = pid {
            let pid: Arc<str> = Arc::from(pid);
            self.users.insert(name.clone(), pid.clone());
            let mut list: Vec<Arc<str>> = self.users_of.get(&pid).map(|l| l.to_vec()).unwrap_or_default();
            list.push(name);
            list.sort();
            self.users_of.insert(pid, Arc::from(list));
        }
    }

    /// The Pid an authorized user belongs to (`getPartnerIdOfAuthorizedUser`); `user` is
    /// compared lower-case.
    pub fn partner_of_user(&self, user: &str) -> Option<&str> {
        if user.bytes().any(|b| b.is_ascii_uppercase()) || !user.is_ascii() {
            return self.users.get(user.to_lowercase().as_str()).map(|p| &**p);
        }
        self.users.get(user).map(|p| &**p)
    }

    /// Whether the user is an authorized user of some partner (and so holds `ESBMessaging.send`).
    pub fn is_authorized_user(&self, user: &str) -> bool {
        self.partner_of_user(user).is_some()
    }

    /// The Pid an alternative partner names (`getPartnerId`).
    pub fn partner_of_alternative(&self, agency: &str, scheme: &str, id: &str) -> Option<&str> {
        let s = self.scheme(agency, scheme)?;
        self.alternatives[s].get(id).map(|p| &**p)
    }

    /// A partner's alternative id for an agency and scheme (`getAlternativePartnerId`).
    pub fn alternative_of_partner(&self, agency: &str, scheme: &str, pid: &str) -> Option<&str> {
        let s = self.scheme(agency, scheme)?;
        self.alternative_of[s].get(pid).map(|i| &**i)
    }

    /// A partner's authorized users, lower-case and sorted (`getAuthorizedUsers`).
    pub fn authorized_users(&self, pid: &str) -> Vec<String> {
        self.users_of
            .get(pid)
            .map(|l| l.iter().map(|u| u.to_string()).collect())
            .unwrap_or_default()
    }

    /// A string parameter's value (`getParameter(id, pid, String.class)`).
    pub fn string_parameter(&self, pid: &str, id: &str) -> Option<&str> {
        self.strings.get(pid)?.get(id).map(|v| &**v)
    }

    /// Sizes, for metrics and logs: (alternative partners, authorized users, string parameters).
    pub fn sizes(&self) -> (usize, usize, usize) {
        (
            self.alternatives.iter().map(PMap::len).sum(),
            self.users.len(),
            self.strings.values().map(PMap::len).sum(),
        )
    }
}

#[cfg(test)]
mod tests {
    use postern_core::partner::Audit;

    use super::*;

    fn audit() -> Audit {
        Audit {
            created_by: "t".into(),
            created_at: 0,
            modified_by: "t".into(),
            modified_at: 0,
        }
    }

    fn alt(id: &str, pid: &str) -> AlternativePartner {
        AlternativePartner {
            agency: "016".into(),
            scheme: "DUNS".into(),
            id: id.into(),
            pid: pid.into(),
            audit: audit(),
        }
    }

    #[test]
    fn lookups_and_deltas() {
        let users = [AuthorizedUser {
            user: "partner-a".into(),
            pid: "ACME".into(),
            audit: audit(),
        }];
        let strings = [StringParameter {
            pid: "ACME".into(),
            id: "ReceiverAddress".into(),
            value: "https://acme".into(),
            audit: audit(),
        }];
        let mut d = Directory::build(&[alt("123", "ACME")], &users, &strings);
        let before = d.clone();
        assert_eq!(d.partner_of_alternative("016", "DUNS", "123"), Some("ACME"));
        assert_eq!(d.partner_of_alternative("016", "GLN", "123"), None);
        assert_eq!(d.alternative_of_partner("016", "DUNS", "ACME"), Some("123"));
        assert_eq!(d.partner_of_user("Partner-A"), Some("ACME"));
        assert_eq!(d.authorized_users("ACME"), vec!["partner-a".to_string()]);
        assert_eq!(
            d.string_parameter("ACME", "ReceiverAddress"),
            Some("https://acme")
        );

        d.apply(&[
            PartnerDelta::Alternative {
                agency: "016".into(),
                scheme: "DUNS".into(),
                id: "123".into(),
                pid: Some("GLOBEX".into()),
            },
            PartnerDelta::Alternative {
                agency: "ZZZ".into(),
                scheme: "X12".into(),
                id: "SENDER".into(),
                pid: Some("ACME".into()),
            },
            PartnerDelta::User {
                user: "partner-b".into(),
                pid: Some("ACME".into()),
            },
            PartnerDelta::User {
                user: "partner-a".into(),
                pid: None,
            },
            PartnerDelta::String {
                pid: "ACME".into(),
                id: "ReceiverAddress".into(),
                value: None,
            },
        ]);
        assert_eq!(d.partner_of_alternative("016", "DUNS", "123"), Some("GLOBEX"));
        assert_eq!(d.alternative_of_partner("016", "DUNS", "ACME"), None);
        assert_eq!(d.alternative_of_partner("016", "DUNS", "GLOBEX"), Some("123"));
        assert_eq!(d.partner_of_alternative("ZZZ", "X12", "SENDER"), Some("ACME"));
        assert!(!d.is_authorized_user("partner-a"));
        assert_eq!(d.authorized_users("ACME"), vec!["partner-b".to_string()]);
        assert_eq!(d.string_parameter("ACME", "ReceiverAddress"), None);
        // The clone taken before is unchanged (readers of the old snapshot see the old state).
        assert_eq!(before.partner_of_alternative("016", "DUNS", "123"), Some("ACME"));
        assert!(before.is_authorized_user("partner-a"));
    }
}
