//! The Partner Directory in SAP's OData shape (`SPEC:PartnerDirectory`): `Partners`,
//! `AlternativePartners`, `AuthorizedUsers`, `StringParameters`, `BinaryParameters` with SAP's
//! field names and key syntax, list options, create/update/delete, and `$batch` (in [`super::batch`]).
//!
//! Every request is first *planned* (parsed and validated into a [`PartnerChange`] and the answer
//! it will give), then applied; a `$batch` change set plans all its requests and applies them in
//! one transaction.

use axum::http::{Method, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use postern_core::mpl::{CmpOp, Literal};
use postern_core::partner::{
    self, AlternativePartner, Audit, AuthorizedUser, BinaryParameter, PartnerChange, PartnerCondition,
    PartnerField, PartnerKind, PartnerQuery, PartnerRow, PartnerSet, StringParameter, hex_upper,
};
use serde_json::{Map, Value, json};

use super::ODataError;
use super::filter::parse_filter_with;
use crate::state::AppState;

/// Largest page; lists without `$top` are paged with `$skiptoken` like SAP's.
const PAGE: u32 = 1000;

fn bad(m: impl Into<String>) -> ODataError {
    ODataError::new(StatusCode::BAD_REQUEST, m)
}

fn not_found(m: impl Into<String>) -> ODataError {
    ODataError::new(StatusCode::NOT_FOUND, m)
}

/// The entity set a path segment names.
pub(crate) fn set_of(name: &str) -> Option<PartnerSet> {
    Some(match name {
        "Partners" => PartnerSet::Partners,
        "AlternativePartners" => PartnerSet::AlternativePartners,
        "AuthorizedUsers" => PartnerSet::AuthorizedUsers,
        "StringParameters" => PartnerSet::StringParameters,
        "BinaryParameters" => PartnerSet::BinaryParameters,
        _ => return None,
    })
}

fn set_name(set: PartnerSet) -> &'static str {
    match set {
        PartnerSet::Partners => "Partners",
        PartnerSet::AlternativePartners => "AlternativePartners",
        PartnerSet::AuthorizedUsers => "AuthorizedUsers",
        PartnerSet::StringParameters => "StringParameters",
        PartnerSet::BinaryParameters => "BinaryParameters",
    }
}

/// A resource path: `Set` or `Set(<key>)`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Resource {
    pub(crate) set: PartnerSet,
    pub(crate) key: Option<Key>,
}

/// A parsed key predicate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Key {
    /// `Partners('<Pid>')`.
    Partner(String),
    /// `AuthorizedUsers('<User>')`, lower-cased.
    User(String),
    /// `StringParameters(Pid='..',Id='..')` and `BinaryParameters(...)`.
    Parameter { pid: String, id: String },
    /// `AlternativePartners(Hexagency='..',Hexscheme='..',Hexid='..')`, decoded.
    Alternative {
        agency: String,
        scheme: String,
        id: String,
    },
}

/// Parses `Set` or `Set(<key predicate>)`; `None` when the set is not a Partner Directory set.
pub(crate) fn resource(path: &str) -> Option<Result<Resource, ODataError>> {
    let (name, rest) = match path.find('(') {
        Some(i) => (&path[..i], Some(&path[i..])),
        None => (path, None),
    };
    let set = set_of(name)?;
    let Some(rest) = rest else {
        return Some(Ok(Resource { set, key: None }));
    };
    Some(
        rest.strip_prefix('(')
            .and_then(|r| r.strip_suffix(')'))
            .ok_or_else(|| bad(format!("malformed key predicate in {name}(...)")))
            .and_then(|inner| key_of(set, inner))
            .map(|key| Resource { set, key: Some(key) }),
    )
}

/// Splits `A='x',B='y'` or `'x'` into (name, value) pairs; `''` inside quotes is a quote.
fn predicate(inner: &str) -> Result<Vec<(Option<String>, String)>, String> {
    let mut out = Vec::new();
    let mut chars = inner.chars().peekable();
    loop {
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '\'' || c == '=' {
                break;
            }
            name.push(c);
            chars.next();
        }
        if chars.peek() == Some(&'=') {
            chars.next();
        }
        if chars.next() != Some('\'') {
            return Err("key values are quoted strings".into());
        }
        let mut value = String::new();
        loop {
            match chars.next() {
                Some('\'') if chars.peek() == Some(&'\'') => {
                    chars.next();
                    value.push('\'');
                }
                Some('\'') => break,
                Some(c) => value.push(c),
                None => return Err("unterminated key value".into()),
            }
        }
        let name = name.trim().to_owned();
        out.push(((!name.is_empty()).then_some(name), value));
        match chars.next() {
            None => return Ok(out),
            Some(',') => continue,
            Some(c) => return Err(format!("unexpected {c:?} in the key predicate")),
        }
    }
}

fn from_hex(field: &str, hex: &str) -> Result<String, ODataError> {
    let bad_hex = || bad(format!("{field} is the upper-case hex of the UTF-8 value"));
    if !hex.len().is_multiple_of(2) || hex.len() > 2 * partner::MAX_ALT_ID * 4 {
        return Err(bad_hex());
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| bad_hex())?;
    String::from_utf8(bytes).map_err(|_| bad_hex())
}

fn key_of(set: PartnerSet, inner: &str) -> Result<Key, ODataError> {
    let name = set_name(set);
    let parts = predicate(inner).map_err(|m| bad(format!("{name} key: {m}")))?;
    let named = |want: &str| -> Result<String, ODataError> {
        parts
            .iter()
            .find(|(n, _)| n.as_deref() == Some(want))
            .map(|(_, v)| v.clone())
            .ok_or_else(|| bad(format!("{name} key needs {want}='...'")))
    };
    let single = || -> Result<String, ODataError> {
        match parts.as_slice() {
            [(None, v)] => Ok(v.clone()),
            [(Some(_), v)] => Ok(v.clone()),
            _ => Err(bad(format!("{name} takes one key value: {name}('<key>')"))),
        }
    };
    Ok(match set {
        PartnerSet::Partners => Key::Partner(single()?),
        PartnerSet::AuthorizedUsers => Key::User(single()?.to_lowercase()),
        PartnerSet::StringParameters | PartnerSet::BinaryParameters => {
            if parts.len() != 2 {
                return Err(bad(format!("{name} key is (Pid='<pid>',Id='<id>')")));
            }
            Key::Parameter {
                pid: named("Pid")?,
                id: named("Id")?,
            }
        }
        PartnerSet::AlternativePartners => {
            if parts.len() != 3 {
                return Err(bad(
                    "AlternativePartners key is (Hexagency='..',Hexscheme='..',Hexid='..')",
                ));
            }
            Key::Alternative {
                agency: from_hex("Hexagency", &named("Hexagency")?)?,
                scheme: from_hex("Hexscheme", &named("Hexscheme")?)?,
                id: from_hex("Hexid", &named("Hexid")?)?,
            }
        }
    })
}

/// The key of an entity, in SAP's syntax.
fn key_text(row: &PartnerRow) -> String {
    let q = |s: &str| s.replace('\'', "''");
    match row {
        PartnerRow::Partner(p) => format!("Partners('{}')", q(p)),
        PartnerRow::Alternative(a) => format!(
            "AlternativePartners(Hexagency='{}',Hexscheme='{}',Hexid='{}')",
            hex_upper(&a.agency),
            hex_upper(&a.scheme),
            hex_upper(&a.id)
        ),
        PartnerRow::User(u) => format!("AuthorizedUsers('{}')", q(&u.user)),
        PartnerRow::String(p) => format!("StringParameters(Pid='{}',Id='{}')", q(&p.pid), q(&p.id)),
        PartnerRow::Binary(p) => format!("BinaryParameters(Pid='{}',Id='{}')", q(&p.pid), q(&p.id)),
    }
}

fn date(ms: i64) -> String {
    format!("/Date({ms})/")
}

fn audit_fields(m: &mut Map<String, Value>, a: &Audit) {
    m.insert("LastModifiedBy".into(), json!(a.modified_by));
    m.insert("LastModifiedTime".into(), json!(date(a.modified_at)));
    m.insert("CreatedBy".into(), json!(a.created_by));
    m.insert("CreatedTime".into(), json!(date(a.created_at)));
}

/// One entity in SAP's field names.
pub(crate) fn entity_json(base: &str, row: &PartnerRow) -> Value {
    let uri = format!("{base}/{}", key_text(row));
    let (kind, mut m) = match row {
        PartnerRow::Partner(p) => ("Partner", Map::from_iter([("Pid".into(), json!(p))])),
        PartnerRow::Alternative(a) => {
            let mut m = Map::new();
            m.insert("Hexagency".into(), json!(hex_upper(&a.agency)));
            m.insert("Hexscheme".into(), json!(hex_upper(&a.scheme)));
            m.insert("Hexid".into(), json!(hex_upper(&a.id)));
            m.insert("Agency".into(), json!(a.agency));
            m.insert("Scheme".into(), json!(a.scheme));
            m.insert("Id".into(), json!(a.id));
            m.insert("Pid".into(), json!(a.pid));
            audit_fields(&mut m, &a.audit);
            ("AlternativePartner", m)
        }
        PartnerRow::User(u) => {
            let mut m = Map::new();
            m.insert("User".into(), json!(u.user));
            m.insert("Pid".into(), json!(u.pid));
            audit_fields(&mut m, &u.audit);
            ("AuthorizedUser", m)
        }
        PartnerRow::String(p) => {
            let mut m = Map::new();
            m.insert("Pid".into(), json!(p.pid));
            m.insert("Id".into(), json!(p.id));
            m.insert("Value".into(), json!(p.value));
            audit_fields(&mut m, &p.audit);
            ("StringParameter", m)
        }
        PartnerRow::Binary(p) => {
            let mut m = Map::new();
            m.insert("Pid".into(), json!(p.pid));
            m.insert("Id".into(), json!(p.id));
            m.insert("ContentType".into(), json!(p.content_type));
            m.insert("Value".into(), json!(STANDARD.encode(&p.value)));
            audit_fields(&mut m, &p.audit);
            ("BinaryParameter", m)
        }
    };
    m.insert(
        "__metadata".into(),
        json!({ "id": uri, "uri": uri, "type": format!("com.sap.hci.api.{kind}") }),
    );
    Value::Object(m)
}

/// List options of a Partner Directory request.
#[derive(Default, Debug)]
pub(crate) struct ListOptions {
    pub(crate) filter: Option<String>,
    pub(crate) top: Option<String>,
    pub(crate) skip: Option<String>,
    pub(crate) skiptoken: Option<String>,
    pub(crate) orderby: Option<String>,
    pub(crate) select: Option<String>,
    pub(crate) inlinecount: Option<String>,
    pub(crate) format: Option<String>,
    /// SAP's `user` option: who the change is recorded for.
    pub(crate) user: Option<String>,
    /// SAP's `exclude` option of a partner delete.
    pub(crate) exclude: Option<String>,
}

impl ListOptions {
    /// Reads the options from a query string.
    pub(crate) fn parse(query: &str) -> Result<Self, ODataError> {
        let mut o = ListOptions::default();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            let slot = match k.as_ref() {
                "$filter" => &mut o.filter,
                "$top" => &mut o.top,
                "$skip" => &mut o.skip,
                "$skiptoken" => &mut o.skiptoken,
                "$orderby" => &mut o.orderby,
                "$select" => &mut o.select,
                "$inlinecount" => &mut o.inlinecount,
                "$format" => &mut o.format,
                "user" => &mut o.user,
                "exclude" => &mut o.exclude,
                other if other.starts_with('$') => {
                    return Err(bad(format!("system query option {other} is not supported")));
                }
                _ => continue,
            };
            if slot.is_some() {
                return Err(bad(format!("{k} given twice")));
            }
            *slot = Some(v.into_owned());
        }
        match o.format.as_deref() {
            None | Some("json") => Ok(o),
            Some(other) => Err(ODataError::new(
                StatusCode::NOT_ACCEPTABLE,
                format!("$format={other} is not supported; this service answers JSON"),
            )),
        }
    }
}

fn number(name: &str, v: Option<&str>) -> Result<Option<u32>, ODataError> {
    v.map(|t| {
        t.parse()
            .map_err(|_| bad(format!("{name} must be a non-negative integer")))
    })
    .transpose()
}

/// Property names in `$filter` / `$orderby`: SAP's Hex keys are accepted but match nothing.
enum Prop {
    Field(PartnerField),
    Hex,
}

fn prop(set: PartnerSet, name: &str) -> Option<Prop> {
    if set == PartnerSet::AlternativePartners && matches!(name, "Hexagency" | "Hexscheme" | "Hexid") {
        return Some(Prop::Hex);
    }
    PartnerField::parse(set, name).map(Prop::Field)
}

/// Answers a list: `{"d": {"results": [...], "__count"?, "__next"?}}`.
pub(crate) async fn list(s: &AppState, set: PartnerSet, o: &ListOptions) -> Result<Value, ODataError> {
    let mut conditions = Vec::new();
    let mut matches_nothing = false;
    if let Some(f) = &o.filter {
        let parsed = parse_filter_with(f, |name| match prop(set, name)? {
            Prop::Field(field) => Some((Some(field), field.is_time())),
            Prop::Hex => Some((None, false)),
        })
        .map_err(|m| bad(format!("$filter: {m}")))?;
        for (field, op, value) in parsed {
            match field {
                Some(field) => conditions.push(PartnerCondition {
                    field,
                    op,
                    value: if field == PartnerField::User {
                        match value {
                            Literal::Text(t) => Literal::Text(t.to_lowercase()),
                            other => other,
                        }
                    } else {
                        value
                    },
                }),
                // SAP: Hex properties are not filterable; a filter on them returns nothing.
                None => matches_nothing = true,
            }
        }
    }
    let order_by = match o.orderby.as_deref() {
        None => None,
        Some(text) => {
            let (name, desc) = super::mpl::orderby(text)?;
            match prop(set, name) {
                Some(Prop::Field(f)) => Some((f, desc)),
                Some(Prop::Hex) => None,
                None => return Err(bad(format!("cannot order by {name}"))),
            }
        }
    };
    let top = number("$top", o.top.as_deref())?;
    let skip = match (
        number("$skip", o.skip.as_deref())?,
        number("$skiptoken", o.skiptoken.as_deref())?,
    ) {
        (Some(a), Some(b)) => a.saturating_add(b),
        (a, b) => a.or(b).unwrap_or(0),
    };
    let page = top.unwrap_or(PAGE).min(PAGE);
    let select = super::mpl::selection(o.select.as_deref())?;
    let query = PartnerQuery {
        set,
        conditions,
        order_by,
        top: page,
        skip,
    };
    let (rows, total) = if matches_nothing {
        (Vec::new(), 0)
    } else {
        s.store().query_partners(&query).await?
    };
    let base = super::base_url(s);
    let mut d = Map::new();
    match o.inlinecount.as_deref() {
        None | Some("none") => {}
        Some("allpages") => {
            d.insert("__count".into(), Value::String(total.to_string()));
        }
        Some(other) => {
            return Err(bad(format!(
                "$inlinecount={other} is not supported; use allpages or none"
            )));
        }
    }
    let results: Vec<Value> = rows
        .iter()
        .map(|r| super::mpl::project(entity_json(&base, r), &select))
        .collect();
    let next = u64::from(skip) + u64::from(page);
    if top.is_none() && next < total {
        d.insert(
            "__next".into(),
            json!(format!("{base}/{}?$skiptoken={next}", set_name(set))),
        );
    }
    d.insert("results".into(), Value::Array(results));
    Ok(json!({ "d": d }))
}

/// The conditions that select one entity by key.
fn key_conditions(key: &Key) -> Vec<PartnerCondition> {
    let eq = |field, v: &str| PartnerCondition {
        field,
        op: CmpOp::Eq,
        value: Literal::Text(v.to_owned()),
    };
    match key {
        Key::Partner(p) => vec![eq(PartnerField::Pid, p)],
        Key::User(u) => vec![eq(PartnerField::User, u)],
        Key::Parameter { pid, id } => vec![eq(PartnerField::Pid, pid), eq(PartnerField::Id, id)],
        Key::Alternative { agency, scheme, id } => vec![
            eq(PartnerField::Agency, agency),
            eq(PartnerField::Scheme, scheme),
            eq(PartnerField::Id, id),
        ],
    }
}

fn describe(set: PartnerSet, key: &Key) -> String {
    match key {
        Key::Partner(p) => format!("Partners('{p}')"),
        Key::User(u) => format!("AuthorizedUsers('{u}')"),
        Key::Parameter { pid, id } => format!("{}(Pid='{pid}',Id='{id}')", set_name(set)),
        Key::Alternative { agency, scheme, id } => {
            format!("AlternativePartners(Agency='{agency}',Scheme='{scheme}',Id='{id}')")
        }
    }
}

/// Answers one entity: `{"d": {...}}`.
pub(crate) async fn by_key(
    s: &AppState,
    set: PartnerSet,
    key: &Key,
    o: &ListOptions,
) -> Result<Value, ODataError> {
    let query = PartnerQuery {
        set,
        conditions: key_conditions(key),
        order_by: None,
        top: 1,
        skip: 0,
    };
    let (rows, _) = s.store().query_partners(&query).await?;
    let row = rows
        .into_iter()
        .next()
        .ok_or_else(|| not_found(format!("{} not found", describe(set, key))))?;
    let select = super::mpl::selection(o.select.as_deref())?;
    Ok(json!({ "d": super::mpl::project(entity_json(&super::base_url(s), &row), &select) }))
}

/// What a planned request answers once its change is applied.
#[derive(Debug)]
pub(crate) enum Answer {
    /// 201 with the entity.
    Created(PartnerRow),
    /// 204.
    NoContent,
}

/// A validated change and its answer.
#[derive(Debug)]
pub(crate) struct Planned {
    pub(crate) change: PartnerChange,
    pub(crate) answer: Answer,
    /// For the audit log: action and target.
    pub(crate) action: &'static str,
    pub(crate) target: String,
}

fn object(body: &[u8]) -> Result<Map<String, Value>, ODataError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m.get("d").and_then(Value::as_object).cloned().unwrap_or(m)),
        Ok(_) => Err(bad("the body is a JSON object")),
        Err(e) => Err(bad(format!("the body is not valid JSON: {e}"))),
    }
}

fn text<'a>(m: &'a Map<String, Value>, field: &str) -> Result<&'a str, ODataError> {
    match m.get(field) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(bad(format!("{field} is a string"))),
        None => Err(bad(format!("{field} is required"))),
    }
}

/// Rejects properties the entity does not have (or that cannot be changed by this request).
fn only(m: &Map<String, Value>, allowed: &[&str]) -> Result<(), ODataError> {
    for k in m.keys() {
        if k != "__metadata" && !allowed.contains(&k.as_str()) {
            return Err(bad(format!(
                "unknown or read-only property {k}; this request takes {}",
                allowed.join(", ")
            )));
        }
    }
    Ok(())
}

fn domain(e: postern_core::Error) -> ODataError {
    e.into()
}

fn binary_value(m: &Map<String, Value>) -> Result<Vec<u8>, ODataError> {
    let encoded = text(m, "Value")?;
    if encoded.len() > partner::MAX_BINARY_VALUE / 3 * 4 + 8 {
        return Err(ODataError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Value is larger than {} bytes", partner::MAX_BINARY_VALUE),
        ));
    }
    let value = STANDARD
        .decode(encoded.trim())
        .map_err(|_| bad("Value is base64-encoded"))?;
    if value.len() > partner::MAX_BINARY_VALUE {
        return Err(ODataError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Value is larger than {} bytes", partner::MAX_BINARY_VALUE),
        ));
    }
    Ok(value)
}

/// Parses and validates one write request into a change.
pub(crate) fn plan(
    method: &Method,
    res: &Resource,
    o: &ListOptions,
    body: &[u8],
    actor: &str,
    now: i64,
) -> Result<Planned, ODataError> {
    let by = o
        .user
        .as_deref()
        .unwrap_or(actor)
        .chars()
        .take(partner::MAX_USER)
        .collect::<String>();
    let audit = Audit {
        created_by: by.clone(),
        created_at: now,
        modified_by: by,
        modified_at: now,
    };
    let name = set_name(res.set);
    match (method.as_str(), res.set, &res.key) {
        ("POST", PartnerSet::AlternativePartners, None) => {
            let m = object(body)?;
            only(
                &m,
                &["Agency", "Scheme", "Id", "Pid", "Hexagency", "Hexscheme", "Hexid"],
            )?;
            let a = AlternativePartner {
                agency: text(&m, "Agency")?.to_owned(),
                scheme: text(&m, "Scheme")?.to_owned(),
                id: text(&m, "Id")?.to_owned(),
                pid: text(&m, "Pid")?.to_owned(),
                audit,
            };
            partner::check_agency("Agency", &a.agency).map_err(domain)?;
            partner::check_agency("Scheme", &a.scheme).map_err(domain)?;
            partner::check_text("Id", &a.id, partner::MAX_ALT_ID).map_err(domain)?;
            partner::check_pid("Pid", &a.pid, partner::MAX_PID).map_err(domain)?;
            let target = describe(
                res.set,
                &Key::Alternative {
                    agency: a.agency.clone(),
                    scheme: a.scheme.clone(),
                    id: a.id.clone(),
                },
            );
            Ok(Planned {
                change: PartnerChange::InsertAlternative(a.clone()),
                answer: Answer::Created(PartnerRow::Alternative(a)),
                action: "partner.alternative.create",
                target,
            })
        }
        (
            "PUT" | "MERGE" | "PATCH",
            PartnerSet::AlternativePartners,
            Some(key @ Key::Alternative { agency, scheme, id }),
        ) => {
            let m = object(body)?;
            only(
                &m,
                &["Pid", "Agency", "Scheme", "Id", "Hexagency", "Hexscheme", "Hexid"],
            )?;
            let pid = text(&m, "Pid")?.to_owned();
            partner::check_pid("Pid", &pid, partner::MAX_PID).map_err(domain)?;
            Ok(Planned {
                change: PartnerChange::UpdateAlternative(AlternativePartner {
                    agency: agency.clone(),
                    scheme: scheme.clone(),
                    id: id.clone(),
                    pid,
                    audit,
                }),
                answer: Answer::NoContent,
                action: "partner.alternative.update",
                target: describe(res.set, key),
            })
        }
        ("DELETE", PartnerSet::AlternativePartners, Some(key @ Key::Alternative { agency, scheme, id })) => {
            Ok(Planned {
                change: PartnerChange::DeleteAlternative {
                    agency: agency.clone(),
                    scheme: scheme.clone(),
                    id: id.clone(),
                },
                answer: Answer::NoContent,
                action: "partner.alternative.delete",
                target: describe(res.set, key),
            })
        }
        ("POST", PartnerSet::AuthorizedUsers, None) => {
            let m = object(body)?;
            only(&m, &["User", "Pid"])?;
            let u = AuthorizedUser {
                user: partner::normalize_user(text(&m, "User")?).map_err(domain)?,
                pid: text(&m, "Pid")?.to_owned(),
                audit,
            };
            partner::check_pid("Pid", &u.pid, partner::MAX_PID).map_err(domain)?;
            let target = format!("AuthorizedUsers('{}')", u.user);
            Ok(Planned {
                change: PartnerChange::InsertUser(u.clone()),
                answer: Answer::Created(PartnerRow::User(u)),
                action: "partner.user.create",
                target,
            })
        }
        ("PUT" | "MERGE" | "PATCH", PartnerSet::AuthorizedUsers, Some(key @ Key::User(user))) => {
            let m = object(body)?;
            only(&m, &["Pid", "User"])?;
            let pid = text(&m, "Pid")?.to_owned();
            partner::check_pid("Pid", &pid, partner::MAX_PID).map_err(domain)?;
            Ok(Planned {
                change: PartnerChange::UpdateUser(AuthorizedUser {
                    user: user.clone(),
                    pid,
                    audit,
                }),
                answer: Answer::NoContent,
                action: "partner.user.update",
                target: describe(res.set, key),
            })
        }
        ("DELETE", PartnerSet::AuthorizedUsers, Some(key @ Key::User(user))) => Ok(Planned {
            change: PartnerChange::DeleteUser { user: user.clone() },
            answer: Answer::NoContent,
            action: "partner.user.delete",
            target: describe(res.set, key),
        }),
        ("POST", PartnerSet::StringParameters, None) => {
            let m = object(body)?;
            only(&m, &["Pid", "Id", "Value"])?;
            let p = StringParameter {
                pid: text(&m, "Pid")?.to_owned(),
                id: text(&m, "Id")?.to_owned(),
                value: text(&m, "Value")?.to_owned(),
                audit,
            };
            check_parameter(&p.pid, &p.id)?;
            check_string_value(&p.value)?;
            let target = format!("StringParameters(Pid='{}',Id='{}')", p.pid, p.id);
            Ok(Planned {
                change: PartnerChange::InsertString(p.clone()),
                answer: Answer::Created(PartnerRow::String(p)),
                action: "partner.string.create",
                target,
            })
        }
        ("PUT" | "MERGE" | "PATCH", PartnerSet::StringParameters, Some(key @ Key::Parameter { pid, id })) => {
            let m = object(body)?;
            only(&m, &["Value", "Pid", "Id"])?;
            let value = text(&m, "Value")?.to_owned();
            check_string_value(&value)?;
            Ok(Planned {
                change: PartnerChange::UpdateString(StringParameter {
                    pid: pid.clone(),
                    id: id.clone(),
                    value,
                    audit,
                }),
                answer: Answer::NoContent,
                action: "partner.string.update",
                target: describe(res.set, key),
            })
        }
        ("DELETE", PartnerSet::StringParameters, Some(key @ Key::Parameter { pid, id })) => Ok(Planned {
            change: PartnerChange::DeleteString {
                pid: pid.clone(),
                id: id.clone(),
            },
            answer: Answer::NoContent,
            action: "partner.string.delete",
            target: describe(res.set, key),
        }),
        ("POST", PartnerSet::BinaryParameters, None) => {
            let m = object(body)?;
            only(&m, &["Pid", "Id", "ContentType", "Value"])?;
            let p = BinaryParameter {
                pid: text(&m, "Pid")?.to_owned(),
                id: text(&m, "Id")?.to_owned(),
                content_type: text(&m, "ContentType")?.to_owned(),
                value: binary_value(&m)?,
                audit,
            };
            check_parameter(&p.pid, &p.id)?;
            partner::check_content_type(&p.content_type).map_err(domain)?;
            let target = format!("BinaryParameters(Pid='{}',Id='{}')", p.pid, p.id);
            Ok(Planned {
                change: PartnerChange::InsertBinary(p.clone()),
                answer: Answer::Created(PartnerRow::Binary(p)),
                action: "partner.binary.create",
                target,
            })
        }
        ("PUT" | "MERGE" | "PATCH", PartnerSet::BinaryParameters, Some(key @ Key::Parameter { pid, id })) => {
            let m = object(body)?;
            only(&m, &["ContentType", "Value", "Pid", "Id"])?;
            let content_type = text(&m, "ContentType")?.to_owned();
            partner::check_content_type(&content_type).map_err(domain)?;
            Ok(Planned {
                change: PartnerChange::UpdateBinary(BinaryParameter {
                    pid: pid.clone(),
                    id: id.clone(),
                    content_type,
                    value: binary_value(&m)?,
                    audit,
                }),
                answer: Answer::NoContent,
                action: "partner.binary.update",
                target: describe(res.set, key),
            })
        }
        ("DELETE", PartnerSet::BinaryParameters, Some(key @ Key::Parameter { pid, id })) => Ok(Planned {
            change: PartnerChange::DeleteBinary {
                pid: pid.clone(),
                id: id.clone(),
            },
            answer: Answer::NoContent,
            action: "partner.binary.delete",
            target: describe(res.set, key),
        }),
        ("DELETE", PartnerSet::Partners, Some(key @ Key::Partner(pid))) => {
            let mut keep = Vec::new();
            if let Some(ex) = &o.exclude {
                for name in ex.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                    match PartnerKind::parse(name) {
                        Some(k) => keep.push(k),
                        // Postern keeps no user credential parameters: nothing to exclude.
                        None if name == "UserCredentialParameters" => {}
                        None => {
                            return Err(bad(format!(
                                "exclude takes AlternativePartners, AuthorizedUsers, BinaryParameters, \
                                 StringParameters, UserCredentialParameters; not {name}"
                            )));
                        }
                    }
                }
            }
            Ok(Planned {
                change: PartnerChange::DeletePartner {
                    pid: pid.clone(),
                    keep,
                },
                answer: Answer::NoContent,
                action: "partner.delete",
                target: describe(res.set, key),
            })
        }
        (m, _, None) if m != "GET" && m != "POST" => Err(ODataError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{m} needs a key: {name}(<key>)"),
        )),
        (m, _, _) => Err(ODataError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{name} does not support {m} here"),
        )),
    }
}

fn check_parameter(pid: &str, id: &str) -> Result<(), ODataError> {
    partner::check_pid("Pid", pid, partner::MAX_PID).map_err(domain)?;
    partner::check_pid("Id", id, partner::MAX_PARAM_ID).map_err(domain)
}

fn check_string_value(value: &str) -> Result<(), ODataError> {
    if value.chars().count() > partner::MAX_STRING_VALUE {
        return Err(bad(format!(
            "Value: give at most {} characters",
            partner::MAX_STRING_VALUE
        )));
    }
    Ok(())
}

/// Applies planned changes in one transaction, records them in the audit log, and returns the
/// answers in order.
pub(crate) async fn apply(
    s: &AppState,
    planned: Vec<Planned>,
    actor: &str,
    source: &str,
    now: i64,
) -> Result<Vec<(StatusCode, Option<Value>)>, ODataError> {
    let entries: Vec<postern_core::model::AuditEntry> = planned
        .iter()
        .map(|p| postern_core::model::AuditEntry {
            id: 0,
            at: now,
            actor: actor.to_owned(),
            action: p.action.to_owned(),
            target: p.target.clone(),
            detail: audit_detail(&p.change).to_string(),
            source: source.to_owned(),
        })
        .collect();
    let (changes, answers): (Vec<PartnerChange>, Vec<Answer>) =
        planned.into_iter().map(|p| (p.change, p.answer)).unzip();
    s.write_partners(changes).await?;
    if let Err(e) = s.store().append_audit(&entries).await {
        tracing::error!(error = %e, "partner directory change applied but not audited");
    }
    let base = super::base_url(s);
    Ok(answers
        .into_iter()
        .map(|answer| match answer {
            Answer::Created(row) => (
                StatusCode::CREATED,
                Some(json!({ "d": entity_json(&base, &row) })),
            ),
            Answer::NoContent => (StatusCode::NO_CONTENT, None),
        })
        .collect())
}

/// What the audit log records of a change: the new values, never binary content.
fn audit_detail(c: &PartnerChange) -> Value {
    match c {
        PartnerChange::InsertAlternative(a) | PartnerChange::UpdateAlternative(a) => json!({ "pid": a.pid }),
        PartnerChange::InsertUser(u) | PartnerChange::UpdateUser(u) => json!({ "pid": u.pid }),
        PartnerChange::InsertString(p) | PartnerChange::UpdateString(p) => {
            json!({ "valueLength": p.value.chars().count() })
        }
        PartnerChange::InsertBinary(p) | PartnerChange::UpdateBinary(p) => {
            json!({ "contentType": p.content_type, "bytes": p.value.len() })
        }
        PartnerChange::DeletePartner { keep, .. } => {
            json!({ "kept": keep.iter().map(|k| format!("{k:?}")).collect::<Vec<_>>() })
        }
        _ => json!({}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_predicates() {
        let r = |p: &str| resource(p).expect("a PD set");
        assert_eq!(
            r("StringParameters(Pid='ACME',Id='it''s')").expect("ok").key,
            Some(Key::Parameter {
                pid: "ACME".into(),
                id: "it's".into()
            })
        );
        assert_eq!(
            r("AlternativePartners(Hexagency='303136',Hexscheme='44554E53',Hexid='3132,33')")
                .expect_err("bad hex")
                .status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            r("AlternativePartners(Hexscheme='44554E53',Hexagency='303136',Hexid='313233')")
                .expect("ok")
                .key,
            Some(Key::Alternative {
                agency: "016".into(),
                scheme: "DUNS".into(),
                id: "123".into()
            })
        );
        assert_eq!(
            r("AuthorizedUsers('Partner-A')").expect("ok").key,
            Some(Key::User("partner-a".into()))
        );
        assert!(r("StringParameters(Pid='a')").is_err());
        assert!(r("Partners('a").is_err());
        assert!(r("Partners(a)").is_err());
        assert!(resource("MessageProcessingLogs('x')").is_none());
    }
}
