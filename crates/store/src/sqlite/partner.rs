//! The Partner Directory tables on SQLite.

use async_trait::async_trait;
use postern_core::Result;
use postern_core::partner::{AlternativePartner, Audit, AuthorizedUser, StringParameter, hex_upper};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{SqliteStore, storage};
use crate::PartnerStore;

fn audit(row: &SqliteRow) -> Audit {
    Audit {
        created_by: row.get("created_by"),
        created_at: row.get("created_at"),
        modified_by: row.get("modified_by"),
        modified_at: row.get("modified_at"),
    }
}

/// Creates the partner row a write refers to, inside the write's transaction.
async fn ensure_partner(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    pid: &str,
    by: &str,
    at: i64,
) -> Result<()> {
    sqlx::query("INSERT OR IGNORE INTO partners (pid, created_at, created_by) VALUES (?, ?, ?)")
        .bind(pid)
        .bind(at)
        .bind(by)
        .execute(&mut **tx)
        .await
        .map_err(storage)?;
    Ok(())
}

#[async_trait]
impl PartnerStore for SqliteStore {
    async fn partners(&self) -> Result<Vec<String>> {
        sqlx::query_scalar::<_, String>("SELECT pid FROM partners ORDER BY pid")
            .fetch_all(&self.read)
            .await
            .map_err(storage)
    }

    async fn delete_partner(&self, pid: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM partners WHERE pid = ?")
            .bind(pid)
            .execute(&self.write)
            .await
            .map_err(storage)?;
        Ok(done.rows_affected() > 0)
    }

    async fn alternative_partners(&self) -> Result<Vec<AlternativePartner>> {
        let rows = sqlx::query(
            "SELECT agency, scheme, id, pid, created_by, created_at, modified_by, modified_at \
             FROM alternative_partners ORDER BY agency, scheme, id",
        )
        .fetch_all(&self.read)
        .await
        .map_err(storage)?;
        Ok(rows
            .iter()
            .map(|r| AlternativePartner {
                agency: r.get("agency"),
                scheme: r.get("scheme"),
                id: r.get("id"),
                pid: r.get("pid"),
                audit: audit(r),
            })
            .collect())
    }

    async fn insert_alternative_partner(&self, a: &AlternativePartner) -> Result<()> {
        let mut tx = self.write.begin().await.map_err(storage)?;
        ensure_partner(&mut tx, &a.pid, &a.audit.created_by, a.audit.created_at).await?;
        sqlx::query(
            "INSERT INTO alternative_partners (hexagency, hexscheme, hexid, agency, scheme, id, pid, \
             created_by, created_at, modified_by, modified_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(hex_upper(&a.agency))
        .bind(hex_upper(&a.scheme))
        .bind(hex_upper(&a.id))
        .bind(&a.agency)
        .bind(&a.scheme)
        .bind(&a.id)
        .bind(&a.pid)
        .bind(&a.audit.created_by)
        .bind(a.audit.created_at)
        .bind(&a.audit.modified_by)
        .bind(a.audit.modified_at)
        .execute(&mut *tx)
        .await
        .map_err(storage)?;
        tx.commit().await.map_err(storage)
    }

    async fn update_alternative_partner(&self, a: &AlternativePartner) -> Result<bool> {
        let mut tx = self.write.begin().await.map_err(storage)?;
        ensure_partner(&mut tx, &a.pid, &a.audit.modified_by, a.audit.modified_at).await?;
        let done = sqlx::query(
            "UPDATE alternative_partners SET pid = ?, modified_by = ?, modified_at = ? \
             WHERE hexagency = ? AND hexscheme = ? AND hexid = ?",
        )
        .bind(&a.pid)
        .bind(&a.audit.modified_by)
        .bind(a.audit.modified_at)
        .bind(hex_upper(&a.agency))
        .bind(hex_upper(&a.scheme))
        .bind(hex_upper(&a.id))
        .execute(&mut *tx)
        .await
        .map_err(storage)?;
        tx.commit().await.map_err(storage)?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_alternative_partner(&self, agency: &str, scheme: &str, id: &str) -> Result<bool> {
        let done = sqlx::query(
            "DELETE FROM alternative_partners WHERE hexagency = ? AND hexscheme = ? AND hexid = ?",
        )
        .bind(hex_upper(agency))
        .bind(hex_upper(scheme))
        .bind(hex_upper(id))
        .execute(&self.write)
        .await
        .map_err(storage)?;
        Ok(done.rows_affected() > 0)
    }

    async fn authorized_users(&self) -> Result<Vec<AuthorizedUser>> {
        let rows = sqlx::query(
            "SELECT user_name, pid, created_by, created_at, modified_by, modified_at FROM authorized_users ORDER BY user_name",
        )
        .fetch_all(&self.read)
        .await
        .map_err(storage)?;
        Ok(rows
            .iter()
            .map(|r| AuthorizedUser {
                user: r.get("user_name"),
                pid: r.get("pid"),
                audit: audit(r),
            })
            .collect())
    }

    async fn insert_authorized_user(&self, u: &AuthorizedUser) -> Result<()> {
        let mut tx = self.write.begin().await.map_err(storage)?;
        ensure_partner(&mut tx, &u.pid, &u.audit.created_by, u.audit.created_at).await?;
        sqlx::query(
            "INSERT INTO authorized_users (user_name, pid, created_by, created_at, modified_by, modified_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&u.user)
        .bind(&u.pid)
        .bind(&u.audit.created_by)
        .bind(u.audit.created_at)
        .bind(&u.audit.modified_by)
        .bind(u.audit.modified_at)
        .execute(&mut *tx)
        .await
        .map_err(storage)?;
        tx.commit().await.map_err(storage)
    }

    async fn update_authorized_user(&self, u: &AuthorizedUser) -> Result<bool> {
        let mut tx = self.write.begin().await.map_err(storage)?;
        ensure_partner(&mut tx, &u.pid, &u.audit.modified_by, u.audit.modified_at).await?;
        let done = sqlx::query(
            "UPDATE authorized_users SET pid = ?, modified_by = ?, modified_at = ? WHERE user_name = ?",
        )
        .bind(&u.pid)
        .bind(&u.audit.modified_by)
        .bind(u.audit.modified_at)
        .bind(&u.user)
        .execute(&mut *tx)
        .await
        .map_err(storage)?;
        tx.commit().await.map_err(storage)?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_authorized_user(&self, user: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM authorized_users WHERE user_name = ?")
            .bind(user)
            .execute(&self.write)
            .await
            .map_err(storage)?;
        Ok(done.rows_affected() > 0)
    }

    async fn string_parameters(&self, pid: Option<&str>) -> Result<Vec<StringParameter>> {
        let q = match pid {
            Some(p) => sqlx::query(
                "SELECT pid, id, value, created_by, created_at, modified_by, modified_at FROM string_parameters \
                 WHERE pid = ? ORDER BY pid, id",
            )
            .bind(p.to_owned()),
            None => sqlx::query(
                "SELECT pid, id, value, created_by, created_at, modified_by, modified_at FROM string_parameters \
                 ORDER BY pid, id",
            ),
        };
        let rows = q.fetch_all(&self.read).await.map_err(storage)?;
        Ok(rows
            .iter()
            .map(|r| StringParameter {
                pid: r.get("pid"),
                id: r.get("id"),
                value: r.get("value"),
                audit: audit(r),
            })
            .collect())
    }

    async fn insert_string_parameter(&self, p: &StringParameter) -> Result<()> {
        let mut tx = self.write.begin().await.map_err(storage)?;
        ensure_partner(&mut tx, &p.pid, &p.audit.created_by, p.audit.created_at).await?;
        sqlx::query(
            "INSERT INTO string_parameters (pid, id, value, created_by, created_at, modified_by, modified_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&p.pid)
        .bind(&p.id)
        .bind(&p.value)
        .bind(&p.audit.created_by)
        .bind(p.audit.created_at)
        .bind(&p.audit.modified_by)
        .bind(p.audit.modified_at)
        .execute(&mut *tx)
        .await
        .map_err(storage)?;
        tx.commit().await.map_err(storage)
    }

    async fn update_string_parameter(&self, p: &StringParameter) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE string_parameters SET value = ?, modified_by = ?, modified_at = ? WHERE pid = ? AND id = ?",
        )
        .bind(&p.value)
        .bind(&p.audit.modified_by)
        .bind(p.audit.modified_at)
        .bind(&p.pid)
        .bind(&p.id)
        .execute(&self.write)
        .await
        .map_err(storage)?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_string_parameter(&self, pid: &str, id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM string_parameters WHERE pid = ? AND id = ?")
            .bind(pid)
            .bind(id)
            .execute(&self.write)
            .await
            .map_err(storage)?;
        Ok(done.rows_affected() > 0)
    }
}
