//! The admin API client the management commands share: Basic auth, JSON in and out, and server
//! errors shown with their message.

use anyhow::{Context, bail};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::Connection;

/// A connection to a running server.
pub(crate) struct Client {
    http: reqwest::Client,
    base: String,
    user: String,
    password: String,
    json: bool,
}

impl Client {
    pub(crate) fn new(conn: &Connection) -> anyhow::Result<Self> {
        let Some(password) = conn.password.clone() else {
            bail!("set POSTERN_PASSWORD (or --password) to the admin password");
        };
        let mut builder = reqwest::Client::builder().timeout(std::time::Duration::from_secs(60));
        if let Some(path) = &conn.ca_cert {
            let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .context("the --ca-cert file is not a PEM certificate")?;
            builder = builder.add_root_certificate(cert);
        }
        Ok(Self {
            http: builder.build().context("building the HTTP client")?,
            base: conn.url.trim_end_matches('/').to_owned(),
            user: conn.user.clone(),
            password,
            json: conn.json,
        })
    }

    pub(crate) async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(Method::GET, path, None).await
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(Method::POST, path, Some(Body::Json(body))).await
    }

    pub(crate) async fn patch(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(Method::PATCH, path, Some(Body::Json(body))).await
    }

    pub(crate) async fn put_json(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(Method::PUT, path, Some(Body::Json(body))).await
    }

    pub(crate) async fn put_text(&self, path: &str, text: String) -> anyhow::Result<Value> {
        self.call(Method::PUT, path, Some(Body::Text(text))).await
    }

    pub(crate) async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.call(Method::DELETE, path, None).await
    }

    /// POSTs JSON and returns the raw answer body (downloads).
    pub(crate) async fn post_bytes(&self, path: &str, body: Value) -> anyhow::Result<Vec<u8>> {
        let resp = self
            .http
            .post(format!("{}{}", self.base, path))
            .basic_auth(&self.user, Some(&self.password))
            .json(&body)
            .send()
            .await
            .with_context(|| format!("cannot reach {} (is `postern serve` running?)", self.base))?;
        let status = resp.status();
        let bytes = resp.bytes().await.context("reading the answer")?;
        if !status.is_success() {
            let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            bail!(
                "{} {}",
                status.as_u16(),
                v.get("message").and_then(Value::as_str).unwrap_or("")
            );
        }
        Ok(bytes.to_vec())
    }

    async fn call(&self, method: Method, path: &str, body: Option<Body>) -> anyhow::Result<Value> {
        let url = format!("{}{}", self.base, path);
        let mut req = self
            .http
            .request(method, &url)
            .basic_auth(&self.user, Some(&self.password));
        req = match body {
            Some(Body::Json(v)) => req.json(&v),
            Some(Body::Text(t)) => req.header("content-type", "application/yaml").body(t),
            None => req,
        };
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach {} (is `postern serve` running?)", self.base))?;
        let status = resp.status();
        let text = resp.text().await.context("reading the answer")?;
        if status == StatusCode::NO_CONTENT || text.is_empty() {
            if status.is_success() {
                return Ok(Value::Null);
            }
            bail!("{status}");
        }
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if !status.is_success() {
            let message = value
                .get("message")
                .and_then(Value::as_str)
                .or_else(|| value.pointer("/error/message/value").and_then(Value::as_str))
                .map(str::to_owned)
                .unwrap_or_else(|| value.to_string());
            bail!("{} {message}", status.as_u16());
        }
        Ok(value)
    }

    /// Prints `v` as JSON with `--json`, otherwise with `text`.
    pub(crate) fn print(&self, v: &Value, text: impl FnOnce(&Value)) {
        if self.json {
            println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
        } else {
            text(v);
        }
    }

    /// Whether JSON output was asked for.
    pub(crate) fn json(&self) -> bool {
        self.json
    }
}

enum Body {
    Json(Value),
    Text(String),
}

/// Prints an array of objects as an aligned table of the given columns.
pub(crate) fn table(v: &Value, columns: &[&str]) {
    let rows: Vec<Vec<String>> = v
        .as_array()
        .map(|a| {
            a.iter()
                .map(|o| columns.iter().map(|c| cell(o.get(*c))).collect())
                .collect()
        })
        .unwrap_or_default();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([c.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(columns.iter().map(|c| c.to_string()).collect());
    if rows.is_empty() {
        println!("(none)");
    }
    for r in rows {
        line(r);
    }
}

/// A value as one table cell.
pub(crate) fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) => a.iter().map(|x| cell(Some(x))).collect::<Vec<_>>().join(","),
        Some(other) => other.to_string(),
    }
}

/// Reads `-c` parameters: inline JSON, or a path to a JSON file.
pub(crate) fn parameters(arg: Option<&str>) -> anyhow::Result<Value> {
    let Some(a) = arg else {
        return Ok(Value::Object(Default::default()));
    };
    let text = if a.trim_start().starts_with('{') {
        a.to_owned()
    } else {
        std::fs::read_to_string(a).with_context(|| format!("reading parameters file {a}"))?
    };
    let v: Value = serde_json::from_str(&text).context("parameters are not valid JSON")?;
    if !v.is_object() {
        bail!("parameters must be a JSON object");
    }
    Ok(v)
}

/// Percent-encodes a path segment.
pub(crate) fn seg(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
