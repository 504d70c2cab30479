//! [`TokenRepository`] on SQLite: sessions and refresh tokens, with the atomic rotation.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use super::audit::insert_event;
use super::{
    into_session, micros, session_columns, session_from_row, session_record, store_error, time,
    user_columns, user_from_row, user_record, uuid, SqliteStore, SESSION_COLUMNS,
};
use crate::domain::oidc::SigninHash;
use crate::domain::ports::{StoreError, TokenRepository};
use crate::domain::session::{
    LiveRefreshToken, NewSession, RefreshTokenHash, RevocationReason, Rotation, RotationOutcome,
    Session, SessionId,
};
use crate::domain::user::{User, UserId};
use crate::infrastructure::db::records::stored_scope;

const INSERT_TOKEN: &str =
    "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) VALUES (?, ?, ?, ?)";

#[async_trait]
impl TokenRepository for SqliteStore {
    #[tracing::instrument(skip_all, fields(session_id = %new.session.id))]
    async fn create_session(&self, new: &NewSession) -> Result<Option<DateTime<Utc>>, StoreError> {
        let new = new.clone();
        let user_id = new.session.user_id;
        let (expiry, capped) = self
            .write(move |connection| insert_session(connection, &new))
            .await?;
        if capped > 0 {
            self.sessions.forget_user(user_id);
        }
        Ok(expiry)
    }

    #[tracing::instrument(skip_all)]
    async fn rotate_refresh_token(
        &self,
        rotation: &Rotation,
    ) -> Result<RotationOutcome, StoreError> {
        let rotation = rotation.clone();
        let outcome = self
            .write(move |connection| rotate(connection, &rotation))
            .await?;
        match &outcome {
            RotationOutcome::Rotated { session, .. } => self.sessions.forget_session(session.id),
            RotationOutcome::Reused { user_id, .. } => self.sessions.forget_user(*user_id),
            // A retry changes nothing.
            RotationOutcome::Retried { .. } | RotationOutcome::Invalid => {}
        }
        Ok(outcome)
    }

    async fn find_live_refresh_token(
        &self,
        hash: &RefreshTokenHash,
        now: DateTime<Utc>,
    ) -> Result<Option<LiveRefreshToken>, StoreError> {
        let sql = concat!(
            "SELECT t.created_at, t.expires_at, ",
            session_columns!(),
            ", ",
            user_columns!(),
            " FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
               JOIN users u ON u.id = s.user_id
             WHERE t.token_hash = ?1 AND t.used_at IS NULL AND t.expires_at > ?2
               AND s.revoked_at IS NULL AND s.expires_at > ?2 AND u.is_active = 1"
        );
        let hash = hash.as_str().to_owned();
        let found = self
            .read(move |reader| {
                reader
                    .prepare_cached(sql)?
                    .query_row(params![hash, micros(now)], |row| {
                        Ok((
                            time(row.get(0)?)?,
                            time(row.get(1)?)?,
                            session_record(row, 2)?,
                            user_record(row, 10)?,
                        ))
                    })
                    .optional()
            })
            .await?;
        let Some((created_at, expires_at, session, user)) = found else {
            return Ok(None);
        };
        Ok(Some(LiveRefreshToken {
            session: session.into_session()?,
            user: Box::new(user.into_user()?),
            expires_at,
            created_at,
        }))
    }

    async fn find_signin(
        &self,
        hash: &SigninHash,
        now: DateTime<Utc>,
    ) -> Result<Option<(Session, Arc<User>)>, StoreError> {
        let sql = concat!(
            "SELECT ",
            session_columns!(),
            ", ",
            user_columns!(),
            " FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.signin_hash = ? AND s.revoked_at IS NULL AND s.expires_at > ?
               AND u.is_active = 1"
        );
        let hash = hash.as_str().to_owned();
        let found = self
            .read(move |reader| {
                reader
                    .prepare_cached(sql)?
                    .query_row(params![hash, micros(now)], |row| {
                        Ok((session_record(row, 0)?, user_record(row, 8)?))
                    })
                    .optional()
            })
            .await?;
        found
            .map(|(session, user)| Ok((session.into_session()?, Arc::new(user.into_user()?))))
            .transpose()
    }

    async fn find_session_of_refresh_token(
        &self,
        hash: &RefreshTokenHash,
    ) -> Result<Option<SessionId>, StoreError> {
        let hash = hash.as_str().to_owned();
        let id: Option<String> = self
            .read(move |reader| {
                reader
                    .prepare_cached("SELECT session_id FROM refresh_tokens WHERE token_hash = ?")?
                    .query_row([hash], |row| row.get(0))
                    .optional()
            })
            .await?;
        id.map(|id| uuid(&id).map(SessionId::from_uuid).map_err(store_error))
            .transpose()
    }

    async fn revoke_session(
        &self,
        id: SessionId,
        reason: RevocationReason,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let (changed, user) = self
            .write(move |connection| {
                revoke_family(connection, &id.to_string(), reason, micros(now))
            })
            .await?;
        self.sessions.forget_session(id);
        if let Some(user_id) = user {
            self.sessions.forget_user(user_id);
        }
        Ok(changed)
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
                let except = except.map(|id| id.to_string());
                revoke_all(
                    connection,
                    &user_id.to_string(),
                    except.as_deref(),
                    reason,
                    micros(now),
                )
            })
            .await?;
        self.sessions.forget_user(user_id);
        Ok(changed)
    }
}

/// [`TokenRepository::create_session`] inside the write transaction: the session's expiry (or
/// `None` when refused) and how many old sessions the cap revoked.
fn insert_session(
    connection: &Connection,
    new: &NewSession,
) -> Result<(Option<DateTime<Utc>>, u64), StoreError> {
    let session = &new.session;
    let user_id = session.user_id.to_string();
    let now = micros(session.created_at);
    // The writer runs one job at a time, so nothing changes the user or the parent between
    // these checks and the insert: a password change committed before refuses the session, one
    // committed after revokes it.
    let current: Option<(i64, bool)> = connection
        .prepare_cached("SELECT credential_version, is_active FROM users WHERE id = ?")
        .and_then(|mut s| {
            s.query_row([&user_id], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()
        })
        .map_err(store_error)?;
    if current != Some((new.credential_version, true)) {
        return Ok((None, 0));
    }
    let mut not_after = micros(session.not_after);
    let mut client_id = session.client_id.map(|id| id.to_string());
    if let Some(parent) = session.parent_id {
        // A session started from another belongs to the same client (if any): it ends with
        // that client's deletion or disabling, as its parent does.
        let parent: Option<(i64, Option<String>)> = connection
            .prepare_cached(
                "SELECT not_after, client_id FROM sessions
                 WHERE id = ? AND user_id = ? AND revoked_at IS NULL AND expires_at > ?",
            )
            .and_then(|mut s| {
                s.query_row(params![parent.to_string(), user_id, now], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
                .optional()
            })
            .map_err(store_error)?;
        let Some((parent_end, parent_client)) = parent else {
            return Ok((None, 0));
        };
        not_after = not_after.min(parent_end);
        client_id = client_id.or(parent_client);
    }
    let expires_at = micros(session.expires_at).min(not_after);
    connection
        .prepare_cached(
            "INSERT INTO sessions (id, user_id, scope, created_at, expires_at, not_after, parent_id, client_id, signin_hash, last_used_at, ip, user_agent)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?4, ?10, ?11)",
        )
        .and_then(|mut s| {
            s.execute(params![
                session.id.to_string(),
                user_id,
                stored_scope(session),
                now,
                expires_at,
                not_after,
                session.parent_id.map(|id| id.to_string()),
                client_id,
                new.signin.as_ref().map(SigninHash::as_str),
                new.origin.ip.map(|ip| ip.to_string()),
                new.origin.user_agent.as_deref(),
            ])
        })
        .map_err(store_error)?;
    if let Some(token) = &new.first_token {
        connection
            .prepare_cached(INSERT_TOKEN)
            .and_then(|mut s| {
                s.execute(params![
                    token.hash.as_str(),
                    session.id.to_string(),
                    micros(token.created_at),
                    micros(token.expires_at).min(not_after),
                ])
            })
            .map_err(store_error)?;
    }
    let capped = connection
        .prepare_cached(
            "UPDATE sessions SET revoked_at = ?1, revoked_reason = ?2
             WHERE id IN (SELECT id FROM sessions
                          WHERE user_id = ?3 AND revoked_at IS NULL AND expires_at > ?1
                            AND signin_hash IS NULL
                          ORDER BY created_at DESC, id DESC LIMIT -1 OFFSET ?4)",
        )
        .and_then(|mut s| {
            s.execute(params![
                now,
                RevocationReason::TooManySessions.as_str(),
                user_id,
                i64::from(new.max_live_sessions)
            ])
        })
        .map_err(store_error)?;
    Ok((Some(time(expires_at).map_err(store_error)?), capped as u64))
}

/// Revokes every live session of a user but `except`; returns how many.
pub(super) fn revoke_all(
    connection: &Connection,
    user_id: &str,
    except: Option<&str>,
    reason: RevocationReason,
    now: i64,
) -> Result<u64, StoreError> {
    connection
        .prepare_cached(
            "UPDATE sessions SET revoked_at = ?, revoked_reason = ?
             WHERE user_id = ? AND revoked_at IS NULL AND id IS NOT ?",
        )
        .and_then(|mut s| s.execute(params![now, reason.as_str(), user_id, except]))
        .map(|changed| changed as u64)
        .map_err(store_error)
}

/// Revokes a session and the sessions started from it; returns whether the session itself was
/// live, and the user whose cached sessions to forget when any child went too.
pub(super) fn revoke_family(
    connection: &Connection,
    id: &str,
    reason: RevocationReason,
    now: i64,
) -> Result<(bool, Option<UserId>), StoreError> {
    let changed = connection
        .prepare_cached(
            "UPDATE sessions SET revoked_at = ?, revoked_reason = ? WHERE id = ? AND revoked_at IS NULL",
        )
        .and_then(|mut s| s.execute(params![now, reason.as_str(), id]))
        .map_err(store_error)?;
    // Every descendant, level by level: a session started from a session started from this one
    // (a code-flow session's own minted session, say) ends too. The writer runs one job at a
    // time, so nothing joins the family meanwhile.
    let mut child_user: Option<String> = None;
    let mut parents = vec![id.to_owned()];
    while let Some(parent) = parents.pop() {
        let children: Vec<(String, String)> = connection
            .prepare_cached(
                "UPDATE sessions SET revoked_at = ?, revoked_reason = ?
                 WHERE parent_id = ? AND revoked_at IS NULL RETURNING id, user_id",
            )
            .and_then(|mut s| {
                s.query_map(params![now, reason.as_str(), parent], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })?
                .collect()
            })
            .map_err(store_error)?;
        for (child, user) in children {
            child_user.get_or_insert(user);
            parents.push(child);
        }
    }
    let child_user = child_user
        .map(|id| uuid(&id).map(UserId::from_uuid).map_err(store_error))
        .transpose()?;
    Ok((changed == 1, child_user))
}

/// The rotation, inside a write transaction: the conditional update is the whole race; only a
/// caller that flips `used_at` from NULL rotates. Its audit event is written in the same
/// transaction.
fn rotate(connection: &Connection, rotation: &Rotation) -> Result<RotationOutcome, StoreError> {
    let now = micros(rotation.now);
    let presented = rotation.presented.as_str();
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

    let outcome = if let Some(session_id) = claimed {
        let sql = format!(
            "UPDATE sessions SET expires_at = min(?1, not_after), last_used_at = ?2 WHERE id = ?3
             RETURNING {SESSION_COLUMNS}"
        );
        let session = connection
            .prepare_cached(&sql)
            .and_then(|mut s| {
                s.query_row(
                    params![micros(rotation.next_expires_at), now, session_id],
                    session_from_row,
                )
            })
            .map_err(store_error)?;
        let session = into_session(session)?;
        connection
            .prepare_cached(INSERT_TOKEN)
            .and_then(|mut s| {
                s.execute(params![
                    rotation.next.as_str(),
                    session_id,
                    now,
                    micros(session.expires_at)
                ])
            })
            .map_err(store_error)?;
        let sql = concat!("SELECT ", user_columns!(), " FROM users u WHERE u.id = ?");
        let user = connection
            .prepare_cached(sql)
            .and_then(|mut s| s.query_row([session.user_id.to_string()], user_from_row))
            .map_err(store_error)?
            .into_user()?;
        RotationOutcome::Rotated {
            session,
            user: Box::new(user),
        }
    } else if let Some(retried) = retry(connection, rotation)? {
        retried
    } else {
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
        revoke_family(
            connection,
            &session_id,
            RevocationReason::RefreshTokenReused,
            now,
        )?;
        RotationOutcome::Reused {
            session_id: SessionId::from_uuid(uuid(&session_id).map_err(store_error)?),
            user_id: UserId::from_uuid(uuid(&user_id).map_err(store_error)?),
        }
    };
    if let Some(event) = outcome.audit_event(&rotation.audit) {
        insert_event(connection, &event)?;
    }
    Ok(outcome)
}

/// A retry after a lost response: `rotation.presented` was used no more than `rotation.grace`
/// ago, and `rotation.next` (its successor, derived from it) is in the same session, unused and
/// unexpired, the session live and its user active. Nothing is changed. The writer runs one job
/// at a time, so the first rotation has committed (or not begun) when this looks.
fn retry(
    connection: &Connection,
    rotation: &Rotation,
) -> Result<Option<RotationOutcome>, StoreError> {
    if rotation.grace <= chrono::Duration::zero() {
        return Ok(None);
    }
    let now = micros(rotation.now);
    let sql = concat!(
        "SELECT ",
        session_columns!(),
        ", ",
        user_columns!(),
        " FROM refresh_tokens p
           JOIN refresh_tokens n ON n.token_hash = ?2 AND n.session_id = p.session_id
           JOIN sessions s ON s.id = p.session_id
           JOIN users u ON u.id = s.user_id
         WHERE p.token_hash = ?1 AND p.used_at IS NOT NULL AND p.used_at >= ?3
           AND n.used_at IS NULL AND n.expires_at > ?4
           AND s.revoked_at IS NULL AND s.expires_at > ?4 AND u.is_active = 1"
    );
    let found = connection
        .prepare_cached(sql)
        .and_then(|mut s| {
            s.query_row(
                params![
                    rotation.presented.as_str(),
                    rotation.next.as_str(),
                    micros(rotation.now - rotation.grace),
                    now
                ],
                |row| Ok((session_record(row, 0)?, user_record(row, 8)?)),
            )
            .optional()
        })
        .map_err(store_error)?;
    let Some((session, user)) = found else {
        return Ok(None);
    };
    Ok(Some(RotationOutcome::Retried {
        session: session.into_session()?,
        user: Box::new(user.into_user()?),
    }))
}
