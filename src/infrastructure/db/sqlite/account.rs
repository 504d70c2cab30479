//! [`AccountRepository`] on SQLite: the user's session list, ending one session, and the
//! deletion of an account.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use super::audit::insert_event;
use super::tokens::revoke_family;
use super::{micros, store_error, time, uuid, SqliteStore};
use crate::domain::account::{
    is_admin_roles, updated_by_prefix, AccountRepository, Deletion, SessionOrigin, SessionSummary,
};
use crate::domain::audit::{AuditEvent, AuditEventKind};
use crate::domain::client::ClientId;
use crate::domain::ports::StoreError;
use crate::domain::session::{RevocationReason, SessionId};
use crate::domain::user::UserId;

/// The most sessions one list returns (the per-user cap keeps far fewer live).
pub(crate) const MAX_LISTED: i64 = 1000;

#[async_trait]
impl AccountRepository for SqliteStore {
    async fn list_sessions(
        &self,
        user_id: UserId,
        now: DateTime<Utc>,
    ) -> Result<Vec<SessionSummary>, StoreError> {
        let user_id = user_id.to_string();
        self.read(move |reader| {
            reader
                .prepare_cached(
                    "SELECT id, created_at, coalesce(last_used_at, created_at), expires_at, ip,
                            user_agent, client_id, signin_hash IS NOT NULL
                     FROM sessions
                     WHERE user_id = ?1 AND revoked_at IS NULL AND expires_at > ?2
                     ORDER BY created_at DESC, id DESC LIMIT ?3",
                )?
                .query_map(params![user_id, micros(now), MAX_LISTED], |row| {
                    let ip: Option<String> = row.get(4)?;
                    let client: Option<String> = row.get(6)?;
                    Ok(SessionSummary {
                        id: SessionId::from_uuid(uuid(&row.get::<_, String>(0)?)?),
                        created_at: time(row.get(1)?)?,
                        last_used_at: time(row.get(2)?)?,
                        expires_at: time(row.get(3)?)?,
                        origin: SessionOrigin {
                            ip: ip.and_then(|ip| ip.parse().ok()),
                            user_agent: row.get(5)?,
                        },
                        client_id: client
                            .map(|id| uuid(&id).map(ClientId::from_uuid))
                            .transpose()?,
                        browser: row.get(7)?,
                    })
                })?
                .collect()
        })
        .await
    }

    async fn end_session(
        &self,
        user_id: UserId,
        id: SessionId,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let owner = user_id.to_string();
        let ended = self
            .write(move |connection| {
                let at = micros(now);
                let live: Option<i64> = connection
                    .prepare_cached(
                        "SELECT 1 FROM sessions
                         WHERE id = ? AND user_id = ? AND revoked_at IS NULL AND expires_at > ?",
                    )
                    .and_then(|mut s| {
                        s.query_row(params![id.to_string(), owner, at], |row| row.get(0))
                            .optional()
                    })
                    .map_err(store_error)?;
                if live.is_none() {
                    return Ok(false);
                }
                revoke_family(
                    connection,
                    &id.to_string(),
                    RevocationReason::EndedByUser,
                    at,
                )
                .map(|(changed, _)| changed)
            })
            .await?;
        if ended {
            self.sessions.forget_session(id);
            self.sessions.forget_user(user_id);
        }
        Ok(ended)
    }

    async fn delete_user(
        &self,
        user_id: UserId,
        event: &AuditEvent,
    ) -> Result<Deletion, StoreError> {
        let event = event.clone();
        let deletion = self
            .write(move |connection| delete(connection, user_id, &event))
            .await?;
        if deletion == Deletion::Deleted {
            self.sessions.forget_user(user_id);
        }
        Ok(deletion)
    }
}

/// [`AccountRepository::delete_user`] inside the writer's transaction (one job at a time, so
/// the last-admin check and the delete see the same data).
fn delete(
    connection: &Connection,
    user_id: UserId,
    event: &AuditEvent,
) -> Result<Deletion, StoreError> {
    let id = user_id.to_string();
    let found: Option<(String, String, bool)> = connection
        .prepare_cached("SELECT username, roles, is_active FROM users WHERE id = ?")
        .and_then(|mut s| {
            s.query_row([&id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
                .optional()
        })
        .map_err(store_error)?;
    let Some((username, roles, active)) = found else {
        return Ok(Deletion::NotFound);
    };
    if active && is_admin_roles(&roles) {
        let admins: Vec<String> = connection
            .prepare_cached("SELECT roles FROM users WHERE id != ? AND is_active = 1")
            .and_then(|mut s| s.query_map([&id], |row| row.get(0))?.collect())
            .map_err(store_error)?;
        if !admins.iter().any(|roles| is_admin_roles(roles)) {
            return Ok(Deletion::LastAdmin);
        }
    }
    let run = |sql: &str, values: &[&dyn rusqlite::ToSql]| {
        connection
            .prepare_cached(sql)
            .and_then(|mut s| s.execute(values))
            .map_err(store_error)
    };
    // The foreign keys (ON DELETE CASCADE) take the sessions, their refresh tokens, the
    // authorization codes and every other table that hangs on the user.
    run("DELETE FROM users WHERE id = ?", &[&id])?;
    run(
        "DELETE FROM login_throttle WHERE login_key = lower(?)",
        &[&username],
    )?;
    run(
        "UPDATE audit_events SET username = NULL, ip = NULL, user_agent = NULL WHERE user_id = ?",
        &[&id],
    )?;
    run(
        "UPDATE audit_events SET username = NULL
         WHERE user_id IS NULL AND lower(username) = lower(?)",
        &[&username],
    )?;
    let old = updated_by_prefix(&username);
    let new = updated_by_prefix(&id);
    run(
        "UPDATE audit_events SET detail = ?1 || substr(detail, length(?2) + 1)
         WHERE event = ?3 AND substr(detail, 1, length(?2)) = ?2",
        &[&new, &old, &AuditEventKind::UserUpdated.as_str()],
    )?;
    insert_event(connection, event)?;
    Ok(Deletion::Deleted)
}
