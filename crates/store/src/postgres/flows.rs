//! Deployed flows on PostgreSQL.

use async_trait::async_trait;
use postern_core::ids::FlowId;
use postern_core::model::StoredFlow;
use postern_core::{Error, Result};
use sqlx::Row;

use super::{PgStore, storage};
use crate::FlowStore;
use crate::common::corrupt;

#[async_trait]
impl FlowStore for PgStore {
    async fn flows(&self) -> Result<Vec<StoredFlow>> {
        let rows = sqlx::query("SELECT id, yaml, deployed_at, deployed_by FROM flows ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .map_err(storage)?;
        rows.iter()
            .map(|row| {
                Ok(StoredFlow {
                    id: FlowId::parse(row.get("id")).map_err(|e| corrupt("flow", e))?,
                    yaml: row.get("yaml"),
                    deployed_at: row.get("deployed_at"),
                    deployed_by: row.get("deployed_by"),
                })
            })
            .collect()
    }

    async fn put_flow(&self, flow: &StoredFlow, address: &str, roles: &[String]) -> Result<bool> {
        // Serialised: two deploys of one address (or one id) must not both pass the check.
        let mut tx = self.begin_serialised().await?;
        let taken = sqlx::query_scalar::<_, String>("SELECT id FROM flows WHERE address = $1 AND id <> $2")
            .bind(address)
            .bind(flow.id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(storage)?;
        if let Some(other) = taken {
            return Err(Error::Conflict(format!(
                "address {address} is already served by flow {other}"
            )));
        }
        let existed = sqlx::query("DELETE FROM flows WHERE id = $1")
            .bind(flow.id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(storage)?
            .rows_affected()
            > 0;
        sqlx::query(
            "INSERT INTO flows (id, address, yaml, deployed_at, deployed_by) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(flow.id.as_str())
        .bind(address)
        .bind(&flow.yaml)
        .bind(flow.deployed_at)
        .bind(&flow.deployed_by)
        .execute(&mut *tx)
        .await
        .map_err(storage)?;
        for role in roles {
            sqlx::query("INSERT INTO flow_roles (flow, role) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(flow.id.as_str())
                .bind(role)
                .execute(&mut *tx)
                .await
                .map_err(storage)?;
        }
        tx.commit().await.map_err(storage)?;
        Ok(!existed)
    }

    async fn delete_flow(&self, id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM flows WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(storage)?;
        Ok(done.rows_affected() > 0)
    }
}
