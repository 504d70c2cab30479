//! [`AccountRepository`] in memory.

use crate::domain::session::Invalidation;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::tokens::revoke_family;
use super::MemoryStore;
use crate::domain::account::{updated_by_prefix, AccountRepository, Deletion, SessionSummary};
use crate::domain::audit::{AuditEvent, AuditEventKind};
use crate::domain::ports::StoreError;
use crate::domain::session::SessionId;
use crate::domain::user::{Role, UserId};

#[async_trait]
impl AccountRepository for MemoryStore {
    async fn list_sessions(
        &self,
        user_id: UserId,
        now: DateTime<Utc>,
    ) -> Result<Vec<SessionSummary>, StoreError> {
        let state = self.lock()?;
        let mut live: Vec<SessionSummary> = (state.sessions.values())
            .filter(|s| s.session.user_id == user_id && s.revoked_at.is_none())
            .filter(|s| s.session.expires_at > now)
            .map(|s| SessionSummary {
                id: s.session.id,
                created_at: s.session.created_at,
                last_used_at: s.last_used_at,
                expires_at: s.session.expires_at,
                origin: s.origin.clone(),
                client_id: s.session.client_id,
                browser: s.signin.is_some(),
            })
            .collect();
        live.sort_unstable_by(|a, b| {
            (b.created_at, b.id.as_uuid()).cmp(&(a.created_at, a.id.as_uuid()))
        });
        Ok(live)
    }

    async fn end_session(
        &self,
        user_id: UserId,
        id: SessionId,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut state = self.lock()?;
        let live = state.sessions.get(&id).is_some_and(|s| {
            s.session.user_id == user_id && s.revoked_at.is_none() && s.session.expires_at > now
        });
        Ok(live && revoke_family(&mut state, id, now))
    }

    async fn delete_user(
        &self,
        user_id: UserId,
        event: &AuditEvent,
    ) -> Result<Deletion, StoreError> {
        let mut state = self.lock()?;
        let Some(user) = state.users.iter().find(|u| u.id == user_id).cloned() else {
            return Ok(Deletion::NotFound);
        };
        let admin = |u: &crate::domain::user::User| u.is_active && u.roles.contains(Role::Admin);
        if admin(&user) && !state.users.iter().any(|u| u.id != user_id && admin(u)) {
            return Ok(Deletion::LastAdmin);
        }
        // What the databases' ON DELETE CASCADE does.
        state.users.retain(|u| u.id != user_id);
        state.publish(Invalidation::User(user_id));
        let sessions: Vec<SessionId> = (state.sessions.values())
            .filter(|s| s.session.user_id == user_id)
            .map(|s| s.session.id)
            .collect();
        for id in &sessions {
            state.sessions.remove(id);
        }
        state
            .tokens
            .retain(|_, t| !sessions.contains(&t.record.session_id));
        state.codes.retain(|_, c| c.grant.user_id != user_id);
        state.passkeys.retain(|p| p.user_id != user_id);
        state.ceremonies.retain(|_, c| c.user_id != Some(user_id));
        state.mfa.forget_user(user_id);
        let key = user.username.login_key();
        state.throttle.remove(key.as_str());
        let name = user.username.as_str().to_ascii_lowercase();
        let (old, new) = (
            updated_by_prefix(user.username.as_str()),
            updated_by_prefix(&user_id.to_string()),
        );
        for e in &mut state.audit {
            if e.user_id == Some(user_id) {
                e.username = None;
                e.ip = None;
                e.user_agent = None;
            } else if e.user_id.is_none()
                && e.username.as_deref().map(str::to_ascii_lowercase) == Some(name.clone())
            {
                e.username = None;
            }
            if e.kind == AuditEventKind::UserUpdated {
                if let Some(rest) = e.detail.as_deref().and_then(|d| d.strip_prefix(&old)) {
                    e.detail = Some(format!("{new}{rest}"));
                }
            }
        }
        state.audit.push(event.clone());
        Ok(Deletion::Deleted)
    }
}
