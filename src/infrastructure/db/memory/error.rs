//! The one failure of the in-memory store: a port method that panicked while holding the lock
//! left the data possibly half-changed, so every later call reports [`StoreError::Other`].

use std::sync::MutexGuard;

use super::{MemoryStore, State};
use crate::domain::ports::StoreError;

impl MemoryStore {
    /// The store's data, for one atomic step.
    pub(super) fn lock(&self) -> Result<MutexGuard<'_, State>, StoreError> {
        self.state
            .lock()
            .map_err(|_| StoreError::Other("the in-memory store was poisoned by a panic".into()))
    }
}
