//! [`LoginThrottle`] in memory: the counters are loaded and stored around the one domain call,
//! [`LockoutPolicy::apply`], under the store's lock.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::MemoryStore;
use crate::domain::ports::{
    LockoutPolicy, LoginThrottle, StoreError, ThrottleEvent, ThrottleOutcome,
};
use crate::domain::user::LoginKey;

#[async_trait]
impl LoginThrottle for MemoryStore {
    async fn apply(
        &self,
        key: &LoginKey,
        event: ThrottleEvent,
        policy: &LockoutPolicy,
        now: DateTime<Utc>,
    ) -> Result<ThrottleOutcome, StoreError> {
        let mut state = self.lock()?;
        let stored = state.throttle.get(key.as_str()).copied();
        let (next, outcome) = policy.apply(stored, event, now);
        match next {
            Some(next) => state.throttle.insert(key.as_str().to_owned(), next),
            None => state.throttle.remove(key.as_str()),
        };
        Ok(outcome)
    }
}
