//! The per-client request budget, written once: GCRA (the generic cell rate algorithm), whose
//! whole state per key is one instant, the theoretical arrival time (TAT). Stores keep that
//! instant and apply [`RateQuota::take`] to it atomically (see [`RateBudget::take`]), so every
//! replica draws from one budget.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::ports::StoreError;

/// A budget: `burst` requests at once, refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateQuota {
    pub per_second: u32,
    pub burst: u32,
}

/// What [`RateQuota::take`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// This many tokens (at least 1, at most the number asked for) were taken.
    Granted(u32),
    /// No token is left; the next one comes within `retry_after_micros`.
    Refused { retry_after_micros: i64 },
}

impl RateQuota {
    /// The time one token takes to come back, in microseconds (at least 1).
    pub fn interval_micros(&self) -> i64 {
        (1_000_000 / i64::from(self.per_second.max(1))).max(1)
    }

    /// GCRA: takes up to `want` tokens (at least 1 is asked for) from the key whose stored
    /// theoretical arrival time is `tat` (microseconds since the epoch; `None`: a new key, a
    /// full budget), at `now`. Returns the TAT to store (`None`: nothing changes) and the
    /// answer. A partial grant (fewer tokens left than asked for) takes what is left.
    pub fn take(&self, tat: Option<i64>, now: i64, want: u32) -> (Option<i64>, Grant) {
        let interval = self.interval_micros();
        let burst = i64::from(self.burst.max(1));
        let want = i64::from(want.max(1));
        let start = tat.map_or(now, |tat| tat.max(now));
        let available = (now + burst * interval - start) / interval;
        if available < 1 {
            // `start` is never beyond `now + burst * interval`: the next token comes in at most
            // one interval.
            let retry = (start + interval - burst * interval - now).clamp(1, interval);
            return (
                None,
                Grant::Refused {
                    retry_after_micros: retry,
                },
            );
        }
        let granted = want.min(available);
        (
            Some(start + granted * interval),
            Grant::Granted(u32::try_from(granted).unwrap_or(1)),
        )
    }
}

/// Microseconds since the epoch of `at`.
pub fn epoch_micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

/// The per-key request budgets ([`RateQuota::take`]), in the shared store so that every replica
/// draws from the same budget.
#[async_trait]
pub trait RateBudget: Send + Sync {
    /// Takes up to `want` tokens of `key`'s budget under `quota` at `now`, as one atomic
    /// read-modify-write: concurrent calls for one key, from any replica, never take more than
    /// the budget holds.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`]; nothing is taken then.
    async fn take(
        &self,
        key: &str,
        quota: RateQuota,
        want: u32,
        now: DateTime<Utc>,
    ) -> Result<Grant, StoreError>;

    /// Whether the budgets are shared by every process of the deployment (PostgreSQL, Redis),
    /// rather than held by this process alone (SQLite, memory: one process).
    fn is_shared(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: RateQuota = RateQuota {
        per_second: 10,
        burst: 3,
    };

    #[test]
    fn a_new_key_has_a_full_burst_then_refills_at_the_rate() {
        let now = 1_000_000_000;
        let (tat, grant) = Q.take(None, now, 1);
        assert_eq!(grant, Grant::Granted(1));
        let (tat, grant) = Q.take(tat, now, 5);
        assert_eq!(
            grant,
            Grant::Granted(2),
            "partial: what is left of the burst"
        );
        let (same, grant) = Q.take(tat, now, 1);
        assert_eq!(same, None);
        assert_eq!(
            grant,
            Grant::Refused {
                retry_after_micros: 100_000
            }
        );
        let (_, grant) = Q.take(tat, now + 100_000, 2);
        assert_eq!(
            grant,
            Grant::Granted(1),
            "one interval brings one token back"
        );
        let (_, grant) = Q.take(tat, now + 10_000_000, 9);
        assert_eq!(grant, Grant::Granted(3), "never more than the burst");
    }
}
