//! The Partner Directory through the real server: SAP's OData API (CRUD, key syntax, filters,
//! uniqueness, `$batch` all-or-nothing), the automatic `ESBMessaging.send` grant of authorized
//! users, and the partner authorization check with every extractor.

use reqwest::Method;
use serde_json::{Value, json};

use crate::fixture::{ADMIN_PASSWORD, Server, basic};

/// A Partner Directory API call as the admin.
async fn pd(s: &Server, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    s.admin(method, &format!("/api/v1/{path}"), body).await
}

async fn created(s: &Server, set: &str, body: Value) -> Value {
    let (st, v) = pd(s, Method::POST, set, Some(body)).await;
    assert_eq!(st, 201, "{set}: {v}");
    v
}

fn error_text(v: &Value) -> &str {
    v["error"]["message"]["value"].as_str().unwrap_or("")
}

/// A flow at `address` that runs `step` (YAML lines of a partner_authorization step) and
/// answers `pid=<SAP_PartnerID>`.
fn check_flow(id: &str, address: &str, step: &str) -> String {
    format!(
        "id: {id}\nsender:\n  adapter: https\n  address: {address}\n  authorization: user-role\n  roles: [ESBMessaging.send]\nsteps:\n  - partner_authorization:\n{step}\nreceiver:\n  reply: {{ status: 200, body: \"pid=${{property.SAP_PartnerID}}\" }}\n"
    )
}

/// The seed scenario's directory: ACME (alternative DUNS 123456789, authorized user = the
/// given user) and GLOBEX (DUNS 987654321).
async fn seed(s: &Server, user: &str) {
    created(
        s,
        "AlternativePartners",
        json!({"Agency": "016", "Scheme": "DUNS", "Id": "123456789", "Pid": "ACME"}),
    )
    .await;
    created(
        s,
        "AlternativePartners",
        json!({"Agency": "016", "Scheme": "DUNS", "Id": "987654321", "Pid": "GLOBEX"}),
    )
    .await;
    created(s, "AuthorizedUsers", json!({"User": user, "Pid": "ACME"})).await;
}

/// An instance with a role that is not `ESBMessaging.send`, and a key: its client id holds
/// `ESBMessaging.send` only through the Partner Directory.
async fn client_without_send(s: &Server) -> (String, String) {
    s.sender("Other.Role", "acme-system").await
}

async fn mpl_of(s: &Server, resp: &reqwest::Response) -> Value {
    let guid = resp
        .headers()
        .get("sap_messageprocessinglogid")
        .and_then(|v| v.to_str().ok())
        .expect("MPL id")
        .to_owned();
    for _ in 0..50 {
        let (st, v) = s
            .admin(
                Method::GET,
                &format!("/api/v1/MessageProcessingLogs('{guid}')"),
                None,
            )
            .await;
        if st == 200 {
            return v["d"].clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("MPL {guid} never appeared");
}

#[tokio::test]
async fn seed_scenario_namespaced_xml_with_alternative_partner() {
    let s = Server::start().await;
    let (id, secret) = client_without_send(&s).await;
    // The README walkthrough's example flow.
    let flow = include_str!("../../../../examples/orders-partner-check.yaml");
    let (st, b) = s.deploy(flow).await;
    assert_eq!(st, 201, "{b}");
    let order = |sender: &str| {
        format!(
            "<?xml version=\"1.0\"?><ord:Order xmlns:ord=\"urn:example:order\"><ord:Header><ord:SenderId>{sender}</ord:SenderId></ord:Header><ord:Item>{}</ord:Item></ord:Order>",
            "x".repeat(500)
        )
    };
    let auth = basic(&id, &secret);

    // Not yet an authorized user: the instance's role is not ESBMessaging.send.
    let r = s.call("/partner-orders", Some(&auth), &order("123456789")).await;
    assert_eq!(r.status(), 403);

    seed(&s, &id).await;
    let r = s.call("/partner-orders", Some(&auth), &order("123456789")).await;
    assert_eq!(r.status(), 200);
    let mpl = mpl_of(&s, &r).await;
    assert_eq!(r.text().await.expect("body"), "accepted for partner ACME");
    assert_eq!(mpl["Status"], "COMPLETED");
    assert_eq!(mpl["Sender"], "ACME");

    // Naming another partner: 403, MPL FAILED with the reason, nothing answered from the flow.
    let r = s.call("/partner-orders", Some(&auth), &order("987654321")).await;
    assert_eq!(r.status(), 403);
    let mpl = mpl_of(&s, &r).await;
    let body: Value = r.json().await.expect("json");
    let reason = format!(
        "partner check: user {} sends for partner ACME, but the message names partner GLOBEX",
        id.to_lowercase()
    );
    assert_eq!(body["message"], reason.as_str());
    assert_eq!(mpl["Status"], "FAILED");
    let (st, err) = (
        200,
        s.http
            .get(s.at(&format!(
                "/api/v1/MessageProcessingLogs('{}')/ErrorInformation/$value",
                mpl["MessageGuid"].as_str().expect("guid")
            )))
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .send()
            .await
            .expect("error text")
            .text()
            .await
            .expect("text"),
    );
    assert_eq!((st, err.as_str()), (200, reason.as_str()));
    // The same decision as data: which check, the partner expected and the one found.
    let (st, info) = s
        .admin(
            Method::GET,
            &format!(
                "/api/v1/MessageProcessingLogs('{}')/ErrorInformation",
                mpl["MessageGuid"].as_str().expect("guid")
            ),
            None,
        )
        .await;
    assert_eq!(st, 200, "{info}");
    assert_eq!(info["d"]["Type"], "partner");
    assert_eq!(info["d"]["LastErrorModelStepId"], "partner_mismatch");
    let denial = &info["d"]["Denial"];
    assert_eq!(denial["check"], "partner");
    assert_eq!(denial["reason"], "partner_mismatch");
    assert_eq!(denial["expectedPartner"], "ACME");
    assert_eq!(denial["foundPartner"], "GLOBEX");
    assert_eq!(denial["foundId"], "987654321");
    assert!(
        denial["source"].as_str().is_some_and(|s| s.contains("SenderId")),
        "{denial}"
    );

    // Unknown alternative id, a missing partner element, and malformed XML: clear 4xx.
    let r = s.call("/partner-orders", Some(&auth), &order("000")).await;
    assert_eq!(r.status(), 403);
    assert!(
        r.text()
            .await
            .expect("t")
            .contains("no partner has alternative id \\\"000\\\"")
    );
    let r = s
        .call(
            "/partner-orders",
            Some(&auth),
            "<o:Order xmlns:o=\"urn:example:order\"/>",
        )
        .await;
    assert_eq!(r.status(), 400);
    let r = s
        .call(
            "/partner-orders",
            Some(&auth),
            "<o:Order xmlns:o=\"urn:example:order\"><unclosed>",
        )
        .await;
    assert_eq!(r.status(), 400);

    // Malicious XML: entity expansion and external entities are refused, the server lives on.
    let laughs = "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\"><!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\"><!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\"><!ENTITY lol5 \"&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;\"><!ENTITY lol6 \"&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;\"><!ENTITY lol7 \"&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;\"><!ENTITY lol8 \"&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;\"><!ENTITY lol9 \"&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;\">]><o:Order xmlns:o=\"urn:example:order\"><o:Header><o:SenderId>&lol9;</o:SenderId></o:Header></o:Order>";
    let xxe = "<?xml version=\"1.0\"?><!DOCTYPE o [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]><o:Order xmlns:o=\"urn:example:order\"><o:Header><o:SenderId>&xxe;</o:SenderId></o:Header></o:Order>";
    for (name, body) in [("billion laughs", laughs), ("external entity", xxe)] {
        let r = s.call("/partner-orders", Some(&auth), body).await;
        assert!(r.status().is_client_error(), "{name}: {}", r.status());
        assert!(!r.text().await.expect("t").contains("root:"), "{name}");
    }
    let deep = format!("{}{}", "<a>".repeat(100_000), "</a>".repeat(100_000));
    let r = s.call("/partner-orders", Some(&auth), &deep).await;
    assert!(r.status().is_client_error(), "deep XML: {}", r.status());
    let r = s.call("/partner-orders", Some(&auth), &order("123456789")).await;
    assert_eq!(r.status(), 200, "still serving");
}

#[tokio::test]
async fn authorized_users_get_esb_messaging_send_and_lose_it() {
    let s = Server::start().await;
    let (id, secret) = client_without_send(&s).await;
    let (st, b) = s
        .deploy(&crate::fixture::echo_user_flow(
            "plain",
            "/plain",
            "ESBMessaging.send",
        ))
        .await;
    assert_eq!(st, 201, "{b}");
    let (st, _) = s
        .admin(
            Method::POST,
            "/admin/v1/users",
            Some(json!({"name": "Partner-Tech", "password": "a-long-password-1", "roles": []})),
        )
        .await;
    assert_eq!(st, 201);
    let key = basic(&id, &secret);
    let tech = basic("partner-tech", "a-long-password-1");
    assert_eq!(s.call("/plain", Some(&key), "x").await.status(), 403);
    assert_eq!(s.call("/plain", Some(&tech), "x").await.status(), 403);

    created(&s, "AuthorizedUsers", json!({"User": id, "Pid": "ACME"})).await;
    created(
        &s,
        "AuthorizedUsers",
        json!({"User": "Partner-Tech", "Pid": "ACME"}),
    )
    .await;
    assert_eq!(s.call("/plain", Some(&key), "x").await.status(), 200);
    assert_eq!(s.call("/plain", Some(&tech), "x").await.status(), 200);

    // The grant is visible, marked as coming from the Partner Directory.
    let (_, u) = s.admin(Method::GET, "/admin/v1/users/partner-tech", None).await;
    assert_eq!(
        u["grantedRoles"],
        json!([{"role": "ESBMessaging.send", "grantedBy": "partner-directory", "pid": "ACME"}])
    );
    let (_, p) = s
        .admin(
            Method::GET,
            &format!("/admin/v1/principals/{}", urlencode(&id)),
            None,
        )
        .await;
    let sources: Vec<&str> = p["roles"]
        .as_array()
        .expect("roles")
        .iter()
        .filter_map(|r| r["grantedBy"].as_str())
        .collect();
    assert_eq!(sources, ["service-instance", "partner-directory"], "{p}");

    // Bearer tokens: the user is oauth_client_<client id>.
    let token: Value = s
        .http
        .post(s.at("/oauth/token"))
        .basic_auth(&id, Some(&secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    let bearer = format!("Bearer {}", token["access_token"].as_str().expect("token")).into_bytes();
    assert_eq!(s.call("/plain", Some(&bearer), "x").await.status(), 403);
    created(
        &s,
        "AuthorizedUsers",
        json!({"User": format!("oauth_client_{id}"), "Pid": "ACME"}),
    )
    .await;
    assert_eq!(s.call("/plain", Some(&bearer), "x").await.status(), 200);

    // Deleting the authorized user revokes the grant at once; a role held otherwise stays.
    let (st, _) = pd(&s, Method::DELETE, "AuthorizedUsers('partner-tech')", None).await;
    assert_eq!(st, 204);
    assert_eq!(s.call("/plain", Some(&tech), "x").await.status(), 403);
    let (st, _) = s
        .admin(
            Method::PATCH,
            "/admin/v1/users/partner-tech",
            Some(json!({"roles": ["ESBMessaging.send"]})),
        )
        .await;
    assert_eq!(st, 200);
    created(
        &s,
        "AuthorizedUsers",
        json!({"User": "partner-tech", "Pid": "ACME"}),
    )
    .await;
    let (st, _) = pd(&s, Method::DELETE, "Partners('ACME')", None).await;
    assert_eq!(st, 204);
    assert_eq!(s.call("/plain", Some(&tech), "x").await.status(), 200, "own role");
    assert_eq!(
        s.call("/plain", Some(&key), "x").await.status(),
        403,
        "grant gone with the partner"
    );
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn odata_api_crud_keys_filters_and_uniqueness() {
    let s = Server::start().await;
    let v = created(
        &s,
        "StringParameters",
        json!({"Pid": "ACME", "Id": "ReceiverAddress", "Value": "https://acme.example/in"}),
    )
    .await;
    assert_eq!(v["d"]["Value"], "https://acme.example/in");
    assert_eq!(v["d"]["CreatedBy"], "admin");
    assert!(
        v["d"]["CreatedTime"]
            .as_str()
            .expect("time")
            .starts_with("/Date(")
    );
    created(
        &s,
        "StringParameters",
        json!({"Pid": "ACME", "Id": "Format", "Value": "xml"}),
    )
    .await;
    created(
        &s,
        "StringParameters",
        json!({"Pid": "GLOBEX", "Id": "Format", "Value": "json"}),
    )
    .await;

    // Key syntax, update, filter, select, order, paging.
    let (st, v) = pd(&s, Method::GET, "StringParameters(Pid='ACME',Id='Format')", None).await;
    assert_eq!((st, v["d"]["Value"].as_str()), (200, Some("xml")));
    let (st, _) = pd(
        &s,
        Method::PUT,
        "StringParameters(Pid='ACME',Id='Format')",
        Some(json!({"Value": "edifact"})),
    )
    .await;
    assert_eq!(st, 204);
    let (_, v) = pd(&s, Method::GET, "StringParameters?$filter=Id%20eq%20'Format'&$orderby=Pid%20desc&$select=Pid,Value&$inlinecount=allpages", None).await;
    assert_eq!(v["d"]["__count"], "2");
    assert_eq!(
        v["d"]["results"]
            .as_array()
            .expect("results")
            .iter()
            .map(|r| (r["Pid"].as_str(), r["Value"].as_str(), r.get("Id").is_none()))
            .collect::<Vec<_>>(),
        vec![
            (Some("GLOBEX"), Some("json"), true),
            (Some("ACME"), Some("edifact"), true)
        ]
    );
    let (_, v) = pd(&s, Method::GET, "StringParameters?$top=1&$skip=1", None).await;
    assert_eq!(v["d"]["results"].as_array().map(Vec::len), Some(1));
    let (_, v) = pd(&s, Method::GET, "Partners", None).await;
    assert_eq!(
        v["d"]["results"],
        json!([{"Pid": "ACME", "__metadata": v["d"]["results"][0]["__metadata"]}, {"Pid": "GLOBEX", "__metadata": v["d"]["results"][1]["__metadata"]}])
    );

    // Alternative partners: hex keys, both uniqueness rules, update by key.
    let v = created(
        &s,
        "AlternativePartners",
        json!({"Agency": "my agency", "Scheme": "DUNS", "Id": "123", "Pid": "ACME"}),
    )
    .await;
    assert_eq!(v["d"]["Hexagency"], "6D79206167656E6379");
    let key = "AlternativePartners(Hexagency='6D79206167656E6379',Hexscheme='44554E53',Hexid='313233')";
    let (st, v) = pd(&s, Method::GET, key, None).await;
    assert_eq!((st, v["d"]["Pid"].as_str()), (200, Some("ACME")));
    let (st, v) = pd(
        &s,
        Method::POST,
        "AlternativePartners",
        Some(json!({"Agency": "my agency", "Scheme": "DUNS", "Id": "123", "Pid": "GLOBEX"})),
    )
    .await;
    assert_eq!(st, 409, "{v}");
    let (st, v) = pd(
        &s,
        Method::POST,
        "AlternativePartners",
        Some(json!({"Agency": "my agency", "Scheme": "DUNS", "Id": "456", "Pid": "ACME"})),
    )
    .await;
    assert_eq!(st, 409, "(agency, scheme, pid) unique: {v}");
    assert!(
        error_text(&v).contains("already has an alternative partner"),
        "{v}"
    );
    let (st, _) = pd(&s, Method::PUT, key, Some(json!({"Pid": "GLOBEX"}))).await;
    assert_eq!(st, 204);
    let (_, v) = pd(
        &s,
        Method::GET,
        "AlternativePartners?$filter=Pid%20eq%20'GLOBEX'",
        None,
    )
    .await;
    assert_eq!(v["d"]["results"][0]["Id"], "123");
    let (_, v) = pd(
        &s,
        Method::GET,
        "AlternativePartners?$filter=Hexid%20eq%20'313233'",
        None,
    )
    .await;
    assert_eq!(
        v["d"]["results"],
        json!([]),
        "Hex properties match nothing, as in SAP"
    );

    // Authorized users are stored lower-case; one partner per user.
    let v = created(
        &s,
        "AuthorizedUsers",
        json!({"User": "Mixed.Case", "Pid": "ACME"}),
    )
    .await;
    assert_eq!(v["d"]["User"], "mixed.case");
    let (st, _) = pd(
        &s,
        Method::POST,
        "AuthorizedUsers",
        Some(json!({"User": "MIXED.case", "Pid": "GLOBEX"})),
    )
    .await;
    assert_eq!(st, 409);
    let (st, v) = pd(&s, Method::GET, "AuthorizedUsers('MIXED.CASE')", None).await;
    assert_eq!((st, v["d"]["Pid"].as_str()), (200, Some("ACME")));

    // Binary parameters: base64 values, content types, size limit.
    let v = created(
        &s,
        "BinaryParameters",
        json!({"Pid": "ACME", "Id": "Schema", "ContentType": "xsd", "Value": "PHhzOnNjaGVtYS8+"}),
    )
    .await;
    assert_eq!(v["d"]["Value"], "PHhzOnNjaGVtYS8+");
    let (st, _) = pd(
        &s,
        Method::PUT,
        "BinaryParameters(Pid='ACME',Id='Schema')",
        Some(json!({"ContentType": "text;encoding=UTF-8", "Value": "aGk="})),
    )
    .await;
    assert_eq!(st, 204);
    let (_, v) = pd(&s, Method::GET, "BinaryParameters(Pid='ACME',Id='Schema')", None).await;
    assert_eq!(
        (v["d"]["ContentType"].as_str(), v["d"]["Value"].as_str()),
        (Some("text;encoding=UTF-8"), Some("aGk="))
    );

    // Violations: 400 with OData error bodies; 404 for missing keys.
    let bad: Vec<(&str, Value)> = vec![
        (
            "StringParameters",
            json!({"Pid": "has space", "Id": "x", "Value": "v"}),
        ),
        (
            "StringParameters",
            json!({"Pid": "A".repeat(61), "Id": "x", "Value": "v"}),
        ),
        (
            "StringParameters",
            json!({"Pid": "A", "Id": "x", "Value": "v".repeat(4001)}),
        ),
        ("StringParameters", json!({"Pid": "A", "Id": "x"})),
        (
            "StringParameters",
            json!({"Pid": "A", "Id": "x", "Value": "v", "Secret": 1}),
        ),
        (
            "AlternativePartners",
            json!({"Agency": "a".repeat(121), "Scheme": "s", "Id": "1", "Pid": "A"}),
        ),
        (
            "BinaryParameters",
            json!({"Pid": "A", "Id": "x", "ContentType": "pdf", "Value": "aGk="}),
        ),
        (
            "BinaryParameters",
            json!({"Pid": "A", "Id": "x", "ContentType": "xml", "Value": "not base64!"}),
        ),
    ];
    for (set, body) in bad {
        let (st, v) = pd(&s, Method::POST, set, Some(body.clone())).await;
        assert_eq!(st, 400, "{set} {body}: {v}");
        assert!(!error_text(&v).is_empty(), "{v}");
    }
    let big = base64_of(&vec![0u8; 262_145]);
    let (st, _) = pd(
        &s,
        Method::POST,
        "BinaryParameters",
        Some(json!({"Pid": "A", "Id": "big", "ContentType": "zip", "Value": big})),
    )
    .await;
    assert_eq!(st, 413);
    for path in [
        "StringParameters(Pid='NOPE',Id='x')",
        "AuthorizedUsers('nobody')",
        "Partners('NOPE')",
    ] {
        let (st, v) = pd(&s, Method::DELETE, path, None).await;
        assert_eq!(st, 404, "{path}: {v}");
    }
    for path in [
        "StringParameters(Pid='A')",
        "StringParameters?$filter=Secret%20eq%20'x'",
        "StringParameters?$orderby=Nope",
    ] {
        let (st, _) = pd(&s, Method::GET, path, None).await;
        assert_eq!(st, 400, "{path}");
    }

    // Deleting a partner with `exclude` keeps those entries.
    let (st, _) = pd(
        &s,
        Method::DELETE,
        "Partners('ACME')?exclude=StringParameters",
        None,
    )
    .await;
    assert_eq!(st, 204);
    let (_, v) = pd(
        &s,
        Method::GET,
        "StringParameters?$filter=Pid%20eq%20'ACME'",
        None,
    )
    .await;
    assert_eq!(v["d"]["results"].as_array().map(Vec::len), Some(2));
    let (_, v) = pd(&s, Method::GET, "AuthorizedUsers", None).await;
    assert_eq!(v["d"]["results"], json!([]));

    // Every change is in the audit log, without values.
    let (_, audit) = s.admin(Method::GET, "/admin/v1/audit?limit=500", None).await;
    let text = audit.to_string();
    assert!(
        text.contains("partner.string.create") && text.contains("partner.delete"),
        "{text}"
    );
    assert!(
        !text.contains("https://acme.example/in"),
        "values stay out of the audit log"
    );
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

async fn batch(s: &Server, body: String) -> (u16, String) {
    let r = s
        .http
        .post(s.at("/api/v1/$batch"))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .header("content-type", "multipart/mixed; boundary=batch_1")
        .body(body)
        .send()
        .await
        .expect("batch");
    (r.status().as_u16(), r.text().await.expect("text"))
}

fn batch_body(requests: &[(&str, &str, Value)]) -> String {
    let mut b = String::from("--batch_1\r\nContent-Type: multipart/mixed; boundary=changeset_1\r\n\r\n");
    for (i, (method, url, body)) in requests.iter().enumerate() {
        b.push_str(&format!(
            "--changeset_1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: {}\r\n\r\n{method} {url} HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{}\r\n",
            i + 1,
            if body.is_null() { String::new() } else { body.to_string() }
        ));
    }
    b.push_str("--changeset_1--\r\n\r\n--batch_1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\nGET StringParameters?$inlinecount=allpages HTTP/1.1\r\n\r\n\r\n--batch_1--\r\n");
    b
}

#[tokio::test]
async fn batch_change_sets_are_all_or_nothing() {
    let s = Server::start().await;
    created(&s, "AuthorizedUsers", json!({"User": "taken", "Pid": "ACME"})).await;
    let failing = batch_body(&[
        (
            "POST",
            "StringParameters",
            json!({"Pid": "ACME", "Id": "A", "Value": "1"}),
        ),
        (
            "POST",
            "AlternativePartners",
            json!({"Agency": "016", "Scheme": "DUNS", "Id": "1", "Pid": "ACME"}),
        ),
        (
            "POST",
            "AuthorizedUsers",
            json!({"User": "taken", "Pid": "GLOBEX"}),
        ),
    ]);
    let (st, text) = batch(&s, failing).await;
    assert_eq!(st, 202, "{text}");
    assert!(text.contains("HTTP/1.1 409 Conflict"), "{text}");
    assert!(text.contains("change 3"), "{text}");
    assert!(
        text.contains("\"__count\":\"0\""),
        "the change set left nothing behind: {text}"
    );
    let (_, v) = pd(&s, Method::GET, "AlternativePartners", None).await;
    assert_eq!(v["d"]["results"], json!([]));

    let ok = batch_body(&[
        (
            "POST",
            "StringParameters",
            json!({"Pid": "ACME", "Id": "A", "Value": "1"}),
        ),
        (
            "PUT",
            "/api/v1/AuthorizedUsers('taken')",
            json!({"Pid": "GLOBEX"}),
        ),
        (
            "POST",
            "BinaryParameters",
            json!({"Pid": "GLOBEX", "Id": "cert", "ContentType": "crt", "Value": "aGk="}),
        ),
        ("DELETE", "StringParameters(Pid='ACME',Id='A')", Value::Null),
    ]);
    let (st, text) = batch(&s, ok).await;
    assert_eq!(st, 202, "{text}");
    assert_eq!(text.matches("HTTP/1.1 201 Created").count(), 2, "{text}");
    assert_eq!(text.matches("HTTP/1.1 204 No Content").count(), 2, "{text}");
    let (_, v) = pd(&s, Method::GET, "AuthorizedUsers('taken')", None).await;
    assert_eq!(v["d"]["Pid"], "GLOBEX");

    // Malformed batches: 400, never 500.
    for body in [
        "no boundary here",
        "--batch_1\r\nContent-Type: application/http\r\n\r\nGET",
        "--batch_1\r\n\r\n--batch_1--",
    ] {
        let (st, text) = batch(&s, body.to_owned()).await;
        assert!(
            st == 400 || (st == 202 && text.contains("HTTP/1.1 400")),
            "{st}: {text}"
        );
    }
}

/// A flow checking `partner` (no alternative mapping unless given) for the ACME user.
async fn extractor_case(s: &Server, auth: &[u8], id: &str, step: &str, ok_body: &str, other_body: &str) {
    let (st, b) = s.deploy(&check_flow(id, &format!("/x/{id}"), step)).await;
    assert_eq!(st, 201, "{id}: {b}");
    let r = s.call(&format!("/x/{id}"), Some(auth), ok_body).await;
    let status = r.status();
    assert_eq!(status, 200, "{id}: {}", r.text().await.unwrap_or_default());
    let r = s.call(&format!("/x/{id}"), Some(auth), other_body).await;
    assert_eq!(r.status(), 403, "{id}: {}", r.text().await.unwrap_or_default());
}

#[tokio::test]
async fn every_extractor_on_realistic_messages() {
    let s = Server::start().await;
    let (id, secret) = client_without_send(&s).await;
    seed(&s, &id).await;
    for (agency, scheme, alt, pid) in [
        ("EDI", "14", "4000001000002", "ACME"),
        ("EDI", "14", "4000002000009", "GLOBEX"),
        ("X12", "ZZ", "ACMESENDER", "ACME"),
        ("X12", "ZZ", "GLOBEXSEND", "GLOBEX"),
        ("SAP", "KU", "0000100001", "ACME"),
    ] {
        let body = json!({"Agency": agency, "Scheme": scheme, "Id": alt, "Pid": pid});
        created(&s, "AlternativePartners", body).await;
    }
    let auth = basic(&id, &secret);

    let json_order = |p: &str| {
        format!("{{\"order\":{{\"header\":{{\"sender\":\"{p}\"}},\"items\":[{{\"n\":1}},{{\"n\":2}}]}}}}")
    };
    extractor_case(
        &s,
        &auth,
        "json",
        "      partner: { jsonpath: \"$.order.header.sender\" }",
        &json_order("ACME"),
        &json_order("GLOBEX"),
    )
    .await;

    let edifact = |una: bool, sender: &str| {
        format!(
            "{}UNB+UNOC:3+{sender}:14+5000000000003:14+200101:1000+REF1'UNH+1+ORDERS:D:96A:UN'BGM+220+PO1+9'UNT+3+1'UNZ+1+REF1'",
            if una { "UNA:+.? '" } else { "" }
        )
    };
    let edi_step =
        "      partner: edifact\n      qualifiers: { \"14\": { agency: \"EDI\", scheme: \"14\" } }";
    extractor_case(
        &s,
        &auth,
        "edifact-una",
        edi_step,
        &edifact(true, "4000001000002"),
        &edifact(true, "4000002000009"),
    )
    .await;
    extractor_case(
        &s,
        &auth,
        "edifact-plain",
        edi_step,
        &edifact(false, "4000001000002"),
        &edifact(false, "4000002000009"),
    )
    .await;
    let r = s.call("/x/edifact-plain", Some(&auth), "UNB+UNOC:3+400000").await;
    assert_eq!(r.status(), 400, "truncated EDIFACT");

    let isa = |sep: char, term: &str, sender: &str| {
        let isa = format!(
            "ISA{s}00{s}          {s}00{s}          {s}ZZ{s}{sender:<15}{s}ZZ{s}RECEIVER       {s}210101{s}1200{s}U{s}00401{s}000000001{s}0{s}P{s}>{term}",
            s = sep
        );
        format!(
            "{isa}GS{sep}PO{sep}A{sep}B{sep}20210101{sep}1200{sep}1{sep}X{sep}004010{term}ST{sep}850{sep}0001{term}"
        )
    };
    let x12_step = "      partner: x12\n      qualifiers: { \"ZZ\": { agency: \"X12\", scheme: \"ZZ\" } }";
    extractor_case(
        &s,
        &auth,
        "x12-star",
        x12_step,
        &isa('*', "~", "ACMESENDER"),
        &isa('*', "~", "GLOBEXSEND"),
    )
    .await;
    extractor_case(
        &s,
        &auth,
        "x12-pipe",
        x12_step,
        &isa('|', "\n", "ACMESENDER"),
        &isa('|', "\n", "GLOBEXSEND"),
    )
    .await;

    let idoc = |prn: &str| {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ORDERS05><IDOC BEGIN=\"1\"><EDI_DC40 SEGMENT=\"1\"><TABNAM>EDI_DC40</TABNAM><DOCNUM>0000000000123456</DOCNUM><IDOCTYP>ORDERS05</IDOCTYP><MESTYP>ORDERS</MESTYP><SNDPOR>SAPQ01</SNDPOR><SNDPRT>KU</SNDPRT><SNDPRN>{prn}</SNDPRN><RCVPRT>LS</RCVPRT><RCVPRN>POSTERN</RCVPRN></EDI_DC40><E1EDK01 SEGMENT=\"1\"><CURCY>EUR</CURCY></E1EDK01></IDOC></ORDERS05>"
        )
    };
    let idoc_step = "      partner: idoc\n      qualifiers: { \"KU\": { agency: \"SAP\", scheme: \"KU\" } }";
    extractor_case(
        &s,
        &auth,
        "idoc",
        idoc_step,
        &idoc("0000100001"),
        &idoc("0000100002"),
    )
    .await;

    // Header: the Pid itself.
    let (st, b) = s
        .deploy(&check_flow(
            "hdr",
            "/x/hdr",
            "      partner: { header: X-Partner-Id }",
        ))
        .await;
    assert_eq!(st, 201, "{b}");
    let call = |p: Option<&'static str>| {
        let mut req = s.http.post(s.at("/http/x/hdr")).header(
            "authorization",
            reqwest::header::HeaderValue::from_bytes(&auth).expect("h"),
        );
        if let Some(p) = p {
            req = req.header("x-partner-id", p);
        }
        req.body("x").send()
    };
    assert_eq!(call(Some("ACME")).await.expect("call").status(), 200);
    assert_eq!(call(Some("GLOBEX")).await.expect("call").status(), 403);
    assert_eq!(call(None).await.expect("call").status(), 400);

    // Deeply nested JSON: refused over the depth limit, with the reason.
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let r = s.call("/x/json", Some(&auth), &deep).await;
    assert_eq!(r.status(), 413);
    let text = r.text().await.expect("text");
    assert!(
        text.contains("deep") || text.contains("depth") || text.contains("nest"),
        "{text}"
    );

    // A flow whose step is misconfigured is refused at deploy with the reason.
    let (st, b) = s
        .deploy(&check_flow(
            "badxp",
            "/x/badxp",
            "      partner: { xpath: \"/p:Order[\" }",
        ))
        .await;
    assert_eq!(st, 400, "{b}");
    let (st, b) = s
        .deploy(&check_flow("badfmt", "/x/badfmt", "      partner: csv"))
        .await;
    assert_eq!(st, 400, "{b}");
}

#[tokio::test]
async fn script_step_uses_the_partner_directory_api_in_a_sandbox() {
    let s = Server::start().await;
    let (id, secret) = client_without_send(&s).await;
    seed(&s, &id).await;
    created(
        &s,
        "StringParameters",
        json!({"Pid": "ACME", "Id": "Region", "Value": "EU"}),
    )
    .await;
    // SAP's official check, in Rhai: user → Pid, the message's alternative id → Pid, compare.
    let script = r#"
let user = message.getHeader("SapAuthenticatedUserName");
if user == () || user == "" { throw "no authenticated user" }
let pid = pd.getPartnerIdOfAuthorizedUser(user);
if pid == () { throw `user ${user} is not an authorized user` }
let apid = message.getHeader("X-Sender-Duns");
let mpid = pd.getPartnerId("016", "DUNS", apid);
if mpid != pid { throw #{ status: 403, message: `User ${user} is not authorized to send messages with ID ${apid}` } }
if message.getBody() == "loop" { loop { } }
if message.getBody() == "bad" { throw #{ status: 422, message: "unprocessable order" } }
message.setProperty("PartnerID", pid);
message.setHeader("X-Region", pd.getParameter("Region", pid));
message.setHeader("X-Alt", pd.getAlternativePartnerId("016", "DUNS", pid));
message.setHeader("X-Users", pd.getAuthorizedUsers(pid).len().to_string());
"#;
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("check.rhai"), script).expect("script");
    let flow = "id: scripted\nsender:\n  adapter: https\n  address: /scripted\n  roles: [ESBMessaging.send]\nsteps:\n  - script: { file: check.rhai }\nreceiver:\n  reply: { status: 200, body: \"${property.PartnerID} ${header.X-Region} ${header.X-Alt} ${header.X-Users}\" }\n";
    let flow_file = dir.path().join("flow.yaml");
    std::fs::write(&flow_file, flow).expect("flow");
    s.cli_ok(&["flow", "deploy", flow_file.to_str().expect("path")]);

    let call = |duns: &'static str, body: &'static str| {
        s.http
            .post(s.at("/http/scripted"))
            .basic_auth(&id, Some(&secret))
            .header("x-sender-duns", duns)
            .body(body)
            .send()
    };
    let r = call("123456789", "order").await.expect("call");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.expect("t"), "ACME EU 123456789 1");
    let r = call("987654321", "order").await.expect("call");
    assert_eq!(r.status(), 403);
    let text = r.text().await.expect("t");
    assert!(
        text.contains("is not authorized to send messages with ID 987654321"),
        "{text}"
    );
    let r = call("123456789", "bad").await.expect("call");
    assert_eq!(r.status(), 422);
    // A runaway script stops at the operation limit: the message fails, the server serves on.
    let r = call("123456789", "loop").await.expect("call");
    assert_eq!(r.status(), 500);
    assert!(r.text().await.expect("t").contains("script error"));
    assert_eq!(call("123456789", "order").await.expect("call").status(), 200);

    // A script that does not compile is refused at deploy, naming the position.
    let (st, b) = s
        .deploy("id: broken\nsender:\n  adapter: https\n  address: /broken\nsteps:\n  - script: { source: \"let x = ;\" }\nreceiver:\n  reply: { status: 200 }\n")
        .await;
    assert_eq!(st, 400, "{b}");
    assert!(b.to_string().contains("does not compile"), "{b}");
}

#[tokio::test]
async fn cli_export_and_import_json_and_csv_with_dry_run() {
    let s = Server::start().await;
    seed(&s, "partner-a").await;
    created(
        &s,
        "StringParameters",
        json!({"Pid": "ACME", "Id": "Note", "Value": "line 1, \"quoted\""}),
    )
    .await;
    created(
        &s,
        "BinaryParameters",
        json!({"Pid": "ACME", "Id": "Schema", "ContentType": "xsd", "Value": "PHhzLz4="}),
    )
    .await;
    let dir = tempfile::tempdir().expect("dir");
    let json_file = dir.path().join("pd.json");
    let csv_file = dir.path().join("pd.csv");
    s.cli_ok(&["partner", "export", json_file.to_str().expect("p")]);
    s.cli_ok(&["partner", "export", csv_file.to_str().expect("p")]);
    let exported: Value = serde_json::from_slice(&std::fs::read(&json_file).expect("read")).expect("json");
    assert_eq!(exported["alternativePartners"].as_array().map(Vec::len), Some(2));
    assert_eq!(exported["binaryParameters"][0]["Value"], "PHhzLz4=");
    let csv = std::fs::read_to_string(&csv_file).expect("csv");
    assert!(
        csv.starts_with("Kind,Pid,Id,Agency,Scheme,User,Value,ContentType"),
        "{csv}"
    );

    // On an empty server: a dry run changes nothing, the import creates everything.
    let t = Server::start().await;
    let out = t.cli_ok(&["partner", "import", csv_file.to_str().expect("p"), "--dry-run"]);
    assert!(
        out.contains("dry run: 5 to create, 0 to update, 0 unchanged"),
        "{out}"
    );
    assert!(out.contains("create  AuthorizedUsers('partner-a')"), "{out}");
    let (_, v) = pd(&t, Method::GET, "AlternativePartners", None).await;
    assert_eq!(v["d"]["results"], json!([]));
    let out = t.cli_ok(&["partner", "import", csv_file.to_str().expect("p")]);
    assert!(out.contains("5 to create"), "{out}");
    let (_, v) = pd(&t, Method::GET, "StringParameters(Pid='ACME',Id='Note')", None).await;
    assert_eq!(v["d"]["Value"], "line 1, \"quoted\"");
    // The imported directory is live: the authorized user holds ESBMessaging.send.
    let (_, p) = t.admin(Method::GET, "/admin/v1/principals/partner-a", None).await;
    assert_eq!(p["partner"], "ACME");

    // Re-importing a changed JSON file updates only what differs.
    let mut changed = exported.clone();
    changed["authorizedUsers"][0]["Pid"] = json!("GLOBEX");
    std::fs::write(&json_file, serde_json::to_vec(&changed).expect("json")).expect("write");
    let out = t.cli_ok(&["partner", "import", json_file.to_str().expect("p")]);
    assert!(out.contains("0 to create, 1 to update, 4 unchanged"), "{out}");

    // Bad rows are refused with the entry named, and nothing is applied.
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"alternativePartners":[{"Agency":"016","Scheme":"DUNS","Id":"1","Pid":"NEW"},{"Agency":"016","Scheme":"DUNS","Id":"2","Pid":"bad pid"}]}"#,
    )
    .expect("write");
    let (ok, _, err) = t.cli(&["partner", "import", bad.to_str().expect("p")]);
    assert!(!ok);
    assert!(err.contains("alternativePartners[1]"), "{err}");
    let (_, v) = pd(
        &t,
        Method::GET,
        "AlternativePartners?$filter=Pid%20eq%20'NEW'",
        None,
    )
    .await;
    assert_eq!(v["d"]["results"], json!([]));
}

#[tokio::test]
async fn api_keys_with_sap_partner_directory_role() {
    let s = Server::start().await;
    s.instance(
        "pd-api",
        "api",
        json!({"roles": ["AuthGroup_TenantPartnerDirectoryConfigurator"]}),
    )
    .await;
    let (id, secret) = s.key("pd-api", "k").await;
    let r = s
        .http
        .post(s.at("/api/v1/StringParameters"))
        .basic_auth(&id, Some(&secret))
        .json(&json!({"Pid": "ACME", "Id": "x", "Value": "y"}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["d"]["CreatedBy"], id.as_str());
    // The role opens the Partner Directory, nothing else.
    let r = s
        .http
        .get(s.at("/api/v1/MessageProcessingLogs"))
        .basic_auth(&id, Some(&secret))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 403);
    let r = s
        .http
        .get(s.at("/admin/v1/partner-directory"))
        .basic_auth(&id, Some(&secret))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 403);
}

/// Sends the head of a chunked body and then nothing more; returns the status if the server
/// answers within `wait`, without the body ever being completed.
async fn answer_to_unfinished_body(
    s: &Server,
    path: &str,
    auth: &[u8],
    head: &str,
    wait: u64,
) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = s.url.trim_start_matches("http://");
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut req =
        format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\n").into_bytes();
    req.extend_from_slice(b"Authorization: ");
    req.extend_from_slice(auth);
    req.extend_from_slice(b"\r\n\r\n");
    req.extend_from_slice(format!("{:x}\r\n{head}\r\n", head.len()).as_bytes());
    tcp.write_all(&req).await.expect("send the head");
    let mut answer = vec![0u8; 512];
    let n = tokio::time::timeout(std::time::Duration::from_secs(wait), tcp.read(&mut answer))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&answer[..n]).into_owned();
    text.split_whitespace().nth(1).and_then(|c| c.parse().ok())
}

#[tokio::test]
async fn edi_envelope_is_checked_before_the_rest_of_the_body_arrives() {
    let s = Server::start().await;
    let (id, secret) = client_without_send(&s).await;
    seed(&s, &id).await;
    created(
        &s,
        "AlternativePartners",
        json!({"Agency": "EDI", "Scheme": "14", "Id": "4000002000009", "Pid": "GLOBEX"}),
    )
    .await;
    let (st, b) = s
        .deploy(&check_flow(
            "edi-early",
            "/edi-early",
            "      partner: edifact\n      qualifiers: { \"14\": { agency: \"EDI\", scheme: \"14\" } }",
        ))
        .await;
    assert_eq!(st, 201, "{b}");
    let auth = basic(&id, &secret);
    // 5 KiB of interchange (more than the 4 KiB envelope prefix), the rest never sent.
    let head = format!(
        "UNA:+.? 'UNB+UNOC:3+4000002000009:14+5000000000003:14+200101:1000+REF1'UNH+1+ORDERS:D:96A:UN'{}",
        "FTX+AAI+++free text'".repeat(250)
    );
    assert_eq!(
        answer_to_unfinished_body(&s, "/http/edi-early", &auth, &head, 10).await,
        Some(403),
        "refused from the envelope, without waiting for the body"
    );
    // The own partner's interchange is not answered before the body is complete.
    let own = head.replace("4000002000009", "4000001000002");
    created(
        &s,
        "AlternativePartners",
        json!({"Agency": "EDI", "Scheme": "14", "Id": "4000001000002", "Pid": "ACME"}),
    )
    .await;
    assert_eq!(
        answer_to_unfinished_body(&s, "/http/edi-early", &auth, &own, 2).await,
        None
    );
    // ...and passes once it is.
    let r = s.call("/edi-early", Some(&auth), &own).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.expect("t"), "pid=ACME");
}

#[tokio::test]
async fn explain_says_why_without_running_the_flow() {
    let s = Server::start().await;
    let (id, secret) = client_without_send(&s).await;
    seed(&s, &id).await;
    let (st, b) = s
        .deploy(include_str!("../../../../examples/orders-partner-check.yaml"))
        .await;
    assert_eq!(st, 201, "{b}");
    let auth = String::from_utf8(basic(&id, &secret)).expect("utf-8");
    let order = |duns: &str| {
        format!(
            "<o:Order xmlns:o=\"urn:example:order\"><o:Header><o:SenderId>{duns}</o:SenderId></o:Header></o:Order>"
        )
    };
    let explain = |body: Value| s.admin(Method::POST, "/admin/v1/explain", Some(body));

    let (st, v) = explain(json!({"address": "/http/partner-orders", "headers": {"Authorization": auth}, "body": order("123456789")})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (v["allowed"].as_bool(), v["status"].as_u64()),
        (Some(true), Some(200)),
        "{v}"
    );
    let checks: Vec<(&str, &str)> = v["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| {
            (
                c["check"].as_str().unwrap_or(""),
                c["result"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        checks,
        [
            ("route", "passed"),
            ("authentication", "passed"),
            ("role", "passed"),
            ("partner_authorization", "passed")
        ]
    );
    assert_eq!(v["checks"][2]["detail"]["grantedBy"], "partner-directory");

    let (_, v) = explain(json!({"flow": "orders-partner-check", "headers": {"Authorization": auth}, "body": order("987654321")})).await;
    assert_eq!(v["status"], 403);
    let last = v["checks"]
        .as_array()
        .and_then(|c| c.last())
        .cloned()
        .expect("a check");
    assert_eq!(last["check"], "partner_authorization");
    assert!(
        last["detail"]
            .as_str()
            .unwrap_or("")
            .contains("names partner GLOBEX"),
        "{v}"
    );

    let wrong = String::from_utf8(basic(&id, "wrong")).expect("utf-8");
    let (_, v) = explain(json!({"flow": "orders-partner-check", "headers": {"Authorization": wrong}})).await;
    assert_eq!(
        (v["status"].as_u64(), v["checks"][1]["detail"]["reason"].as_str()),
        (Some(401), Some("bad_secret"))
    );
    let (_, v) = explain(json!({"address": "/nowhere"})).await;
    assert_eq!(v["status"], 404);
    let (st, _) = explain(json!({"flow": "x", "address": "/y"})).await;
    assert_eq!(st, 400);
    let (st, v) = explain(json!({"headers": {}})).await;
    assert_eq!(st, 400, "{v}");
    assert_eq!(
        v["message"],
        "name the flow: give flow (its id) or address (what a sender calls, e.g. /orders)"
    );

    // Nothing ran for real: no message processing logs.
    let (_, mpls) = s
        .admin(
            Method::GET,
            "/api/v1/MessageProcessingLogs?$inlinecount=allpages",
            None,
        )
        .await;
    assert_eq!(mpls["d"]["__count"], "0");
}
