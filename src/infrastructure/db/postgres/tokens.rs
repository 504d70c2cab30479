//! [`TokenRepository`] on PostgreSQL: sessions and refresh tokens, with the atomic rotation.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{PgStore, USER_COLUMNS};
use crate::domain::ports::{StoreError, TokenRepository};
use crate::domain::session::{
    RefreshTokenHash, RefreshTokenRecord, RevocationReason, RotationOutcome, Session, SessionId,
};
use crate::domain::user::UserId;
use crate::infrastructure::db::records::{SessionRecord, UserRecord};
use crate::infrastructure::db::store_error;

#[async_trait]
impl TokenRepository for PgStore {
    #[tracing::instrument(skip_all, fields(session_id = %session.id))]
    async fn create_session(
        &self,
        session: &Session,
        first_token: &RefreshTokenRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        sqlx::query(
            "INSERT INTO sessions (id, user_id, scope, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(session.id.as_uuid())
        .bind(session.user_id.as_uuid())
        .bind(session.scope.to_space_separated())
        .bind(session.created_at)
        .bind(session.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(first_token.hash.as_str())
        .bind(first_token.session_id.as_uuid())
        .bind(first_token.created_at)
        .bind(first_token.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        tx.commit().await.map_err(store_error)
    }

    #[tracing::instrument(skip_all)]
    async fn rotate_refresh_token(
        &self,
        presented: &RefreshTokenHash,
        next: &RefreshTokenHash,
        next_expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<RotationOutcome, StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        // Under READ COMMITTED a concurrent caller blocks on the row lock, then re-checks
        // `used_at IS NULL` against the committed row and matches nothing: one winner, on any
        // number of replicas.
        let claimed: Option<Uuid> = sqlx::query_scalar(
            "UPDATE refresh_tokens SET used_at = $1
             WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1
               AND EXISTS (SELECT 1 FROM sessions s JOIN users u ON u.id = s.user_id
                           WHERE s.id = refresh_tokens.session_id AND s.revoked_at IS NULL
                             AND u.is_active)
             RETURNING session_id",
        )
        .bind(now)
        .bind(presented.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(store_error)?;

        if let Some(session_id) = claimed {
            sqlx::query(
                "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(next.as_str())
            .bind(session_id)
            .bind(now)
            .bind(next_expires_at)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
            let session: SessionRecord = sqlx::query_as(
                "UPDATE sessions SET expires_at = $1 WHERE id = $2
                 RETURNING id, user_id, scope, created_at, expires_at",
            )
            .bind(next_expires_at)
            .bind(session_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(store_error)?;
            let session = session.into_session()?;
            let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE u.id = $1");
            let user: UserRecord = sqlx::query_as(&sql)
                .bind(session.user_id.as_uuid())
                .fetch_one(&mut *tx)
                .await
                .map_err(store_error)?;
            let user = user.into_user()?;
            tx.commit().await.map_err(store_error)?;
            return Ok(RotationOutcome::Rotated {
                session,
                user: Box::new(user),
            });
        }

        let used: Option<(Uuid, Uuid)> = sqlx::query_as(
            "SELECT t.session_id, s.user_id FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
             WHERE t.token_hash = $1 AND t.used_at IS NOT NULL",
        )
        .bind(presented.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(store_error)?;
        let Some((session_id, user_id)) = used else {
            return Ok(RotationOutcome::Invalid);
        };
        sqlx::query(
            "UPDATE sessions SET revoked_at = $1, revoked_reason = $2 WHERE id = $3 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(RevocationReason::RefreshTokenReused.as_str())
        .bind(session_id)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(RotationOutcome::Reused {
            session_id: SessionId::from_uuid(session_id),
            user_id: UserId::from_uuid(user_id),
        })
    }

    async fn find_session_of_refresh_token(
        &self,
        hash: &RefreshTokenHash,
    ) -> Result<Option<SessionId>, StoreError> {
        let id: Option<Uuid> =
            sqlx::query_scalar("SELECT session_id FROM refresh_tokens WHERE token_hash = $1")
                .bind(hash.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(store_error)?;
        Ok(id.map(SessionId::from_uuid))
    }

    async fn revoke_session(
        &self,
        id: SessionId,
        reason: RevocationReason,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = $1, revoked_reason = $2 WHERE id = $3 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(reason.as_str())
        .bind(id.as_uuid())
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn revoke_user_sessions(
        &self,
        user_id: UserId,
        except: Option<SessionId>,
        reason: RevocationReason,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = $1, revoked_reason = $2
             WHERE user_id = $3 AND revoked_at IS NULL AND id IS DISTINCT FROM $4",
        )
        .bind(now)
        .bind(reason.as_str())
        .bind(user_id.as_uuid())
        .bind(except.map(|id| id.as_uuid()))
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(done.rows_affected())
    }
}
