//! [`LoginThrottle`] in memory: the counters are loaded and stored around the one domain call,
//! [`ThrottleChange::apply`], under the store's lock.

use async_trait::async_trait;

use super::MemoryStore;
use crate::domain::ports::{LoginThrottle, StoreError, ThrottleChange, ThrottleOutcome};
use crate::domain::user::LoginKey;

#[async_trait]
impl LoginThrottle for MemoryStore {
    async fn apply(
        &self,
        key: &LoginKey,
        change: ThrottleChange,
    ) -> Result<ThrottleOutcome, StoreError> {
        let mut state = self.lock()?;
        let stored = state.throttle.get(key.as_str()).copied();
        let (next, outcome) = change.apply(stored);
        match next {
            Some(next) => state.throttle.insert(key.as_str().to_owned(), next),
            None => state.throttle.remove(key.as_str()),
        };
        Ok(outcome)
    }
}
