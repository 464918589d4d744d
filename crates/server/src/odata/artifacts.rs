//! `IntegrationRuntimeArtifacts` (`SPEC:IntegrationContent`): deployed flows as SAP's runtime API
//! shows them; `DELETE` undeploys (202, as SAP answers).

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use postern_flow::deploy;
use postern_flow::table::DeployedFlow;
use serde_json::{Value, json};

use super::ODataError;
use crate::extract::{Admin, Monitor, now_ms};
use crate::state::{AppState, Scope};

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/IntegrationRuntimeArtifacts", get(list))
}

fn entity(s: &AppState, d: &DeployedFlow) -> Value {
    let base = format!("{}/api/v1", s.config().public_url.trim_end_matches('/'));
    let uri = format!("{base}/IntegrationRuntimeArtifacts('{}')", d.flow.id);
    json!({
        "__metadata": { "id": uri, "uri": uri, "type": "com.sap.hci.api.IntegrationRuntimeArtifact" },
        "Id": d.flow.id,
        "Version": "1.0.0",
        "Name": d.flow.id,
        "Type": "INTEGRATION_FLOW",
        "DeployedBy": d.deployed_by,
        "DeployedOn": format!("/Date({})/", d.deployed_at),
        "Status": "STARTED",
        "ErrorInformation": { "__deferred": { "uri": format!("{uri}/ErrorInformation") } },
    })
}

async fn list(State(s): State<AppState>, _m: Monitor) -> Json<Value> {
    let live = s.live();
    let results: Vec<Value> = live.flows.iter().map(|d| entity(&s, d)).collect();
    Json(json!({ "d": { "results": results } }))
}

/// `GET IntegrationRuntimeArtifacts('<id>')`.
pub(super) fn by_key(s: &AppState, id: &str) -> Result<Json<Value>, ODataError> {
    let live = s.live();
    let d = live.flows.get(id).ok_or_else(|| {
        ODataError::new(
            StatusCode::NOT_FOUND,
            format!("integration runtime artifact {id} not found"),
        )
    })?;
    Ok(Json(json!({ "d": entity(s, d) })))
}

/// `DELETE IntegrationRuntimeArtifacts('<id>')`: undeploys.
pub(super) async fn undeploy(s: &AppState, a: &Admin, id: &str) -> Result<StatusCode, ODataError> {
    let c = postern_store::Ctx {
        store: s.store(),
        actor: &a.principal.name,
        source: &a.source,
        now: now_ms(),
    };
    s.write_in(Scope::Flows, deploy::undeploy(&c, id)).await?;
    Ok(StatusCode::ACCEPTED)
}
