//! The token server and bearer tokens at flow endpoints and admin APIs.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use reqwest::Method;
use serde_json::{Value, json};

use crate::fixture::{Server, echo_user_flow};

/// POSTs to /oauth/token with a form body and optional raw Authorization header.
async fn token_request(
    s: &Server,
    auth: Option<String>,
    form: &[(&str, &str)],
) -> (u16, Value, reqwest::header::HeaderMap) {
    let body: String = form_urlencoded(form);
    let mut req = s
        .http
        .post(s.at("/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = req.send().await.expect("token request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, resp.json().await.unwrap_or(Value::Null), headers)
}

fn form_urlencoded(form: &[(&str, &str)]) -> String {
    form.iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn basic_raw(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

/// RFC 6749 §2.3.1: form-urlencode id and secret before Basic.
fn basic_encoded(id: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", enc(id), enc(secret)))
    )
}

async fn token(s: &Server, id: &str, secret: &str) -> String {
    let (st, v, _) = token_request(
        s,
        Some(basic_encoded(id, secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(st, 200, "{v}");
    v["access_token"].as_str().expect("token").to_owned()
}

async fn call_bearer(s: &Server, path: &str, token: &str) -> reqwest::Response {
    s.http
        .post(s.at(&format!("/http{path}")))
        .bearer_auth(token)
        .body("<Order/>")
        .send()
        .await
        .expect("call")
}

#[tokio::test]
async fn client_credentials_grant_and_bearer_calls() {
    let s = Server::start().await;
    let (id, secret) = s.orders_flow().await;

    // client_secret_basic (encoded per RFC 6749 and raw) and client_secret_post.
    let grant = [("grant_type", "client_credentials")];
    for auth in [basic_encoded(&id, &secret), basic_raw(&id, &secret)] {
        let (st, v, h) = token_request(&s, Some(auth), &grant).await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["token_type"], "bearer");
        assert_eq!(v["expires_in"], 3600);
        assert_eq!(v["scope"], "Orders.Send");
        assert_eq!(h["cache-control"], "no-store");
    }
    let (st, v, _) = token_request(
        &s,
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
        ],
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let tok = v["access_token"].as_str().expect("token").to_owned();

    // The token at the flow endpoint: the user is oauth_client_<client id>.
    let r = call_bearer(&s, "/orders", &tok).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.expect("body"), format!("user=oauth_client_{id}"));

    // Grant errors (RFC 6749 §5.2).
    let both = token_request(
        &s,
        Some(basic_encoded(&id, &secret)),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
        ],
    )
    .await;
    assert_eq!((both.0, both.1["error"].as_str()), (400, Some("invalid_request")));
    let wrong = token_request(&s, Some(basic_encoded(&id, "wrong")), &grant).await;
    assert_eq!(
        (wrong.0, wrong.1["error"].as_str()),
        (401, Some("invalid_client"))
    );
    assert!(wrong.2.contains_key("www-authenticate"));
    let none = token_request(&s, None, &grant).await;
    assert_eq!((none.0, none.1["error"].as_str()), (401, Some("invalid_client")));
    let pw = token_request(
        &s,
        Some(basic_encoded(&id, &secret)),
        &[("grant_type", "password")],
    )
    .await;
    assert_eq!(
        (pw.0, pw.1["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
    let missing = token_request(&s, Some(basic_encoded(&id, &secret)), &[]).await;
    assert_eq!(
        (missing.0, missing.1["error"].as_str()),
        (400, Some("invalid_request"))
    );
    let scope = token_request(
        &s,
        Some(basic_encoded(&id, &secret)),
        &[
            ("grant_type", "client_credentials"),
            ("scope", "Admin.Everything"),
        ],
    )
    .await;
    assert_eq!((scope.0, scope.1["error"].as_str()), (400, Some("invalid_scope")));
    assert!(!wrong.1.to_string().contains(&secret));
    let get = s.http.get(s.at("/oauth/token")).send().await.expect("get");
    assert_eq!(get.status(), 405);
}

#[tokio::test]
async fn grants_scopes_roles_and_revocation() {
    let s = Server::start().await;
    for role in ["Orders.Send", "Invoices.Send"] {
        s.admin(
            Method::POST,
            "/admin/v1/user-roles",
            Some(json!({ "name": role })),
        )
        .await;
    }
    s.instance(
        "both",
        "integration-flow",
        json!({ "roles": ["Orders.Send", "Invoices.Send"] }),
    )
    .await;
    let (id, secret) = s.key("both", "k1").await;
    let (_, secret2) = s.key("both", "k2").await;
    assert_eq!(
        s.deploy(&echo_user_flow("orders-in", "/orders", "Orders.Send"))
            .await
            .0,
        201
    );
    assert_eq!(
        s.deploy(&echo_user_flow("invoices-in", "/invoices", "Invoices.Send"))
            .await
            .0,
        201
    );

    // A narrowed scope: the token lacks Invoices.Send, so that flow answers 403.
    let (st, v, _) = token_request(
        &s,
        Some(basic_encoded(&id, &secret)),
        &[("grant_type", "client_credentials"), ("scope", "Orders.Send")],
    )
    .await;
    assert_eq!(st, 200);
    let narrow = v["access_token"].as_str().expect("token").to_owned();
    assert_eq!(call_bearer(&s, "/orders", &narrow).await.status(), 200);
    assert_eq!(call_bearer(&s, "/invoices", &narrow).await.status(), 403);

    // Deleting the key that obtained a token revokes it at once; other keys' tokens live on.
    let t1 = token(&s, &id, &secret).await;
    let t2 = token(&s, &id, &secret2).await;
    assert_eq!(call_bearer(&s, "/invoices", &t1).await.status(), 200);
    assert_eq!(
        s.admin(Method::DELETE, "/admin/v1/service-instances/both/keys/k1", None)
            .await
            .0,
        204
    );
    let r = call_bearer(&s, "/orders", &t1).await;
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .expect("ascii")
            .contains("invalid_token")
    );
    assert_eq!(call_bearer(&s, "/orders", &t2).await.status(), 200);

    // An instance without the client_credentials grant gets no tokens.
    s.instance(
        "pw-only",
        "integration-flow",
        json!({ "grant-types": ["password"] }),
    )
    .await;
    let (pid, psecret) = s.key("pw-only", "k").await;
    let r = token_request(
        &s,
        Some(basic_encoded(&pid, &psecret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!((r.0, r.1["error"].as_str()), (400, Some("unauthorized_client")));

    // Deleting the instance revokes the rest.
    assert_eq!(
        s.admin(Method::DELETE, "/admin/v1/service-instances/both", None)
            .await
            .0,
        204
    );
    assert_eq!(call_bearer(&s, "/orders", &t2).await.status(), 401);
}

#[tokio::test]
async fn forged_expired_and_malformed_tokens_are_refused() {
    let s = Server::start().await;
    let (id, secret) = s.orders_flow().await;
    let good = token(&s, &id, &secret).await;
    let parts: Vec<&str> = good.split('.').collect();
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).expect("b64")).expect("json");
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("b64")).expect("json");
    assert_eq!(header["alg"], "EdDSA");

    // Tampered payload (more scope), keeping the signature.
    claims["scope"] = json!(["Orders.Send", "Postern.Admin"]);
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );
    // alg: none.
    let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let alg_none = format!("{none_header}.{}.", parts[1]);
    // Signed by a key the server does not know, with the server's kid.
    let rogue = {
        let pkcs8 = aws_like_key();
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        h.kid = header["kid"].as_str().map(str::to_owned);
        let c: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("b64")).expect("json");
        jsonwebtoken::encode(&h, &c, &jsonwebtoken::EncodingKey::from_ed_der(&pkcs8)).expect("sign")
    };
    // Signed by the server's own key (read from its data directory) but expired an hour ago.
    let expired = {
        let mut c: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("b64")).expect("json");
        let now = c["iat"].as_i64().expect("iat");
        c["iat"] = json!(now - 7200);
        c["exp"] = json!(now - 3600);
        sign_with_server_key(&s, &header, &c).await
    };
    // The same key and fresh times still pass (the forging helper itself is right).
    let fresh = sign_with_server_key(
        &s,
        &header,
        &serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("b64")).expect("json"),
    )
    .await;
    assert_eq!(call_bearer(&s, "/orders", &fresh).await.status(), 200);
    for (name, t) in [
        ("tampered", tampered),
        ("alg none", alg_none),
        ("unknown key", rogue),
        ("expired", expired),
        ("garbage", "abc.def.ghi".to_owned()),
        ("empty", String::new()),
        ("huge", "a".repeat(20_000)),
    ] {
        let r = s
            .http
            .post(s.at("/http/orders"))
            .header("authorization", format!("Bearer {t}"))
            .body("x")
            .send()
            .await
            .expect("call");
        assert_eq!(r.status(), 401, "{name}");
    }
}

fn aws_like_key() -> Vec<u8> {
    // A PKCS#8 v1 Ed25519 key from a fixed seed (RFC 8410 layout), unknown to the server.
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
    ];
    der.extend_from_slice(&[7u8; 32]);
    der
}

async fn sign_with_server_key(s: &Server, header: &Value, claims: &Value) -> String {
    let master: [u8; 32] = std::fs::read(s.dir.join("master.key"))
        .expect("master key")
        .try_into()
        .expect("32 bytes");
    let sealer = postern_auth::secret::Sealer::new(&master, "postern token signing keys v1");
    let store = s.open_store().await;
    let kid = header["kid"].as_str().expect("kid");
    let row = store
        .token_keys()
        .await
        .expect("keys")
        .into_iter()
        .find(|k| k.kid == kid)
        .expect("the signing key");
    let pkcs8 = sealer.open(&row.private_enc).expect("opens with the master key");
    drop(store);
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    h.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&h, claims, &jsonwebtoken::EncodingKey::from_ed_der(&pkcs8)).expect("sign")
}

#[tokio::test]
async fn tokens_verify_with_an_independent_library_and_the_jwks_alone() {
    use jwt_simple::prelude::*;
    let s = Server::start().await;
    let (id, secret) = s.sender("Orders.Send", "orders").await;
    let tok = token(&s, &id, &secret).await;
    let jwks: Value = s.public_json("/token_keys").await;
    let same: Value = s.public_json("/.well-known/jwks.json").await;
    assert_eq!(jwks, same);
    let key = &jwks["keys"][0];
    assert_eq!(
        (key["kty"].as_str(), key["crv"].as_str()),
        (Some("OKP"), Some("Ed25519"))
    );
    let x = URL_SAFE_NO_PAD
        .decode(key["x"].as_str().expect("x"))
        .expect("b64");
    let public = Ed25519PublicKey::from_bytes(&x).expect("public key");
    let meta: Value = s.public_json("/.well-known/oauth-authorization-server").await;
    let issuer = meta["issuer"].as_str().expect("issuer");
    assert_eq!(meta["token_endpoint"], format!("{}/oauth/token", s.https_url));
    let opts = VerificationOptions {
        allowed_issuers: Some(HashSet::from_strings(&[issuer])),
        ..Default::default()
    };
    let claims = public
        .verify_token::<Value>(&tok, Some(opts))
        .expect("verifies with the JWKS alone");
    assert_eq!(claims.subject.as_deref(), Some(id.as_str()));
    assert_eq!(claims.custom["client_id"], id.as_str());
    assert_eq!(claims.custom["cid"], id.as_str());
    assert_eq!(claims.custom["grant_type"], "client_credentials");
    assert_eq!(claims.custom["scope"], json!(["Orders.Send"]));
    assert_eq!(claims.custom["zid"], "postern");
    assert!(claims.jwt_id.is_some() && claims.issued_at.is_some() && claims.expires_at.is_some());
}

#[tokio::test]
async fn api_tokens_introspection_and_key_rotation() {
    let s = Server::start().await;
    s.instance("monitor", "api", json!({ "roles": ["MonitoringDataRead"] }))
        .await;
    let (id, secret) = s.key("monitor", "k").await;
    let tok = token(&s, &id, &secret).await;
    let get = |path: &'static str, t: String| s.http.get(s.at(path)).bearer_auth(t).send();
    assert_eq!(
        get("/api/v1/MessageProcessingLogs", tok.clone())
            .await
            .expect("mpl")
            .status(),
        200
    );
    assert_eq!(
        get("/admin/v1/user-roles", tok.clone())
            .await
            .expect("roles")
            .status(),
        403
    );

    let introspect = |t: &str| {
        s.http
            .post(s.at("/oauth/introspect"))
            .basic_auth("admin", Some(crate::fixture::ADMIN_PASSWORD))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={}", enc(t)))
            .send()
    };
    let v: Value = introspect(&tok)
        .await
        .expect("introspect")
        .json()
        .await
        .expect("json");
    assert_eq!(v["active"], true);
    assert_eq!(v["client_id"], id.as_str());
    assert_eq!(v["username"], format!("oauth_client_{id}"));
    let v: Value = introspect("nonsense")
        .await
        .expect("introspect")
        .json()
        .await
        .expect("json");
    assert_eq!(v["active"], false);
    let anon = s
        .http
        .post(s.at("/oauth/introspect"))
        .body("token=x")
        .send()
        .await
        .expect("anon");
    assert_eq!(anon.status(), 401);

    // Rotation: new tokens use the new key, old tokens keep working, both keys are published.
    let old_kid = kid(&tok);
    let out = s.cli_ok(&["token-keys", "rotate"]);
    assert!(out.contains("new signing key"), "{out}");
    let tok2 = token(&s, &id, &secret).await;
    assert_ne!(kid(&tok2), old_kid);
    assert_eq!(
        get("/api/v1/MessageProcessingLogs", tok.clone())
            .await
            .expect("mpl")
            .status(),
        200
    );
    assert_eq!(
        get("/api/v1/MessageProcessingLogs", tok2)
            .await
            .expect("mpl")
            .status(),
        200
    );
    let jwks: Value = s.public_json("/token_keys").await;
    assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(2));
    let listing = s.cli_ok(&["token-keys", "list"]);
    assert!(listing.contains(&old_kid), "{listing}");
    // Keys survive a restart: old tokens still verify.
    let s = s.restart().await;
    let r = s
        .http
        .get(s.at("/api/v1/MessageProcessingLogs"))
        .bearer_auth(&tok)
        .send()
        .await
        .expect("mpl");
    assert_eq!(r.status(), 200);
}

fn kid(token: &str) -> String {
    let h: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').next().expect("header"))
            .expect("b64"),
    )
    .expect("json");
    h["kid"].as_str().expect("kid").to_owned()
}
