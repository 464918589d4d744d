//! User roles, technical users and web console sessions on PostgreSQL.

use async_trait::async_trait;
use postern_core::Result;
use postern_core::ids::{RoleName, UserName};
use postern_core::model::{Role, TechnicalUser};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use super::{PgStore, storage};
use crate::common::corrupt;
use crate::{RoleStore, RoleUsage, UserStore};

#[async_trait]
impl RoleStore for PgStore {
    async fn roles(&self) -> Result<Vec<Role>> {
        let rows = sqlx::query(
            "SELECT name, description, builtin, created_at, modified_at FROM roles ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(storage)?;
        rows.iter().map(role_row).collect()
    }

    async fn role(&self, name: &str) -> Result<Option<Role>> {
        let row = sqlx::query(
            "SELECT name, description, builtin, created_at, modified_at FROM roles WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(storage)?;
        row.as_ref().map(role_row).transpose()
    }

    async fn insert_role(&self, role: &Role) -> Result<()> {
        sqlx::query(
            "INSERT INTO roles (name, description, builtin, created_at, modified_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(role.name.as_str())
        .bind(&role.description)
        .bind(role.builtin)
        .bind(role.created_at)
        .bind(role.modified_at)
        .execute(&self.pool)
        .await
        .map_err(storage)?;
        Ok(())
    }

    async fn update_role_description(&self, name: &str, description: &str, now: i64) -> Result<bool> {
        let done = sqlx::query("UPDATE roles SET description = $1, modified_at = $2 WHERE name = $3")
            .bind(description)
            .bind(now)
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(storage)?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_role(&self, name: &str) -> Result<Option<RoleUsage>> {
        // Serialised with the instance, user and flow writes that grant roles: no new use can
        // appear between the check and the delete.
        let mut tx = self.begin_serialised().await?;
        let list = |sql: &'static str| sqlx::query_scalar::<_, String>(sql).bind(name.to_owned());
        let usage = RoleUsage {
            instances: list("SELECT instance FROM instance_roles WHERE role = $1 ORDER BY instance")
                .fetch_all(&mut *tx)
                .await
                .map_err(storage)?,
            users: list("SELECT user_name FROM user_roles WHERE role = $1 ORDER BY user_name")
                .fetch_all(&mut *tx)
                .await
                .map_err(storage)?,
            flows: list("SELECT flow FROM flow_roles WHERE role = $1 ORDER BY flow")
                .fetch_all(&mut *tx)
                .await
                .map_err(storage)?,
        };
        if !usage.is_empty() {
            return Ok(Some(usage));
        }
        let done = sqlx::query("DELETE FROM roles WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
        tx.commit().await.map_err(storage)?;
        Ok((done.rows_affected() > 0).then(RoleUsage::default))
    }
}

fn role_row(row: &PgRow) -> Result<Role> {
    Ok(Role {
        name: RoleName::parse(row.get("name")).map_err(|e| corrupt("role", e))?,
        description: row.get("description"),
        builtin: row.get("builtin"),
        created_at: row.get("created_at"),
        modified_at: row.get("modified_at"),
    })
}

#[async_trait]
impl UserStore for PgStore {
    async fn users(&self) -> Result<Vec<TechnicalUser>> {
        let rows = sqlx::query("SELECT name, password_phc, created_at FROM users ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .map_err(storage)?;
        let roles = sqlx::query_as::<_, (String, String)>(
            "SELECT user_name, role FROM user_roles ORDER BY user_name, role",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(storage)?;
        rows.iter()
            .map(|row| {
                let name: &str = row.get("name");
                user_row(
                    row,
                    roles.iter().filter(|(u, _)| u == name).map(|(_, r)| r.as_str()),
                )
            })
            .collect()
    }

    async fn user(&self, name: &str) -> Result<Option<TechnicalUser>> {
        let Some(row) = sqlx::query("SELECT name, password_phc, created_at FROM users WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(storage)?
        else {
            return Ok(None);
        };
        let roles =
            sqlx::query_scalar::<_, String>("SELECT role FROM user_roles WHERE user_name = $1 ORDER BY role")
                .bind(name)
                .fetch_all(&self.pool)
                .await
                .map_err(storage)?;
        user_row(&row, roles.iter().map(String::as_str)).map(Some)
    }

    async fn insert_user(&self, user: &TechnicalUser) -> Result<()> {
        let mut tx = self.begin_serialised().await?;
        sqlx::query("INSERT INTO users (name, password_phc, created_at) VALUES ($1, $2, $3)")
            .bind(user.name.as_str())
            .bind(&user.password_phc)
            .bind(user.created_at)
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
        insert_user_roles(&mut tx, user).await?;
        tx.commit().await.map_err(storage)
    }

    async fn update_user(&self, user: &TechnicalUser) -> Result<bool> {
        let mut tx = self.begin_serialised().await?;
        let done = sqlx::query("UPDATE users SET password_phc = $1 WHERE name = $2")
            .bind(&user.password_phc)
            .bind(user.name.as_str())
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM user_roles WHERE user_name = $1")
            .bind(user.name.as_str())
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
        insert_user_roles(&mut tx, user).await?;
        tx.commit().await.map_err(storage)?;
        Ok(true)
    }

    async fn delete_user(&self, name: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM users WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(storage)?;
        Ok(done.rows_affected() > 0)
    }
}

async fn insert_user_roles(conn: &mut PgConnection, user: &TechnicalUser) -> Result<()> {
    for role in &user.roles {
        sqlx::query("INSERT INTO user_roles (user_name, role) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(user.name.as_str())
            .bind(role.as_str())
            .execute(&mut *conn)
            .await
            .map_err(storage)?;
    }
    Ok(())
}

fn user_row<'a>(row: &PgRow, roles: impl Iterator<Item = &'a str>) -> Result<TechnicalUser> {
    Ok(TechnicalUser {
        name: UserName::parse(row.get("name")).map_err(|e| corrupt("user", e))?,
        password_phc: row.get("password_phc"),
        roles: roles
            .map(|r| RoleName::parse(r).map_err(|e| corrupt("role", e)))
            .collect::<Result<_>>()?,
        created_at: row.get("created_at"),
    })
}

#[async_trait::async_trait]
impl crate::SessionStore for PgStore {
    async fn insert_session(&self, s: &crate::ConsoleSession) -> Result<()> {
        sqlx::query(
            "INSERT INTO console_sessions (id_hash, user_name, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(s.id_hash.as_slice())
        .bind(&s.user)
        .bind(&s.csrf)
        .bind(s.created_at)
        .bind(s.expires_at)
        .execute(&self.pool)
        .await
        .map_err(storage)?;
        Ok(())
    }

    async fn session(&self, id_hash: &[u8], now: i64) -> Result<Option<crate::ConsoleSession>> {
        let row = sqlx::query(
            "SELECT id_hash, user_name, csrf, created_at, expires_at FROM console_sessions WHERE id_hash = $1 AND expires_at > $2",
        )
        .bind(id_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(storage)?;
        Ok(row.map(|row| crate::ConsoleSession {
            id_hash: row.get("id_hash"),
            user: row.get("user_name"),
            csrf: row.get("csrf"),
            created_at: row.get("created_at"),
            expires_at: row.get("expires_at"),
        }))
    }

    async fn delete_session(&self, id_hash: &[u8]) -> Result<bool> {
        let done = sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await
            .map_err(storage)?;
        Ok(done.rows_affected() > 0)
    }

    async fn purge_sessions(&self, now: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM console_sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(storage)?;
        Ok(done.rows_affected())
    }
}
