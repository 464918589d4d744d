//! Back-end credentials on both backends: one table, upsert by name. The queries are written once
//! with `?` placeholders and numbered for PostgreSQL.

use async_trait::async_trait;
use postern_core::Result;
use postern_core::model::StoredCredential;
use sqlx::{AssertSqlSafe, Row};

use crate::common::{numbered, storage};
use crate::{CredentialStore, PgStore, SqliteStore};

const LIST: &str = "SELECT name, kind, user_name, certificate, secret_enc, modified_at, modified_by \
     FROM credentials ORDER BY name";
const EXISTS: &str = "SELECT 1 FROM credentials WHERE name = ?";
const UPSERT: &str = "INSERT INTO credentials (name, kind, user_name, certificate, secret_enc, modified_at, \
     modified_by) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, \
     user_name = excluded.user_name, certificate = excluded.certificate, secret_enc = excluded.secret_enc, \
     modified_at = excluded.modified_at, modified_by = excluded.modified_by";
const DELETE: &str = "DELETE FROM credentials WHERE name = ?";

fn credential<R: Row>(row: &R) -> StoredCredential
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    String: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    Vec<u8>: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    i64: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    StoredCredential {
        name: row.get("name"),
        kind: row.get("kind"),
        user: row.get("user_name"),
        certificate: row.get("certificate"),
        secret_enc: row.get("secret_enc"),
        modified_at: row.get("modified_at"),
        modified_by: row.get("modified_by"),
    }
}

#[async_trait]
impl CredentialStore for SqliteStore {
    async fn credentials(&self) -> Result<Vec<StoredCredential>> {
        let rows = sqlx::query(LIST).fetch_all(&self.read).await.map_err(storage)?;
        Ok(rows.iter().map(credential).collect())
    }

    async fn put_credential(&self, c: &StoredCredential) -> Result<bool> {
        let mut tx = self.write.begin().await.map_err(storage)?;
        let existed = sqlx::query(EXISTS)
            .bind(&c.name)
            .fetch_optional(&mut *tx)
            .await
            .map_err(storage)?
            .is_some();
        sqlx::query(UPSERT)
            .bind(&c.name)
            .bind(&c.kind)
            .bind(&c.user)
            .bind(&c.certificate)
            .bind(c.secret_enc.as_slice())
            .bind(c.modified_at)
            .bind(&c.modified_by)
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
        tx.commit().await.map_err(storage)?;
        Ok(!existed)
    }

    async fn delete_credential(&self, name: &str) -> Result<bool> {
        let done = sqlx::query(DELETE)
            .bind(name)
            .execute(&self.write)
            .await
            .map_err(storage)?;
        Ok(done.rows_affected() > 0)
    }
}

#[async_trait]
impl CredentialStore for PgStore {
    async fn credentials(&self) -> Result<Vec<StoredCredential>> {
        let rows = sqlx::query(LIST).fetch_all(&self.pool).await.map_err(storage)?;
        Ok(rows.iter().map(credential).collect())
    }

    async fn put_credential(&self, c: &StoredCredential) -> Result<bool> {
        let mut tx = self.pool.begin().await.map_err(storage)?;
        let existed = sqlx::query(AssertSqlSafe(numbered(EXISTS)))
            .bind(&c.name)
            .fetch_optional(&mut *tx)
            .await
            .map_err(storage)?
            .is_some();
        sqlx::query(AssertSqlSafe(numbered(UPSERT)))
            .bind(&c.name)
            .bind(&c.kind)
            .bind(&c.user)
            .bind(&c.certificate)
            .bind(c.secret_enc.as_slice())
            .bind(c.modified_at)
            .bind(&c.modified_by)
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
        tx.commit().await.map_err(storage)?;
        Ok(!existed)
    }

    async fn delete_credential(&self, name: &str) -> Result<bool> {
        let done = sqlx::query(AssertSqlSafe(numbered(DELETE)))
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(storage)?;
        Ok(done.rows_affected() > 0)
    }
}
