//! `/partner-directory`: the whole Partner Directory as one JSON document (SAP's field names),
//! for `postern partner export` and `postern partner import`. An import creates what is new and
//! updates what differs (it never deletes), all in one transaction; `?dryRun=true` only reports
//! what it would do.

use axum::extract::{DefaultBodyLimit, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use postern_core::partner::{
    self, AlternativePartner, Audit, AuthorizedUser, BinaryParameter, PartnerChange, PartnerQuery,
    PartnerRow, PartnerSet, StringParameter,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;

use crate::error::ApiError;
use crate::extract::{Admin, ApiJson, now_ms};
use crate::state::AppState;
use postern_partner::Directory;

/// Largest import document.
const MAX_IMPORT_BYTES: usize = 256 * 1024 * 1024;
/// Changes listed one by one in an import answer (the counts cover all).
const LISTED: usize = 1000;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/partner-directory", get(export)).route(
        "/partner-directory/import",
        post(import).layer(DefaultBodyLimit::max(MAX_IMPORT_BYTES)),
    )
}

/// The exchange document.
#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Document {
    #[serde(default)]
    alternative_partners: Vec<AltDoc>,
    #[serde(default)]
    authorized_users: Vec<UserDoc>,
    #[serde(default)]
    string_parameters: Vec<StringDoc>,
    #[serde(default)]
    binary_parameters: Vec<BinaryDoc>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AltDoc {
    #[serde(rename = "Agency")]
    agency: String,
    #[serde(rename = "Scheme")]
    scheme: String,
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Pid")]
    pid: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserDoc {
    #[serde(rename = "User")]
    user: String,
    #[serde(rename = "Pid")]
    pid: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StringDoc {
    #[serde(rename = "Pid")]
    pid: String,
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Value")]
    value: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BinaryDoc {
    #[serde(rename = "Pid")]
    pid: String,
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "ContentType")]
    content_type: String,
    /// Base64.
    #[serde(rename = "Value")]
    value: String,
}

async fn all(s: &AppState, set: PartnerSet) -> Result<Vec<PartnerRow>, ApiError> {
    let q = PartnerQuery {
        set,
        conditions: vec![],
        order_by: None,
        top: u32::MAX,
        skip: 0,
    };
    Ok(s.store().query_partners(&q).await?.0)
}

async fn export(State(s): State<AppState>, _a: Admin) -> Result<Json<Document>, ApiError> {
    Ok(Json(export_document(&s).await?))
}

/// The whole Partner Directory as one exchange document.
pub(crate) async fn export_document(s: &AppState) -> Result<Document, ApiError> {
    let mut doc = Document::default();
    for set in [
        PartnerSet::AlternativePartners,
        PartnerSet::AuthorizedUsers,
        PartnerSet::StringParameters,
        PartnerSet::BinaryParameters,
    ] {
        for row in all(s, set).await? {
            match row {
                PartnerRow::Alternative(a) => doc.alternative_partners.push(AltDoc {
                    agency: a.agency,
                    scheme: a.scheme,
                    id: a.id,
                    pid: a.pid,
                }),
                PartnerRow::User(u) => doc.authorized_users.push(UserDoc {
                    user: u.user,
                    pid: u.pid,
                }),
                PartnerRow::String(p) => doc.string_parameters.push(StringDoc {
                    pid: p.pid,
                    id: p.id,
                    value: p.value,
                }),
                PartnerRow::Binary(p) => doc.binary_parameters.push(BinaryDoc {
                    pid: p.pid,
                    id: p.id,
                    content_type: p.content_type,
                    value: STANDARD.encode(&p.value),
                }),
                PartnerRow::Partner(_) => {}
            }
        }
    }
    Ok(doc)
}

#[derive(Deserialize)]
struct ImportOptions {
    #[serde(default, rename = "dryRun")]
    dry_run: Option<bool>,
}

/// One planned change, as reported.
struct Line {
    action: &'static str,
    entity: String,
}

fn at(kind: &str, i: usize, e: postern_core::Error) -> ApiError {
    ApiError::bad_request(format!("{kind}[{i}]: {e}"))
}

async fn import(
    State(s): State<AppState>,
    a: Admin,
    Query(o): Query<ImportOptions>,
    ApiJson(doc): ApiJson<Document>,
) -> Result<Json<Value>, ApiError> {
    let by = a.principal.name.to_string();
    Ok(Json(
        run_import(&s, &by, &a.source, doc, o.dry_run.unwrap_or(false)).await?,
    ))
}

/// Imports a document as `by` (or only reports what it would do): what is new is created and
/// what differs is updated, in one transaction; nothing is deleted.
pub(crate) async fn run_import(
    s: &AppState,
    by: &str,
    source: &str,
    doc: Document,
    dry_run: bool,
) -> Result<Value, ApiError> {
    let now = now_ms();
    let audit = Audit {
        created_by: by.to_owned(),
        created_at: now,
        modified_by: by.to_owned(),
        modified_at: now,
    };
    let entries = validate(doc, &audit)?;
    // Binary parameters are not in the in-memory directory; compare them with the store's.
    let binaries: HashMap<(String, String), (String, Vec<u8>)> = if entries.binaries.is_empty() {
        HashMap::new()
    } else {
        all(s, PartnerSet::BinaryParameters)
            .await?
            .into_iter()
            .filter_map(|r| match r {
                PartnerRow::Binary(p) => Some(((p.pid, p.id), (p.content_type, p.value))),
                _ => None,
            })
            .collect()
    };
    let planned = if dry_run {
        plan(&s.live().directory, entries, &binaries).1
    } else {
        let (planned, _) = s
            .plan_and_write_partners(|directory| Ok(plan(directory, entries, &binaries)))
            .await?;
        planned
    };
    let created = planned.lines.iter().filter(|l| l.action == "create").count();
    let updated = planned.lines.len() - created;
    if !dry_run && !planned.lines.is_empty() {
        let entry = postern_core::model::AuditEntry {
            id: 0,
            at: now,
            actor: by.to_owned(),
            action: "partner.import".into(),
            target: "partner-directory".into(),
            detail: json!({ "created": created, "updated": updated }).to_string(),
            source: source.to_owned(),
        };
        s.store().append_audit(&[entry]).await?;
    }
    let listed: Vec<Value> = planned
        .lines
        .iter()
        .take(LISTED)
        .map(|l| json!({ "action": l.action, "entity": l.entity }))
        .collect();
    Ok(json!({
        "dryRun": dry_run,
        "created": created,
        "updated": updated,
        "unchanged": planned.unchanged,
        "changes": listed,
        "changesListed": listed.len(),
    }))
}

/// The document's entries, checked.
struct Entries {
    alternatives: Vec<AlternativePartner>,
    users: Vec<AuthorizedUser>,
    strings: Vec<StringParameter>,
    binaries: Vec<BinaryParameter>,
}

/// What an import does.
struct Planned {
    lines: Vec<Line>,
    unchanged: u64,
}

fn twice(kind: &str, i: usize) -> ApiError {
    ApiError::bad_request(format!("{kind}[{i}]: listed twice"))
}

/// Checks every entry (the same rules as the OData API) and refuses duplicates.
fn validate(doc: Document, audit: &Audit) -> Result<Entries, ApiError> {
    let mut e = Entries {
        alternatives: Vec::with_capacity(doc.alternative_partners.len()),
        users: Vec::with_capacity(doc.authorized_users.len()),
        strings: Vec::with_capacity(doc.string_parameters.len()),
        binaries: Vec::with_capacity(doc.binary_parameters.len()),
    };
    let mut seen = std::collections::HashSet::new();
    for (i, d) in doc.alternative_partners.into_iter().enumerate() {
        let k = "alternativePartners";
        partner::check_agency("Agency", &d.agency).map_err(|e| at(k, i, e))?;
        partner::check_agency("Scheme", &d.scheme).map_err(|e| at(k, i, e))?;
        partner::check_text("Id", &d.id, partner::MAX_ALT_ID).map_err(|e| at(k, i, e))?;
        partner::check_pid("Pid", &d.pid, partner::MAX_PID).map_err(|e| at(k, i, e))?;
        if !seen.insert((d.agency.clone(), d.scheme.clone(), d.id.clone())) {
            return Err(twice(k, i));
        }
        e.alternatives.push(AlternativePartner {
            agency: d.agency,
            scheme: d.scheme,
            id: d.id,
            pid: d.pid,
            audit: audit.clone(),
        });
    }
    let mut seen = std::collections::HashSet::new();
    for (i, d) in doc.authorized_users.into_iter().enumerate() {
        let k = "authorizedUsers";
        let user = partner::normalize_user(&d.user).map_err(|e| at(k, i, e))?;
        partner::check_pid("Pid", &d.pid, partner::MAX_PID).map_err(|e| at(k, i, e))?;
        if !seen.insert(user.clone()) {
            return Err(twice(k, i));
        }
        e.users.push(AuthorizedUser {
            user,
            pid: d.pid,
            audit: audit.clone(),
        });
    }
    let mut seen = std::collections::HashSet::new();
    for (i, d) in doc.string_parameters.into_iter().enumerate() {
        let k = "stringParameters";
        partner::check_pid("Pid", &d.pid, partner::MAX_PID).map_err(|e| at(k, i, e))?;
        partner::check_pid("Id", &d.id, partner::MAX_PARAM_ID).map_err(|e| at(k, i, e))?;
        if d.value.chars().count() > partner::MAX_STRING_VALUE {
            return Err(ApiError::bad_request(format!(
                "{k}[{i}]: Value: give at most {} characters",
                partner::MAX_STRING_VALUE
            )));
        }
        if !seen.insert((d.pid.clone(), d.id.clone())) {
            return Err(twice(k, i));
        }
        e.strings.push(StringParameter {
            pid: d.pid,
            id: d.id,
            value: d.value,
            audit: audit.clone(),
        });
    }
    let mut seen = std::collections::HashSet::new();
    for (i, d) in doc.binary_parameters.into_iter().enumerate() {
        let k = "binaryParameters";
        partner::check_pid("Pid", &d.pid, partner::MAX_PID).map_err(|e| at(k, i, e))?;
        partner::check_pid("Id", &d.id, partner::MAX_PARAM_ID).map_err(|e| at(k, i, e))?;
        partner::check_content_type(&d.content_type).map_err(|e| at(k, i, e))?;
        let value = STANDARD
            .decode(d.value.trim())
            .map_err(|_| ApiError::bad_request(format!("{k}[{i}]: Value is base64-encoded")))?;
        if value.len() > partner::MAX_BINARY_VALUE {
            return Err(ApiError::bad_request(format!(
                "{k}[{i}]: Value is larger than {} bytes",
                partner::MAX_BINARY_VALUE
            )));
        }
        if !seen.insert((d.pid.clone(), d.id.clone())) {
            return Err(twice(k, i));
        }
        e.binaries.push(BinaryParameter {
            pid: d.pid,
            id: d.id,
            content_type: d.content_type,
            value,
            audit: audit.clone(),
        });
    }
    Ok(e)
}

/// Compares the entries with the current directory: new ones are created, changed ones updated.
fn plan(
    directory: &Directory,
    e: Entries,
    binaries: &HashMap<(String, String), (String, Vec<u8>)>,
) -> (Vec<PartnerChange>, Planned) {
    let mut changes = Vec::new();
    let mut p = Planned {
        lines: Vec::new(),
        unchanged: 0,
    };
    let mut add = |change: PartnerChange, action: &'static str, entity: String| {
        changes.push(change);
        p.lines.push(Line { action, entity });
    };
    let mut unchanged = 0u64;
    for a in e.alternatives {
        let entity = format!(
            "AlternativePartners(Agency='{}',Scheme='{}',Id='{}')",
            a.agency, a.scheme, a.id
        );
        match directory.partner_of_alternative(&a.agency, &a.scheme, &a.id) {
            None => add(PartnerChange::InsertAlternative(a), "create", entity),
            Some(pid) if pid != a.pid => add(PartnerChange::UpdateAlternative(a), "update", entity),
            Some(_) => unchanged += 1,
        }
    }
    for u in e.users {
        let entity = format!("AuthorizedUsers('{}')", u.user);
        match directory.partner_of_user(&u.user) {
            None => add(PartnerChange::InsertUser(u), "create", entity),
            Some(pid) if pid != u.pid => add(PartnerChange::UpdateUser(u), "update", entity),
            Some(_) => unchanged += 1,
        }
    }
    for s in e.strings {
        let entity = format!("StringParameters(Pid='{}',Id='{}')", s.pid, s.id);
        match directory.string_parameter(&s.pid, &s.id) {
            None => add(PartnerChange::InsertString(s), "create", entity),
            Some(v) if v != s.value => add(PartnerChange::UpdateString(s), "update", entity),
            Some(_) => unchanged += 1,
        }
    }
    for b in e.binaries {
        let entity = format!("BinaryParameters(Pid='{}',Id='{}')", b.pid, b.id);
        match binaries.get(&(b.pid.clone(), b.id.clone())) {
            None => add(PartnerChange::InsertBinary(b), "create", entity),
            Some((ct, v)) if *ct != b.content_type || *v != b.value => {
                add(PartnerChange::UpdateBinary(b), "update", entity)
            }
            Some(_) => unchanged += 1,
        }
    }
    p.unchanged = unchanged;
    (changes, p)
}
