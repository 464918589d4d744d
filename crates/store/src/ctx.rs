//! The write context every admin service takes: the store, who acts, from where, and when.

use postern_core::Result;
use postern_core::model::AuditEntry;

use crate::Store;

/// Who is acting, from where, and when; writes go through it so each change is audited.
pub struct Ctx<'a> {
    /// The store to change.
    pub store: &'a dyn Store,
    /// The authenticated actor (user name or client id).
    pub actor: &'a str,
    /// The peer address of the request.
    pub source: &'a str,
    /// Now, Unix ms.
    pub now: i64,
}

impl Ctx<'_> {
    /// Appends an audit entry for a change this actor made (details must hold no secret).
    pub async fn audit(&self, action: &str, target: &str, detail: serde_json::Value) -> Result<()> {
        let entry = AuditEntry {
            id: 0,
            at: self.now,
            actor: self.actor.to_owned(),
            action: action.to_owned(),
            target: target.to_owned(),
            detail: detail.to_string(),
            source: self.source.to_owned(),
        };
        self.store.append_audit(&[entry]).await
    }
}
