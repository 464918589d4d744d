//! Design > Integration content: deployed flows with their status, endpoint URL and sender
//! authorization; deploying a flow from a YAML file (or pasted YAML) with validation errors shown
//! next to the document; undeploying.

use axum::Router;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use bytes::Bytes;
use postern_flow::definition::MAX_YAML_BYTES;
use postern_flow::deploy;
use serde_json::json;

use super::session::or_answer;
use super::{Done, Session, back, problem, render};
use crate::state::{AppState, Scope};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/flows", get(list).post(deploy_flow))
        .route("/flows/{id}", get(one))
        .route("/flows/{id}/undeploy", post(undeploy))
}

fn page(s: &AppState, session: &Session, status: StatusCode, values: serde_json::Value) -> Response {
    let live = s.live();
    let mut flows: Vec<_> = live
        .flows
        .iter()
        .map(|d| crate::admin::flows::view(s, d))
        .collect();
    flows.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    let mut values = values;
    values["flows"] = json!(flows);
    render(status, "flows.html", session.page("flows", values))
}

async fn list(State(s): State<AppState>, session: Session, Query(d): Query<Done>) -> Response {
    page(&s, &session, StatusCode::OK, json!({ "notice": d.done }))
}

async fn one(State(s): State<AppState>, session: Session, Path(id): Path<String>) -> Response {
    let live = s.live();
    match live.flows.get(&id) {
        Some(d) => render(
            StatusCode::OK,
            "flow.html",
            session.page(
                "flows",
                json!({ "f": crate::admin::flows::view(&s, d), "yaml": d.yaml }),
            ),
        ),
        None => session.error(StatusCode::NOT_FOUND, &format!("Flow {id} is not deployed.")),
    }
}

/// Deploy (multipart): a YAML file, or the YAML pasted into the text area.
async fn deploy_flow(State(s): State<AppState>, session: Session, form: Multipart) -> Response {
    let upload = or_answer!(session.upload(form, MAX_YAML_BYTES).await);
    let (pasted, file) = (upload.text("yaml"), upload.bytes("file").to_vec());
    let yaml = if file.is_empty() {
        pasted
    } else {
        match String::from_utf8(file) {
            Ok(t) => t,
            Err(_) => {
                return page(
                    &s,
                    &session,
                    StatusCode::BAD_REQUEST,
                    json!({ "error": "The file is not UTF-8 text." }),
                );
            }
        }
    };
    if yaml.trim().is_empty() {
        return page(
            &s,
            &session,
            StatusCode::BAD_REQUEST,
            json!({ "error": "Choose a flow file (YAML) or paste the flow." }),
        );
    }
    let c = session.ctx(&s);
    match s.write_in(Scope::Flows, deploy::deploy(&c, None, &yaml)).await {
        Ok((flow, created)) => {
            let verb = if created { "deployed" } else { "redeployed" };
            back("/console/flows", &format!("Flow {} {verb}.", flow.id))
        }
        Err(e) => {
            let (status, message) = problem(e);
            page(&s, &session, status, json!({ "error": message, "yaml": yaml }))
        }
    }
}

async fn undeploy(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    or_answer!(session.confirm(&body));
    let c = session.ctx(&s);
    match s.write_in(Scope::Flows, deploy::undeploy(&c, &id)).await {
        Ok(()) => back("/console/flows", &format!("Flow {id} undeployed.")),
        Err(e) => {
            let (status, message) = problem(e);
            page(&s, &session, status, json!({ "error": message }))
        }
    }
}
