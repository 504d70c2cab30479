//! [`TokenRepository`] on SQLite: sessions and refresh tokens, with the atomic rotation.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::{
    into_session, micros, session_from_row, store_error, user_columns, user_from_row, uuid,
    SqliteStore,
};
use crate::domain::ports::{StoreError, TokenRepository};
use crate::domain::session::{
    RefreshTokenHash, RefreshTokenRecord, RevocationReason, RotationOutcome, Session, SessionId,
};
use crate::domain::user::UserId;

const INSERT_TOKEN: &str =
    "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) VALUES (?, ?, ?, ?)";

#[async_trait]
impl TokenRepository for SqliteStore {
    #[tracing::instrument(skip_all, fields(session_id = %session.id))]
    async fn create_session(
        &self,
        session: &Session,
        first_token: &RefreshTokenRecord,
    ) -> Result<(), StoreError> {
        let mut writer = self.writer().await?;
        let tx = writer
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(store_error)?;
        tx.prepare_cached(
            "INSERT INTO sessions (id, user_id, scope, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
        )
        .and_then(|mut s| {
            s.execute(params![
                session.id.to_string(),
                session.user_id.to_string(),
                session.scope.to_space_separated(),
                micros(session.created_at),
                micros(session.expires_at),
            ])
        })
        .and_then(|_| tx.prepare_cached(INSERT_TOKEN))
        .and_then(|mut s| {
            s.execute(params![
                first_token.hash.as_str(),
                first_token.session_id.to_string(),
                micros(first_token.created_at),
                micros(first_token.expires_at),
            ])
        })
        .map_err(store_error)?;
        tx.commit().map_err(store_error)
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
        let mut writer = self.writer().await?;
        let tx = writer
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(store_error)?;
        // The conditional update is the whole race: only a caller that flips `used_at` from
        // NULL rotates.
        let claimed: Option<String> = tx
            .prepare_cached(
                "UPDATE refresh_tokens SET used_at = ?1
                 WHERE token_hash = ?2 AND used_at IS NULL AND expires_at > ?1
                   AND EXISTS (SELECT 1 FROM sessions s JOIN users u ON u.id = s.user_id
                               WHERE s.id = refresh_tokens.session_id AND s.revoked_at IS NULL
                                 AND u.is_active = 1)
                 RETURNING session_id",
            )
            .and_then(|mut s| {
                s.query_row(params![now, presented.as_str()], |row| row.get(0))
                    .optional()
            })
            .map_err(store_error)?;

        if let Some(session_id) = claimed {
            let session = tx
                .prepare_cached(INSERT_TOKEN)
                .and_then(|mut s| {
                    s.execute(params![
                        next.as_str(),
                        session_id,
                        now,
                        micros(next_expires_at)
                    ])
                })
                .and_then(|_| {
                    tx.prepare_cached(
                        "UPDATE sessions SET expires_at = ? WHERE id = ?
                         RETURNING id, user_id, scope, created_at, expires_at",
                    )
                })
                .and_then(|mut s| {
                    s.query_row(
                        params![micros(next_expires_at), session_id],
                        session_from_row,
                    )
                })
                .map_err(store_error)?;
            let session = into_session(session)?;
            let sql = concat!("SELECT ", user_columns!(), " FROM users u WHERE u.id = ?");
            let user = tx
                .prepare_cached(sql)
                .and_then(|mut s| s.query_row([session.user_id.to_string()], user_from_row))
                .map_err(store_error)?
                .into_user()?;
            tx.commit().map_err(store_error)?;
            return Ok(RotationOutcome::Rotated {
                session,
                user: Box::new(user),
            });
        }

        let used: Option<(String, String)> = tx
            .prepare_cached(
                "SELECT t.session_id, s.user_id FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
                 WHERE t.token_hash = ? AND t.used_at IS NOT NULL",
            )
            .and_then(|mut s| s.query_row([presented.as_str()], |row| Ok((row.get(0)?, row.get(1)?))).optional())
            .map_err(store_error)?;
        let Some((session_id, user_id)) = used else {
            return Ok(RotationOutcome::Invalid);
        };
        tx.prepare_cached(
            "UPDATE sessions SET revoked_at = ?, revoked_reason = ? WHERE id = ? AND revoked_at IS NULL",
        )
        .and_then(|mut s| {
            s.execute(params![now, RevocationReason::RefreshTokenReused.as_str(), session_id])
        })
        .map_err(store_error)?;
        tx.commit().map_err(store_error)?;
        Ok(RotationOutcome::Reused {
            session_id: SessionId::from_uuid(uuid(&session_id).map_err(store_error)?),
            user_id: UserId::from_uuid(uuid(&user_id).map_err(store_error)?),
        })
    }

    async fn find_session_of_refresh_token(
        &self,
        hash: &RefreshTokenHash,
    ) -> Result<Option<SessionId>, StoreError> {
        let reader = self.reader().await?;
        let id: Option<String> = reader
            .prepare_cached("SELECT session_id FROM refresh_tokens WHERE token_hash = ?")
            .and_then(|mut s| s.query_row([hash.as_str()], |row| row.get(0)).optional())
            .map_err(store_error)?;
        id.map(|id| uuid(&id).map(SessionId::from_uuid).map_err(store_error))
            .transpose()
    }

    async fn revoke_session(
        &self,
        id: SessionId,
        reason: RevocationReason,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let writer = self.writer().await?;
        let changed = writer
            .prepare_cached(
                "UPDATE sessions SET revoked_at = ?, revoked_reason = ? WHERE id = ? AND revoked_at IS NULL",
            )
            .and_then(|mut s| s.execute(params![micros(now), reason.as_str(), id.to_string()]))
            .map_err(store_error)?;
        Ok(changed == 1)
    }

    async fn revoke_user_sessions(
        &self,
        user_id: UserId,
        except: Option<SessionId>,
        reason: RevocationReason,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let writer = self.writer().await?;
        let changed = writer
            .prepare_cached(
                "UPDATE sessions SET revoked_at = ?, revoked_reason = ?
                 WHERE user_id = ? AND revoked_at IS NULL AND id IS NOT ?",
            )
            .and_then(|mut s| {
                s.execute(params![
                    micros(now),
                    reason.as_str(),
                    user_id.to_string(),
                    except.map(|id| id.to_string()),
                ])
            })
            .map_err(store_error)?;
        Ok(changed as u64)
    }
}
