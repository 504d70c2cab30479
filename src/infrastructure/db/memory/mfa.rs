//! [`MfaRepository`] in memory: each method under the store's one lock.

use crate::domain::session::Invalidation;
use std::collections::HashSet;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{MemoryStore, State};
use crate::domain::mfa::{
    MfaRepository, PendingSignin, PendingSigninHash, RecoveryCodeHash, SealedSecret,
    TotpCredential, TotpStep,
};
use crate::domain::ports::StoreError;
use crate::domain::user::UserId;

/// Second-factor rows of the in-memory store.
#[derive(Default)]
pub(super) struct MfaTables {
    totp: std::collections::HashMap<UserId, TotpCredential>,
    recovery: std::collections::HashMap<UserId, HashSet<RecoveryCodeHash>>,
    pending: std::collections::HashMap<PendingSigninHash, PendingSignin>,
}

impl MfaTables {
    /// Drops everything of `user` (what the databases' ON DELETE CASCADE does).
    pub(super) fn forget_user(&mut self, user: UserId) {
        self.totp.remove(&user);
        self.recovery.remove(&user);
        self.pending.retain(|_, p| p.user_id != user);
    }
}

/// Applies `change` to the stored user's MFA summary; false when there is no such user.
fn update_user(
    state: &mut State,
    user: UserId,
    now: DateTime<Utc>,
    change: impl FnOnce(&mut crate::domain::user::MfaSummary),
) -> bool {
    match state.users.iter_mut().find(|u| u.id == user) {
        Some(stored) => {
            change(&mut stored.mfa);
            stored.updated_at = now;
            state.publish(Invalidation::User(user));
            true
        }
        None => false,
    }
}

#[async_trait]
impl MfaRepository for MemoryStore {
    async fn store_pending_totp(
        &self,
        user: UserId,
        sealed: &SealedSecret,
        _now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut state = self.lock()?;
        if !state.users.iter().any(|u| u.id == user) {
            return Err(StoreError::Other(format!("no user {user}")));
        }
        if state.mfa.totp.get(&user).is_some_and(|t| t.confirmed) {
            return Ok(false);
        }
        let credential = TotpCredential {
            sealed: sealed.clone(),
            confirmed: false,
            last_step: None,
        };
        state.mfa.totp.insert(user, credential);
        Ok(true)
    }

    async fn find_totp(&self, user: UserId) -> Result<Option<TotpCredential>, StoreError> {
        Ok(self.lock()?.mfa.totp.get(&user).cloned())
    }

    async fn confirm_totp(
        &self,
        user: UserId,
        sealed: &SealedSecret,
        step: TotpStep,
        codes: &[RecoveryCodeHash],
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut state = self.lock()?;
        let Some(credential) = state.mfa.totp.get_mut(&user) else {
            return Ok(false);
        };
        if credential.confirmed || credential.sealed != *sealed {
            return Ok(false);
        }
        credential.confirmed = true;
        credential.last_step = Some(step);
        let codes: HashSet<RecoveryCodeHash> = codes.iter().cloned().collect();
        let left = u32::try_from(codes.len()).unwrap_or(0);
        state.mfa.recovery.insert(user, codes);
        update_user(&mut state, user, now, |mfa| {
            mfa.totp = true;
            mfa.recovery_codes_left = left;
        });
        Ok(true)
    }

    async fn accept_totp_step(&self, user: UserId, step: TotpStep) -> Result<bool, StoreError> {
        let mut state = self.lock()?;
        match state.mfa.totp.get_mut(&user) {
            Some(credential)
                if credential.confirmed && credential.last_step.is_none_or(|last| last < step) =>
            {
                credential.last_step = Some(step);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn use_recovery_code(
        &self,
        user: UserId,
        code: &RecoveryCodeHash,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut state = self.lock()?;
        let removed = state
            .mfa
            .recovery
            .get_mut(&user)
            .is_some_and(|codes| codes.remove(code));
        if removed {
            update_user(&mut state, user, now, |mfa| {
                mfa.recovery_codes_left = mfa.recovery_codes_left.saturating_sub(1);
            });
        }
        Ok(removed)
    }

    async fn remove_totp(&self, user: UserId, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let mut state = self.lock()?;
        state.mfa.totp.remove(&user);
        state.mfa.recovery.remove(&user);
        Ok(update_user(&mut state, user, now, |mfa| {
            mfa.totp = false;
            mfa.recovery_codes_left = 0;
        }))
    }

    async fn insert_pending_signin(&self, pending: &PendingSignin) -> Result<(), StoreError> {
        let mut state = self.lock()?;
        let now = pending.created_at;
        state.mfa.pending.retain(|_, p| p.expires_at > now);
        if state.mfa.pending.contains_key(&pending.hash) {
            return Err(StoreError::Other("pending sign-in hash collision".into()));
        }
        state
            .mfa
            .pending
            .insert(pending.hash.clone(), pending.clone());
        Ok(())
    }

    async fn find_pending_signin(
        &self,
        hash: &PendingSigninHash,
        now: DateTime<Utc>,
    ) -> Result<Option<PendingSignin>, StoreError> {
        let state = self.lock()?;
        Ok(state
            .mfa
            .pending
            .get(hash)
            .filter(|p| p.expires_at > now)
            .cloned())
    }

    async fn take_pending_signin(
        &self,
        hash: &PendingSigninHash,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut state = self.lock()?;
        match state.mfa.pending.get(hash) {
            Some(p) if p.expires_at > now => {
                state.mfa.pending.remove(hash);
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}
