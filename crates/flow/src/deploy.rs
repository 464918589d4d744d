//! Deploying and undeploying flows: validation against the store (roles exist, addresses do not
//! collide), persistence, audit.

use postern_core::model::StoredFlow;
use postern_core::{Error, Result};
use postern_store::Ctx;

use crate::definition::{Flow, parse_flow};

/// Validates and stores a flow; true when it was not deployed before. `path_id`, when given
/// (PUT /flows/{id}), must equal the document's id.
pub async fn deploy(ctx: &Ctx<'_>, path_id: Option<&str>, yaml: &str) -> Result<(Flow, bool)> {
    let flow = parse_flow(yaml)?;
    if let Some(id) = path_id
        && id != flow.id.as_str()
    {
        return Err(Error::invalid(
            "id",
            format!("the document's id {} differs from {id} in the URL", flow.id),
        ));
    }
    for role in &flow.roles {
        if ctx.store.role(role.as_str()).await?.is_none() {
            let line = yaml
                .lines()
                .position(|l| l.contains(role.as_str()))
                .map(|i| format!(" (line {})", i + 1))
                .unwrap_or_default();
            return Err(Error::invalid(
                "sender.roles",
                format!("role {role} does not exist; create it under user roles first{line}"),
            ));
        }
    }
    if let Some(name) = flow.credential()
        && !ctx.store.credentials().await?.iter().any(|c| c.name == name)
    {
        return Err(Error::invalid(
            "receiver.credential",
            format!("credential {name} does not exist; create it under credentials first"),
        ));
    }
    for other in ctx.store.flows().await? {
        if other.id == flow.id {
            continue;
        }
        let Ok(o) = parse_flow(&other.yaml) else { continue };
        if overlaps(&flow, &o) {
            return Err(Error::Conflict(format!(
                "address {} collides with {} of deployed flow {}",
                flow.address, o.address, o.id
            )));
        }
    }
    let stored = StoredFlow {
        id: flow.id.clone(),
        yaml: yaml.to_owned(),
        deployed_at: ctx.now,
        deployed_by: ctx.actor.to_owned(),
    };
    let roles: Vec<String> = flow.roles.iter().map(ToString::to_string).collect();
    let created = ctx
        .store
        .put_flow(&stored, &flow.address.to_string(), &roles)
        .await?;
    ctx.audit(
        "flow.deploy",
        flow.id.as_str(),
        serde_json::json!({ "address": flow.address.to_string(), "roles": roles }),
    )
    .await?;
    Ok((flow, created))
}

/// Undeploys a flow.
pub async fn undeploy(ctx: &Ctx<'_>, id: &str) -> Result<()> {
    if !ctx.store.delete_flow(id).await? {
        return Err(Error::NotFound(format!("flow {id}")));
    }
    ctx.audit("flow.undeploy", id, serde_json::json!({})).await
}

/// Whether two flows would compete for requests: the same address, or one is a wildcard whose
/// prefix covers the other (SAP: `/*` blocks other flows below that prefix).
fn overlaps(a: &Flow, b: &Flow) -> bool {
    let (pa, pb) = (a.address.path(), b.address.path());
    let below = |inner: &str, outer: &str| {
        inner.len() > outer.len() && inner.starts_with(outer) && inner.as_bytes()[outer.len()] == b'/'
    };
    (pa == pb && a.address.is_wildcard() == b.address.is_wildcard())
        || (b.address.is_wildcard() && below(pa, pb))
        || (a.address.is_wildcard() && below(pb, pa))
}
