//! The `http` and `queue` receivers of the flow YAML:
//!
//! ```yaml
//! receiver:
//!   http:
//!     url: "https://erp.example.com/orders/${partner.ReceiverPath}"  # templates allowed
//!     method: POST                     # default: the sender's
//!     headers: { X-Source: postern }   # extra headers (templates)
//!     forward_headers: all             # all (default), none, or a list of names
//!     user_header: X-Sender-User       # the authenticated sender's name, if wanted
//!     partner_header: X-Partner-Id     # the checked partner's Pid, if wanted
//!     connect_timeout_ms: 10000
//!     timeout_ms: 60000
//!     max_response_bytes: 41943040
//!     ca: "-----BEGIN CERTIFICATE-----..."  # trust these instead of the system's roots
//!     credential: erp-user             # a stored credential: Basic, bearer or client certificate
//! ```
//! ```yaml
//! receiver:
//!   queue:
//!     name: orders                     # durable; 202 once stored
//!     ordered: false                   # deliver each partner's messages in order
//!     max_attempts: 10                 # then the dead letter
//!     retry_interval_ms: 1000          # doubling ...
//!     max_retry_interval_ms: 600000    # ... up to this
//!     idempotency: { header: Idempotency-Key, window_hours: 24 }
//!     target: { http: { url: "https://erp.example.com/orders" } }
//! ```

use std::time::Duration;

use postern_core::Error;
use serde::Deserialize;
use serde_norway::Mapping;

use super::{Receiver, is_token_byte, located, templates};
use crate::expr::Template;
use crate::receiver::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_RESPONSE, DEFAULT_TIMEOUT, Forward, HttpReceiver, HttpSettings,
    MAX_IDEMPOTENCY_WINDOW, QueueReceiver,
};

/// Longest timeout a flow may set.
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
/// Longest timeout of a queue's target: below the delivery lease, so a slow delivery is never
/// taken over by another node while it still runs.
const MAX_QUEUE_TIMEOUT: Duration = Duration::from_secs(240);
/// Most attempts a queue may make.
const MAX_ATTEMPTS: u32 = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HttpDoc {
    url: String,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    headers: Mapping,
    #[serde(default)]
    forward_headers: Option<ForwardDoc>,
    #[serde(default)]
    user_header: Option<String>,
    #[serde(default)]
    partner_header: Option<String>,
    #[serde(default)]
    connect_timeout_ms: Option<u64>,
    #[serde(default)]
    timeout_ms: Option<u64>,
    #[serde(default)]
    max_response_bytes: Option<u64>,
    #[serde(default)]
    ca: Option<String>,
    #[serde(default)]
    credential: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ForwardDoc {
    Word(String),
    List(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct QueueDoc {
    name: String,
    #[serde(default)]
    ordered: Option<bool>,
    #[serde(default)]
    max_attempts: Option<u32>,
    #[serde(default)]
    retry_interval_ms: Option<u64>,
    #[serde(default)]
    max_retry_interval_ms: Option<u64>,
    #[serde(default)]
    idempotency: Option<IdempotencyDoc>,
    target: TargetDoc,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IdempotencyDoc {
    header: String,
    #[serde(default)]
    window_hours: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetDoc {
    http: HttpDoc,
}

/// Compiles an `http` receiver found at `field`.
pub(super) fn http(d: HttpDoc, field: &str, yaml: &str) -> Result<HttpReceiver, Error> {
    let bad = |key: &str, m: String| {
        let at = format!("{field}.{key}");
        located(yaml, &at, key, Error::invalid(&at, m))
    };
    let url = Template::compile(&d.url).map_err(|m| bad("url", m))?;
    if url.is_constant() {
        let parsed = reqwest::Url::parse(&d.url).map_err(|e| bad("url", format!("not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") || !parsed.has_host() {
            return Err(bad("url", "must be an absolute http:// or https:// URL".into()));
        }
    } else if !(d.url.starts_with("http://") || d.url.starts_with("https://") || d.url.starts_with("${")) {
        return Err(bad(
            "url",
            "must start with http://, https:// or an expression".into(),
        ));
    }
    // Credentials do not belong in a URL: it is shown in status pages, MPLs and logs.
    if d.url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split(['/', '?']).next())
        .is_some_and(|a| a.contains('@'))
    {
        return Err(bad(
            "url",
            "must not carry user:password@; credentials do not belong in URLs".into(),
        ));
    }
    let method = match d.method {
        None => None,
        Some(m) => {
            let upper = m.to_ascii_uppercase();
            if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&upper.as_str()) {
                return Err(bad("method", "must be GET, POST, PUT, PATCH or DELETE".into()));
            }
            Some(upper)
        }
    };
    let headers = templates(&d.headers, &format!("{field}.headers"), yaml)?;
    let forward = match d.forward_headers {
        None => Forward::All,
        Some(ForwardDoc::Word(w)) if w == "all" => Forward::All,
        Some(ForwardDoc::Word(w)) if w == "none" => Forward::Only(Vec::new()),
        Some(ForwardDoc::Word(_)) => {
            return Err(bad(
                "forward_headers",
                "must be all, none or a list of header names".into(),
            ));
        }
        Some(ForwardDoc::List(names)) => Forward::Only(
            names
                .iter()
                .map(|n| header_name(n).map_err(|m| bad("forward_headers", m)))
                .collect::<Result<_, _>>()?,
        ),
    };
    let user_header = d
        .user_header
        .map(|h| header_name(&h).map(|_| h))
        .transpose()
        .map_err(|m| bad("user_header", m))?;
    let partner_header = d
        .partner_header
        .map(|h| header_name(&h).map(|_| h))
        .transpose()
        .map_err(|m| bad("partner_header", m))?;
    let connect_timeout = duration_ms(d.connect_timeout_ms, DEFAULT_CONNECT_TIMEOUT)
        .map_err(|m| bad("connect_timeout_ms", m))?;
    let timeout = duration_ms(d.timeout_ms, DEFAULT_TIMEOUT).map_err(|m| bad("timeout_ms", m))?;
    let max_response = match d.max_response_bytes {
        None => DEFAULT_MAX_RESPONSE,
        Some(n) if n == 0 || n > super::MAX_MAX_BODY => {
            return Err(bad(
                "max_response_bytes",
                format!("must be between 1 and {}", super::MAX_MAX_BODY),
            ));
        }
        Some(n) => n as usize,
    };
    HttpReceiver::new(HttpSettings {
        url,
        method,
        headers,
        forward,
        user_header,
        partner_header,
        connect_timeout,
        timeout,
        max_response,
        ca_pem: d.ca,
        credential: d.credential,
    })
    .map_err(|m| bad("ca", m))
}

/// Compiles a `queue` receiver.
pub(super) fn queue(d: QueueDoc, yaml: &str) -> Result<Receiver, Error> {
    const F: &str = "receiver.queue";
    let bad = |key: &str, m: String| {
        let at = format!("{F}.{key}");
        located(yaml, &at, key, Error::invalid(&at, m))
    };
    if d.name.is_empty()
        || d.name.len() > 100
        || !d
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return Err(bad(
            "name",
            "must be 1 to 100 letters, digits, '.', '_' or '-'".into(),
        ));
    }
    let max_attempts = d.max_attempts.unwrap_or(10);
    if max_attempts == 0 || max_attempts > MAX_ATTEMPTS {
        return Err(bad(
            "max_attempts",
            format!("must be between 1 and {MAX_ATTEMPTS}"),
        ));
    }
    let retry_interval =
        duration_ms(d.retry_interval_ms, Duration::from_secs(1)).map_err(|m| bad("retry_interval_ms", m))?;
    let max_retry_interval = duration_ms(d.max_retry_interval_ms, Duration::from_secs(600))
        .map_err(|m| bad("max_retry_interval_ms", m))?
        .max(retry_interval);
    let idempotency = match d.idempotency {
        None => None,
        Some(i) => {
            header_name(&i.header).map_err(|m| bad("idempotency.header", m))?;
            let window = Duration::from_secs(i.window_hours.unwrap_or(24).saturating_mul(3600));
            if window.is_zero() || window > MAX_IDEMPOTENCY_WINDOW {
                return Err(bad(
                    "idempotency.window_hours",
                    "must be between 1 and 168".into(),
                ));
            }
            Some((i.header, window))
        }
    };
    if d.target
        .http
        .timeout_ms
        .is_some_and(|t| Duration::from_millis(t) > MAX_QUEUE_TIMEOUT)
    {
        return Err(bad(
            "target.http.timeout_ms",
            format!(
                "must be at most {} ms for a queue target",
                MAX_QUEUE_TIMEOUT.as_millis()
            ),
        ));
    }
    let target = http(d.target.http, "receiver.queue.target.http", yaml)?;
    Ok(Receiver::Queue(QueueReceiver {
        name: d.name,
        ordered: d.ordered.unwrap_or(false),
        max_attempts,
        retry_interval,
        max_retry_interval,
        idempotency,
        target,
    }))
}

fn header_name(name: &str) -> Result<String, String> {
    if name.is_empty() || name.len() > 200 || !name.bytes().all(is_token_byte) {
        return Err(format!("invalid header name {name:?}"));
    }
    Ok(name.to_ascii_lowercase())
}

fn duration_ms(ms: Option<u64>, default: Duration) -> Result<Duration, String> {
    match ms {
        None => Ok(default),
        Some(0) => Err("must be at least 1 ms".into()),
        Some(ms) if Duration::from_millis(ms) > MAX_TIMEOUT => {
            Err(format!("must be at most {} ms", MAX_TIMEOUT.as_millis()))
        }
        Some(ms) => Ok(Duration::from_millis(ms)),
    }
}
