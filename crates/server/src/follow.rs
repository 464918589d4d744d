//! Following the changes other nodes make (PostgreSQL change feed). Partner Directory rows are
//! re-read by key and applied to the directory; a changed service instance (or its keys or roles)
//! or technical user is re-read by name; flows and token keys are re-read as a whole; anything
//! else (trust, certificate mappings) rebuilds the security snapshot. Applying is idempotent, so a change
//! seen twice costs a re-read, never a wrong state.

use std::collections::{BTreeSet, HashSet};

use postern_core::Result;
use postern_core::mpl::{CmpOp, Literal};
use postern_core::partner::{
    PartnerCondition, PartnerDelta, PartnerField, PartnerQuery, PartnerRow, PartnerSet,
};
use postern_store::Change;

use crate::state::{AppState, Scope};

/// How long after its number a change may still commit and be picked up.
const WINDOW_MS: i64 = 5_000;
/// Most changes read per poll.
const BATCH: u32 = 100_000;
/// Above this many Partner Directory keys in one poll, reload the directory whole.
const MAX_KEYED: usize = 5_000;

/// Where a node is in the change feed.
#[derive(Debug)]
pub struct Follower {
    last: i64,
    seen: HashSet<i64>,
}

/// What one poll did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Changes applied.
    pub changes: usize,
    /// Whether the security snapshot was rebuilt.
    pub security: bool,
    /// Partner Directory entries re-read.
    pub partner_keys: usize,
    /// Whether everything was reloaded because changes this node missed were pruned.
    pub full_reload: bool,
}

fn text(key: &serde_json::Value, field: &str) -> Option<String> {
    key.get(field)?.as_str().map(str::to_owned)
}

fn eq(field: PartnerField, value: &str) -> PartnerCondition {
    PartnerCondition {
        field,
        op: CmpOp::Eq,
        value: Literal::Text(value.to_owned()),
    }
}

impl Follower {
    /// Starts after the newest change: what came before is in the state loaded at start.
    pub async fn start(state: &AppState) -> Result<Self> {
        Ok(Self {
            last: state.store().last_change().await?,
            seen: HashSet::new(),
        })
    }

    /// Applies the changes recorded since the last poll; reloads everything when some of them
    /// were pruned before this node read them (it was away longer than the feed keeps changes).
    pub async fn poll(&mut self, state: &AppState) -> Result<Applied> {
        if self.last < state.store().pruned_through().await? {
            // Read the position first: what is written while reloading is applied again next
            // time, which is harmless.
            let last = state.store().last_change().await?;
            state.reload().await?;
            state.reload_directory().await?;
            self.last = last;
            self.seen.clear();
            return Ok(Applied {
                security: true,
                full_reload: true,
                ..Applied::default()
            });
        }
        let rows = state.store().changes_after(self.last, WINDOW_MS, BATCH).await?;
        let fresh: Vec<&Change> = rows.iter().filter(|c| !self.seen.contains(&c.seq)).collect();
        let mut applied = Applied {
            changes: fresh.len(),
            ..Applied::default()
        };
        if !fresh.is_empty() {
            let mut keys: Vec<&Change> = Vec::new();
            // What to re-read: single instances and users by name, or whole parts.
            let (mut instances, mut users) = (BTreeSet::new(), BTreeSet::new());
            let (mut all, mut flows, mut tokens) = (false, false, false);
            for c in &fresh {
                match c.entity.as_str() {
                    "alternative_partners" | "authorized_users" | "string_parameters" => keys.push(c),
                    "partners" | "binary_parameters" | "roles" => {}
                    "service_instances" | "service_keys" | "instance_roles" => {
                        match text(&c.key, "name").or_else(|| text(&c.key, "instance")) {
                            Some(name) => {
                                instances.insert(name);
                            }
                            None => all = true,
                        }
                    }
                    "users" | "user_roles" => {
                        match text(&c.key, "name").or_else(|| text(&c.key, "user_name")) {
                            Some(name) => {
                                users.insert(name);
                            }
                            None => all = true,
                        }
                    }
                    // Flows are compiled with their back-end credentials.
                    "flows" | "flow_roles" | "credentials" => flows = true,
                    "token_keys" => tokens = true,
                    _ => all = true,
                }
            }
            // Many single changes at once cost more than one rebuild.
            if instances.len() + users.len() > MAX_KEYED {
                all = true;
            }
            applied.security = all || flows || tokens || !instances.is_empty() || !users.is_empty();
            if all {
                state.reload().await?;
            } else {
                for name in &instances {
                    state.refresh(Scope::Instance(name)).await?;
                }
                for name in &users {
                    state.refresh(Scope::User(name)).await?;
                }
                if flows {
                    state.refresh(Scope::Flows).await?;
                }
                if tokens {
                    state.refresh(Scope::TokenKeys).await?;
                }
            }
            if keys.len() > MAX_KEYED {
                state.reload_directory().await?;
                applied.partner_keys = keys.len();
            } else if !keys.is_empty() {
                let reread = async {
                    let mut deltas = Vec::with_capacity(keys.len());
                    for c in &keys {
                        if let Some(d) = current(state, c).await? {
                            deltas.push(d);
                        }
                    }
                    Ok(deltas)
                };
                applied.partner_keys = state.apply_partner_deltas(reread).await?;
            }
        }
        // Numbers at or below `last` can only come back inside the window; remember those.
        self.seen = rows.iter().map(|c| c.seq).collect();
        self.last = rows
            .iter()
            .map(|c| c.seq)
            .max()
            .unwrap_or(self.last)
            .max(self.last);
        Ok(applied)
    }
}

/// The delta that brings this node's directory to the store's current row for a changed key.
async fn current(state: &AppState, c: &Change) -> Result<Option<PartnerDelta>> {
    let (set, conditions) = match c.entity.as_str() {
        "alternative_partners" => {
            let (Some(agency), Some(scheme), Some(id)) =
                (text(&c.key, "agency"), text(&c.key, "scheme"), text(&c.key, "id"))
            else {
                return Ok(None);
            };
            let conds = vec![
                eq(PartnerField::Agency, &agency),
                eq(PartnerField::Scheme, &scheme),
                eq(PartnerField::Id, &id),
            ];
            let (rows, _) = query(state, PartnerSet::AlternativePartners, conds).await?;
            let pid = rows.into_iter().find_map(|r| match r {
                PartnerRow::Alternative(a) => Some(a.pid),
                _ => None,
            });
            return Ok(Some(PartnerDelta::Alternative {
                agency,
                scheme,
                id,
                pid,
            }));
        }
        "authorized_users" => {
            let Some(user) = text(&c.key, "user_name") else {
                return Ok(None);
            };
            (PartnerSet::AuthorizedUsers, vec![eq(PartnerField::User, &user)])
        }
        "string_parameters" => {
            let (Some(pid), Some(id)) = (text(&c.key, "pid"), text(&c.key, "id")) else {
                return Ok(None);
            };
            (
                PartnerSet::StringParameters,
                vec![eq(PartnerField::Pid, &pid), eq(PartnerField::Id, &id)],
            )
        }
        _ => return Ok(None),
    };
    let (rows, _) = query(state, set, conditions.clone()).await?;
    let row = rows.into_iter().next();
    Ok(match (set, row) {
        (PartnerSet::AuthorizedUsers, Some(PartnerRow::User(u))) => Some(PartnerDelta::User {
            user: u.user,
            pid: Some(u.pid),
        }),
        (PartnerSet::AuthorizedUsers, _) => {
            text(&c.key, "user_name").map(|user| PartnerDelta::User { user, pid: None })
        }
        (PartnerSet::StringParameters, Some(PartnerRow::String(p))) => Some(PartnerDelta::String {
            pid: p.pid,
            id: p.id,
            value: Some(p.value),
        }),
        (PartnerSet::StringParameters, _) => match (text(&c.key, "pid"), text(&c.key, "id")) {
            (Some(pid), Some(id)) => Some(PartnerDelta::String { pid, id, value: None }),
            _ => None,
        },
        _ => None,
    })
}

async fn query(
    state: &AppState,
    set: PartnerSet,
    conditions: Vec<PartnerCondition>,
) -> Result<(Vec<PartnerRow>, u64)> {
    state
        .store()
        .query_partners(&PartnerQuery {
            set,
            conditions,
            order_by: None,
            top: 1,
            skip: 0,
        })
        .await
}
