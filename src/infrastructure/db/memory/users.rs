//! [`UserRepository`] in memory.

use crate::domain::session::Invalidation;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::tokens::revoke_all;
use super::MemoryStore;
use crate::domain::ports::{StoreError, UserRepository};
use crate::domain::session::SessionId;
use crate::domain::user::{EmailAddress, LoginKey, PasswordHash, User, UserChanges, UserId};

/// Whether two e-mail addresses clash (as the stores' unique index on `lower(email)` sees it).
fn same_email(a: Option<&EmailAddress>, b: &EmailAddress) -> bool {
    a.is_some_and(|a| a.as_str().eq_ignore_ascii_case(b.as_str()))
}

#[async_trait]
impl UserRepository for MemoryStore {
    async fn insert(&self, user: &User) -> Result<(), StoreError> {
        let mut state = self.lock()?;
        if state.users.iter().any(|u| u.id == user.id) {
            return Err(StoreError::Other(format!(
                "user {} already stored",
                user.id
            )));
        }
        let key = user.username.login_key();
        if state.users.iter().any(|u| u.username.login_key() == key) {
            return Err(StoreError::UsernameTaken);
        }
        if let Some(email) = &user.email {
            if state
                .users
                .iter()
                .any(|u| same_email(u.email.as_ref(), email))
            {
                return Err(StoreError::EmailTaken);
            }
        }
        state.users.push(user.clone());
        Ok(())
    }

    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        Ok(self.lock()?.users.iter().find(|u| u.id == id).cloned())
    }

    async fn find_by_username(&self, key: &LoginKey) -> Result<Option<User>, StoreError> {
        let state = self.lock()?;
        Ok(state
            .users
            .iter()
            .find(|u| u.username.login_key() == *key)
            .cloned())
    }

    async fn find_active_by_session(
        &self,
        user_id: UserId,
        session_id: SessionId,
        now: DateTime<Utc>,
    ) -> Result<Option<Arc<User>>, StoreError> {
        let state = self.lock()?;
        let live = state.sessions.get(&session_id).is_some_and(|s| {
            s.revoked_at.is_none() && s.session.user_id == user_id && s.session.expires_at > now
        });
        Ok(state
            .users
            .iter()
            .find(|u| live && u.id == user_id && u.is_active)
            .cloned()
            .map(Arc::new))
    }

    async fn has_password_hash_with_prefix(&self, prefix: &str) -> Result<bool, StoreError> {
        let state = self.lock()?;
        Ok(state
            .users
            .iter()
            .any(|u| u.password_hash.as_str().starts_with(prefix)))
    }

    async fn list(&self, limit: u32, offset: u64) -> Result<(Vec<User>, u64), StoreError> {
        let state = self.lock()?;
        let mut users: Vec<&User> = state.users.iter().collect();
        users.sort_unstable_by_key(|u| (u.created_at, u.id.as_uuid()));
        let page = users
            .into_iter()
            .skip(usize::try_from(offset).unwrap_or(usize::MAX))
            .take(limit as usize)
            .cloned()
            .collect();
        Ok((page, state.users.len() as u64))
    }

    async fn update_fields(
        &self,
        id: UserId,
        changes: &UserChanges,
        now: DateTime<Utc>,
    ) -> Result<Option<(User, u64)>, StoreError> {
        let mut state = self.lock()?;
        let Some(index) = state.users.iter().position(|u| u.id == id) else {
            return Ok(None);
        };
        if let Some(Some(email)) = &changes.email {
            if (state.users.iter()).any(|u| u.id != id && same_email(u.email.as_ref(), email)) {
                return Err(StoreError::EmailTaken);
            }
        }
        let user = &mut state.users[index];
        if let Some(active) = changes.is_active {
            user.is_active = active;
        }
        if let Some(roles) = &changes.roles {
            user.roles = roles.clone();
        }
        if let Some(email) = &changes.email {
            if user.email != *email {
                // A new address is not verified (neither is none).
                user.email_verified = false;
            }
            user.email = email.clone();
        }
        if let Some(full_name) = &changes.full_name {
            user.full_name = full_name.clone();
        }
        user.updated_at = now;
        let user = user.clone();
        state.publish(Invalidation::User(id));
        let revoked = match changes.is_active {
            Some(false) => revoke_all(&mut state, id, None, now),
            _ => 0,
        };
        Ok(Some((user, revoked)))
    }

    async fn change_password(
        &self,
        id: UserId,
        hash: &PasswordHash,
        keep: Option<SessionId>,
        now: DateTime<Utc>,
    ) -> Result<Option<u64>, StoreError> {
        let mut state = self.lock()?;
        let Some(user) = state.users.iter_mut().find(|u| u.id == id) else {
            return Ok(None);
        };
        user.password_hash = hash.clone();
        user.credential_version += 1;
        user.updated_at = now;
        state.publish(Invalidation::User(id));
        Ok(Some(revoke_all(&mut state, id, keep, now)))
    }

    async fn upgrade_password_hash(
        &self,
        id: UserId,
        old: &PasswordHash,
        new: &PasswordHash,
    ) -> Result<bool, StoreError> {
        let mut state = self.lock()?;
        let user = (state.users.iter_mut()).find(|u| u.id == id && u.password_hash == *old);
        let upgraded = user.map(|user| user.password_hash = new.clone()).is_some();
        if upgraded {
            state.publish(Invalidation::User(id));
        }
        Ok(upgraded)
    }
}
