//! [`TokenRepository`] in memory: sessions and refresh tokens, with the atomic rotation.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{MemoryStore, State, StoredSession, StoredToken};
use crate::domain::ports::{StoreError, TokenRepository};
use crate::domain::session::{
    NewSession, RefreshTokenHash, RefreshTokenRecord, RevocationReason, Rotation, RotationOutcome,
    SessionId,
};
use crate::domain::user::UserId;

#[async_trait]
impl TokenRepository for MemoryStore {
    async fn create_session(&self, new: &NewSession) -> Result<Option<DateTime<Utc>>, StoreError> {
        let mut state = self.lock()?;
        let mut session = new.session.clone();
        let (user_id, now) = (session.user_id, session.created_at);
        let current = (state.users.iter())
            .find(|u| u.id == user_id)
            .map(|u| (u.credential_version, u.is_active));
        if current != Some((new.credential_version, true)) {
            return Ok(None);
        }
        let mut client_id = new.client_id;
        if let Some(parent) = session.parent_id {
            let parent = state.sessions.get(&parent).filter(|p| {
                p.revoked_at.is_none() && p.session.user_id == user_id && p.session.expires_at > now
            });
            let Some(parent) = parent else {
                return Ok(None);
            };
            session.not_after = session.not_after.min(parent.session.not_after);
            client_id = client_id.or(parent.client_id);
        }
        session.expires_at = session.expires_at.min(session.not_after);
        let mut token = new.first_token.clone();
        token.expires_at = token.expires_at.min(session.not_after);
        let expires_at = session.expires_at;
        let stored = StoredSession {
            session,
            revoked_at: None,
            client_id,
        };
        state.sessions.insert(stored.session.id, stored);
        let stored = StoredToken {
            record: token,
            used: false,
        };
        state.tokens.insert(stored.record.hash.clone(), stored);
        // Beyond the cap, the oldest live sessions go (newest first, as the databases order).
        let mut live: Vec<_> = (state.sessions.values())
            .filter(|s| s.session.user_id == user_id && s.revoked_at.is_none())
            .filter(|s| s.session.expires_at > now)
            .map(|s| (s.session.created_at, s.session.id.as_uuid()))
            .collect();
        live.sort_unstable_by(|a, b| b.cmp(a));
        for (_, id) in live.into_iter().skip(new.max_live_sessions as usize) {
            if let Some(s) = state.sessions.get_mut(&SessionId::from_uuid(id)) {
                s.revoked_at = Some(now);
            }
        }
        Ok(Some(expires_at))
    }

    async fn rotate_refresh_token(
        &self,
        rotation: &Rotation,
    ) -> Result<RotationOutcome, StoreError> {
        let mut state = self.lock()?;
        let outcome = rotate(&mut state, rotation);
        if let Some(event) = outcome.audit_event(&rotation.audit) {
            state.audit.push(event);
        }
        Ok(outcome)
    }

    async fn find_session_of_refresh_token(
        &self,
        hash: &RefreshTokenHash,
    ) -> Result<Option<SessionId>, StoreError> {
        Ok(self.lock()?.tokens.get(hash).map(|t| t.record.session_id))
    }

    async fn revoke_session(
        &self,
        id: SessionId,
        _reason: RevocationReason,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        Ok(revoke_family(&mut *self.lock()?, id, now))
    }

    async fn revoke_user_sessions(
        &self,
        user_id: UserId,
        except: Option<SessionId>,
        _reason: RevocationReason,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        Ok(revoke_all(&mut *self.lock()?, user_id, except, now))
    }
}

/// Revokes every live session of the user but `except`; returns how many.
pub(super) fn revoke_all(
    state: &mut State,
    user_id: UserId,
    except: Option<SessionId>,
    now: DateTime<Utc>,
) -> u64 {
    let mut count = 0;
    for s in state.sessions.values_mut() {
        if s.session.user_id == user_id && s.revoked_at.is_none() && Some(s.session.id) != except {
            s.revoked_at = Some(now);
            count += 1;
        }
    }
    count
}

/// Revokes a session and the sessions started from it; whether the session itself was live.
fn revoke_family(state: &mut State, id: SessionId, now: DateTime<Utc>) -> bool {
    let mut root = false;
    for s in state.sessions.values_mut() {
        if s.revoked_at.is_none() && (s.session.id == id || s.session.parent_id == Some(id)) {
            s.revoked_at = Some(now);
            root |= s.session.id == id;
        }
    }
    root
}

/// The rotation under the store's lock.
fn rotate(state: &mut State, rotation: &Rotation) -> RotationOutcome {
    let (presented, now) = (&rotation.presented, rotation.now);
    let Some(token) = state.tokens.get(presented).cloned() else {
        return RotationOutcome::Invalid;
    };
    let Some(stored) = state.sessions.get(&token.record.session_id).cloned() else {
        return RotationOutcome::Invalid;
    };
    let session_id = stored.session.id;
    if token.used {
        revoke_family(state, session_id, now);
        return RotationOutcome::Reused {
            session_id,
            user_id: stored.session.user_id,
        };
    }
    let user = (state.users.iter())
        .find(|u| u.id == stored.session.user_id && u.is_active)
        .cloned();
    let Some(user) = user else {
        return RotationOutcome::Invalid;
    };
    if stored.revoked_at.is_some() || token.record.expires_at <= now {
        return RotationOutcome::Invalid;
    }
    let expires_at = rotation.next_expires_at.min(stored.session.not_after);
    if let Some(presented) = state.tokens.get_mut(presented) {
        presented.used = true;
    }
    let record = RefreshTokenRecord {
        hash: rotation.next.clone(),
        session_id,
        created_at: now,
        expires_at,
    };
    let next = StoredToken {
        record,
        used: false,
    };
    state.tokens.insert(rotation.next.clone(), next);
    let mut session = stored.session;
    session.expires_at = expires_at;
    if let Some(stored) = state.sessions.get_mut(&session_id) {
        stored.session.expires_at = expires_at;
    }
    RotationOutcome::Rotated {
        session,
        user: Box::new(user),
    }
}
