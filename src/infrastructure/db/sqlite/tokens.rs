//! [`TokenRepository`] on SQLite: sessions and refresh tokens, with the atomic rotation.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

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
        let session_row = (
            session.id.to_string(),
            session.user_id.to_string(),
            session.scope.to_space_separated(),
            micros(session.created_at),
            micros(session.expires_at),
        );
        let token_row = (
            first_token.hash.as_str().to_owned(),
            first_token.session_id.to_string(),
            micros(first_token.created_at),
            micros(first_token.expires_at),
        );
        self.write(move |connection| {
            connection
                .prepare_cached(
                    "INSERT INTO sessions (id, user_id, scope, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
                )
                .and_then(|mut s| s.execute(session_row))
                .and_then(|_| connection.prepare_cached(INSERT_TOKEN))
                .and_then(|mut s| s.execute(token_row))
                .map_err(store_error)?;
            Ok(())
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn rotate_refresh_token(
        &self,
        presented: &RefreshTokenHash,
        next: &RefreshTokenHash,
        next_expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<RotationOutcome, StoreError> {
        let (presented, next) = (presented.as_str().to_owned(), next.as_str().to_owned());
        let outcome = self
            .write(move |connection| rotate(connection, &presented, &next, next_expires_at, now))
            .await?;
        match &outcome {
            RotationOutcome::Rotated { session, .. } => self.sessions.forget_session(session.id),
            RotationOutcome::Reused { session_id, .. } => self.sessions.forget_session(*session_id),
            RotationOutcome::Invalid => {}
        }
        Ok(outcome)
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
        let changed = self
            .write(move |connection| {
                connection
                    .prepare_cached(
                        "UPDATE sessions SET revoked_at = ?, revoked_reason = ? WHERE id = ? AND revoked_at IS NULL",
                    )
                    .and_then(|mut s| s.execute(params![micros(now), reason.as_str(), id.to_string()]))
                    .map_err(store_error)
            })
            .await?;
        self.sessions.forget_session(id);
        Ok(changed == 1)
    }

    async fn revoke_user_sessions(
        &self,
        user_id: UserId,
        except: Option<SessionId>,
        reason: RevocationReason,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let changed = self
            .write(move |connection| {
                connection
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
                    .map_err(store_error)
            })
            .await?;
        self.sessions.forget_user(user_id);
        Ok(changed as u64)
    }
}

/// The rotation, inside a write transaction: the conditional update is the whole race; only a
/// caller that flips `used_at` from NULL rotates.
fn rotate(
    connection: &Connection,
    presented: &str,
    next: &str,
    next_expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<RotationOutcome, StoreError> {
    let now = micros(now);
    let claimed: Option<String> = connection
        .prepare_cached(
            "UPDATE refresh_tokens SET used_at = ?1
             WHERE token_hash = ?2 AND used_at IS NULL AND expires_at > ?1
               AND EXISTS (SELECT 1 FROM sessions s JOIN users u ON u.id = s.user_id
                           WHERE s.id = refresh_tokens.session_id AND s.revoked_at IS NULL
                             AND u.is_active = 1)
             RETURNING session_id",
        )
        .and_then(|mut s| {
            s.query_row(params![now, presented], |row| row.get(0))
                .optional()
        })
        .map_err(store_error)?;

    if let Some(session_id) = claimed {
        let session = connection
            .prepare_cached(INSERT_TOKEN)
            .and_then(|mut s| s.execute(params![next, session_id, now, micros(next_expires_at)]))
            .and_then(|_| {
                connection.prepare_cached(
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
        let user = connection
            .prepare_cached(sql)
            .and_then(|mut s| s.query_row([session.user_id.to_string()], user_from_row))
            .map_err(store_error)?
            .into_user()?;
        return Ok(RotationOutcome::Rotated {
            session,
            user: Box::new(user),
        });
    }

    let used: Option<(String, String)> = connection
        .prepare_cached(
            "SELECT t.session_id, s.user_id FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
             WHERE t.token_hash = ? AND t.used_at IS NOT NULL",
        )
        .and_then(|mut s| {
            s.query_row([presented], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()
        })
        .map_err(store_error)?;
    let Some((session_id, user_id)) = used else {
        return Ok(RotationOutcome::Invalid);
    };
    connection
        .prepare_cached(
            "UPDATE sessions SET revoked_at = ?, revoked_reason = ? WHERE id = ? AND revoked_at IS NULL",
        )
        .and_then(|mut s| {
            s.execute(params![now, RevocationReason::RefreshTokenReused.as_str(), session_id])
        })
        .map_err(store_error)?;
    Ok(RotationOutcome::Reused {
        session_id: SessionId::from_uuid(uuid(&session_id).map_err(store_error)?),
        user_id: UserId::from_uuid(uuid(&user_id).map_err(store_error)?),
    })
}
