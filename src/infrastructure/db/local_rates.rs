//! [`RateBudget`] held in this process: SQLite's (one process serves a SQLite database, so its
//! budgets need no table) and the in-memory store's. The same GCRA as the shared stores.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::ports::{Grant, RateBudget, RateQuota, StoreError};
use crate::domain::rate_limit::epoch_micros;

/// Keys kept before the refilled ones (whose state is a full budget anyway) are dropped.
const PRUNE_ABOVE: usize = 100_000;

/// Per-key theoretical arrival times, in a map behind one lock.
#[derive(Default)]
pub struct LocalBudget {
    tats: Mutex<HashMap<String, i64>>,
}

#[async_trait]
impl RateBudget for LocalBudget {
    async fn take(
        &self,
        key: &str,
        quota: RateQuota,
        want: u32,
        now: DateTime<Utc>,
    ) -> Result<Grant, StoreError> {
        let now = epoch_micros(now);
        let mut tats = self
            .tats
            .lock()
            .map_err(|_| StoreError::Other("rate budget lock poisoned".into()))?;
        if tats.len() > PRUNE_ABOVE {
            tats.retain(|_, tat| *tat > now);
        }
        let (next, grant) = quota.take(tats.get(key).copied(), now, want);
        if let Some(next) = next {
            tats.insert(key.to_owned(), next);
        }
        Ok(grant)
    }

    fn is_shared(&self) -> bool {
        false
    }
}
