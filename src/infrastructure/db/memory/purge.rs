//! [`Purge`] in memory, counting rows as the databases do: a session's refresh tokens go with
//! it uncounted, like a cascading delete.

use async_trait::async_trait;

use super::MemoryStore;
use crate::domain::ports::{Purge, PurgeCutoffs, StoreError};

#[async_trait]
impl Purge for MemoryStore {
    async fn purge(&self, cutoffs: &PurgeCutoffs) -> Result<u64, StoreError> {
        let (now, revoked_before) = (cutoffs.now, cutoffs.revoked_before);
        let mut guard = self.lock()?;
        let state = &mut *guard;
        let mut removed = 0;
        let mut count = |before: usize, after: usize| removed += (before - after) as u64;

        let before = state.sessions.len();
        state.sessions.retain(|_, s| {
            s.session.expires_at >= now && s.revoked_at.is_none_or(|at| at >= revoked_before)
        });
        count(before, state.sessions.len());
        let sessions = &state.sessions;
        state
            .tokens
            .retain(|_, t| sessions.contains_key(&t.record.session_id));

        let before = state.tokens.len();
        state.tokens.retain(|_, t| t.record.expires_at >= now);
        count(before, state.tokens.len());

        let before = state.codes.len();
        state
            .codes
            .retain(|_, c| c.grant.expires_at >= revoked_before);
        count(before, state.codes.len());

        let before = state.audit.len();
        state.audit.retain(|e| e.at >= cutoffs.audit_before);
        count(before, state.audit.len());

        let before = state.throttle.len();
        state.throttle.retain(|_, t| {
            t.updated_at >= cutoffs.throttle_before
                || t.locked_until.is_some_and(|until| until >= now)
        });
        count(before, state.throttle.len());
        removed += super::mail::purge(state, now, revoked_before);
        Ok(removed)
    }
}
