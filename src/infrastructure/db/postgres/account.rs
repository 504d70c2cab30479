//! [`AccountRepository`] on PostgreSQL: the user's session list, ending one session, and the
//! deletion of an account.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::audit::insert_event;
use super::tokens::revoke_family;
use super::{store_error, PgStore};
use crate::domain::account::{
    is_admin_roles, updated_by_prefix, AccountRepository, Deletion, SessionOrigin, SessionSummary,
};
use crate::domain::audit::{AuditEvent, AuditEventKind};
use crate::domain::client::ClientId;
use crate::domain::ports::StoreError;
use crate::domain::session::{RevocationReason, SessionId};
use crate::domain::user::UserId;

/// The most sessions one list returns (the per-user cap keeps far fewer live).
const MAX_LISTED: i64 = 1000;

type SummaryRow = (
    Uuid,
    DateTime<Utc>,
    DateTime<Utc>,
    DateTime<Utc>,
    Option<String>,
    Option<String>,
    Option<Uuid>,
    bool,
);

#[async_trait]
impl AccountRepository for PgStore {
    async fn list_sessions(
        &self,
        user_id: UserId,
        now: DateTime<Utc>,
    ) -> Result<Vec<SessionSummary>, StoreError> {
        let rows: Vec<SummaryRow> = sqlx::query_as(
            "SELECT id, created_at, coalesce(last_used_at, created_at), expires_at, ip,
                    user_agent, client_id, signin_hash IS NOT NULL
             FROM sessions
             WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2
             ORDER BY created_at DESC, id DESC LIMIT $3",
        )
        .bind(user_id.as_uuid())
        .bind(now)
        .bind(MAX_LISTED)
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(rows
            .into_iter()
            .map(
                |(id, created_at, last_used_at, expires_at, ip, user_agent, client, browser)| {
                    SessionSummary {
                        id: SessionId::from_uuid(id),
                        created_at,
                        last_used_at,
                        expires_at,
                        origin: SessionOrigin {
                            ip: ip.and_then(|ip| ip.parse().ok()),
                            user_agent,
                        },
                        client_id: client.map(ClientId::from_uuid),
                        browser,
                    }
                },
            )
            .collect())
    }

    async fn end_session(
        &self,
        user_id: UserId,
        id: SessionId,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        // Locked, so a concurrent revocation either finished (and this sees it revoked) or
        // waits for this commit.
        let live: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM sessions
             WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL AND expires_at > $3
             FOR UPDATE",
        )
        .bind(id.as_uuid())
        .bind(user_id.as_uuid())
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(store_error)?;
        if live.is_none() {
            return Ok(false);
        }
        let (ended, _) =
            revoke_family(&mut tx, id.as_uuid(), RevocationReason::EndedByUser, now).await?;
        tx.commit().await.map_err(store_error)?;
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
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        // The user and every active admin, locked in id order: two admins deleting at once
        // queue here without deadlocking, and the second sees the first gone.
        let locked: Vec<(Uuid, String, String, bool)> = sqlx::query_as(
            "SELECT id, username, roles, is_active FROM users
             WHERE id = $1 OR (is_active AND ' ' || roles || ' ' LIKE '% admin %')
             ORDER BY id FOR UPDATE",
        )
        .bind(user_id.as_uuid())
        .fetch_all(&mut *tx)
        .await
        .map_err(store_error)?;
        let Some((_, username, roles, active)) =
            locked.iter().find(|(id, ..)| *id == user_id.as_uuid())
        else {
            return Ok(Deletion::NotFound);
        };
        let other_admin = locked.iter().any(|(id, _, roles, active)| {
            *id != user_id.as_uuid() && *active && is_admin_roles(roles)
        });
        if *active && is_admin_roles(roles) && !other_admin {
            return Ok(Deletion::LastAdmin);
        }
        // The foreign keys (ON DELETE CASCADE) take the sessions, their refresh tokens, the
        // authorization codes and every other table that hangs on the user.
        sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(user_id.as_uuid())
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        sqlx::query("DELETE FROM login_throttle WHERE login_key = lower($1)")
            .bind(username)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        sqlx::query(
            "UPDATE audit_events SET username = NULL, ip = NULL, user_agent = NULL
             WHERE user_id = $1",
        )
        .bind(user_id.as_uuid())
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        sqlx::query(
            "UPDATE audit_events SET username = NULL
             WHERE user_id IS NULL AND lower(username) = lower($1)",
        )
        .bind(username)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        sqlx::query(
            "UPDATE audit_events SET detail = $1 || substr(detail, length($2) + 1)
             WHERE event = $3 AND substr(detail, 1, length($2)) = $2",
        )
        .bind(updated_by_prefix(&user_id.to_string()))
        .bind(updated_by_prefix(username))
        .bind(AuditEventKind::UserUpdated.as_str())
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        insert_event(&mut *tx, event).await?;
        tx.commit().await.map_err(store_error)?;
        self.sessions.forget_user(user_id);
        Ok(Deletion::Deleted)
    }
}
