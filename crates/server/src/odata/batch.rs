//! OData v2 `$batch` (multipart/mixed) for the Partner Directory: each change set is planned as a
//! whole and applied in one transaction (all or nothing, as SAP documents); GET requests outside
//! change sets are answered in order. Limits: body size (route), parts per batch, nesting.

use axum::http::{Method, StatusCode};
use serde_json::Value;

use super::ODataError;
use super::partners::{self, ListOptions};
use crate::state::AppState;

/// Most requests in one batch.
const MAX_REQUESTS: usize = 1000;

fn bad(m: impl Into<String>) -> ODataError {
    ODataError::new(StatusCode::BAD_REQUEST, m)
}

/// The boundary parameter of a multipart content type.
pub(crate) fn boundary(content_type: &str) -> Option<String> {
    let (kind, params) = content_type.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/mixed") {
        return None;
    }
    params.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_owned())
            .filter(|b| !b.is_empty() && b.len() <= 70)
    })
}

/// Splits a multipart body into its parts (each still with its headers).
fn parts<'a>(body: &'a str, boundary: &str) -> Result<Vec<&'a str>, ODataError> {
    let delimiter = format!("--{boundary}");
    let mut out = Vec::new();
    let mut rest = match body.find(&delimiter) {
        Some(i) => &body[i + delimiter.len()..],
        None => return Err(bad(format!("no part starts with --{boundary}"))),
    };
    loop {
        if rest.starts_with("--") {
            return Ok(out);
        }
        let end = rest
            .find(&delimiter)
            .ok_or_else(|| bad(format!("the multipart body does not end with --{boundary}--")))?;
        let part = rest[..end]
            .strip_prefix("\r\n")
            .or_else(|| rest[..end].strip_prefix('\n'))
            .unwrap_or(&rest[..end]);
        let part = part
            .strip_suffix("\r\n")
            .or_else(|| part.strip_suffix('\n'))
            .unwrap_or(part);
        out.push(part);
        if out.len() > MAX_REQUESTS {
            return Err(bad(format!("at most {MAX_REQUESTS} parts in a batch")));
        }
        rest = &rest[end + delimiter.len()..];
    }
}

/// Splits headers from content at the first blank line.
fn head_and_body(part: &str) -> (&str, &str) {
    if let Some(i) = part.find("\r\n\r\n") {
        (&part[..i], &part[i + 4..])
    } else if let Some(i) = part.find("\n\n") {
        (&part[..i], &part[i + 2..])
    } else {
        (part, "")
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// One request inside the batch.
struct Inner {
    method: Method,
    path: String,
    query: String,
    body: String,
}

fn request(part: &str) -> Result<Inner, ODataError> {
    let (head, http) = head_and_body(part);
    match header(head, "content-type") {
        Some(ct) if ct.to_ascii_lowercase().starts_with("application/http") => {}
        _ => return Err(bad("each batch part has Content-Type: application/http")),
    }
    let (req_head, body) = head_and_body(http);
    let line = req_head.lines().next().unwrap_or("").trim();
    let mut words = line.split_whitespace();
    let (Some(method), Some(url)) = (words.next(), words.next()) else {
        return Err(bad("a batch request starts with '<METHOD> <URL> HTTP/1.1'"));
    };
    let method =
        Method::from_bytes(method.as_bytes()).map_err(|_| bad("invalid method in a batch request"))?;
    // Relative to the service root, or absolute / rooted with `/api/v1/`.
    let url = match url.find("/api/v1/") {
        Some(i) => &url[i + "/api/v1/".len()..],
        None => url.trim_start_matches('/'),
    };
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let path = percent_decode(path)?;
    Ok(Inner {
        method,
        path,
        query: query.to_owned(),
        body: body.trim_end_matches(['\r', '\n']).to_owned(),
    })
}

fn percent_decode(s: &str) -> Result<String, ODataError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .ok_or_else(|| bad("bad percent-encoding in a batch URL"))?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad("bad percent-encoding in a batch URL"))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad("a batch URL is not UTF-8"))
}

/// One answer part.
fn http_part(status: StatusCode, body: Option<&Value>, content_id: Option<&str>) -> String {
    let mut out = String::from("Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n");
    if let Some(id) = content_id {
        out.push_str(&format!("Content-ID: {id}\r\n"));
    }
    out.push_str(&format!(
        "\r\nHTTP/1.1 {} {}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    ));
    match body {
        Some(v) => {
            let text = v.to_string();
            out.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}\r\n",
                text.len()
            ));
        }
        None => out.push_str("Content-Length: 0\r\n\r\n"),
    }
    out
}

/// Answers a `$batch` body; returns the response content type and body.
pub(crate) async fn run(
    s: &AppState,
    content_type: &str,
    body: &[u8],
    actor: &str,
    source: &str,
) -> Result<(String, String), ODataError> {
    let batch_boundary =
        boundary(content_type).ok_or_else(|| bad("a $batch request is multipart/mixed with a boundary"))?;
    let body = std::str::from_utf8(body).map_err(|_| bad("a $batch body is UTF-8"))?;
    let out_boundary = format!("batchresponse_{}", postern_auth::secret::uuid_v4());
    let mut out = String::new();
    let mut requests = 0usize;
    for part in parts(body, &batch_boundary)? {
        let (head, content) = head_and_body(part);
        let ct = header(head, "content-type").unwrap_or("");
        out.push_str(&format!("--{out_boundary}\r\n"));
        if let Some(cs_boundary) = boundary(ct) {
            let inner = parts(content, &cs_boundary)?;
            requests += inner.len();
            if requests > MAX_REQUESTS {
                return Err(bad(format!("at most {MAX_REQUESTS} requests in a batch")));
            }
            out.push_str(&changeset(s, &inner, actor, source).await);
        } else {
            requests += 1;
            if requests > MAX_REQUESTS {
                return Err(bad(format!("at most {MAX_REQUESTS} requests in a batch")));
            }
            let (status, value) = match query(s, part).await {
                Ok(v) => (StatusCode::OK, v),
                Err(e) => (e.status(), e.body()),
            };
            out.push_str(&http_part(status, Some(&value), None));
        }
    }
    out.push_str(&format!("--{out_boundary}--\r\n"));
    Ok((format!("multipart/mixed; boundary={out_boundary}"), out))
}

/// A GET outside a change set.
async fn query(s: &AppState, part: &str) -> Result<Value, ODataError> {
    let r = request(part)?;
    if r.method != Method::GET {
        return Err(bad("only GET requests may stand outside a change set"));
    }
    let res = partners::resource(&r.path)
        .ok_or_else(|| ODataError::new(StatusCode::NOT_FOUND, format!("no entity set {}", r.path)))??;
    let o = ListOptions::parse(&r.query)?;
    match &res.key {
        None => partners::list(s, res.set, &o).await,
        Some(k) => partners::by_key(s, res.set, k, &o).await,
    }
}

/// Plans every request of a change set, applies them in one transaction and answers either one
/// response per request or, when any fails, one error for the whole change set.
async fn changeset(s: &AppState, inner: &[&str], actor: &str, source: &str) -> String {
    let now = crate::extract::now_ms();
    let mut planned = Vec::with_capacity(inner.len());
    let mut ids = Vec::with_capacity(inner.len());
    for (i, part) in inner.iter().enumerate() {
        let (head, _) = head_and_body(part);
        ids.push(header(head, "content-id").map(str::to_owned));
        let step = request(part).and_then(|r| {
            let res = partners::resource(&r.path).ok_or_else(|| {
                ODataError::new(StatusCode::NOT_FOUND, format!("no entity set {}", r.path))
            })??;
            let o = ListOptions::parse(&r.query)?;
            if r.method == Method::GET {
                return Err(bad("GET requests belong outside change sets"));
            }
            partners::plan(&r.method, &res, &o, r.body.as_bytes(), actor, now)
        });
        match step {
            Ok(p) => planned.push(p),
            Err(e) => {
                return http_part(
                    e.status(),
                    Some(&e.with_prefix(&format!("change {}: ", i + 1)).body()),
                    None,
                );
            }
        }
    }
    match partners::apply(s, planned, actor, source, now).await {
        Err(e) => http_part(e.status(), Some(&e.body()), None),
        Ok(answers) => {
            let cs = format!("changesetresponse_{}", postern_auth::secret::uuid_v4());
            let mut out = format!("Content-Type: multipart/mixed; boundary={cs}\r\n\r\n");
            for ((status, body), id) in answers.iter().zip(&ids) {
                out.push_str(&format!("--{cs}\r\n"));
                out.push_str(&http_part(*status, body.as_ref(), id.as_deref()));
            }
            out.push_str(&format!("--{cs}--\r\n"));
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_nested_parts() {
        let body = "--batch_1\r\nContent-Type: multipart/mixed; boundary=changeset_1\r\n\r\n\
            --changeset_1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n\
            POST StringParameters HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{\"Pid\":\"a\"}\r\n\
            --changeset_1--\r\n\r\n--batch_1--\r\n";
        let outer = parts(body, "batch_1").expect("parts");
        assert_eq!(outer.len(), 1);
        let (head, content) = head_and_body(outer[0]);
        let cs = boundary(header(head, "content-type").expect("ct")).expect("boundary");
        assert_eq!(cs, "changeset_1");
        let inner = parts(content, &cs).expect("inner");
        let r = request(inner[0]).expect("request");
        assert_eq!(
            (r.method, r.path.as_str(), r.body.as_str()),
            (Method::POST, "StringParameters", "{\"Pid\":\"a\"}")
        );
        assert!(parts("--b\r\nx", "b").is_err(), "unterminated");
        assert_eq!(
            boundary("multipart/mixed; boundary=\"x y\"").as_deref(),
            Some("x y")
        );
        assert_eq!(boundary("application/json"), None);
    }
}
