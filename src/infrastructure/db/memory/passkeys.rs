//! [`PasskeyRepository`] in memory.

use crate::domain::session::Invalidation;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::MemoryStore;
use crate::domain::passkey::{
    AddOutcome, Ceremony, CeremonyId, CeremonyKind, Passkey, PasskeyId, PasskeyRepository,
};
use crate::domain::ports::StoreError;
use crate::domain::user::UserId;

#[async_trait]
impl PasskeyRepository for MemoryStore {
    async fn insert_ceremony(&self, ceremony: &Ceremony) -> Result<(), StoreError> {
        self.lock()?
            .ceremonies
            .insert(ceremony.id, ceremony.clone());
        Ok(())
    }

    async fn take_ceremony(
        &self,
        id: CeremonyId,
        kind: CeremonyKind,
        user_id: Option<UserId>,
        now: DateTime<Utc>,
    ) -> Result<Option<Ceremony>, StoreError> {
        let taken = self.lock()?.ceremonies.remove(&id);
        Ok(taken.filter(|c| c.kind == kind && c.user_id == user_id && c.expires_at > now))
    }

    async fn add_passkey(&self, passkey: &Passkey, max: u32) -> Result<AddOutcome, StoreError> {
        let mut state = self.lock()?;
        if state
            .passkeys
            .iter()
            .any(|p| p.credential_id == passkey.credential_id)
        {
            return Ok(AddOutcome::Duplicate);
        }
        let Some(user) = state.users.iter_mut().find(|u| u.id == passkey.user_id) else {
            return Ok(AddOutcome::NoSuchUser);
        };
        if user.mfa.passkeys >= max {
            return Ok(AddOutcome::LimitReached);
        }
        user.mfa.passkeys += 1;
        state.passkeys.push(passkey.clone());
        state.publish(Invalidation::User(passkey.user_id));
        Ok(AddOutcome::Added)
    }

    async fn list_passkeys(&self, user_id: UserId) -> Result<Vec<Passkey>, StoreError> {
        let state = self.lock()?;
        let mut found: Vec<Passkey> = state
            .passkeys
            .iter()
            .filter(|p| p.user_id == user_id)
            .cloned()
            .collect();
        found.sort_by_key(|p| (p.created_at, p.id));
        Ok(found)
    }

    async fn find_by_credential_id(
        &self,
        credential_id: &str,
    ) -> Result<Option<Passkey>, StoreError> {
        let state = self.lock()?;
        Ok(state
            .passkeys
            .iter()
            .find(|p| p.credential_id == credential_id)
            .cloned())
    }

    async fn record_use(
        &self,
        id: PasskeyId,
        credential: &str,
        sign_count: u32,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut state = self.lock()?;
        let Some(passkey) = state.passkeys.iter_mut().find(|p| p.id == id) else {
            return Ok(false);
        };
        if !(passkey.sign_count < sign_count || (passkey.sign_count == 0 && sign_count == 0)) {
            return Ok(false);
        }
        passkey.credential = credential.to_owned();
        passkey.sign_count = sign_count;
        passkey.last_used_at = Some(now);
        Ok(true)
    }

    async fn delete_passkey(&self, user_id: UserId, id: PasskeyId) -> Result<bool, StoreError> {
        let mut state = self.lock()?;
        let before = state.passkeys.len();
        state
            .passkeys
            .retain(|p| !(p.id == id && p.user_id == user_id));
        if state.passkeys.len() == before {
            return Ok(false);
        }
        if let Some(user) = state.users.iter_mut().find(|u| u.id == user_id) {
            user.mfa.passkeys = user.mfa.passkeys.saturating_sub(1);
        }
        state.publish(Invalidation::User(user_id));
        Ok(true)
    }

    async fn purge_ceremonies(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut state = self.lock()?;
        let before = state.ceremonies.len();
        state.ceremonies.retain(|_, c| c.expires_at > now);
        Ok((before - state.ceremonies.len()) as u64)
    }
}
