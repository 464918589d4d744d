//! `script`: a custom check or enrichment written in [Rhai](https://rhai.rs), compiled once at
//! deploy time. The script sees the message as `message` (headers, properties, body as text)
//! and a read-only Partner Directory as `pd`, with the methods of SAP's
//! `PartnerDirectoryService`: `getPartnerId(agency, scheme, id)`,
//! `getAlternativePartnerId(agency, scheme, pid)`, `getParameter(id, pid)`,
//! `getPartnerIdOfAuthorizedUser(user)`, `getAuthorizedUsers(pid)` (absent values are `()`).
//!
//! Sandbox: Rhai has no file, network or process access and none is registered; operations,
//! call depth, expression depth, string, array and map sizes are bounded, so a script cannot
//! hang a worker or exhaust memory. `throw "reason"` denies the message with 403 and the reason
//! (`throw #{ status: 400, message: "..." }` picks another 4xx); any other script error fails the
//! message with 500 and the script's message, never the server.

use std::sync::Arc;

use rhai::{AST, Dynamic, Engine, EvalAltResult, ImmutableString, Map, Scope};

use super::{Env, Step, StepError};
use crate::message::Message;

/// Longest script source.
pub const MAX_SCRIPT_BYTES: usize = 64 * 1024;
/// Operations one run may take (a loop iteration or a call is a handful).
const MAX_OPERATIONS: u64 = 200_000;
/// Largest string a script may hold; larger bodies are not handed to scripts.
const MAX_STRING: usize = 4 * 1024 * 1024;

/// The compiled step.
pub struct Script {
    engine: Arc<Engine>,
    ast: AST,
}

impl std::fmt::Debug for Script {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Script").finish_non_exhaustive()
    }
}

/// The message as a script sees it.
#[derive(Clone, Debug, Default)]
struct ScriptMessage {
    headers: Vec<(String, String)>,
    properties: Vec<(String, String)>,
    body: ImmutableString,
    body_changed: bool,
}

/// The read-only Partner Directory as a script sees it.
#[derive(Clone)]
struct Pd(postern_partner::Directory);

fn opt(v: Option<&str>) -> Dynamic {
    v.map(|s| Dynamic::from(ImmutableString::from(s)))
        .unwrap_or(Dynamic::UNIT)
}

fn sandboxed_engine() -> Engine {
    let mut e = Engine::new();
    e.set_max_operations(MAX_OPERATIONS);
    e.set_max_call_levels(32);
    e.set_max_expr_depths(64, 32);
    e.set_max_string_size(MAX_STRING);
    e.set_max_array_size(10_000);
    e.set_max_map_size(10_000);
    e.set_max_variables(256);
    e.set_max_functions(256);
    e.set_max_modules(0);
    // `print` and `debug` would write to the server's stdout; scripts get no output channel.
    e.on_print(|_| {});
    e.on_debug(|_, _, _| {});

    e.register_type_with_name::<ScriptMessage>("Message")
        .register_fn("getHeader", |m: &mut ScriptMessage, name: &str| {
            opt(m
                .headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str()))
        })
        .register_fn(
            "setHeader",
            |m: &mut ScriptMessage, name: &str, value: &str| match m
                .headers
                .iter_mut()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
            {
                Some(slot) => slot.1 = value.to_owned(),
                None => m.headers.push((name.to_owned(), value.to_owned())),
            },
        )
        .register_fn("getHeaders", |m: &mut ScriptMessage| {
            m.headers
                .iter()
                .map(|(n, v)| (n.as_str().into(), Dynamic::from(v.clone())))
                .collect::<Map>()
        })
        .register_fn("getProperty", |m: &mut ScriptMessage, name: &str| {
            opt(m
                .properties
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str()))
        })
        .register_fn(
            "setProperty",
            |m: &mut ScriptMessage, name: &str, value: &str| match m
                .properties
                .iter_mut()
                .find(|(n, _)| n == name)
            {
                Some(slot) => slot.1 = value.to_owned(),
                None => m.properties.push((name.to_owned(), value.to_owned())),
            },
        )
        .register_fn("getBody", |m: &mut ScriptMessage| m.body.clone())
        .register_fn("setBody", |m: &mut ScriptMessage, body: ImmutableString| {
            m.body = body;
            m.body_changed = true;
        });

    e.register_type_with_name::<Pd>("PartnerDirectory")
        .register_fn(
            "getPartnerId",
            |pd: &mut Pd, agency: &str, scheme: &str, id: &str| {
                opt(pd.0.partner_of_alternative(agency, scheme, id))
            },
        )
        .register_fn(
            "getAlternativePartnerId",
            |pd: &mut Pd, agency: &str, scheme: &str, pid: &str| {
                opt(pd.0.alternative_of_partner(agency, scheme, pid))
            },
        )
        .register_fn("getParameter", |pd: &mut Pd, id: &str, pid: &str| {
            opt(pd.0.string_parameter(pid, id))
        })
        .register_fn("getPartnerIdOfAuthorizedUser", |pd: &mut Pd, user: &str| {
            opt(pd.0.partner_of_user(user))
        })
        .register_fn("getAuthorizedUsers", |pd: &mut Pd, pid: &str| {
            pd.0.authorized_users(pid)
                .into_iter()
                .map(Dynamic::from)
                .collect::<rhai::Array>()
        });
    e
}

impl Script {
    /// Compiles a script; the error names the line and column.
    pub fn compile(source: &str) -> Result<Self, String> {
        if source.len() > MAX_SCRIPT_BYTES {
            return Err(format!("the script is larger than {MAX_SCRIPT_BYTES} bytes"));
        }
        let engine = sandboxed_engine();
        let ast = engine.compile(source).map_err(|e| e.to_string())?;
        Ok(Self {
            engine: Arc::new(engine),
            ast,
        })
    }
}

fn failure(e: &EvalAltResult) -> StepError {
    if let EvalAltResult::ErrorRuntime(value, _) = e {
        // `throw`: the script's own denial.
        if let Some(map) = value.read_lock::<Map>() {
            let status = map
                .get("status")
                .and_then(|s| s.as_int().ok())
                .and_then(|s| u16::try_from(s).ok())
                .filter(|s| (400..500).contains(s))
                .unwrap_or(403);
            let message = map
                .get("message")
                .map(|m| m.to_string())
                .unwrap_or_else(|| "denied by the flow's script".into());
            return StepError {
                denial: None,
                status,
                kind: if status == 403 { "forbidden" } else { "bad_request" },
                message: clip(&message),
            };
        }
        return StepError {
            denial: None,
            status: 403,
            kind: "forbidden",
            message: clip(&value.to_string()),
        };
    }
    StepError {
        denial: None,
        status: 500,
        kind: "flow_error",
        message: clip(&format!("script error: {e}")),
    }
}

fn clip(s: &str) -> String {
    s.chars().take(500).collect()
}

impl Step for Script {
    fn kind(&self) -> &'static str {
        "script"
    }

    fn process(&self, msg: &mut Message, env: &Env<'_>) -> Result<(), StepError> {
        if msg.body.len() > MAX_STRING {
            return Err(StepError {
                denial: None,
                status: 413,
                kind: "payload_too_large",
                message: format!("scripts read bodies up to {MAX_STRING} bytes"),
            });
        }
        let body = String::from_utf8_lossy(&msg.body).into_owned();
        let mut scope = Scope::new();
        scope.push(
            "message",
            ScriptMessage {
                headers: msg.headers().to_vec(),
                properties: msg.properties().to_vec(),
                body: body.into(),
                body_changed: false,
            },
        );
        scope.push_constant("pd", Pd(env.directory.clone()));
        self.engine
            .run_ast_with_scope(&mut scope, &self.ast)
            .map_err(|e| failure(&e))?;
        let out = scope.get_value::<ScriptMessage>("message").unwrap_or_default();
        for (name, value) in out.headers {
            if msg.header(&name) != Some(value.as_str()) {
                msg.set_header(&name, value);
            }
        }
        for (name, value) in out.properties {
            msg.set_property(&name, value);
        }
        if out.body_changed {
            msg.body = bytes::Bytes::from(out.body.to_string());
        }
        Ok(())
    }
}
