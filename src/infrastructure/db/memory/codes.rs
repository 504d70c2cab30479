//! [`AuthorizationCodeRepository`] in memory.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{MemoryStore, StoredCode};
use crate::domain::oidc::{CodeGrant, CodeHash, Redemption};
use crate::domain::ports::{AuthorizationCodeRepository, StoreError};
use crate::domain::session::SessionId;

#[async_trait]
impl AuthorizationCodeRepository for MemoryStore {
    async fn insert(&self, grant: &CodeGrant) -> Result<(), StoreError> {
        let mut state = self.lock()?;
        if state.codes.contains_key(&grant.hash) {
            return Err(StoreError::Other(
                "authorization code hash collision".into(),
            ));
        }
        let stored = StoredCode {
            grant: grant.clone(),
            redeemed_by: None,
            replayed: false,
        };
        state.codes.insert(grant.hash.clone(), stored);
        Ok(())
    }

    async fn redeem(
        &self,
        hash: &CodeHash,
        session_id: SessionId,
        now: DateTime<Utc>,
    ) -> Result<Redemption, StoreError> {
        let mut state = self.lock()?;
        let Some(code) = state.codes.get_mut(hash) else {
            return Ok(Redemption::Unknown);
        };
        if let Some(first) = code.redeemed_by {
            code.replayed = true;
            return Ok(Redemption::Replayed { session_id: first });
        }
        if code.grant.expires_at <= now {
            return Ok(Redemption::Unknown);
        }
        code.redeemed_by = Some(session_id);
        Ok(Redemption::Fresh(Box::new(code.grant.clone())))
    }

    async fn was_replayed(&self, hash: &CodeHash) -> Result<bool, StoreError> {
        Ok(self.lock()?.codes.get(hash).is_some_and(|c| c.replayed))
    }
}
