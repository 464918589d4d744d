//! Message processing logs through the SAP-compatible OData API.

use reqwest::Method;
use serde_json::Value;

use crate::fixture::{Server, basic, echo_user_flow};

async fn odata(s: &Server, query: &str) -> (u16, Value) {
    s.admin(
        Method::GET,
        &format!("/api/v1/MessageProcessingLogs{query}"),
        None,
    )
    .await
}

async fn wait_for(s: &Server, n: usize) {
    for _ in 0..200 {
        let (_, v) = odata(s, "?$inlinecount=allpages&$top=0").await;
        if v["d"]["__count"].as_str().and_then(|c| c.parse::<usize>().ok()) == Some(n) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("MPLs never reached {n}");
}

#[tokio::test]
async fn mpls_in_sap_shape_with_filters() {
    let s = Server::start().await;
    let (id, secret) = s.sender("Orders.Send", "orders").await;
    s.sender("Other.Send", "other").await;
    assert_eq!(
        s.deploy(&echo_user_flow("orders-in", "/orders", "Orders.Send"))
            .await
            .0,
        201
    );
    assert_eq!(
        s.deploy(&echo_user_flow("other-in", "/other", "Other.Send"))
            .await
            .0,
        201
    );
    let auth = basic(&id, &secret);
    for _ in 0..3 {
        assert_eq!(s.call("/orders", Some(&auth), "x").await.status(), 200);
    }
    let denied = s.call("/other", Some(&auth), "x").await;
    assert_eq!(denied.status(), 403);
    let denied_guid = denied.headers()["sap_messageprocessinglogid"]
        .to_str()
        .expect("guid")
        .to_owned();
    assert_eq!(
        s.call("/orders", Some(&auth), &"x".repeat(5000)).await.status(),
        413
    );
    // 401s and 404s are not messages: no MPL.
    assert_eq!(
        s.call("/orders", Some(&basic(&id, "bad")), "x").await.status(),
        401
    );
    assert_eq!(s.call("/missing", Some(&auth), "x").await.status(), 404);
    wait_for(&s, 5).await;

    let (st, v) = odata(&s, "?$filter=Status%20eq%20'COMPLETED'&$inlinecount=allpages").await;
    assert_eq!(st, 200);
    assert_eq!(v["d"]["__count"], "3");
    let first = &v["d"]["results"][0];
    assert_eq!(first["IntegrationFlowName"], "orders-in");
    assert_eq!(first["IntegrationArtifact"]["Type"], "INTEGRATION_FLOW");
    assert_eq!(first["AuthenticatedUser"], id.as_str());
    assert!(first["LogStart"].as_str().expect("date").starts_with("/Date("));
    assert_eq!(
        first["__metadata"]["type"],
        "com.sap.hci.api.MessageProcessingLog"
    );

    let (_, v) = odata(
        &s,
        "?$filter=Status%20eq%20'FAILED'%20and%20IntegrationFlowName%20eq%20'orders-in'",
    )
    .await;
    let failed = v["d"]["results"].as_array().expect("results");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["HttpStatus"], 413);

    let (_, v) = odata(
        &s,
        "?$orderby=LogEnd%20desc&$top=2&$skip=1&$select=MessageGuid,Status",
    )
    .await;
    let page = v["d"]["results"].as_array().expect("results");
    assert_eq!(page.len(), 2);
    assert!(page[0].get("IntegrationFlowName").is_none() && page[0].get("Status").is_some());

    let (st, v) = s
        .admin(
            Method::GET,
            &format!("/api/v1/MessageProcessingLogs('{denied_guid}')"),
            None,
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(v["d"]["Status"], "FAILED");
    let err = s
        .http
        .get(s.at(&format!(
            "/api/v1/MessageProcessingLogs('{denied_guid}')/ErrorInformation/$value"
        )))
        .basic_auth("admin", Some(crate::fixture::ADMIN_PASSWORD))
        .send()
        .await
        .expect("error text")
        .text()
        .await
        .expect("text");
    assert!(err.contains("Other.Send"), "{err}");
    let (st, info) = s
        .admin(
            Method::GET,
            &format!("/api/v1/MessageProcessingLogs('{denied_guid}')/ErrorInformation"),
            None,
        )
        .await;
    assert_eq!(st, 200, "{info}");
    assert_eq!(
        info["d"]["Denial"],
        serde_json::json!({
            "check": "role",
            "reason": "missing_role",
            "authenticator": "service-key",
            "requiredRoles": ["Other.Send"],
        })
    );
    assert_eq!(info["d"]["MessageGuid"], denied_guid.as_str());
    let count = s
        .http
        .get(s.at("/api/v1/MessageProcessingLogs/$count?$filter=Status%20eq%20'FAILED'"))
        .basic_auth("admin", Some(crate::fixture::ADMIN_PASSWORD))
        .send()
        .await
        .expect("count")
        .text()
        .await
        .expect("text");
    assert_eq!(count, "2");

    let since = "?$filter=LogEnd%20gt%20datetime'2020-01-01T00:00:00'&$inlinecount=allpages&$top=0";
    assert_eq!(odata(&s, since).await.1["d"]["__count"], "5");
    for bad in [
        "?$filter=Status%20eq",
        "?$filter=Secret%20eq%20'x'",
        "?$top=-1",
        "?$orderby=Foo",
        "?$filter=LogEnd%20gt%20'x'",
    ] {
        let (st, v) = odata(&s, bad).await;
        assert_eq!(st, 400, "{bad}");
        assert!(v["error"]["message"]["value"].is_string(), "{bad}: {v}");
    }
    assert_eq!(
        s.admin(Method::GET, "/api/v1/MessageProcessingLogs('nope')", None)
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn integration_runtime_artifacts_in_sap_shape() {
    let s = Server::start().await;
    let (id, secret) = s.orders_flow().await;
    let (st, v) = s
        .admin(Method::GET, "/api/v1/IntegrationRuntimeArtifacts", None)
        .await;
    assert_eq!(st, 200);
    let a = &v["d"]["results"][0];
    assert_eq!(
        (a["Id"].as_str(), a["Status"].as_str(), a["Type"].as_str()),
        (Some("orders-in"), Some("STARTED"), Some("INTEGRATION_FLOW"))
    );
    assert_eq!(a["DeployedBy"], "admin");
    let (st, v) = s
        .admin(
            Method::GET,
            "/api/v1/IntegrationRuntimeArtifacts('orders-in')",
            None,
        )
        .await;
    assert_eq!((st, v["d"]["Id"].as_str()), (200, Some("orders-in")));
    assert_eq!(
        s.admin(
            Method::GET,
            "/api/v1/IntegrationRuntimeArtifacts(orders-in)",
            None
        )
        .await
        .0,
        400
    );
    assert_eq!(
        s.admin(Method::GET, "/api/v1/IntegrationRuntimeArtifacts('nope')", None)
            .await
            .0,
        404
    );
    assert_eq!(s.admin(Method::GET, "/api/v1/NoSuchSet('x')", None).await.0, 404);

    // Monitoring clients read but cannot undeploy.
    s.instance(
        "mon",
        "api",
        serde_json::json!({ "roles": ["MonitoringDataRead"] }),
    )
    .await;
    let (mid, msecret) = s.key("mon", "k").await;
    let r = s
        .http
        .delete(s.at("/api/v1/IntegrationRuntimeArtifacts('orders-in')"))
        .basic_auth(&mid, Some(&msecret))
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 403);

    // Undeploy as SAP does: 202, and the endpoint is gone from the next request on.
    assert_eq!(
        s.admin(
            Method::DELETE,
            "/api/v1/IntegrationRuntimeArtifacts('orders-in')",
            None
        )
        .await
        .0,
        202
    );
    assert_eq!(
        s.call("/orders", Some(&basic(&id, &secret)), "x").await.status(),
        404
    );
    assert_eq!(
        s.admin(
            Method::DELETE,
            "/api/v1/IntegrationRuntimeArtifacts('orders-in')",
            None
        )
        .await
        .0,
        404
    );
}

#[tokio::test]
async fn log_level_none_logs_only_failed_messages() {
    let s = Server::start().await;
    let (id, secret) = s.sender("Orders.Send", "orders").await;
    let quiet =
        echo_user_flow("quiet", "/quiet", "Orders.Send").replacen("sender:", "log_level: none\nsender:", 1);
    assert_eq!(s.deploy(&quiet).await.0, 201);
    let ok = s.call("/quiet", Some(&basic(&id, &secret)), "x").await;
    assert_eq!(ok.status(), 200);
    assert!(
        ok.headers().contains_key("sap_messageprocessinglogid"),
        "the GUID is still given"
    );
    let denied = s
        .call("/quiet", Some(&basic("nobody", "wrong-password-123")), "x")
        .await;
    assert_eq!(denied.status(), 401);
    // An oversized body fails inside the flow: that one is logged.
    let big = "x".repeat(4096);
    let failed = s.call("/quiet", Some(&basic(&id, &secret)), &big).await;
    assert_eq!(failed.status(), 413);
    wait_for(&s, 1).await;
    let (_, v) = odata(&s, "").await;
    assert_eq!(v["d"]["results"][0]["Status"], "FAILED");
    assert_eq!(v["d"]["results"][0]["IntegrationFlowName"], "quiet");
    let (st, v) = s
        .deploy(&quiet.replace("log_level: none", "log_level: debug"))
        .await;
    assert_eq!(st, 400, "{v}");
}

#[tokio::test]
async fn metrics_count_requests_and_latency_per_flow() {
    let s = Server::start().await;
    let (id, secret) = s.orders_flow().await;
    for _ in 0..3 {
        assert_eq!(
            s.call("/orders", Some(&basic(&id, &secret)), "x").await.status(),
            200
        );
    }
    assert_eq!(s.call("/orders", None, "x").await.status(), 401);
    // Deploying another flow rebuilds the table; the counters of this one are kept.
    assert_eq!(
        s.deploy(&echo_user_flow("other-in", "/other", "Orders.Send"))
            .await
            .0,
        201
    );
    let metrics = s.metrics().await;
    for line in [
        "postern_flow_requests_total{flow=\"orders-in\",class=\"2xx\"} 3",
        "postern_flow_requests_total{flow=\"orders-in\",class=\"4xx\"} 1",
        "postern_flow_request_duration_seconds_bucket{flow=\"orders-in\",le=\"+Inf\"} 4",
        "postern_flow_request_duration_seconds_count{flow=\"orders-in\"} 4",
        "postern_flow_requests_total{flow=\"other-in\",class=\"2xx\"} 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "missing {line} in\n{metrics}");
    }
}
