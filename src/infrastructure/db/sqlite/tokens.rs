//! [`TokenRepository`] on SQLite: sessions and refresh tokens, with the atomic rotation.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{micros, store_error, uuid, SqliteStore, USER_COLUMNS};
use crate::domain::ports::{StoreError, TokenRepository};
use crate::domain::session::{
    RefreshTokenHash, RefreshTokenRecord, RevocationReason, RotationOutcome, Session, SessionId,
};
use crate::domain::user::UserId;

use super::{session_from_row, user_from_row};

#[async_trait]
impl TokenRepository for SqliteStore {
    #[tracing::instrument(skip_all, fields(session_id = %session.id))]
    async fn create_session(
        &self,
        session: &Session,
        first_token: &RefreshTokenRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await.map_err(store_error)?;
        sqlx::query(
            "INSERT INTO sessions (id, user_id, scope, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(session.id.to_string())
        .bind(session.user_id.to_string())
        .bind(session.scope.to_space_separated())
        .bind(micros(session.created_at))
        .bind(micros(session.expires_at))
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
        )
        .bind(first_token.hash.as_str())
        .bind(first_token.session_id.to_string())
        .bind(micros(first_token.created_at))
        .bind(micros(first_token.expires_at))
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
        let now = micros(now);
        let mut tx = self.writer.begin().await.map_err(store_error)?;
        // The conditional update is the whole race: only a caller that flips `used_at` from
        // NULL rotates.
        let claimed: Option<String> = sqlx::query_scalar(
            "UPDATE refresh_tokens SET used_at = ?1
             WHERE token_hash = ?2 AND used_at IS NULL AND expires_at > ?1
               AND session_id IN (SELECT s.id FROM sessions s JOIN users u ON u.id = s.user_id
                                  WHERE s.revoked_at IS NULL AND u.is_active = 1)
             RETURNING session_id",
        )
        .bind(now)
        .bind(presented.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(store_error)?;

        if let Some(session_id) = claimed {
            sqlx::query(
                "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
            )
            .bind(next.as_str())
            .bind(&session_id)
            .bind(now)
            .bind(micros(next_expires_at))
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
            let session_row = sqlx::query(
                "UPDATE sessions SET expires_at = ? WHERE id = ?
                 RETURNING id, user_id, scope, created_at, expires_at",
            )
            .bind(micros(next_expires_at))
            .bind(&session_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(store_error)?;
            let session = session_from_row(&session_row)?;
            let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE u.id = ?");
            let user_row = sqlx::query(&sql)
                .bind(session.user_id.to_string())
                .fetch_one(&mut *tx)
                .await
                .map_err(store_error)?;
            let user = user_from_row(&user_row)?;
            tx.commit().await.map_err(store_error)?;
            return Ok(RotationOutcome::Rotated {
                session,
                user: Box::new(user),
            });
        }

        let used = sqlx::query(
            "SELECT t.session_id, s.user_id FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
             WHERE t.token_hash = ? AND t.used_at IS NOT NULL",
        )
        .bind(presented.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(store_error)?;
        let Some(used) = used else {
            return Ok(RotationOutcome::Invalid);
        };
        let session_id = SessionId::from_uuid(uuid(&used, "session_id")?);
        let user_id = UserId::from_uuid(uuid(&used, "user_id")?);
        sqlx::query(
            "UPDATE sessions SET revoked_at = ?, revoked_reason = ? WHERE id = ? AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(RevocationReason::RefreshTokenReused.as_str())
        .bind(session_id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(RotationOutcome::Reused {
            session_id,
            user_id,
        })
    }

    async fn find_session_of_refresh_token(
        &self,
        hash: &RefreshTokenHash,
    ) -> Result<Option<SessionId>, StoreError> {
        let row = sqlx::query("SELECT session_id FROM refresh_tokens WHERE token_hash = ?")
            .bind(hash.as_str())
            .fetch_optional(&self.reader)
            .await
            .map_err(store_error)?;
        row.map(|r| uuid(&r, "session_id").map(SessionId::from_uuid))
            .transpose()
    }

    async fn revoke_session(
        &self,
        id: SessionId,
        reason: RevocationReason,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = ?, revoked_reason = ? WHERE id = ? AND revoked_at IS NULL",
        )
        .bind(micros(now))
        .bind(reason.as_str())
        .bind(id.to_string())
        .execute(&self.writer)
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
            "UPDATE sessions SET revoked_at = ?, revoked_reason = ?
             WHERE user_id = ? AND revoked_at IS NULL AND id IS NOT ?",
        )
        .bind(micros(now))
        .bind(reason.as_str())
        .bind(user_id.to_string())
        .bind(except.map(|id| id.to_string()))
        .execute(&self.writer)
        .await
        .map_err(store_error)?;
        Ok(done.rows_affected())
    }
}
