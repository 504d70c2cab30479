//! [`TokenRepository`] on PostgreSQL: sessions and refresh tokens, with the atomic rotation.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::audit::insert_event;
use super::{store_error, PgStore, SESSION_COLUMNS, USER_COLUMNS};
use crate::domain::audit::AuditEventKind;
use crate::domain::oidc::SigninHash;
use crate::domain::ports::{StoreError, TokenRepository};
use crate::domain::session::{
    LiveRefreshToken, NewSession, RefreshTokenHash, RevocationReason, Rotation, RotationOutcome,
    Session, SessionId,
};
use crate::domain::user::{User, UserId};
use crate::infrastructure::db::records::{stored_scope, SessionRecord, UserRecord};

/// [`SESSION_COLUMNS`] of the table aliased `s`, for joins with `users u` (whose column names
/// overlap: both are read by position, see [`session_and_user`]).
const SESSION_COLUMNS_OF_S: &str =
    "s.id, s.user_id, s.scope, s.created_at, s.expires_at, s.not_after, s.parent_id, s.client_id";

/// A session and its user from one joined row: [`SESSION_COLUMNS_OF_S`] from column `at` on,
/// then [`USER_COLUMNS`].
fn session_and_user(row: &PgRow, at: usize) -> Result<(SessionRecord, UserRecord), sqlx::Error> {
    let session = SessionRecord {
        id: row.try_get(at)?,
        user_id: row.try_get(at + 1)?,
        scope: row.try_get(at + 2)?,
        created_at: row.try_get(at + 3)?,
        expires_at: row.try_get(at + 4)?,
        not_after: row.try_get(at + 5)?,
        parent_id: row.try_get(at + 6)?,
        client_id: row.try_get(at + 7)?,
    };
    let at = at + 8;
    let user = UserRecord {
        id: row.try_get(at)?,
        username: row.try_get(at + 1)?,
        email: row.try_get(at + 2)?,
        full_name: row.try_get(at + 3)?,
        password_hash: row.try_get(at + 4)?,
        roles: row.try_get(at + 5)?,
        is_active: row.try_get(at + 6)?,
        credential_version: row.try_get(at + 7)?,
        created_at: row.try_get(at + 8)?,
        updated_at: row.try_get(at + 9)?,
        email_verified: row.try_get(at + 10)?,
        totp_enabled: row.try_get(at + 11)?,
        passkey_count: row.try_get(at + 12)?,
        recovery_codes_left: row.try_get(at + 13)?,
    };
    Ok((session, user))
}

const INSERT_TOKEN: &str =
    "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) VALUES ($1, $2, $3, $4)";

#[async_trait]
impl TokenRepository for PgStore {
    #[tracing::instrument(skip_all, fields(session_id = %new.session.id))]
    async fn create_session(&self, new: &NewSession) -> Result<Option<DateTime<Utc>>, StoreError> {
        let session = &new.session;
        if session.parent_id.is_none() && new.max_live_sessions > 0 {
            let (started, capped) = create_session_at_once(&self.pool, new).await?;
            if capped > 0 {
                self.sessions.forget_user(session.user_id);
            }
            return Ok(started);
        }
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        // FOR SHARE holds off a password change (its UPDATE waits for this commit, then revokes
        // this session); a change committed before shows here as a newer credential version.
        let current: Option<(i64, bool)> = sqlx::query_as(
            "SELECT credential_version, is_active FROM users WHERE id = $1 FOR SHARE",
        )
        .bind(session.user_id.as_uuid())
        .fetch_optional(&mut *tx)
        .await
        .map_err(store_error)?;
        if current != Some((new.credential_version, true)) {
            return Ok(None);
        }
        let mut not_after = session.not_after;
        let mut client_id = session.client_id.map(|id| id.as_uuid());
        if let Some(parent) = session.parent_id {
            // Likewise, a revocation of the parent either waits for this commit (and then
            // revokes this session with it) or was committed before (and refuses it). A session
            // started from another belongs to the same client (if any), and ends with it.
            let parent: Option<(DateTime<Utc>, Option<uuid::Uuid>)> = sqlx::query_as(
                "SELECT not_after, client_id FROM sessions
                 WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL AND expires_at > $3
                 FOR SHARE",
            )
            .bind(parent.as_uuid())
            .bind(session.user_id.as_uuid())
            .bind(session.created_at)
            .fetch_optional(&mut *tx)
            .await
            .map_err(store_error)?;
            let Some((parent_end, parent_client)) = parent else {
                return Ok(None);
            };
            not_after = not_after.min(parent_end);
            client_id = client_id.or(parent_client);
        }
        let expires_at = session.expires_at.min(not_after);
        sqlx::query(
            "INSERT INTO sessions (id, user_id, scope, created_at, expires_at, not_after, parent_id, client_id, signin_hash, last_used_at, ip, user_agent)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $4, $10, $11)",
        )
        .bind(session.id.as_uuid())
        .bind(session.user_id.as_uuid())
        .bind(stored_scope(session))
        .bind(session.created_at)
        .bind(expires_at)
        .bind(not_after)
        .bind(session.parent_id.map(|id| id.as_uuid()))
        .bind(client_id)
        .bind(new.signin.as_ref().map(SigninHash::as_str))
        .bind(new.origin.ip.map(|ip| ip.to_string()))
        .bind(new.origin.user_agent.as_deref())
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        if let Some(token) = &new.first_token {
            sqlx::query(INSERT_TOKEN)
                .bind(token.hash.as_str())
                .bind(session.id.as_uuid())
                .bind(token.created_at)
                .bind(token.expires_at.min(not_after))
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
        }
        let capped = sqlx::query(
            "UPDATE sessions SET revoked_at = $1, revoked_reason = $2
             WHERE id IN (SELECT id FROM sessions
                          WHERE user_id = $3 AND revoked_at IS NULL AND expires_at > $1
                            AND signin_hash IS NULL
                          ORDER BY created_at DESC, id DESC OFFSET $4)",
        )
        .bind(session.created_at)
        .bind(RevocationReason::TooManySessions.as_str())
        .bind(session.user_id.as_uuid())
        .bind(i64::from(new.max_live_sessions))
        .execute(&mut *tx)
        .await
        .map_err(store_error)?
        .rows_affected();
        tx.commit().await.map_err(store_error)?;
        if capped > 0 {
            self.sessions.forget_user(session.user_id);
        }
        Ok(Some(expires_at))
    }

    #[tracing::instrument(skip_all)]
    async fn rotate_refresh_token(
        &self,
        rotation: &Rotation,
    ) -> Result<RotationOutcome, StoreError> {
        // The common case, a live unused token, in one statement and one round trip.
        if let Some(outcome) = rotate_live(&self.pool, rotation).await? {
            return Ok(outcome);
        }
        // The claim matched nothing: a retry within the window, a reuse, or an invalid token.
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let outcome = rotate(&mut tx, rotation).await?;
        if let Some(event) = outcome.audit_event(&rotation.audit) {
            insert_event(&mut *tx, &event).await?;
        }
        tx.commit().await.map_err(store_error)?;
        // A rotation only pushes the session's expiry later (a cached, earlier one is safe, and
        // a shortening is published by the trigger), as on the one-statement path; a retry
        // changes nothing. A reuse revokes the family.
        if let RotationOutcome::Reused { user_id, .. } = &outcome {
            self.sessions.forget_user(*user_id);
        }
        Ok(outcome)
    }

    async fn find_live_refresh_token(
        &self,
        hash: &RefreshTokenHash,
        now: DateTime<Utc>,
    ) -> Result<Option<LiveRefreshToken>, StoreError> {
        let sql = format!(
            "SELECT t.created_at, t.expires_at, {SESSION_COLUMNS_OF_S}, {USER_COLUMNS}
             FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
               JOIN users u ON u.id = s.user_id
             WHERE t.token_hash = $1 AND t.used_at IS NULL AND t.expires_at > $2
               AND s.revoked_at IS NULL AND s.expires_at > $2 AND u.is_active"
        );
        let row = sqlx::query(&sql)
            .bind(hash.as_str())
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let (session, user) = session_and_user(&row, 2).map_err(store_error)?;
        Ok(Some(LiveRefreshToken {
            created_at: row.try_get(0).map_err(store_error)?,
            expires_at: row.try_get(1).map_err(store_error)?,
            session: session.into_session()?,
            user: Box::new(user.into_user()?),
        }))
    }

    async fn find_signin(
        &self,
        hash: &SigninHash,
        now: DateTime<Utc>,
    ) -> Result<Option<(Session, Arc<User>)>, StoreError> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS_OF_S}, {USER_COLUMNS}
             FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.signin_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > $2
               AND u.is_active"
        );
        let row = sqlx::query(&sql)
            .bind(hash.as_str())
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let (session, user) = session_and_user(&row, 0).map_err(store_error)?;
        Ok(Some((session.into_session()?, Arc::new(user.into_user()?))))
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
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let (changed, revoked) = revoke_family(&mut tx, id.as_uuid(), reason, now).await?;
        tx.commit().await.map_err(store_error)?;
        self.sessions.forget_session(id);
        for session in revoked {
            self.sessions.forget_session(SessionId::from_uuid(session));
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
        let mut connection = self.pool.acquire().await.map_err(store_error)?;
        let revoked = revoke_all(&mut connection, user_id, except, reason, now).await;
        self.sessions.forget_user(user_id);
        revoked
    }
}

/// [`TokenRepository::create_session`] of a session started from no other (a login, a browser
/// sign-in), as ONE statement outside any explicit transaction: the user row is locked
/// `FOR SHARE` and checked (credential version, active) in the same statement that inserts the
/// session and its first token and revokes the oldest sessions beyond the cap, so a password
/// change either waits for this commit (and then revokes this session) or was committed before
/// (and the check refuses). One round trip instead of six (BEGIN, the check, two INSERTs, the cap
/// UPDATE, COMMIT).
///
/// The cap's UPDATE reads the statement's snapshot, which does not hold the new session: it
/// keeps the newest `max - 1` of the others when the new one counts (it has no sign-in hash),
/// `max` otherwise, and never revokes the new session itself (the transaction path would only
/// do so if `max` other sessions had been started later than this one, by clocks out of step).
///
/// Returns the new session's expiry (`None`: not started) and how many sessions the cap revoked.
async fn create_session_at_once(
    pool: &sqlx::PgPool,
    new: &NewSession,
) -> Result<(Option<DateTime<Utc>>, i64), StoreError> {
    let session = &new.session;
    let expires_at = session.expires_at.min(session.not_after);
    let others_kept = if new.signin.is_none() {
        new.max_live_sessions - 1
    } else {
        new.max_live_sessions
    };
    let (started, capped): (i64, i64) = sqlx::query_as(
        "WITH u AS (
             SELECT id FROM users WHERE id = $2 AND credential_version = $11 AND is_active
             FOR SHARE
         ), s AS (
             INSERT INTO sessions (id, user_id, scope, created_at, expires_at, not_after, parent_id, client_id, signin_hash, last_used_at, ip, user_agent)
             SELECT $1, u.id, $3, $4, $5, $6, NULL, $7, $8, $4, $9, $10 FROM u
             RETURNING id
         ), t AS (
             INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at)
             SELECT $12, s.id, $13, $14 FROM s WHERE $12::text IS NOT NULL
         ), cap AS (
             UPDATE sessions SET revoked_at = $4, revoked_reason = $15
             WHERE id IN (SELECT id FROM sessions
                          WHERE user_id = $2 AND revoked_at IS NULL AND expires_at > $4
                            AND signin_hash IS NULL
                          ORDER BY created_at DESC, id DESC OFFSET $16)
               AND EXISTS (SELECT 1 FROM s)
             RETURNING 1
         )
         SELECT (SELECT count(*) FROM s), (SELECT count(*) FROM cap)",
    )
    .bind(session.id.as_uuid())
    .bind(session.user_id.as_uuid())
    .bind(stored_scope(session))
    .bind(session.created_at)
    .bind(expires_at)
    .bind(session.not_after)
    .bind(session.client_id.map(|id| id.as_uuid()))
    .bind(new.signin.as_ref().map(SigninHash::as_str))
    .bind(new.origin.ip.map(|ip| ip.to_string()))
    .bind(new.origin.user_agent.as_deref())
    .bind(new.credential_version)
    .bind(new.first_token.as_ref().map(|t| t.hash.as_str()))
    .bind(new.first_token.as_ref().map(|t| t.created_at))
    .bind(
        new.first_token
            .as_ref()
            .map(|t| t.expires_at.min(session.not_after)),
    )
    .bind(RevocationReason::TooManySessions.as_str())
    .bind(i64::from(others_kept))
    .fetch_one(pool)
    .await
    .map_err(store_error)?;
    Ok(((started == 1).then_some(expires_at), capped))
}

/// Revokes every live session of a user but `except`; returns how many.
pub(super) async fn revoke_all(
    connection: &mut PgConnection,
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
    .execute(connection)
    .await
    .map_err(store_error)?;
    Ok(done.rows_affected())
}

/// Revokes a session and the sessions started from it; returns whether the session itself
/// was live.
pub(super) async fn revoke_family(
    connection: &mut PgConnection,
    id: Uuid,
    reason: RevocationReason,
    now: DateTime<Utc>,
) -> Result<(bool, Vec<Uuid>), StoreError> {
    // First wait for the sessions being started from this one (they hold its row `FOR SHARE`
    // until they commit). The UPDATE below is a new statement, so its snapshot then includes
    // them: an UPDATE alone, blocked on the row lock, re-checks only the rows of its own
    // earlier snapshot and would leave a child committed meanwhile live.
    sqlx::query("SELECT 1 FROM sessions WHERE id = $1 FOR UPDATE")
        .bind(id)
        .execute(&mut *connection)
        .await
        .map_err(store_error)?;
    let mut revoked: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE sessions SET revoked_at = $1, revoked_reason = $2
         WHERE (id = $3 OR parent_id = $3) AND revoked_at IS NULL RETURNING id",
    )
    .bind(now)
    .bind(reason.as_str())
    .bind(id)
    .fetch_all(&mut *connection)
    .await
    .map_err(store_error)?;
    // The deeper descendants, level by level (a code-flow session's own minted session, say),
    // each level first waiting for the sessions being started from it, as above.
    let mut parents: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM sessions WHERE parent_id = $1 AND revoked_at = $2")
            .bind(id)
            .bind(now)
            .fetch_all(&mut *connection)
            .await
            .map_err(store_error)?;
    while !parents.is_empty() {
        sqlx::query("SELECT 1 FROM sessions WHERE id = ANY($1) FOR UPDATE")
            .bind(&parents)
            .execute(&mut *connection)
            .await
            .map_err(store_error)?;
        parents = sqlx::query_scalar(
            "UPDATE sessions SET revoked_at = $1, revoked_reason = $2
             WHERE parent_id = ANY($3) AND revoked_at IS NULL RETURNING id",
        )
        .bind(now)
        .bind(reason.as_str())
        .bind(&parents)
        .fetch_all(&mut *connection)
        .await
        .map_err(store_error)?;
        revoked.extend_from_slice(&parents);
    }
    Ok((revoked.contains(&id), revoked))
}

/// The rotation of a live, unused token as ONE statement outside any explicit transaction
/// (a single statement is atomic): claim the token, extend the session, store the successor and
/// the `token_refreshed` audit event, and return the session with its user; `None` when the
/// claim matched nothing (nothing was changed), for [`rotate`] to sort out.
///
/// The claim is the same conditional UPDATE as in [`rotate`], with the same race semantics
/// under READ COMMITTED: a concurrent statement blocks on the token's row lock, re-checks
/// `used_at IS NULL` on the committed row and matches nothing, so exactly one caller wins on any
/// number of replicas, and the loser falls back to [`rotate`] with the winner committed. The
/// other CTEs run on the claim's result only, so they change nothing when it matched nothing.
/// The audit event is the one [`RotationOutcome::audit_event`] makes (kind, user, username,
/// `session <id>`), written in the same commit as the rotation.
async fn rotate_live(
    pool: &sqlx::PgPool,
    rotation: &Rotation,
) -> Result<Option<RotationOutcome>, StoreError> {
    let sql = format!(
        "WITH claimed AS (
             UPDATE refresh_tokens SET used_at = $1
             WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1
               AND EXISTS (SELECT 1 FROM sessions s JOIN users u ON u.id = s.user_id
                           WHERE s.id = refresh_tokens.session_id AND s.revoked_at IS NULL
                             AND u.is_active)
             RETURNING session_id
         ), s AS (
             UPDATE sessions SET expires_at = least($3, not_after), last_used_at = $1
             WHERE id = (SELECT session_id FROM claimed)
             RETURNING {SESSION_COLUMNS}
         ), successor AS (
             INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at)
             SELECT $4, s.id, $1, s.expires_at FROM s
         ), audit AS (
             INSERT INTO audit_events (id, at, event, user_id, username, ip, user_agent, success, detail)
             SELECT $5, $6, $7, u.id, u.username, $8, $9, true, 'session ' || s.id::text
             FROM s JOIN users u ON u.id = s.user_id
         )
         SELECT {SESSION_COLUMNS_OF_S}, {USER_COLUMNS} FROM s JOIN users u ON u.id = s.user_id"
    );
    let audit = &rotation.audit;
    let row = sqlx::query(&sql)
        .bind(rotation.now)
        .bind(rotation.presented.as_str())
        .bind(rotation.next_expires_at)
        .bind(rotation.next.as_str())
        .bind(audit.id)
        .bind(audit.at)
        .bind(AuditEventKind::TokenRefreshed.as_str())
        .bind(audit.ip.map(|ip| ip.to_string()))
        .bind(audit.user_agent.as_deref())
        .fetch_optional(pool)
        .await
        .map_err(store_error)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let (session, user) = session_and_user(&row, 0).map_err(store_error)?;
    Ok(Some(RotationOutcome::Rotated {
        session: session.into_session()?,
        user: Box::new(user.into_user()?),
    }))
}

/// The rotation inside the caller's transaction.
async fn rotate(tx: &mut PgConnection, rotation: &Rotation) -> Result<RotationOutcome, StoreError> {
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
    .bind(rotation.now)
    .bind(rotation.presented.as_str())
    .fetch_optional(&mut *tx)
    .await
    .map_err(store_error)?;

    if let Some(session_id) = claimed {
        let sql = format!(
            "UPDATE sessions SET expires_at = least($1, not_after), last_used_at = $3 WHERE id = $2
             RETURNING {SESSION_COLUMNS}"
        );
        let session: SessionRecord = sqlx::query_as(&sql)
            .bind(rotation.next_expires_at)
            .bind(session_id)
            .bind(rotation.now)
            .fetch_one(&mut *tx)
            .await
            .map_err(store_error)?;
        let session = session.into_session()?;
        sqlx::query(INSERT_TOKEN)
            .bind(rotation.next.as_str())
            .bind(session_id)
            .bind(rotation.now)
            .bind(session.expires_at)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE u.id = $1");
        let user: UserRecord = sqlx::query_as(&sql)
            .bind(session.user_id.as_uuid())
            .fetch_one(&mut *tx)
            .await
            .map_err(store_error)?;
        return Ok(RotationOutcome::Rotated {
            session,
            user: Box::new(user.into_user()?),
        });
    }

    if let Some(retried) = retry(tx, rotation).await? {
        return Ok(retried);
    }
    let used: Option<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT t.session_id, s.user_id FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
         WHERE t.token_hash = $1 AND t.used_at IS NOT NULL",
    )
    .bind(rotation.presented.as_str())
    .fetch_optional(&mut *tx)
    .await
    .map_err(store_error)?;
    let Some((session_id, user_id)) = used else {
        return Ok(RotationOutcome::Invalid);
    };
    revoke_family(
        tx,
        session_id,
        RevocationReason::RefreshTokenReused,
        rotation.now,
    )
    .await?;
    Ok(RotationOutcome::Reused {
        session_id: SessionId::from_uuid(session_id),
        user_id: UserId::from_uuid(user_id),
    })
}

/// A retry after a lost response: `rotation.presented` was used no more than `rotation.grace`
/// ago, and `rotation.next` (its successor, derived from it) is in the same session, unused and
/// unexpired, the session live and its user active. Nothing is changed.
///
/// Runs after the conditional UPDATE of [`rotate`] matched nothing. A retry racing the first
/// rotation blocked on that row's lock until the first committed, and this is a new statement
/// under READ COMMITTED, so its snapshot holds the committed successor. `FOR SHARE OF n` makes a
/// concurrent rotation of the successor itself finish first, and then re-checks `n.used_at` on
/// its committed row: a successor used meanwhile is never handed out again.
async fn retry(
    tx: &mut PgConnection,
    rotation: &Rotation,
) -> Result<Option<RotationOutcome>, StoreError> {
    if rotation.grace <= chrono::Duration::zero() {
        return Ok(None);
    }
    let sql = format!(
        "SELECT {SESSION_COLUMNS_OF_S}, {USER_COLUMNS}
         FROM refresh_tokens p
           JOIN refresh_tokens n ON n.token_hash = $2 AND n.session_id = p.session_id
           JOIN sessions s ON s.id = p.session_id
           JOIN users u ON u.id = s.user_id
         WHERE p.token_hash = $1 AND p.used_at IS NOT NULL AND p.used_at >= $3
           AND n.used_at IS NULL AND n.expires_at > $4
           AND s.revoked_at IS NULL AND s.expires_at > $4 AND u.is_active
         FOR SHARE OF n"
    );
    let row = sqlx::query(&sql)
        .bind(rotation.presented.as_str())
        .bind(rotation.next.as_str())
        .bind(rotation.now - rotation.grace)
        .bind(rotation.now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(store_error)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let (session, user) = session_and_user(&row, 0).map_err(store_error)?;
    Ok(Some(RotationOutcome::Retried {
        session: session.into_session()?,
        user: Box::new(user.into_user()?),
    }))
}
