//! The native admin API and the CLI: validation (400 naming the field), conflicts (409 naming
//! what is in use), built-in roles, api-plan keys with their roles, the walkthrough via the CLI.

use reqwest::Method;
use serde_json::{Value, json};

use crate::fixture::{Server, basic, echo_user_flow};

#[tokio::test]
async fn roles_instances_keys_validation() {
    let s = Server::start().await;
    let post = |path: &'static str, body: Value| {
        let s = &s;
        async move { s.admin(Method::POST, path, Some(body)).await }
    };
    let (st, b) = post("/admin/v1/user-roles", json!({ "name": "bad-role!" })).await;
    assert_eq!(st, 400);
    assert!(
        b["message"].as_str().expect("message").starts_with("name:"),
        "{b}"
    );
    assert_eq!(
        post(
            "/admin/v1/user-roles",
            json!({ "name": "Orders.Send", "description": "x" })
        )
        .await
        .0,
        201
    );
    assert_eq!(
        post("/admin/v1/user-roles", json!({ "name": "Orders.Send" }))
            .await
            .0,
        409
    );
    assert_eq!(
        post("/admin/v1/user-roles", json!({ "nam": "typo" })).await.0,
        422
    );
    let raw = s
        .http
        .post(s.at("/admin/v1/user-roles"))
        .basic_auth("admin", Some(crate::fixture::ADMIN_PASSWORD))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_eq!(raw.status(), 400);
    assert_eq!(raw.json::<Value>().await.expect("json")["error"], "bad_request");

    // Built-in roles cannot change.
    let (st, _) = s
        .admin(Method::DELETE, "/admin/v1/user-roles/ESBMessaging.send", None)
        .await;
    assert_eq!(st, 403);
    let (st, _) = s
        .admin(
            Method::PATCH,
            "/admin/v1/user-roles/ESBMessaging.send",
            Some(json!({ "description": "x" })),
        )
        .await;
    assert_eq!(st, 403);
    let (st, b) = s
        .admin(
            Method::PATCH,
            "/admin/v1/user-roles/Orders.Send",
            Some(json!({ "description": "new" })),
        )
        .await;
    assert_eq!((st, b["description"].as_str()), (200, Some("new")));

    // Instance parameters.
    for (body, field) in [
        (
            json!({ "name": "x".repeat(33), "plan": "integration-flow" }),
            "name",
        ),
        (json!({ "name": "a b", "plan": "integration-flow" }), "name"),
        (json!({ "name": "i1", "plan": "premium" }), "plan"),
        (
            json!({ "name": "i1", "plan": "integration-flow", "parameters": { "roles": ["Nope"] } }),
            "parameters.roles",
        ),
        (
            json!({ "name": "i1", "plan": "integration-flow", "parameters": { "grant-types": ["client_x509"] } }),
            "parameters.grant-types",
        ),
        (
            json!({ "name": "i1", "plan": "integration-flow", "parameters": { "access-token-validity": 60 } }),
            "parameters.access-token-validity",
        ),
        (
            json!({ "name": "i1", "plan": "api", "parameters": { "roles": ["Orders.Send"] } }),
            "parameters.roles",
        ),
    ] {
        let (st, b) = post("/admin/v1/service-instances", body.clone()).await;
        assert_eq!(st, 400, "{body} -> {b}");
        assert!(b["message"].as_str().expect("message").starts_with(field), "{b}");
    }
    let (st, inst) = post(
        "/admin/v1/service-instances",
        json!({ "name": "i1", "plan": "integration-flow", "parameters": { "roles": ["Orders.Send", "ESBMessaging.send"] } }),
    )
    .await;
    assert_eq!(st, 201, "{inst}");
    assert_eq!(inst["parameters"]["grant-types"], json!(["client_credentials"]));
    assert_eq!(inst["parameters"]["access-token-validity"], 3600);
    assert_eq!(
        post(
            "/admin/v1/service-instances",
            json!({ "name": "i1", "plan": "api" })
        )
        .await
        .0,
        409
    );

    // Key parameters are checked; secrets are shown once.
    for (params, field) in [
        (
            json!({ "key-type": "certificate", "key-length": 1024 }),
            "parameters.key-length",
        ),
        (
            json!({ "key-type": "certificate", "validity": 400 }),
            "parameters.validity",
        ),
        (json!({ "key-type": "certificate_external" }), "parameters.X.509"),
        (
            json!({ "key-type": "certificate_external", "X.509": "junk" }),
            "parameters.X.509",
        ),
        (json!({ "key-type": "magic" }), "parameters.key-type"),
        (json!({ "validity": 30 }), "parameters"),
    ] {
        let (st, b) = post(
            "/admin/v1/service-instances/i1/keys",
            json!({ "name": "c", "parameters": params }),
        )
        .await;
        assert_eq!(st, 400, "{b}");
        assert!(
            b["message"].as_str().expect("message").starts_with(field),
            "{field}: {b}"
        );
    }
    assert_eq!(
        post("/admin/v1/service-instances/nope/keys", json!({ "name": "k" }))
            .await
            .0,
        404
    );
    let (st, doc) = post("/admin/v1/service-instances/i1/keys", json!({ "name": "k1" })).await;
    assert_eq!(st, 201);
    let secret = doc["oauth"]["clientsecret"].as_str().expect("secret").to_owned();
    let (_, tail) = secret.split_once('$').expect("uuid$random");
    assert_eq!(tail.len(), 43, "256 random bits");
    assert_eq!(doc["oauth"]["url"], s.https_url.as_str());
    assert_eq!(doc["oauth"]["tokenurl"], format!("{}/oauth/token", s.https_url));
    assert_eq!(
        post("/admin/v1/service-instances/i1/keys", json!({ "name": "k1" }))
            .await
            .0,
        409
    );
    for path in [
        "/admin/v1/service-instances/i1/keys",
        "/admin/v1/service-instances/i1",
        "/admin/v1/service-instances",
    ] {
        let (_, listing) = s.admin(Method::GET, path, None).await;
        assert!(!listing.to_string().contains(&secret), "{path} leaks the secret");
    }

    // PATCH replaces the parameters given and keeps the others; bad ones are refused.
    let patch = |path: &'static str, body: Value| s.admin(Method::PATCH, path, Some(body));
    for (body, status, field) in [
        (
            json!({ "parameters": { "roles": ["Nope.Role"] } }),
            400,
            "parameters.roles",
        ),
        (json!({ "parameters": { "roles": [] } }), 400, "parameters.roles"),
        (
            json!({ "parameters": { "grant-types": ["magic"] } }),
            400,
            "parameters.grant-types",
        ),
        (
            json!({ "parameters": { "access-token-validity": 5 } }),
            400,
            "parameters.access-token-validity",
        ),
        (json!({ "parameters": { "plan": "api" } }), 422, ""),
        (json!({ "name": "other" }), 422, ""),
    ] {
        let (st, b) = patch("/admin/v1/service-instances/i1", body.clone()).await;
        assert_eq!(st, status, "{body} -> {b}");
        assert!(b["message"].as_str().expect("message").starts_with(field), "{b}");
    }
    let (st, _) = patch(
        "/admin/v1/service-instances/nope",
        json!({ "parameters": { "roles": ["Orders.Send"] } }),
    )
    .await;
    assert_eq!(st, 404);
    let (st, b) = patch(
        "/admin/v1/service-instances/i1",
        json!({ "parameters": { "roles": ["Orders.Send"], "access-token-validity": 7200 } }),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["parameters"]["roles"], json!(["Orders.Send"]));
    assert_eq!(b["parameters"]["access-token-validity"], 7200);
    assert_eq!(b["parameters"]["grant-types"], json!(["client_credentials"]));
    assert_eq!(b["clientid"], inst["clientid"]);
    let (_, audit) = s.admin(Method::GET, "/admin/v1/audit", None).await;
    assert!(audit.to_string().contains("service-instance.update"), "{audit}");

    // A role in use cannot be deleted; the 409 names its users.
    assert_eq!(s.deploy(&echo_user_flow("f1", "/f1", "Orders.Send")).await.0, 201);
    let (st, b) = s
        .admin(Method::DELETE, "/admin/v1/user-roles/Orders.Send", None)
        .await;
    assert_eq!(st, 409);
    let m = b["message"].as_str().expect("message");
    assert!(m.contains("i1") && m.contains("f1"), "{m}");
    assert_eq!(s.admin(Method::DELETE, "/admin/v1/flows/f1", None).await.0, 204);
    assert_eq!(
        s.admin(Method::DELETE, "/admin/v1/service-instances/i1", None)
            .await
            .0,
        204
    );
    assert_eq!(
        s.admin(Method::DELETE, "/admin/v1/user-roles/Orders.Send", None)
            .await
            .0,
        204
    );
    assert_eq!(
        s.admin(Method::DELETE, "/admin/v1/user-roles/Orders.Send", None)
            .await
            .0,
        404
    );

    // Every change is in the audit log.
    let (_, audit) = s.admin(Method::GET, "/admin/v1/audit?limit=100", None).await;
    let actions: Vec<&str> = audit
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for a in [
        "role.create",
        "service-instance.create",
        "service-key.create",
        "flow.deploy",
        "role.delete",
    ] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
}

#[tokio::test]
async fn flow_validation_errors_name_field_and_line() {
    let s = Server::start().await;
    let bad_role =
        "id: f\nsender:\n  adapter: https\n  address: /f\n  roles: [Missing.Role]\nreceiver: { reply: {} }\n";
    let (st, b) = s.deploy(bad_role).await;
    assert_eq!(st, 400);
    let m = b["message"].as_str().expect("message");
    assert!(m.starts_with("sender.roles") && m.contains("line 5"), "{m}");
    let (st, b) = s
        .deploy("id: f\nsender:\n  adapter: https\n  address: /f\n  colour: red\nreceiver: { reply: {} }\n")
        .await;
    assert_eq!(st, 400);
    assert!(b["message"].as_str().expect("message").contains("line 5"), "{b}");
    let (st, b) = s
        .deploy("id: f\nsender:\n  adapter: https\n  address: f\nreceiver: { reply: {} }\n")
        .await;
    assert_eq!(st, 400);
    assert!(
        b["message"]
            .as_str()
            .expect("message")
            .starts_with("sender.address"),
        "{b}"
    );
    // The URL's id must match the document's.
    let resp = s
        .http
        .put(s.at("/admin/v1/flows/other"))
        .basic_auth("admin", Some(crate::fixture::ADMIN_PASSWORD))
        .body(echo_user_flow("f", "/f", "ESBMessaging.send"))
        .send()
        .await
        .expect("put");
    assert_eq!(resp.status(), 400);
    // Address collisions.
    assert_eq!(
        s.deploy(&echo_user_flow("a", "/shared", "ESBMessaging.send"))
            .await
            .0,
        201
    );
    assert_eq!(
        s.deploy(&echo_user_flow("a", "/shared", "ESBMessaging.send"))
            .await
            .0,
        200
    );
    assert_eq!(
        s.deploy(&echo_user_flow("b", "/SHARED", "ESBMessaging.send"))
            .await
            .0,
        409
    );
    assert_eq!(
        s.deploy(&echo_user_flow("w", "/partners/*", "ESBMessaging.send"))
            .await
            .0,
        201
    );
    assert_eq!(
        s.deploy(&echo_user_flow("p", "/partners/acme", "ESBMessaging.send"))
            .await
            .0,
        409
    );
}

#[tokio::test]
async fn api_plan_keys_get_only_their_roles() {
    let s = Server::start().await;
    s.instance("monitoring", "api", json!({ "roles": ["MonitoringDataRead"] }))
        .await;
    let (id, secret) = s.key("monitoring", "k").await;
    let auth = String::from_utf8(basic(&id, &secret)).expect("ascii");
    let get = |path: &str| {
        s.http
            .get(s.at(path))
            .header("authorization", auth.clone())
            .send()
    };
    assert_eq!(
        get("/api/v1/MessageProcessingLogs").await.expect("mpl").status(),
        200
    );
    assert_eq!(get("/admin/v1/user-roles").await.expect("roles").status(), 403);
    let no_auth = s
        .http
        .get(s.at("/admin/v1/user-roles"))
        .send()
        .await
        .expect("roles");
    assert_eq!(no_auth.status(), 401);
    assert!(no_auth.headers().contains_key("www-authenticate"));
}

#[tokio::test]
async fn readme_walkthrough_with_the_cli() {
    let s = Server::start().await;
    s.cli_ok(&[
        "role",
        "create",
        "Orders.Send",
        "--description",
        "Partners sending orders",
    ]);
    s.cli_ok(&[
        "service",
        "create",
        "orders-sender",
        "--plan",
        "integration-flow",
        "-c",
        r#"{"roles":["Orders.Send"]}"#,
    ]);
    let doc: Value = serde_json::from_str(&s.cli_ok(&["service-key", "create", "orders-sender", "key1"]))
        .expect("key json");
    let (id, secret) = (
        doc["oauth"]["clientid"].as_str().expect("id"),
        doc["oauth"]["clientsecret"].as_str().expect("secret"),
    );
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("orders.yaml");
    std::fs::write(&file, include_str!("../../../../examples/orders-inbound.yaml")).expect("write flow");
    let out = s.cli_ok(&["flow", "deploy", file.to_str().expect("path")]);
    assert!(out.contains("/http/orders"), "{out}");
    let r = s
        .call(
            "/orders",
            Some(&basic(id, secret)),
            "<Order><SenderId>ACME</SenderId></Order>",
        )
        .await;
    assert_eq!(r.status(), 200);
    let guid = r.headers()["sap_messageprocessinglogid"]
        .to_str()
        .expect("guid")
        .to_owned();
    let list = poll_cli(&s, &["mpl", "list"], &guid).await;
    assert!(
        list.contains("COMPLETED") && list.contains("orders-inbound"),
        "{list}"
    );
    let show = s.cli_ok(&["mpl", "show", &guid]);
    assert!(show.contains(id), "{show}");
    let listing = s.cli_ok(&["service", "list"]);
    assert!(listing.contains("orders-sender") && !listing.contains(secret));
    // Taking the role from the instance (cf update-service) refuses its key at once.
    let out = s.cli_ok(&[
        "service",
        "update",
        "orders-sender",
        "-c",
        r#"{"roles":["ESBMessaging.send"]}"#,
    ]);
    assert!(out.contains("ESBMessaging.send"), "{out}");
    let r = s.call("/orders", Some(&basic(id, secret)), "<Order/>").await;
    assert_eq!(r.status(), 403);

    let (ok, _, err) = s.cli(&["role", "delete", "Orders.Send"]);
    assert!(!ok && err.contains("409"), "{err}");
    let (ok, _, err) = s.cli(&["service", "create", "bad name"]);
    assert!(!ok && err.contains("400"), "{err}");
}

/// Runs a CLI command until its output mentions `needle` (MPLs are written in the background).
pub(crate) async fn poll_cli(s: &Server, args: &[&str], needle: &str) -> String {
    for _ in 0..100 {
        let out = s.cli_ok(args);
        if out.contains(needle) {
            return out;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{args:?} never showed {needle}");
}

#[tokio::test]
async fn the_openapi_document_describes_every_route_there_is() {
    let s = Server::start().await;
    let doc = s.public_json("/admin/v1/openapi.json").await;
    assert_eq!(doc["openapi"], "3.0.3");
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 20, "{}", paths.len());
    for (path, item) in paths {
        let concrete = path
            .replace("{name}", "no-such-thing")
            .replace("{key}", "no-such-key")
            .replace("{id}", "no-such-id")
            .replace("{guid}", "no-such-guid")
            .replace("{sha256}", "00");
        for (method, _) in item
            .as_object()
            .expect("item")
            .iter()
            .filter(|(m, _)| *m != "parameters")
        {
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let body = (m != Method::GET && m != Method::DELETE).then(|| json!({}));
            let (st, b) = s.admin(m.clone(), &format!("/admin/v1{concrete}"), body).await;
            assert_ne!(st, 405, "{method} {path}: {b}");
            assert!(
                !(st == 404 && b["message"] == "no such endpoint"),
                "{method} {path} is documented but not served"
            );
            assert!(st < 500, "{method} {path}: {st} {b}");
        }
    }
}

/// Runs SQL on the server's database directly (sqlite3 through Python, or psql).
fn tamper(s: &Server, sql: &str) {
    let out = match &s.database {
        Some(url) => std::process::Command::new("psql")
            .args([url.as_str(), "-v", "ON_ERROR_STOP=1", "-qc", sql])
            .output(),
        None => std::process::Command::new("python3")
            .args([
                "-c",
                "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(sys.argv[2]); c.commit()",
            ])
            .arg(s.dir.join("postern.db"))
            .arg(sql)
            .output(),
    }
    .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn audit_verify_detects_an_edited_or_deleted_entry() {
    let s = Server::start().await;
    for name in ["A.One", "A.Two", "A.Three", "A.Four"] {
        s.cli_ok(&["role", "create", name]);
    }
    let out = s.cli_ok(&["audit", "verify"]);
    assert!(out.contains("audit log intact"), "{out}");
    let (_, v) = s.admin(Method::GET, "/admin/v1/audit/verify", None).await;
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["chained"].as_u64().expect("chained") >= 4, "{v}");
    let (_, entries) = s.admin(Method::GET, "/admin/v1/audit?limit=1000", None).await;
    let id_of = |target: &str| {
        entries
            .as_array()
            .expect("entries")
            .iter()
            .find(|e| e["target"] == target)
            .and_then(|e| e["id"].as_i64())
            .expect("entry")
    };

    // An edited entry: that entry's link no longer matches.
    let two = id_of("A.Two");
    tamper(
        &s,
        &format!("UPDATE audit SET actor = 'someone-else' WHERE id = {two}"),
    );
    let (ok, out, err) = s.cli(&["audit", "verify"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!("entry {two}")) && out.contains("TAMPERED"),
        "{out} {err}"
    );
    tamper(&s, &format!("UPDATE audit SET actor = 'admin' WHERE id = {two}"));
    assert!(s.cli_ok(&["audit", "verify"]).contains("intact"));

    // A deleted entry: the next one's link breaks.
    let three = id_of("A.Three");
    tamper(&s, &format!("DELETE FROM audit WHERE id = {three}"));
    let (_, v) = s.admin(Method::GET, "/admin/v1/audit/verify", None).await;
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["brokenAt"].as_i64(), Some(id_of("A.Four")), "{v}");
}

#[tokio::test]
async fn a_json_body_that_is_not_an_object_is_refused_and_changes_nothing() {
    let s = Server::start().await;
    // serde would read a struct from an array, field by field: these must not create anything.
    for (path, body) in [
        ("/admin/v1/user-roles", json!(["Arr.Role", "from an array"])),
        ("/admin/v1/service-instances", json!(["arr-inst", "api"])),
        ("/admin/v1/partner-directory/import", json!([])),
        ("/admin/v1/explain", json!([])),
        ("/admin/v1/user-roles", json!("Arr.Role")),
        ("/admin/v1/user-roles", json!(42)),
        ("/admin/v1/user-roles", json!(null)),
    ] {
        let (st, v) = s.admin(Method::POST, path, Some(body.clone())).await;
        assert_eq!(st, 422, "{path} {body}: {v}");
        assert_eq!(v["message"], "the body must be a JSON object", "{path} {body}");
        assert!(v["messageId"].is_string(), "{v}");
    }
    let (st, _) = s.admin(Method::GET, "/admin/v1/user-roles/Arr.Role", None).await;
    assert_eq!(st, 404);
    let (st, _) = s
        .admin(Method::GET, "/admin/v1/service-instances/arr-inst", None)
        .await;
    assert_eq!(st, 404);
    // Objects keep their answers: a missing field is still named.
    let (st, v) = s
        .admin(Method::POST, "/admin/v1/user-roles", Some(json!({})))
        .await;
    assert_eq!(st, 422, "{v}");
    assert!(
        v["message"]
            .as_str()
            .is_some_and(|m| m.contains("missing field `name`")),
        "{v}"
    );
}
