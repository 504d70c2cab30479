//! [`AuditLog`] in memory.

use async_trait::async_trait;

use super::MemoryStore;
use crate::domain::audit::{AuditEvent, AuditFilter};
use crate::domain::ports::{AuditLog, StoreError};

#[async_trait]
impl AuditLog for MemoryStore {
    async fn record(&self, event: &AuditEvent) -> Result<(), StoreError> {
        self.lock()?.audit.push(event.clone());
        Ok(())
    }

    async fn list(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError> {
        let state = self.lock()?;
        let mut events: Vec<&AuditEvent> = (state.audit.iter())
            .filter(|e| filter.user_id.is_none_or(|id| e.user_id == Some(id)))
            .filter(|e| filter.kind.is_none_or(|kind| e.kind == kind))
            .filter(|e| filter.before.is_none_or(|before| e.at < before))
            .collect();
        // Newest first, ties broken by id, as the databases order them.
        events.sort_unstable_by_key(|e| std::cmp::Reverse((e.at, e.id)));
        Ok(events
            .into_iter()
            .take(filter.limit as usize)
            .cloned()
            .collect())
    }
}
