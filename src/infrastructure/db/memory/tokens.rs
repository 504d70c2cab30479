//! [`TokenRepository`] in memory: sessions and refresh tokens, with the atomic rotation.

use crate::domain::session::Invalidation;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{MemoryStore, State, StoredSession, StoredToken};
use crate::domain::oidc::SigninHash;
use crate::domain::ports::{StoreError, TokenRepository};
use crate::domain::session::{
    LiveRefreshToken, NewSession, RefreshTokenHash, RefreshTokenRecord, RevocationReason, Rotation,
    RotationOutcome, Session, SessionId,
};
use crate::domain::user::{User, UserId};

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
        if let Some(parent) = session.parent_id {
            let parent = state.sessions.get(&parent).filter(|p| {
                p.revoked_at.is_none() && p.session.user_id == user_id && p.session.expires_at > now
            });
            let Some(parent) = parent else {
                return Ok(None);
            };
            session.not_after = session.not_after.min(parent.session.not_after);
            session.client_id = session.client_id.or(parent.session.client_id);
        }
        // The cookie hash is unique, as the databases' unique index makes it.
        if let Some(signin) = &new.signin {
            if state
                .sessions
                .values()
                .any(|s| s.signin.as_ref() == Some(signin))
            {
                return Err(StoreError::Other("sign-in hash collision".into()));
            }
        }
        session.expires_at = session.expires_at.min(session.not_after);
        let expires_at = session.expires_at;
        let not_after = session.not_after;
        let stored = StoredSession {
            session,
            revoked_at: None,
            signin: new.signin.clone(),
            origin: new.origin.clone(),
            last_used_at: now,
        };
        state.sessions.insert(stored.session.id, stored);
        if let Some(token) = &new.first_token {
            let mut record = token.clone();
            record.expires_at = record.expires_at.min(not_after);
            let stored = StoredToken {
                record,
                used_at: None,
            };
            state.tokens.insert(stored.record.hash.clone(), stored);
        }
        // Beyond the cap, the oldest live sessions go (newest first, as the databases order);
        // browser sign-ins are neither counted nor revoked.
        let mut live: Vec<_> = (state.sessions.values())
            .filter(|s| s.session.user_id == user_id && s.revoked_at.is_none())
            .filter(|s| s.signin.is_none())
            .filter(|s| s.session.expires_at > now)
            .map(|s| (s.session.created_at, s.session.id.as_uuid()))
            .collect();
        live.sort_unstable_by(|a, b| b.cmp(a));
        for (_, id) in live.into_iter().skip(new.max_live_sessions as usize) {
            if let Some(s) = state.sessions.get_mut(&SessionId::from_uuid(id)) {
                s.revoked_at = Some(now);
                state.publish(Invalidation::Session(SessionId::from_uuid(id)));
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

    async fn find_live_refresh_token(
        &self,
        hash: &RefreshTokenHash,
        now: DateTime<Utc>,
    ) -> Result<Option<LiveRefreshToken>, StoreError> {
        let state = self.lock()?;
        let Some(token) = state.tokens.get(hash).filter(|t| t.used_at.is_none()) else {
            return Ok(None);
        };
        if token.record.expires_at <= now {
            return Ok(None);
        }
        let Some((session, user)) = live_session(&state, token.record.session_id, now) else {
            return Ok(None);
        };
        Ok(Some(LiveRefreshToken {
            session,
            user: Box::new(user),
            expires_at: token.record.expires_at,
            created_at: token.record.created_at,
        }))
    }

    async fn find_signin(
        &self,
        hash: &SigninHash,
        now: DateTime<Utc>,
    ) -> Result<Option<(Session, Arc<User>)>, StoreError> {
        let state = self.lock()?;
        let id = (state.sessions.values())
            .find(|s| s.signin.as_ref() == Some(hash))
            .map(|s| s.session.id);
        Ok(id
            .and_then(|id| live_session(&state, id, now))
            .map(|(session, user)| (session, Arc::new(user))))
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

/// The session `id` with its user, when the session is neither revoked nor expired at `now` and
/// the user is active.
fn live_session(state: &State, id: SessionId, now: DateTime<Utc>) -> Option<(Session, User)> {
    let stored = state.sessions.get(&id)?;
    if stored.revoked_at.is_some() || stored.session.expires_at <= now {
        return None;
    }
    let user = (state.users.iter()).find(|u| u.id == stored.session.user_id && u.is_active)?;
    Some((stored.session.clone(), user.clone()))
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
    state.publish(Invalidation::User(user_id));
    count
}

/// Revokes a session and every session started from it, at any depth; whether the session
/// itself was live.
pub(super) fn revoke_family(state: &mut State, id: SessionId, now: DateTime<Utc>) -> bool {
    let mut root = false;
    let mut revoked = Vec::new();
    let mut parents = vec![id];
    while let Some(parent) = parents.pop() {
        for s in state.sessions.values_mut() {
            let member = s.session.id == parent && parent == id;
            if s.revoked_at.is_none() && (member || s.session.parent_id == Some(parent)) {
                s.revoked_at = Some(now);
                revoked.push(s.session.id);
                root |= s.session.id == id;
                if s.session.id != id {
                    parents.push(s.session.id);
                }
            }
        }
    }
    for session in revoked {
        state.publish(Invalidation::Session(session));
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
    if let Some(used_at) = token.used_at {
        if let Some(retried) = retry(state, rotation, &token, used_at) {
            return retried;
        }
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
        presented.used_at = Some(now);
    }
    let record = RefreshTokenRecord {
        hash: rotation.next.clone(),
        session_id,
        created_at: now,
        expires_at,
    };
    let next = StoredToken {
        record,
        used_at: None,
    };
    state.tokens.insert(rotation.next.clone(), next);
    let mut session = stored.session;
    session.expires_at = expires_at;
    if let Some(stored) = state.sessions.get_mut(&session_id) {
        stored.session.expires_at = expires_at;
        stored.last_used_at = now;
    }
    RotationOutcome::Rotated {
        session,
        user: Box::new(user),
    }
}

/// A retry after a lost response (see the SQL adapters): `token`, used at `used_at`, was
/// rotated no more than `rotation.grace` ago into `rotation.next`, which is still live.
fn retry(
    state: &State,
    rotation: &Rotation,
    token: &StoredToken,
    used_at: DateTime<Utc>,
) -> Option<RotationOutcome> {
    if rotation.grace <= chrono::Duration::zero() || used_at < rotation.now - rotation.grace {
        return None;
    }
    let next = state.tokens.get(&rotation.next)?;
    let live = next.used_at.is_none()
        && next.record.session_id == token.record.session_id
        && next.record.expires_at > rotation.now;
    if !live {
        return None;
    }
    let (session, user) = live_session(state, token.record.session_id, rotation.now)?;
    Some(RotationOutcome::Retried {
        session,
        user: Box::new(user),
    })
}
