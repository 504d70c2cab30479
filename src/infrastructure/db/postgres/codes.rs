//! [`AuthorizationCodeRepository`] on PostgreSQL.
//!
//! A redemption is decided by one conditional `UPDATE`: under READ COMMITTED, concurrent
//! redemptions of one code (from any number of replicas) queue on its row lock, and each one
//! after the first re-checks `redeemed_by IS NULL` against the committed row and matches
//! nothing. Exactly one is fresh; the others then record the replay in a second statement, whose
//! new snapshot sees the first redemption.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{store_error, PgStore};
use crate::domain::oidc::{CodeChallenge, CodeGrant, CodeHash, Redemption};
use crate::domain::ports::{AuthorizationCodeRepository, StoreError};
use crate::domain::session::SessionId;
use crate::infrastructure::db::records::CodeRecord;

/// The `authorization_codes` columns a [`CodeRecord`] reads.
const CODE_COLUMNS: &str = "code_hash, client_id, user_id, signin_id, redirect_uri, code_challenge, scope, nonce, auth_time, created_at, expires_at";

#[async_trait]
impl AuthorizationCodeRepository for PgStore {
    #[tracing::instrument(skip_all, fields(client_id = %grant.client_id))]
    async fn insert(&self, grant: &CodeGrant) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO authorization_codes ({CODE_COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        );
        sqlx::query(&sql)
            .bind(grant.hash.as_str())
            .bind(grant.client_id.as_uuid())
            .bind(grant.user_id.as_uuid())
            .bind(grant.signin_id.as_uuid())
            .bind(&grant.redirect_uri)
            .bind(grant.challenge.as_ref().map(CodeChallenge::as_str))
            .bind(grant.scope.to_space_separated())
            .bind(grant.nonce.as_deref())
            .bind(grant.auth_time)
            .bind(grant.created_at)
            .bind(grant.expires_at)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn redeem(
        &self,
        hash: &CodeHash,
        session_id: SessionId,
        now: DateTime<Utc>,
    ) -> Result<Redemption, StoreError> {
        // A row that does not decode must not be marked used: the transaction is dropped (rolled
        // back) on that error.
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let sql = format!(
            "UPDATE authorization_codes SET redeemed_by = $2
             WHERE code_hash = $1 AND redeemed_by IS NULL AND expires_at > $3
             RETURNING {CODE_COLUMNS}"
        );
        let fresh: Option<CodeRecord> = sqlx::query_as(&sql)
            .bind(hash.as_str())
            .bind(session_id.as_uuid())
            .bind(now)
            .fetch_optional(&mut *tx)
            .await
            .map_err(store_error)?;
        if let Some(record) = fresh {
            let grant = record.into_grant()?;
            tx.commit().await.map_err(store_error)?;
            return Ok(Redemption::Fresh(Box::new(grant)));
        }
        // READ COMMITTED: this statement's snapshot is newer than the first's, so a redemption
        // that the first statement waited for is seen here.
        let first: Option<Uuid> = sqlx::query_scalar(
            "UPDATE authorization_codes SET replayed_at = coalesce(replayed_at, $2)
             WHERE code_hash = $1 AND redeemed_by IS NOT NULL
             RETURNING redeemed_by",
        )
        .bind(hash.as_str())
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(match first {
            Some(first) => Redemption::Replayed {
                session_id: SessionId::from_uuid(first),
            },
            None => Redemption::Unknown,
        })
    }

    async fn was_replayed(&self, hash: &CodeHash) -> Result<bool, StoreError> {
        let replayed: Option<bool> = sqlx::query_scalar(
            "SELECT replayed_at IS NOT NULL FROM authorization_codes WHERE code_hash = $1",
        )
        .bind(hash.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(replayed.unwrap_or(false))
    }
}
