//! Keys and certificates on PostgreSQL: token signing keys, the local CA, trusted CAs,
//! certificate-to-user mappings.

use async_trait::async_trait;
use postern_core::Result;
use postern_core::model::{CertMapping, StoredCa, TokenKey, TrustedCa};
use sqlx::Row;

use super::{PgStore, storage};
use crate::common::fingerprint;
use crate::{CertMappingStore, TokenKeyStore, TrustStore};

#[async_trait]
impl TokenKeyStore for PgStore {
    async fn token_keys(&self) -> Result<Vec<TokenKey>> {
        let rows = sqlx::query(
            "SELECT kid, alg, private_enc, public_key, created_at, retired_at FROM token_keys ORDER BY created_at, kid",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(storage)?;
        Ok(rows
            .iter()
            .map(|row| TokenKey {
                kid: row.get("kid"),
                alg: row.get("alg"),
                private_enc: row.get("private_enc"),
                public_key: row.get("public_key"),
                created_at: row.get("created_at"),
                retired_at: row.get("retired_at"),
            })
            .collect())
    }

    async fn rotate_token_key(&self, key: &TokenKey) -> Result<()> {
        // Serialised: two nodes rotating at once must leave one current key, not two.
        let mut tx = self.begin_serialised().await?;
        sqlx::query("UPDATE token_keys SET retired_at = $1 WHERE retired_at IS NULL")
            .bind(key.created_at)
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
        sqlx::query(
            "INSERT INTO token_keys (kid, alg, private_enc, public_key, created_at, retired_at) \
             VALUES ($1, $2, $3, $4, $5, NULL)",
        )
        .bind(&key.kid)
        .bind(&key.alg)
        .bind(key.private_enc.as_slice())
        .bind(key.public_key.as_slice())
        .bind(key.created_at)
        .execute(&mut *tx)
        .await
        .map_err(storage)?;
        tx.commit().await.map_err(storage)
    }

    async fn purge_token_keys(&self, before: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM token_keys WHERE retired_at IS NOT NULL AND retired_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(storage)?;
        Ok(done.rows_affected())
    }

    async fn local_ca(&self) -> Result<Option<StoredCa>> {
        let row = sqlx::query("SELECT cert_pem, key_enc, created_at FROM local_ca WHERE id = 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(storage)?;
        Ok(row.map(|row| StoredCa {
            cert_pem: row.get("cert_pem"),
            key_enc: row.get("key_enc"),
            created_at: row.get("created_at"),
        }))
    }

    async fn init_local_ca(&self, ca: &StoredCa) -> Result<StoredCa> {
        sqlx::query(
            "INSERT INTO local_ca (id, cert_pem, key_enc, created_at) VALUES (1, $1, $2, $3) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&ca.cert_pem)
        .bind(ca.key_enc.as_slice())
        .bind(ca.created_at)
        .execute(&self.pool)
        .await
        .map_err(storage)?;
        self.local_ca()
            .await?
            .ok_or_else(|| postern_core::Error::Internal("the local CA vanished after it was stored".into()))
    }
}

#[async_trait]
impl TrustStore for PgStore {
    async fn trusted_cas(&self) -> Result<Vec<TrustedCa>> {
        // The fingerprint only breaks ties, which SQLite leaves in no particular order.
        let rows = sqlx::query(
            "SELECT sha256, pem, subject, not_after, created_at, created_by FROM trusted_cas ORDER BY created_at, sha256",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(storage)?;
        rows.iter()
            .map(|row| {
                Ok(TrustedCa {
                    sha256: fingerprint("CA fingerprint", row.get("sha256"))?,
                    pem: row.get("pem"),
                    subject: row.get("subject"),
                    not_after: row.get("not_after"),
                    created_at: row.get("created_at"),
                    created_by: row.get("created_by"),
                })
            })
            .collect()
    }

    async fn insert_trusted_ca(&self, ca: &TrustedCa) -> Result<()> {
        sqlx::query(
            "INSERT INTO trusted_cas (sha256, pem, subject, not_after, created_at, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(ca.sha256.as_slice())
        .bind(&ca.pem)
        .bind(&ca.subject)
        .bind(ca.not_after)
        .bind(ca.created_at)
        .bind(&ca.created_by)
        .execute(&self.pool)
        .await
        .map_err(storage)?;
        Ok(())
    }

    async fn delete_trusted_ca(&self, sha256: &[u8; 32]) -> Result<bool> {
        let done = sqlx::query("DELETE FROM trusted_cas WHERE sha256 = $1")
            .bind(sha256.as_slice())
            .execute(&self.pool)
            .await
            .map_err(storage)?;
        Ok(done.rows_affected() > 0)
    }
}

#[async_trait]
impl CertMappingStore for PgStore {
    async fn cert_mappings(&self) -> Result<Vec<CertMapping>> {
        let rows = sqlx::query(
            "SELECT id, sha256, user_name, pem, subject, issuer, serial, not_after, created_at, created_by \
             FROM cert_mappings ORDER BY user_name, id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(storage)?;
        rows.iter()
            .map(|row| {
                Ok(CertMapping {
                    id: row.get("id"),
                    sha256: fingerprint("mapping fingerprint", row.get("sha256"))?,
                    user: row.get("user_name"),
                    pem: row.get("pem"),
                    subject: row.get("subject"),
                    issuer: row.get("issuer"),
                    serial: row.get("serial"),
                    not_after: row.get("not_after"),
                    created_at: row.get("created_at"),
                    created_by: row.get("created_by"),
                })
            })
            .collect()
    }

    async fn insert_cert_mapping(&self, m: &CertMapping) -> Result<()> {
        sqlx::query(
            "INSERT INTO cert_mappings (id, sha256, user_name, pem, subject, issuer, serial, not_after, created_at, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&m.id)
        .bind(m.sha256.as_slice())
        .bind(&m.user)
        .bind(&m.pem)
        .bind(&m.subject)
        .bind(&m.issuer)
        .bind(&m.serial)
        .bind(m.not_after)
        .bind(m.created_at)
        .bind(&m.created_by)
        .execute(&self.pool)
        .await
        .map_err(storage)?;
        Ok(())
    }

    async fn delete_cert_mapping(&self, id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM cert_mappings WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(storage)?;
        Ok(done.rows_affected() > 0)
    }
}
