//! The Partner Directory as the request path reads it. Alternative partners and authorized
//! users, millions of short strings, are held in [`PackedLayered`] maps (one string of text, an
//! index of 32-bit entry numbers and a small layer of recent changes on top); string parameters in
//! [`Layered`] hash maps. A change copies the small layer, not the directory, so a directory of a
//! million alternative partners is updated in microseconds and swapped in atomically with the
//! rest of the snapshot, while lookups stay single hash-table probes. Binary parameters stay in
//! the store.

use std::collections::HashMap;
use std::sync::Arc;

use postern_core::layered::Layered;
use postern_core::partner::{
    AlternativePartner, AuthorizedUser, DirectorySink, PartnerDelta, StringParameter,
};

use crate::packed::{Full, Packed, PackedEdit, PackedLayered};

/// An (agency, scheme) pair, interned: directories hold few of them and millions of ids.
type SchemeId = usize;

/// Text shared between the string-parameter maps (a Pid is stored once however many
/// parameters it has).
type Text = Arc<str>;

/// A partner's string parameters: id → value.
type Params = Arc<HashMap<Text, Text>>;

/// Separates the users in a Pid's list of authorized users (user names hold no control
/// characters).
const USER_SEPARATOR: char = '\n';

/// The in-memory directory. Cloning is O(1); a change costs amortised O(√n) copies.
#[derive(Clone, Debug, Default)]
pub struct Directory {
    /// The (agency, scheme) pairs; the index is the [`SchemeId`].
    schemes: Arc<Vec<(Box<str>, Box<str>)>>,
    /// Per scheme: alternative id → Pid.
    alternatives: Arc<Vec<PackedLayered>>,
    /// Per scheme: Pid → alternative id (SAP makes this unique too).
    alternative_of: Arc<Vec<PackedLayered>>,
    /// Lower-case user → Pid.
    users: PackedLayered,
    /// Pid → its authorized users, sorted, joined by [`USER_SEPARATOR`].
    users_of: PackedLayered,
    /// Pid → parameter id → value.
    strings: Layered<Text, Params>,
}

impl Directory {
    /// Builds the directory from the store's rows.
    pub fn build(
        alternatives: &[AlternativePartner],
        users: &[AuthorizedUser],
        strings: &[StringParameter],
    ) -> Result<Self, Full> {
        let mut b = DirectoryBuilder::default();
        for a in alternatives {
            b.alternative(&a.agency, &a.scheme, &a.id, &a.pid);
        }
        for u in users {
            b.user(&u.user, &u.pid);
        }
        for p in strings {
            b.string(&p.pid, &p.id, &p.value);
        }
        b.finish()
    }

    /// Applies what a committed change did.
    pub fn apply(&mut self, deltas: &[PartnerDelta]) {
        let mut users = self.users.edit();
        let mut users_of = self.users_of.edit();
        let mut strings = self.strings.edit();
        for delta in deltas {
            match delta {
                PartnerDelta::User { user, pid } => set_user(&mut users, &mut users_of, user, pid.as_deref()),
                PartnerDelta::String { pid, id, value } => {
                    let mut params: HashMap<Text, Text> = strings
                        .get(pid.as_str())
                        .map(|p| (**p).clone())
                        .unwrap_or_default();
                    match value {
                        Some(v) => {
                            params.insert(Arc::from(id.as_str()), Arc::from(v.as_str()));
                        }
                        None => {
                            params.remove(id.as_str());
                        }
                    }
                    let key: Text = Arc::from(pid.as_str());
                    if params.is_empty() {
                        strings.remove(&key);
                    } else {
                        strings.insert(key, Arc::new(params));
                    }
                }
                PartnerDelta::Alternative { .. }
                | PartnerDelta::Binary { .. }
                | PartnerDelta::PartnerRemoved { .. } => {}
            }
        }
        let (users, users_of, strings) = (users.finish(), users_of.finish(), strings.finish());
        self.users = users;
        self.users_of = users_of;
        self.strings = strings;
        // Alternative partners per scheme; schemes are independent, order within one is kept.
        // (alternative id, new Pid or removed), in order, per scheme.
        type Moves<'d> = Vec<(&'d str, Option<&'d str>)>;
        let mut by_scheme: Vec<(SchemeId, Moves<'_>)> = Vec::new();
        for delta in deltas {
            if let PartnerDelta::Alternative {
                agency,
                scheme,
                id,
                pid,
            } = delta
            {
                let s = match self.scheme(agency, scheme) {
                    Some(s) => s,
                    None if pid.is_none() => continue,
                    None => {
                        Arc::make_mut(&mut self.schemes)
                            .push((Box::from(agency.as_str()), Box::from(scheme.as_str())));
                        Arc::make_mut(&mut self.alternatives).push(PackedLayered::default());
                        Arc::make_mut(&mut self.alternative_of).push(PackedLayered::default());
                        self.schemes.len() - 1
                    }
                };
                match by_scheme.iter_mut().find(|(k, _)| *k == s) {
                    Some((_, list)) => list.push((id, pid.as_deref())),
                    None => by_scheme.push((s, vec![(id, pid.as_deref())])),
                }
            }
        }
        for (s, list) in by_scheme {
            let mut forward = self.alternatives[s].edit();
            let mut reverse = self.alternative_of[s].edit();
            for (id, pid) in list {
                if let Some(old) = forward.remove(id) {
                    reverse.remove(&old);
                }
                if let Some(pid) = pid {
                    forward.insert(id, pid);
                    reverse.insert(pid, id);
                }
            }
            let (forward, reverse) = (forward.finish(), reverse.finish());
            Arc::make_mut(&mut self.alternatives)[s] = forward;
            Arc::make_mut(&mut self.alternative_of)[s] = reverse;
        }
    }

    /// Directories hold a handful of (agency, scheme) pairs: a scan beats hashing two strings.
    fn scheme(&self, agency: &str, scheme: &str) -> Option<SchemeId> {
        self.schemes
            .iter()
            .position(|(g, c)| **g == *agency && **c == *scheme)
    }

    /// The Pid an authorized user belongs to (`getPartnerIdOfAuthorizedUser`); `user` is
    /// compared lower-case.
    pub fn partner_of_user(&self, user: &str) -> Option<&str> {
        if user.bytes().any(|b| b.is_ascii_uppercase()) || !user.is_ascii() {
            return self.users.get(user.to_lowercase().as_str());
        }
        self.users.get(user)
    }

    /// Whether the user is an authorized user of some partner (and so holds `ESBMessaging.send`).
    pub fn is_authorized_user(&self, user: &str) -> bool {
        self.partner_of_user(user).is_some()
    }

    /// The Pid an alternative partner names (`getPartnerId`).
    pub fn partner_of_alternative(&self, agency: &str, scheme: &str, id: &str) -> Option<&str> {
        let s = self.scheme(agency, scheme)?;
        self.alternatives[s].get(id)
    }

    /// A partner's alternative id for an agency and scheme (`getAlternativePartnerId`).
    pub fn alternative_of_partner(&self, agency: &str, scheme: &str, pid: &str) -> Option<&str> {
        let s = self.scheme(agency, scheme)?;
        self.alternative_of[s].get(pid)
    }

    /// A partner's authorized users, lower-case and sorted (`getAuthorizedUsers`).
    pub fn authorized_users(&self, pid: &str) -> Vec<String> {
        self.users_of
            .get(pid)
            .map(|l| l.split(USER_SEPARATOR).map(String::from).collect())
            .unwrap_or_default()
    }

    /// A string parameter's value (`getParameter(id, pid, String.class)`).
    pub fn string_parameter(&self, pid: &str, id: &str) -> Option<&str> {
        self.strings.get(pid)?.get(id).map(|v| &**v)
    }

    /// Sizes, for metrics and logs: (alternative partners, authorized users, string parameters).
    pub fn sizes(&self) -> (usize, usize, usize) {
        (
            self.alternatives.iter().map(PackedLayered::len).sum(),
            self.users.len(),
            self.strings.iter().map(|(_, p)| p.len()).sum(),
        )
    }
}

/// Builds a [`Directory`] from rows handed over one at a time (the store streams them).
#[derive(Default)]
pub struct DirectoryBuilder {
    pids: std::collections::HashSet<Text>,
    schemes: Vec<(Box<str>, Box<str>)>,
    alternatives: Vec<Packed>,
    users: Packed,
    strings: HashMap<Text, HashMap<Text, Text>>,
    /// Some map's text passed 4 GiB.
    full: bool,
}

impl DirectoryBuilder {
    fn pid(&mut self, p: &str) -> Text {
        if let Some(found) = self.pids.get(p) {
            return found.clone();
        }
        let new: Text = Arc::from(p);
        self.pids.insert(new.clone());
        new
    }

    /// The directory, or [`Full`] when its alternative partners or users do not fit the packed
    /// maps' 4 GiB of text.
    pub fn finish(self) -> Result<Directory, Full> {
        if self.full {
            return Err(Full);
        }
        let mut alternative_of = Vec::with_capacity(self.alternatives.len());
        for forward in &self.alternatives {
            let mut reverse = Packed::default();
            for (id, pid) in forward.iter() {
                reverse.insert(pid, id)?;
            }
            alternative_of.push(PackedLayered::new(reverse));
        }
        let mut by_pid: HashMap<&str, Vec<&str>> = HashMap::new();
        for (user, pid) in self.users.iter() {
            by_pid.entry(pid).or_default().push(user);
        }
        let mut users_of = Packed::default();
        for (pid, mut list) in by_pid {
            list.sort_unstable();
            users_of.insert(pid, &join_users(list.into_iter()))?;
        }
        Ok(Directory {
            schemes: Arc::new(self.schemes),
            alternatives: Arc::new(self.alternatives.into_iter().map(PackedLayered::new).collect()),
            alternative_of: Arc::new(alternative_of),
            users_of: PackedLayered::new(users_of),
            users: PackedLayered::new(self.users),
            strings: Layered::new(self.strings.into_iter().map(|(p, m)| (p, Arc::new(m))).collect()),
        })
    }
}

impl DirectorySink for DirectoryBuilder {
    fn alternative(&mut self, agency: &str, scheme: &str, id: &str, pid: &str) {
        let s = match self
            .schemes
            .iter()
            .position(|(g, c)| **g == *agency && **c == *scheme)
        {
            Some(s) => s,
            None => {
                self.schemes.push((Box::from(agency), Box::from(scheme)));
                self.alternatives.push(Packed::default());
                self.schemes.len() - 1
            }
        };
        self.full |= self.alternatives[s].insert(id, pid).is_err();
    }

    fn user(&mut self, user: &str, pid: &str) {
        self.full |= self.users.insert(user, pid).is_err();
    }

    fn string(&mut self, pid: &str, id: &str, value: &str) {
        let pid = self.pid(pid);
        self.strings
            .entry(pid)
            .or_default()
            .insert(Arc::from(id), Arc::from(value));
    }
}

/// Moves `user` to `pid` (or removes it), keeping each Pid's sorted user list in step.
fn set_user(users: &mut PackedEdit<'_>, users_of: &mut PackedEdit<'_>, user: &str, pid: Option<&str>) {
    if let Some(old) = users.remove(user) {
        let rest = users_of
            .get(&old)
            .map(|l| join_users(l.split(USER_SEPARATOR).filter(|u| *u != user)))
            .unwrap_or_default();
        if rest.is_empty() {
            users_of.remove(&old);
        } else {
            users_of.insert(&old, &rest);
        }
    }
    if let Some(pid) = pid {
        users.insert(user, pid);
        let list = {
            let mut list: Vec<&str> = users_of
                .get(pid)
                .map(|l| l.split(USER_SEPARATOR).collect())
                .unwrap_or_default();
            list.push(user);
            list.sort_unstable();
            list.dedup();
            join_users(list.into_iter())
        };
        users_of.insert(pid, &list);
    }
}

/// Users joined by [`USER_SEPARATOR`].
fn join_users<'u>(users: impl Iterator<Item = &'u str>) -> String {
    let mut out = String::new();
    for (i, u) in users.enumerate() {
        if i > 0 {
            out.push(USER_SEPARATOR);
        }
        out.push_str(u);
    }
    out
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
        let mut d = Directory::build(&[alt("123", "ACME")], &users, &strings).expect("fits");
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
