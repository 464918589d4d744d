//! Partner Directory: partners with their alternative partners, authorized users and parameters;
//! creating, changing and deleting entries; import (with a dry-run preview first) and export of
//! the whole directory as the exchange document `postern partner` uses.

use axum::Router;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use postern_core::mpl::{CmpOp, Literal};
use postern_core::partner::{
    self, AlternativePartner, Audit, AuthorizedUser, PartnerChange, PartnerCondition, PartnerField,
    PartnerQuery, PartnerRow, PartnerSet, StringParameter,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::session::or_answer;
use super::{Done, Session, back, problem, render, when};
use crate::admin::partner_directory::{Document, export_document, run_import};
use crate::extract::now_ms;
use crate::state::AppState;

/// Partners per page.
const PAGE: u32 = 100;
/// Largest import file taken in the console (the CLI and API take more).
const MAX_IMPORT_FILE: usize = 16 * 1024 * 1024;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/partners", get(list).post(create_partner))
        .route("/partners/export", get(export))
        .route(
            "/partners/import",
            get(import_page)
                .post(import)
                .layer(axum::extract::DefaultBodyLimit::max(MAX_IMPORT_FILE + 64 * 1024)),
        )
        .route("/partners/{pid}", get(one))
        .route("/partners/{pid}/delete", post(delete_partner))
        .route("/partners/{pid}/alternative-partners", post(add_alternative))
        .route(
            "/partners/{pid}/alternative-partners/delete",
            post(delete_alternative),
        )
        .route("/partners/{pid}/authorized-users", post(add_user))
        .route("/partners/{pid}/authorized-users/delete", post(delete_user))
        .route("/partners/{pid}/string-parameters", post(put_string))
        .route("/partners/{pid}/string-parameters/delete", post(delete_string))
}

#[derive(Deserialize, Default)]
struct ListQuery {
    #[serde(default)]
    pid: String,
    #[serde(default)]
    page: Option<u32>,
    #[serde(default)]
    done: Option<String>,
}

fn pid_is(pid: &str) -> PartnerCondition {
    PartnerCondition {
        field: PartnerField::Pid,
        op: CmpOp::Eq,
        value: Literal::Text(pid.to_owned()),
    }
}

async fn rows(
    s: &AppState,
    set: PartnerSet,
    conditions: Vec<PartnerCondition>,
    top: u32,
    skip: u32,
) -> postern_core::Result<(Vec<PartnerRow>, u64)> {
    s.store()
        .query_partners(&PartnerQuery {
            set,
            conditions,
            order_by: None,
            top,
            skip,
        })
        .await
}

async fn list_page(
    s: &AppState,
    session: &Session,
    q: ListQuery,
    status: StatusCode,
    error: Option<String>,
) -> Response {
    let page = q.page.unwrap_or(0).min(100_000);
    let search = q.pid.trim().to_owned();
    let conditions = if search.is_empty() {
        vec![]
    } else {
        vec![pid_is(&search)]
    };
    let (found, total) = match rows(s, PartnerSet::Partners, conditions, PAGE, page * PAGE).await {
        Ok(r) => r,
        Err(e) => {
            let (status, message) = problem(e);
            return session.error(status, &message);
        }
    };
    let pids: Vec<String> = found
        .into_iter()
        .filter_map(|r| match r {
            PartnerRow::Partner(p) => Some(p),
            _ => None,
        })
        .collect();
    let pages = total.div_ceil(u64::from(PAGE)).max(1);
    let link = |p: u32| {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("pid", &search).append_pair("page", &p.to_string());
        format!("/console/partners?{}", q.finish())
    };
    render(
        status,
        "partners.html",
        session.page(
            "partners",
            json!({
                "pids": pids,
                "total": total,
                "search": search,
                "page": page + 1,
                "pages": pages,
                "prev": (page > 0).then(|| link(page - 1)),
                "next": (u64::from(page + 1) < pages).then(|| link(page + 1)),
                "notice": q.done,
                "error": error,
            }),
        ),
    )
}

async fn list(State(s): State<AppState>, session: Session, Query(q): Query<ListQuery>) -> Response {
    list_page(&s, &session, q, StatusCode::OK, None).await
}

fn audit(session: &Session) -> Audit {
    let now = now_ms();
    Audit {
        created_by: session.user.clone(),
        created_at: now,
        modified_by: session.user.clone(),
        modified_at: now,
    }
}

fn to_partner(pid: &str, notice: &str) -> Response {
    let p: String = form_urlencoded::byte_serialize(pid.as_bytes()).collect();
    back(&format!("/console/partners/{p}"), notice)
}

/// Applies changes in one transaction and audits them; the error as the page shows it.
async fn apply(
    s: &AppState,
    session: &Session,
    changes: Vec<PartnerChange>,
    action: &str,
    target: &str,
) -> Result<(), (StatusCode, String)> {
    s.write_partners(changes).await.map_err(problem)?;
    if let Err(e) = session.ctx(s).audit(action, target, json!({})).await {
        tracing::warn!(error = %e, "auditing a Partner Directory change failed");
    }
    Ok(())
}

#[derive(Deserialize)]
struct NewPartner {
    pid: String,
    /// What the new partner starts with: partners exist through their entries.
    #[serde(default)]
    user: String,
    #[serde(default)]
    parameter: String,
    #[serde(default)]
    value: String,
}

/// A partner exists through what belongs to it, so creating one creates its first entry: an
/// authorized user or a string parameter.
async fn create_partner(State(s): State<AppState>, session: Session, body: Bytes) -> Response {
    let f: NewPartner = or_answer!(session.form(&body));
    let pid = f.pid.trim().to_owned();
    let audit = audit(&session);
    let change = if !f.user.trim().is_empty() {
        partner::check_pid("Pid", &pid, partner::MAX_PID)
            .and_then(|_| partner::normalize_user(f.user.trim()))
            .map(|user| {
                PartnerChange::InsertUser(AuthorizedUser {
                    user,
                    pid: pid.clone(),
                    audit,
                })
            })
    } else if !f.parameter.trim().is_empty() {
        partner::check_pid("Pid", &pid, partner::MAX_PID)
            .and_then(|_| partner::check_pid("Id", f.parameter.trim(), partner::MAX_PARAM_ID))
            .map(|_| {
                PartnerChange::InsertString(StringParameter {
                    pid: pid.clone(),
                    id: f.parameter.trim().to_owned(),
                    value: f.value.clone(),
                    audit,
                })
            })
    } else {
        Err(postern_core::Error::invalid(
            "partner",
            "give its first authorized user or string parameter",
        ))
    };
    let result = match change {
        Ok(c) => apply(&s, &session, vec![c], "partner.create", &pid).await,
        Err(e) => Err(problem(e)),
    };
    match result {
        Ok(()) => to_partner(&pid, &format!("Partner {pid} created.")),
        Err((status, message)) => list_page(&s, &session, ListQuery::default(), status, Some(message)).await,
    }
}

async fn detail(
    s: &AppState,
    session: &Session,
    pid: &str,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
) -> Response {
    let loaded = async {
        let mut out = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for set in [
            PartnerSet::AlternativePartners,
            PartnerSet::AuthorizedUsers,
            PartnerSet::StringParameters,
            PartnerSet::BinaryParameters,
        ] {
            for row in rows(s, set, vec![pid_is(pid)], 10_000, 0).await?.0 {
                match row {
                    PartnerRow::Alternative(a) => out.0.push(json!({
                        "agency": a.agency, "scheme": a.scheme, "id": a.id,
                        "modified": when(a.audit.modified_at), "by": a.audit.modified_by,
                    })),
                    PartnerRow::User(u) => out.1.push(json!({
                        "user": u.user, "modified": when(u.audit.modified_at), "by": u.audit.modified_by,
                    })),
                    PartnerRow::String(p) => out.2.push(json!({
                        "id": p.id, "value": p.value, "modified": when(p.audit.modified_at), "by": p.audit.modified_by,
                    })),
                    PartnerRow::Binary(b) => out.3.push(json!({
                        "id": b.id, "content_type": b.content_type, "size": b.value.len(),
                    })),
                    PartnerRow::Partner(_) => {}
                }
            }
        }
        Ok::<_, postern_core::Error>(out)
    };
    match loaded.await {
        Ok((alternatives, users, strings, binaries)) => {
            let empty =
                alternatives.is_empty() && users.is_empty() && strings.is_empty() && binaries.is_empty();
            if empty && error.is_none() {
                return session.error(StatusCode::NOT_FOUND, &format!("There is no partner {pid}."));
            }
            render(
                status,
                "partner.html",
                session.page(
                    "partners",
                    json!({
                        "pid": pid,
                        "alternatives": alternatives,
                        "users": users,
                        "strings": strings,
                        "binaries": binaries,
                        "notice": notice,
                        "error": error,
                    }),
                ),
            )
        }
        Err(e) => {
            let (status, message) = problem(e);
            session.error(status, &message)
        }
    }
}

async fn one(
    State(s): State<AppState>,
    session: Session,
    Path(pid): Path<String>,
    Query(d): Query<Done>,
) -> Response {
    detail(&s, &session, &pid, StatusCode::OK, d.done, None).await
}

/// Runs a change from a form on a partner's page and answers with the page.
async fn change_on_page(
    s: &AppState,
    session: &Session,
    pid: &str,
    change: postern_core::Result<PartnerChange>,
    action: &str,
    notice: &str,
) -> Response {
    let result = match change {
        Ok(c) => apply(s, session, vec![c], action, pid).await,
        Err(e) => Err(problem(e)),
    };
    match result {
        Ok(()) => to_partner(pid, notice),
        Err((status, message)) => detail(s, session, pid, status, None, Some(message)).await,
    }
}

async fn delete_partner(
    State(s): State<AppState>,
    session: Session,
    Path(pid): Path<String>,
    body: Bytes,
) -> Response {
    or_answer!(session.confirm(&body));
    let change = PartnerChange::DeletePartner {
        pid: pid.clone(),
        keep: vec![],
    };
    match apply(&s, &session, vec![change], "partner.delete", &pid).await {
        Ok(()) => back(
            "/console/partners",
            &format!("Partner {pid} and everything it had deleted."),
        ),
        Err((status, message)) => detail(&s, &session, &pid, status, None, Some(message)).await,
    }
}

#[derive(Deserialize)]
struct AltForm {
    agency: String,
    scheme: String,
    id: String,
}

async fn add_alternative(
    State(s): State<AppState>,
    session: Session,
    Path(pid): Path<String>,
    body: Bytes,
) -> Response {
    let f: AltForm = or_answer!(session.form(&body));
    let (agency, scheme, id) = (
        f.agency.trim().to_owned(),
        f.scheme.trim().to_owned(),
        f.id.trim().to_owned(),
    );
    let change = partner::check_agency("Agency", &agency)
        .and_then(|_| partner::check_agency("Scheme", &scheme))
        .and_then(|_| partner::check_text("Id", &id, partner::MAX_ALT_ID))
        .map(|_| {
            PartnerChange::InsertAlternative(AlternativePartner {
                agency: agency.clone(),
                scheme: scheme.clone(),
                id: id.clone(),
                pid: pid.clone(),
                audit: audit(&session),
            })
        });
    let notice = format!("Alternative partner {agency}/{scheme}/{id} added.");
    change_on_page(&s, &session, &pid, change, "partner.alternative.create", &notice).await
}

async fn delete_alternative(
    State(s): State<AppState>,
    session: Session,
    Path(pid): Path<String>,
    body: Bytes,
) -> Response {
    let f: AltForm = or_answer!(session.form(&body));
    let notice = format!("Alternative partner {}/{}/{} deleted.", f.agency, f.scheme, f.id);
    let change = Ok(PartnerChange::DeleteAlternative {
        agency: f.agency,
        scheme: f.scheme,
        id: f.id,
    });
    change_on_page(&s, &session, &pid, change, "partner.alternative.delete", &notice).await
}

#[derive(Deserialize)]
struct UserForm {
    user: String,
}

async fn add_user(
    State(s): State<AppState>,
    session: Session,
    Path(pid): Path<String>,
    body: Bytes,
) -> Response {
    let f: UserForm = or_answer!(session.form(&body));
    let change = partner::normalize_user(f.user.trim()).map(|user| {
        PartnerChange::InsertUser(AuthorizedUser {
            user,
            pid: pid.clone(),
            audit: audit(&session),
        })
    });
    let notice = format!(
        "{} may now send as {pid} (and holds ESBMessaging.send through it).",
        f.user.trim()
    );
    change_on_page(&s, &session, &pid, change, "partner.user.create", &notice).await
}

async fn delete_user(
    State(s): State<AppState>,
    session: Session,
    Path(pid): Path<String>,
    body: Bytes,
) -> Response {
    let f: UserForm = or_answer!(session.form(&body));
    let notice = format!("{} no longer sends as {pid}.", f.user);
    let change = Ok(PartnerChange::DeleteUser { user: f.user });
    change_on_page(&s, &session, &pid, change, "partner.user.delete", &notice).await
}

#[derive(Deserialize)]
struct StringForm {
    id: String,
    #[serde(default)]
    value: String,
    /// Set when the form edits an existing parameter.
    #[serde(default)]
    existing: Option<String>,
}

async fn put_string(
    State(s): State<AppState>,
    session: Session,
    Path(pid): Path<String>,
    body: Bytes,
) -> Response {
    let f: StringForm = or_answer!(session.form(&body));
    let id = f.id.trim().to_owned();
    let change = partner::check_pid("Id", &id, partner::MAX_PARAM_ID).and_then(|_| {
        if f.value.chars().count() > partner::MAX_STRING_VALUE {
            return Err(postern_core::Error::invalid(
                "Value",
                format!("give at most {} characters", partner::MAX_STRING_VALUE),
            ));
        }
        let p = StringParameter {
            pid: pid.clone(),
            id: id.clone(),
            value: f.value.clone(),
            audit: audit(&session),
        };
        Ok(if f.existing.is_some() {
            PartnerChange::UpdateString(p)
        } else {
            PartnerChange::InsertString(p)
        })
    });
    let notice = format!("String parameter {id} saved.");
    change_on_page(&s, &session, &pid, change, "partner.string.put", &notice).await
}

#[derive(Deserialize)]
struct StringKey {
    id: String,
}

async fn delete_string(
    State(s): State<AppState>,
    session: Session,
    Path(pid): Path<String>,
    body: Bytes,
) -> Response {
    let f: StringKey = or_answer!(session.form(&body));
    let notice = format!("String parameter {} deleted.", f.id);
    let change = Ok(PartnerChange::DeleteString {
        pid: pid.clone(),
        id: f.id,
    });
    change_on_page(&s, &session, &pid, change, "partner.string.delete", &notice).await
}

async fn export(State(s): State<AppState>, session: Session) -> Response {
    match export_document(&s).await {
        Ok(doc) => {
            let body = serde_json::to_vec_pretty(&doc).unwrap_or_default();
            let mut resp = body.into_response();
            let h = resp.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            h.insert(
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"partner-directory.json\""),
            );
            resp
        }
        Err(e) => session.error(e.status, &e.message),
    }
}

async fn import_page(session: Session) -> Response {
    render(
        StatusCode::OK,
        "partner_import.html",
        session.page("partners", json!({})),
    )
}

/// Import (multipart): a file or the document in the text area; `step=preview` answers with a
/// dry run and a form to confirm, `step=import` imports.
async fn import(State(s): State<AppState>, session: Session, form: Multipart) -> Response {
    let upload = or_answer!(session.upload(form, MAX_IMPORT_FILE).await);
    let (mut text, file, step) = (upload.text("document"), upload.bytes("file"), upload.text("step"));
    if !file.is_empty() {
        text = String::from_utf8_lossy(file).into_owned();
    }
    let page = |status: StatusCode, values: Value| {
        render(status, "partner_import.html", session.page("partners", values))
    };
    let doc: Document = match serde_json::from_str(&text) {
        Ok(d) => d,
        Err(e) => {
            return page(
                StatusCode::BAD_REQUEST,
                json!({ "error": format!("The document is not a Partner Directory export: {e}"), "document": text }),
            );
        }
    };
    let dry_run = step != "import";
    match run_import(&s, &session.user, &session.source, doc, dry_run).await {
        Ok(report) => page(
            StatusCode::OK,
            json!({ "report": report, "document": if dry_run { text } else { String::new() }, "imported": !dry_run }),
        ),
        Err(e) => page(e.status, json!({ "error": e.message, "document": text })),
    }
}
