//! Service instances and their keys on PostgreSQL.

use async_trait::async_trait;
use postern_core::Result;
use postern_core::ids::{InstanceName, KeyName, RoleName};
use postern_core::model::{BoundCertificate, KeyType, Plan, ServiceInstance, ServiceKey};
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::{PgStore, storage};
use crate::InstanceStore;
use crate::common::{corrupt, fingerprint, json_list, to_json};

const INSTANCE_SELECT: &str = "SELECT name, plan, client_id, grant_types, redirect_uris, token_validity, rate_per_second, rate_burst, created_at, created_by \
     FROM service_instances ORDER BY name";

const INSTANCE_BY_NAME: &str = "SELECT name, plan, client_id, grant_types, redirect_uris, token_validity, rate_per_second, rate_burst, created_at, created_by \
     FROM service_instances WHERE name = $1";

/// The instance's roles, in their order.
async fn insert_instance_roles(conn: &mut sqlx::PgConnection, i: &ServiceInstance) -> Result<()> {
    for (position, role) in i.roles.iter().enumerate() {
        sqlx::query("INSERT INTO instance_roles (instance, role, position) VALUES ($1, $2, $3)")
            .bind(i.name.as_str())
            .bind(role.as_str())
            .bind(position as i64)
            .execute(&mut *conn)
            .await
            .map_err(storage)?;
    }
    Ok(())
}

#[async_trait]
impl InstanceStore for PgStore {
    async fn instances(&self) -> Result<Vec<ServiceInstance>> {
        let rows = sqlx::query(INSTANCE_SELECT)
            .fetch_all(&self.pool)
            .await
            .map_err(storage)?;
        let roles = sqlx::query_as::<_, (String, String)>(
            "SELECT instance, role FROM instance_roles ORDER BY instance, position",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(storage)?;
        rows.iter()
            .map(|row| {
                let name: &str = row.get("name");
                let mine = roles.iter().filter(|(i, _)| i == name).map(|(_, r)| r.as_str());
                instance_row(row, mine)
            })
            .collect()
    }

    async fn instance(&self, name: &str) -> Result<Option<ServiceInstance>> {
        let Some(row) = sqlx::query(INSTANCE_BY_NAME)
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(storage)?
        else {
            return Ok(None);
        };
        let roles = sqlx::query_scalar::<_, String>(
            "SELECT role FROM instance_roles WHERE instance = $1 ORDER BY position",
        )
        .bind(name)
        .fetch_all(&self.pool)
        .await
        .map_err(storage)?;
        instance_row(&row, roles.iter().map(String::as_str)).map(Some)
    }

    async fn insert_instance(&self, i: &ServiceInstance) -> Result<()> {
        // Serialised: it grants roles, which a concurrent role delete checks.
        let mut tx = self.begin_serialised().await?;
        sqlx::query(
            "INSERT INTO service_instances (name, plan, client_id, grant_types, redirect_uris, token_validity, rate_per_second, rate_burst, created_at, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(i.name.as_str())
        .bind(i.plan.as_str())
        .bind(&i.client_id)
        .bind(to_json(&i.grant_types))
        .bind(to_json(&i.redirect_uris))
        .bind(i64::from(i.token_validity))
        .bind(i.rate_limit.map(|r| i64::from(r.per_second)))
        .bind(i.rate_limit.map(|r| i64::from(r.burst)))
        .bind(i.created_at)
        .bind(&i.created_by)
        .execute(&mut *tx)
        .await
        .map_err(storage)?;
        insert_instance_roles(&mut tx, i).await?;
        tx.commit().await.map_err(storage)
    }

    async fn update_instance(&self, i: &ServiceInstance) -> Result<bool> {
        // Serialised: it grants roles, which a concurrent role delete checks.
        let mut tx = self.begin_serialised().await?;
        let done = sqlx::query(
            "UPDATE service_instances SET grant_types = $1, redirect_uris = $2, token_validity = $3, rate_per_second = $4, rate_burst = $5 WHERE name = $6",
        )
        .bind(to_json(&i.grant_types))
        .bind(to_json(&i.redirect_uris))
        .bind(i64::from(i.token_validity))
        .bind(i.rate_limit.map(|r| i64::from(r.per_second)))
        .bind(i.rate_limit.map(|r| i64::from(r.burst)))
        .bind(i.name.as_str())
        .execute(&mut *tx)
        .await
        .map_err(storage)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM instance_roles WHERE instance = $1")
            .bind(i.name.as_str())
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
        insert_instance_roles(&mut tx, i).await?;
        tx.commit().await.map_err(storage)?;
        Ok(true)
    }

    async fn delete_instance(&self, name: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM service_instances WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(storage)?;
        Ok(done.rows_affected() > 0)
    }

    async fn keys(&self, instance: Option<&str>) -> Result<Vec<ServiceKey>> {
        let rows = match instance {
            Some(i) => sqlx::query(
                "SELECT instance, name, key_type, secret_hash, created_at, created_by, cert_pem, cert_sha256, cert_not_after, expires_at \
                 FROM service_keys WHERE instance = $1 ORDER BY name",
            )
            .bind(i.to_owned())
            .fetch_all(&self.pool)
            .await,
            None => sqlx::query(
                "SELECT instance, name, key_type, secret_hash, created_at, created_by, cert_pem, cert_sha256, cert_not_after, expires_at \
                 FROM service_keys ORDER BY instance, name",
            )
            .fetch_all(&self.pool)
            .await,
        }
        .map_err(storage)?;
        rows.iter().map(key_row).collect()
    }

    async fn insert_key(&self, key: &ServiceKey) -> Result<()> {
        sqlx::query(
            "INSERT INTO service_keys (instance, name, key_type, secret_hash, created_at, created_by, cert_pem, cert_sha256, cert_not_after, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(key.instance.as_str())
        .bind(key.name.as_str())
        .bind(key.key_type.as_str())
        .bind(key.secret_hash.as_slice())
        .bind(key.created_at)
        .bind(&key.created_by)
        .bind(key.certificate.as_ref().map(|c| c.pem.clone()))
        .bind(key.certificate.as_ref().map(|c| c.sha256.to_vec()))
        .bind(key.certificate.as_ref().map(|c| c.not_after))
        .bind(key.expires_at)
        .execute(&self.pool)
        .await
        .map_err(storage)?;
        Ok(())
    }

    async fn delete_key(&self, instance: &str, name: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM service_keys WHERE instance = $1 AND name = $2")
            .bind(instance)
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(storage)?;
        Ok(done.rows_affected() > 0)
    }

    async fn set_key_expiry(&self, instance: &str, name: &str, expires_at: Option<i64>) -> Result<bool> {
        let done = sqlx::query("UPDATE service_keys SET expires_at = $1 WHERE instance = $2 AND name = $3")
            .bind(expires_at)
            .bind(instance)
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(storage)?;
        Ok(done.rows_affected() > 0)
    }
}

fn instance_row<'a>(row: &PgRow, roles: impl Iterator<Item = &'a str>) -> Result<ServiceInstance> {
    let plan = match row.get::<&str, _>("plan") {
        "api" => Plan::Api,
        "integration-flow" => Plan::IntegrationFlow,
        other => return Err(corrupt("plan", other)),
    };
    let validity: i64 = row.get("token_validity");
    Ok(ServiceInstance {
        name: InstanceName::parse(row.get("name")).map_err(|e| corrupt("instance", e))?,
        plan,
        client_id: row.get("client_id"),
        roles: roles
            .map(|r| RoleName::parse(r).map_err(|e| corrupt("role", e)))
            .collect::<Result<_>>()?,
        grant_types: json_list(row.get("grant_types"))?,
        redirect_uris: json_list(row.get("redirect_uris"))?,
        token_validity: u32::try_from(validity).map_err(|e| corrupt("token validity", e))?,
        rate_limit: crate::common::rate_limit(row.get("rate_per_second"), row.get("rate_burst")),
        created_at: row.get("created_at"),
        created_by: row.get("created_by"),
    })
}

fn key_row(row: &PgRow) -> Result<ServiceKey> {
    let key_type: &str = row.get("key_type");
    let key_type = KeyType::parse(key_type).ok_or_else(|| corrupt("key type", key_type))?;
    let certificate = match (
        row.get::<Option<String>, _>("cert_pem"),
        row.get::<Option<Vec<u8>>, _>("cert_sha256"),
        row.get::<Option<i64>, _>("cert_not_after"),
    ) {
        (Some(pem), Some(sha), Some(not_after)) => Some(BoundCertificate {
            pem,
            sha256: fingerprint("certificate fingerprint", sha)?,
            not_after,
        }),
        _ => None,
    };
    Ok(ServiceKey {
        instance: InstanceName::parse(row.get("instance")).map_err(|e| corrupt("key", e))?,
        name: KeyName::parse(row.get("name")).map_err(|e| corrupt("key", e))?,
        key_type,
        secret_hash: row.get("secret_hash"),
        certificate,
        expires_at: row.get("expires_at"),
        created_at: row.get("created_at"),
        created_by: row.get("created_by"),
    })
}
