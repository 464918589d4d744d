//! The routing table: deployed flows by sender address. Exact addresses are a hash lookup;
//! wildcard addresses (`/prefix/*`) are tried longest prefix first. Addresses are
//! case-insensitive.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use postern_core::Error;
use postern_core::model::StoredFlow;

use crate::definition::{Flow, parse_flow};
use crate::receiver::BackendCredential;
use crate::stats::FlowStats;

/// A flow as deployed: compiled, with where it came from.
#[derive(Debug)]
pub struct DeployedFlow {
    /// The compiled flow.
    pub flow: Flow,
    /// The YAML it was deployed from.
    pub yaml: String,
    /// Deployment time, Unix ms.
    pub deployed_at: i64,
    /// Who deployed it.
    pub deployed_by: String,
    /// Requests and latencies (carried over from the table this one replaces).
    pub stats: Arc<FlowStats>,
}

/// Deployed flows by address and by id.
#[derive(Debug, Default)]
pub struct FlowTable {
    exact: HashMap<String, Arc<DeployedFlow>>,
    wildcards: Vec<(String, Arc<DeployedFlow>)>,
    by_id: BTreeMap<String, Arc<DeployedFlow>>,
}

impl FlowTable {
    /// Compiles stored flows. A flow that no longer compiles is left out and returned with its
    /// error so the caller can report it; the others still serve.
    /// Credentials are looked up by name and bound to the receivers that present them; each
    /// flow keeps the counters it had in `previous`.
    pub fn build(
        stored: &[StoredFlow],
        credentials: &dyn Fn(&str) -> Option<BackendCredential>,
        previous: &FlowTable,
    ) -> (Self, Vec<(String, Error)>) {
        let mut table = Self::default();
        let mut failed = Vec::new();
        for s in stored {
            let compiled = parse_flow(&s.yaml).and_then(|mut f| f.bind_credentials(credentials).map(|()| f));
            match compiled {
                Ok(flow) => {
                    let d = Arc::new(DeployedFlow {
                        flow,
                        yaml: s.yaml.clone(),
                        deployed_at: s.deployed_at,
                        deployed_by: s.deployed_by.clone(),
                        stats: previous
                            .get(s.id.as_str())
                            .map(|d| d.stats.clone())
                            .unwrap_or_default(),
                    });
                    table.insert(d);
                }
                Err(e) => failed.push((s.id.to_string(), e)),
            }
        }
        table.wildcards.sort_by_key(|w| std::cmp::Reverse(w.0.len()));
        (table, failed)
    }

    fn insert(&mut self, d: Arc<DeployedFlow>) {
        let path = d.flow.address.path().to_owned();
        if d.flow.address.is_wildcard() {
            self.wildcards.push((path, d.clone()));
        } else {
            self.exact.insert(path, d.clone());
        }
        self.by_id.insert(d.flow.id.to_string(), d);
    }

    /// The flow serving a request path (the part after `/http`).
    pub fn route(&self, path: &str) -> Option<&Arc<DeployedFlow>> {
        let lower;
        let path = if path.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = path.to_ascii_lowercase();
            lower.as_str()
        } else {
            path
        };
        if let Some(f) = self.exact.get(path) {
            return Some(f);
        }
        self.wildcards
            .iter()
            .find(|(prefix, _)| {
                path.len() > prefix.len() + 1
                    && path.starts_with(prefix.as_str())
                    && path.as_bytes()[prefix.len()] == b'/'
            })
            .map(|(_, f)| f)
    }

    /// A flow by id.
    pub fn get(&self, id: &str) -> Option<&Arc<DeployedFlow>> {
        self.by_id.get(id)
    }

    /// All flows by id.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<DeployedFlow>> {
        self.by_id.values()
    }
}

#[cfg(test)]
mod tests {
    use postern_core::ids::FlowId;

    use super::*;

    fn stored(id: &str, address: &str) -> StoredFlow {
        StoredFlow {
            id: FlowId::parse(id).expect("valid"),
            yaml: format!(
                "id: {id}\nsender: {{ adapter: https, address: \"{address}\" }}\nreceiver: {{ reply: {{}} }}\n"
            ),
            deployed_at: 0,
            deployed_by: "t".into(),
        }
    }

    #[test]
    fn routes_exact_case_insensitive_and_longest_wildcard() {
        let (t, failed) = FlowTable::build(
            &[
                stored("a", "/orders"),
                stored("b", "/partners/*"),
                stored("c", "/partners/acme/*"),
            ],
            &|_| None,
            &FlowTable::default(),
        );
        assert!(failed.is_empty());
        let id = |p: &str| t.route(p).map(|f| f.flow.id.to_string());
        assert_eq!(id("/orders").as_deref(), Some("a"));
        assert_eq!(id("/ORDERS").as_deref(), Some("a"));
        assert_eq!(id("/orders/x"), None);
        assert_eq!(id("/partners/x").as_deref(), Some("b"));
        assert_eq!(id("/partners/acme/x/y").as_deref(), Some("c"));
        assert_eq!(id("/partners"), None);
        assert_eq!(id("/partnersx/y"), None);
        assert_eq!(id("/nothing"), None);
    }
}
