//! What both backends share: error mapping and wording, JSON lists, the column whitelists of the
//! query APIs, and the deltas a Partner Directory change makes. Nothing here knows a dialect;
//! where SQL differs (placeholders), the caller passes the difference in.

use postern_core::mpl::{CmpOp, MplField};
use postern_core::partner::{
    AlternativePartner, AuthorizedUser, PartnerChange, PartnerDelta, PartnerField, PartnerSet,
};
use postern_core::{Error, Result};

/// Maps a driver error to a domain error: unique violations are conflicts, a pool or network
/// failure means the database cannot serve now, anything else is ours.
pub(crate) fn storage(e: sqlx::Error) -> Error {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => Error::Conflict("already exists".into()),
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            Error::Unavailable(e.to_string())
        }
        _ => Error::Internal(format!("database: {e}")),
    }
}

/// A stored value that does not parse back (a bug or a hand-edited database).
pub(crate) fn corrupt(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("stored {what} is invalid: {e}"))
}

/// Reads a list stored as a JSON array of strings.
pub(crate) fn json_list(text: &str) -> Result<Vec<String>> {
    serde_json::from_str(text).map_err(|e| corrupt("list", e))
}

/// Writes a list as a JSON array of strings.
pub(crate) fn to_json(list: &[String]) -> String {
    serde_json::Value::from(list.to_vec()).to_string()
}

/// A stored SHA-256 fingerprint.
pub(crate) fn fingerprint(what: &str, bytes: Vec<u8>) -> Result<[u8; 32]> {
    bytes.try_into().map_err(|_| corrupt(what, "length"))
}

/// A row count as the API's unsigned count.
pub(crate) fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// The SQL operator of a comparison.
pub(crate) fn operator(op: CmpOp) -> &'static str {
    match op {
        CmpOp::Eq => "=",
        CmpOp::Ne => "<>",
        CmpOp::Gt => ">",
        CmpOp::Ge => ">=",
        CmpOp::Lt => "<",
        CmpOp::Le => "<=",
    }
}

/// Appends ` WHERE c1 op P AND c2 op P ...` from whitelisted columns and fixed operators; the
/// values are bound by the caller in the same order. `param(n)` is the placeholder of the n-th
/// bound value, counting from 1 (`?` on SQLite, `$n` on PostgreSQL).
pub(crate) fn push_where(
    sql: &mut String,
    comparisons: impl IntoIterator<Item = (&'static str, CmpOp)>,
    param: impl Fn(usize) -> String,
) {
    for (i, (column, op)) in comparisons.into_iter().enumerate() {
        sql.push_str(if i == 0 { " WHERE " } else { " AND " });
        sql.push_str(&format!("{column} {} {}", operator(op), param(i + 1)));
    }
}

/// The column of an MPL field.
pub(crate) fn mpl_column(field: MplField) -> &'static str {
    match field {
        MplField::MessageGuid => "guid",
        MplField::IntegrationFlowName => "flow_id",
        MplField::Status => "status",
        MplField::LogStart => "log_start",
        MplField::LogEnd => "log_end",
        MplField::Sender => "sender",
        MplField::Receiver => "receiver",
    }
}

/// The table, selected columns and key order of a Partner Directory entity set.
pub(crate) fn partner_table(set: PartnerSet) -> (&'static str, &'static str, &'static str) {
    match set {
        PartnerSet::Partners => ("partners", "pid", "pid"),
        PartnerSet::AlternativePartners => (
            "alternative_partners",
            "agency, scheme, id, pid, created_by, created_at, modified_by, modified_at",
            "agency, scheme, id",
        ),
        PartnerSet::AuthorizedUsers => (
            "authorized_users",
            "user_name, pid, created_by, created_at, modified_by, modified_at",
            "user_name",
        ),
        PartnerSet::StringParameters => (
            "string_parameters",
            "pid, id, value, created_by, created_at, modified_by, modified_at",
            "pid, id",
        ),
        PartnerSet::BinaryParameters => (
            "binary_parameters",
            "pid, id, content_type, value, created_by, created_at, modified_by, modified_at",
            "pid, id",
        ),
    }
}

/// The column of a Partner Directory field.
pub(crate) fn partner_column(field: PartnerField) -> &'static str {
    match field {
        PartnerField::Pid => "pid",
        PartnerField::Id => "id",
        PartnerField::Agency => "agency",
        PartnerField::Scheme => "scheme",
        PartnerField::User => "user_name",
        PartnerField::Value => "value",
        PartnerField::ContentType => "content_type",
        PartnerField::CreatedBy => "created_by",
        PartnerField::LastModifiedBy => "modified_by",
        PartnerField::CreatedTime => "created_at",
        PartnerField::LastModifiedTime => "modified_at",
    }
}

/// The ORDER BY list of a Partner Directory page: the requested field, then the key.
pub(crate) fn partner_order(order_by: Option<(PartnerField, bool)>, key: &str) -> String {
    match order_by {
        Some((f, desc)) => format!(
            "{} {}, {key}",
            partner_column(f),
            if desc { "DESC" } else { "ASC" }
        ),
        None => key.to_owned(),
    }
}

/// The keys the Partner Directory names in its errors (SAP's OData key form).
pub(crate) mod key {
    /// `Partners('P')`.
    pub(crate) fn partner(pid: &str) -> String {
        format!("Partners('{pid}')")
    }

    /// `AlternativePartners(Agency='A',Scheme='S',Id='I')`.
    pub(crate) fn alternative(agency: &str, scheme: &str, id: &str) -> String {
        format!("AlternativePartners(Agency='{agency}',Scheme='{scheme}',Id='{id}')")
    }

    /// `AuthorizedUsers('u')`.
    pub(crate) fn user(user: &str) -> String {
        format!("AuthorizedUsers('{user}')")
    }

    /// `StringParameters(Pid='P',Id='I')`.
    pub(crate) fn string(pid: &str, id: &str) -> String {
        format!("StringParameters(Pid='{pid}',Id='{id}')")
    }

    /// `BinaryParameters(Pid='P',Id='I')`.
    pub(crate) fn binary(pid: &str, id: &str) -> String {
        format!("BinaryParameters(Pid='{pid}',Id='{id}')")
    }
}

/// The conflict of an alternative partner insert: its key or its (agency, scheme, pid) is taken.
pub(crate) fn alternative_insert_conflict(a: &AlternativePartner) -> String {
    format!(
        "{} exists, or partner {} already has an alternative partner of agency {} and scheme {}",
        key::alternative(&a.agency, &a.scheme, &a.id),
        a.pid,
        a.agency,
        a.scheme
    )
}

/// The conflict of an alternative partner update: the new partner has one of that kind already.
pub(crate) fn alternative_update_conflict(a: &AlternativePartner) -> String {
    format!(
        "partner {} already has an alternative partner of agency {} and scheme {}",
        a.pid, a.agency, a.scheme
    )
}

/// The conflict of an authorized user insert.
pub(crate) fn user_insert_conflict(u: &AuthorizedUser) -> String {
    format!("{} exists: a user belongs to one partner", key::user(&u.user))
}

/// Replaces the generic wording of a conflict with `what`; other errors pass unchanged.
pub(crate) fn name_conflict(e: Error, what: impl FnOnce() -> String) -> Error {
    match e {
        Error::Conflict(_) => Error::Conflict(what()),
        other => other,
    }
}

/// What an applied change did, for every change but a partner delete (whose deltas depend on
/// the rows it removed).
pub(crate) fn delta(change: &PartnerChange) -> Option<PartnerDelta> {
    Some(match change {
        PartnerChange::DeletePartner { .. } => return None,
        PartnerChange::InsertAlternative(a) | PartnerChange::UpdateAlternative(a) => {
            PartnerDelta::Alternative {
                agency: a.agency.clone(),
                scheme: a.scheme.clone(),
                id: a.id.clone(),
                pid: Some(a.pid.clone()),
            }
        }
        PartnerChange::DeleteAlternative { agency, scheme, id } => PartnerDelta::Alternative {
            agency: agency.clone(),
            scheme: scheme.clone(),
            id: id.clone(),
            pid: None,
        },
        PartnerChange::InsertUser(u) | PartnerChange::UpdateUser(u) => PartnerDelta::User {
            user: u.user.clone(),
            pid: Some(u.pid.clone()),
        },
        PartnerChange::DeleteUser { user } => PartnerDelta::User {
            user: user.clone(),
            pid: None,
        },
        PartnerChange::InsertString(p) | PartnerChange::UpdateString(p) => PartnerDelta::String {
            pid: p.pid.clone(),
            id: p.id.clone(),
            value: Some(p.value.clone()),
        },
        PartnerChange::DeleteString { pid, id } => PartnerDelta::String {
            pid: pid.clone(),
            id: id.clone(),
            value: None,
        },
        PartnerChange::InsertBinary(p) | PartnerChange::UpdateBinary(p) => PartnerDelta::Binary {
            pid: p.pid.clone(),
            id: p.id.clone(),
        },
        PartnerChange::DeleteBinary { pid, id } => PartnerDelta::Binary {
            pid: pid.clone(),
            id: id.clone(),
        },
    })
}

/// Names the failing change of a change set (1-based) when there were several; a single change
/// fails with its own error.
pub(crate) fn in_change_set(changes: usize, i: usize, e: Error) -> Error {
    if changes <= 1 {
        return e;
    }
    let n = i + 1;
    match e {
        Error::NotFound(m) => Error::NotFound(format!("{m} (change {n})")),
        Error::Conflict(m) => Error::Conflict(format!("change {n}: {m}")),
        Error::Invalid { field, message } => Error::Invalid {
            field: format!("change {n}: {field}"),
            message,
        },
        other => other,
    }
}

/// The next item of a row stream.
pub(crate) async fn next_row<S, T>(rows: &mut S) -> Option<T>
where
    S: futures_core::Stream<Item = T> + Unpin,
{
    std::future::poll_fn(|cx| std::pin::Pin::new(&mut *rows).poll_next(cx)).await
}

/// The link of an audit entry in the tamper-evident chain: SHA-256 of the previous link (32 zero
/// bytes for the first) and the entry's fields, each length-prefixed.
pub fn audit_link(previous: &[u8], e: &postern_core::model::AuditEntry) -> Vec<u8> {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(previous);
    ctx.update(&e.id.to_be_bytes());
    ctx.update(&e.at.to_be_bytes());
    for field in [&e.actor, &e.action, &e.target, &e.detail, &e.source] {
        ctx.update(&(field.len() as u64).to_be_bytes());
        ctx.update(field.as_bytes());
    }
    ctx.finish().as_ref().to_vec()
}

/// A stored rate limit (both columns set), or none.
pub(crate) fn rate_limit(
    per_second: Option<i64>,
    burst: Option<i64>,
) -> Option<postern_core::model::RateLimit> {
    Some(postern_core::model::RateLimit {
        per_second: u32::try_from(per_second?).ok()?,
        burst: u32::try_from(burst?).ok()?,
    })
}

/// A query written with `?` placeholders, numbered `$1, $2, ...` for PostgreSQL. Only for our own
/// query texts, which hold no `?` inside literals.
pub(crate) fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn where_clause_numbers_placeholders_per_dialect() {
        let cmp = [("a", CmpOp::Eq), ("b", CmpOp::Ge)];
        let mut sqlite = String::from("SELECT 1 FROM t");
        push_where(&mut sqlite, cmp, |_| "?".into());
        assert_eq!(sqlite, "SELECT 1 FROM t WHERE a = ? AND b >= ?");
        let mut pg = String::from("SELECT 1 FROM t");
        push_where(&mut pg, cmp, |n| format!("${n}"));
        assert_eq!(pg, "SELECT 1 FROM t WHERE a = $1 AND b >= $2");
    }

    #[test]
    fn a_failing_change_is_named_only_in_a_set() {
        let e = || Error::NotFound("X".into());
        assert_eq!(in_change_set(1, 0, e()), e());
        assert_eq!(in_change_set(3, 1, e()), Error::NotFound("X (change 2)".into()));
        assert_eq!(
            in_change_set(2, 1, Error::Conflict("c".into())),
            Error::Conflict("change 2: c".into())
        );
    }
}
