//! `http`: forwards the message to a back end and hands its answer to the sender (SAP's HTTP
//! receiver adapter). One pooled client per receiver, built at deploy time; the URL and extra
//! headers are templates (`${partner.ReceiverAddress}` reads the Partner Directory). Credentials
//! and hop-by-hop headers of the sender never travel on.

use std::time::Duration;

use bytes::Bytes;
use postern_partner::Directory;

use crate::expr::{PARTNER_PROPERTY, Template};
use crate::message::Message;
use crate::pipeline::Reply;
use crate::step::StepError;

/// Default connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default total timeout of one delivery (connect, send, answer).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Default largest answer read from a back end.
pub const DEFAULT_MAX_RESPONSE: usize = 40 * 1024 * 1024;

/// Headers that never go from the sender to a back end: credentials, hop-by-hop headers, what
/// the client sets itself, and the runtime's own (`Camel*` is dropped by prefix).
const NOT_FORWARDED: [&str; 14] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "expect",
    "proxy-connection",
    "sapauthenticatedusername",
];

/// Response headers of a back end that do not go back to the sender.
const NOT_RETURNED: [&str; 9] = [
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "proxy-authenticate",
    "set-cookie",
];

/// Text that must not show in logs or debug output (a password, token or private key).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// A credential presented to a back end, opened for use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackendCredential {
    /// HTTP Basic.
    Basic {
        /// User.
        user: String,
        /// Password.
        password: Secret,
    },
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// The token.
        token: Secret,
    },
    /// A client certificate for TLS.
    Certificate {
        /// Certificate chain, PEM.
        chain_pem: String,
        /// Private key, PEM.
        key_pem: Secret,
    },
}

/// Which of the message's headers travel to the back end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Forward {
    /// Every header but credentials and hop-by-hop headers.
    All,
    /// Only these (lower-case names).
    Only(Vec<String>),
}

/// The compiled receiver.
#[derive(Debug)]
pub struct HttpReceiver {
    url: Template,
    method: Option<String>,
    headers: Vec<(String, Template)>,
    forward: Forward,
    user_header: Option<String>,
    partner_header: Option<String>,
    timeout: Duration,
    max_response: usize,
    client: reqwest::Client,
    connect_timeout: Duration,
    ca_pem: Option<String>,
    credential: Option<String>,
    /// The `Authorization` value of a Basic or bearer credential, once bound.
    authorization: Option<Secret>,
}

/// Settings of an [`HttpReceiver`] as the flow gives them.
#[derive(Debug)]
pub struct HttpSettings {
    /// Target URL template.
    pub url: Template,
    /// Method (upper case); the sender's when `None`.
    pub method: Option<String>,
    /// Extra headers.
    pub headers: Vec<(String, Template)>,
    /// Which headers travel on.
    pub forward: Forward,
    /// Header carrying the authenticated sender's name, if any.
    pub user_header: Option<String>,
    /// Header carrying the partner's Pid, if any.
    pub partner_header: Option<String>,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Total timeout.
    pub timeout: Duration,
    /// Largest answer read.
    pub max_response: usize,
    /// PEM certificates to trust instead of the system's roots.
    pub ca_pem: Option<String>,
    /// The name of the credential to present, bound later by [`HttpReceiver::bind`].
    pub credential: Option<String>,
}

/// A request ready to be sent: what a queue stores.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// Method.
    pub method: String,
    /// Absolute `http`/`https` URL.
    pub url: String,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Bytes,
}

/// Why a delivery did not get an answer, or got one that counts as a failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeliveryError {
    /// No answer within the timeout.
    Timeout(String),
    /// No connection, or it broke.
    Unreachable(String),
    /// The back end answered with a status that is a failure.
    Status(u16, String),
    /// The answer was larger than allowed, or unreadable.
    BadAnswer(String),
}

impl DeliveryError {
    /// The text for the MPL and the sender (never a credential: URLs are shown without their
    /// query, and user info is refused at deploy).
    pub fn message(&self) -> &str {
        match self {
            DeliveryError::Timeout(m)
            | DeliveryError::Unreachable(m)
            | DeliveryError::Status(_, m)
            | DeliveryError::BadAnswer(m) => m,
        }
    }

    /// The back end's status, when it answered.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            DeliveryError::Status(s, _) => Some(*s),
            _ => None,
        }
    }

    /// What the waiting sender gets: 504 for a timeout, 502 otherwise.
    pub fn to_step_error(&self) -> StepError {
        let (status, kind) = match self {
            DeliveryError::Timeout(_) => (504, "receiver_timeout"),
            _ => (502, "receiver_failed"),
        };
        StepError {
            denial: None,
            status,
            kind,
            message: self.message().to_owned(),
        }
    }
}

impl HttpReceiver {
    /// Builds the receiver and its client; the error says what is wrong with the settings.
    pub fn new(s: HttpSettings) -> Result<Self, String> {
        let client = build_client(s.connect_timeout, s.timeout, s.ca_pem.as_deref(), None)?;
        Ok(Self {
            url: s.url,
            method: s.method,
            headers: s.headers,
            forward: s.forward,
            user_header: s.user_header,
            partner_header: s.partner_header,
            timeout: s.timeout,
            max_response: s.max_response,
            client,
            connect_timeout: s.connect_timeout,
            ca_pem: s.ca_pem,
            credential: s.credential,
            authorization: None,
        })
    }

    /// The credential this receiver presents, by name.
    pub fn credential(&self) -> Option<&str> {
        self.credential.as_deref()
    }

    /// Binds the named credential: a Basic or bearer credential becomes the `Authorization` of
    /// every request, a certificate the client's TLS identity. Fails when it does not exist.
    pub fn bind(&mut self, lookup: &dyn Fn(&str) -> Option<BackendCredential>) -> Result<(), String> {
        let Some(name) = &self.credential else {
            return Ok(());
        };
        let c = lookup(name).ok_or_else(|| format!("credential {name} does not exist"))?;
        match c {
            BackendCredential::Basic { user, password } => {
                use base64::Engine;
                let pair = format!("{user}:{}", password.0);
                let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
                self.authorization = Some(Secret(format!("Basic {encoded}")));
            }
            BackendCredential::Bearer { token } => {
                self.authorization = Some(Secret(format!("Bearer {}", token.0)));
            }
            BackendCredential::Certificate { chain_pem, key_pem } => {
                let pem = format!("{}\n{}", key_pem.0, chain_pem);
                let identity = reqwest::Identity::from_pem(pem.as_bytes())
                    .map_err(|e| format!("credential {name} is not a usable certificate and key: {e}"))?;
                self.client = build_client(
                    self.connect_timeout,
                    self.timeout,
                    self.ca_pem.as_deref(),
                    Some(identity),
                )?;
            }
        }
        Ok(())
    }

    /// Renders the request for a processed message. Fails (500) when the URL does not come out
    /// as an absolute `http`/`https` URL, e.g. a partner parameter it reads is missing.
    pub fn prepare(&self, msg: Message, directory: Option<&Directory>) -> Result<Outgoing, StepError> {
        // A partner parameter the URL needs must exist: an empty path segment or host would
        // send the message somewhere else.
        let pid = msg.property(PARTNER_PROPERTY).unwrap_or("");
        for name in self.url.partner_parameters() {
            if directory
                .and_then(|d| d.string_parameter(pid, name))
                .is_none_or(str::is_empty)
            {
                let whose = if pid.is_empty() {
                    "no partner was established".to_owned()
                } else {
                    format!("partner {pid} has no string parameter {name}")
                };
                return Err(StepError {
                    denial: None,
                    status: 500,
                    kind: "flow_error",
                    message: format!("the receiver URL reads ${{partner.{name}}}, but {whose}"),
                });
            }
        }
        let url = self.url.render_in(&msg, directory);
        let parsed = reqwest::Url::parse(&url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
        let Some(parsed) = parsed else {
            return Err(StepError {
                denial: None,
                status: 500,
                kind: "flow_error",
                message: "the receiver URL did not render to an absolute http(s) URL".into(),
            });
        };
        let method = self
            .method
            .clone()
            .or_else(|| msg.header("CamelHttpMethod").map(str::to_owned))
            .unwrap_or_else(|| "POST".into());
        let mut headers: Vec<(String, String)> = msg
            .headers()
            .iter()
            .filter(|(n, _)| self.forwards(n))
            .cloned()
            .collect();
        if let (Some(h), Some(user)) = (&self.user_header, msg.header("SapAuthenticatedUserName")) {
            headers.push((h.clone(), user.to_owned()));
        }
        if let (Some(h), Some(pid)) = (&self.partner_header, msg.property(PARTNER_PROPERTY)) {
            headers.push((h.clone(), pid.to_owned()));
        }
        for (name, t) in &self.headers {
            let value = t.render_in(&msg, directory);
            headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
            headers.push((name.clone(), value));
        }
        Ok(Outgoing {
            method,
            url: parsed.into(),
            headers,
            body: msg.body,
        })
    }

    /// Whether the URL or the extra headers read the body.
    pub fn reads_body(&self) -> bool {
        self.url.reads_body() || self.headers.iter().any(|(_, t)| t.reads_body())
    }

    /// Sends a request whose body streams from `body` and hands back the answer as it arrives
    /// (status and headers read, the body left to stream). A 5xx answer is a failure.
    pub async fn send_streaming(
        &self,
        out: &Outgoing,
        body: reqwest::Body,
        extra: &[(&str, &str)],
    ) -> Result<reqwest::Response, DeliveryError> {
        let shown = shown_url(&out.url);
        let resp = self
            .request(out, extra)?
            .body(body)
            .send()
            .await
            .map_err(|e| self.failure(&shown, &e))?;
        let status = resp.status().as_u16();
        if status >= 500 {
            return Err(DeliveryError::Status(
                status,
                format!("the receiver at {shown} answered {status}"),
            ));
        }
        Ok(resp)
    }

    /// The largest answer read from the back end.
    pub fn max_response(&self) -> usize {
        self.max_response
    }

    /// Response headers of a back end that go back to the sender, and its content type.
    pub fn returned_headers(headers: &reqwest::header::HeaderMap) -> (Vec<(String, String)>, Option<String>) {
        let mut out = Vec::new();
        let mut content_type = None;
        for (n, v) in headers {
            let Ok(v) = v.to_str() else { continue };
            if n == reqwest::header::CONTENT_TYPE {
                content_type = Some(v.to_owned());
            } else if !NOT_RETURNED.contains(&n.as_str()) {
                out.push((n.as_str().to_owned(), v.to_owned()));
            }
        }
        (out, content_type)
    }

    fn request(
        &self,
        out: &Outgoing,
        extra: &[(&str, &str)],
    ) -> Result<reqwest::RequestBuilder, DeliveryError> {
        let method = reqwest::Method::from_bytes(out.method.as_bytes())
            .map_err(|_| DeliveryError::BadAnswer(format!("invalid method {:?}", out.method)))?;
        let mut req = self.client.request(method, &out.url);
        for (n, v) in &out.headers {
            req = req.header(n.as_str(), v.as_str());
        }
        for (n, v) in extra {
            req = req.header(*n, *v);
        }
        if let Some(auth) = &self.authorization {
            let mut value = reqwest::header::HeaderValue::from_str(&auth.0)
                .map_err(|_| DeliveryError::BadAnswer("the credential is not a valid header value".into()))?;
            value.set_sensitive(true);
            req = req.header(reqwest::header::AUTHORIZATION, value);
        }
        Ok(req)
    }

    /// Sends a request and reads the answer (bounded). A 5xx answer is a failure; anything
    /// else is the back end's answer to hand on.
    pub async fn send(&self, out: &Outgoing, extra: &[(&str, &str)]) -> Result<Reply, DeliveryError> {
        let shown = shown_url(&out.url);
        let resp = self
            .request(out, extra)?
            .body(out.body.clone())
            .send()
            .await
            .map_err(|e| self.failure(&shown, &e))?;
        let status = resp.status().as_u16();
        let (headers, content_type) = Self::returned_headers(resp.headers());
        if resp
            .content_length()
            .is_some_and(|l| l > self.max_response as u64)
        {
            return Err(DeliveryError::BadAnswer(format!(
                "the receiver at {shown} answered with more than {} bytes",
                self.max_response
            )));
        }
        let body = read_bounded(resp, self.max_response).await.map_err(|e| match e {
            ReadError::TooLarge => DeliveryError::BadAnswer(format!(
                "the receiver at {shown} answered with more than {} bytes",
                self.max_response
            )),
            ReadError::Broken(e) => self.failure(&shown, &e),
        })?;
        if status >= 500 {
            return Err(DeliveryError::Status(
                status,
                format!("the receiver at {shown} answered {status}"),
            ));
        }
        Ok(Reply {
            status,
            headers,
            content_type,
            body,
        })
    }

    fn forwards(&self, name: &str) -> bool {
        let lower = name.to_ascii_lowercase();
        if NOT_FORWARDED.contains(&lower.as_str()) || lower.starts_with("camel") {
            return false;
        }
        match &self.forward {
            Forward::All => true,
            Forward::Only(names) => names.contains(&lower),
        }
    }

    fn failure(&self, shown: &str, e: &reqwest::Error) -> DeliveryError {
        if e.is_timeout() {
            DeliveryError::Timeout(format!(
                "the receiver at {shown} did not answer within {} ms",
                self.timeout.as_millis()
            ))
        } else if e.is_connect() {
            DeliveryError::Unreachable(format!(
                "the receiver at {shown} could not be reached: {}",
                cause(e)
            ))
        } else {
            DeliveryError::Unreachable(format!(
                "the exchange with the receiver at {shown} failed: {}",
                cause(e)
            ))
        }
    }
}

enum ReadError {
    TooLarge,
    Broken(reqwest::Error),
}

async fn read_bounded(mut resp: reqwest::Response, max: usize) -> Result<Bytes, ReadError> {
    let mut buf = bytes::BytesMut::new();
    while let Some(chunk) = resp.chunk().await.map_err(ReadError::Broken)? {
        if buf.len() + chunk.len() > max {
            return Err(ReadError::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// A URL as shown in errors and logs: scheme, host, port and path, no query (it may carry
/// tokens) and no user info.
pub fn shown_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => {
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!(
                "{}://{}{}{}",
                u.scheme(),
                u.host_str().unwrap_or(""),
                port,
                u.path()
            )
        }
        Err(_) => "(invalid URL)".into(),
    }
}

/// The innermost cause of a client error (reqwest's own text is "error sending request").
fn cause(e: &reqwest::Error) -> String {
    let mut source: &dyn std::error::Error = e;
    while let Some(next) = source.source() {
        source = next;
    }
    source.to_string()
}

fn build_client(
    connect_timeout: Duration,
    timeout: Duration,
    ca_pem: Option<&str>,
    identity: Option<reqwest::Identity>,
) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(connect_timeout)
        .timeout(timeout)
        .pool_idle_timeout(Duration::from_secs(60))
        .user_agent(concat!("postern/", env!("CARGO_PKG_VERSION")));
    if let Some(pem) = ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
            .map_err(|e| format!("ca is not PEM certificates: {e}"))?;
        if certs.is_empty() {
            return Err("ca holds no certificate".into());
        }
        builder = builder.tls_certs_only(certs);
    }
    if let Some(identity) = identity {
        builder = builder.identity(identity);
    }
    builder
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}
