//! [`RateBudget`] on PostgreSQL: one UNLOGGED row per key holding its GCRA state (the
//! theoretical arrival time, microseconds since the epoch), taken from in one statement.
//!
//! The statement is [`RateQuota::take`] written in SQL: a new key is inserted with what it
//! grants; an existing one is updated only when a token is left (the `WHERE`), under the row
//! lock of `ON CONFLICT DO UPDATE`, so calls from every replica are serialised per key. The row
//! keeps the last grant (`granted`) so that `RETURNING` can say it; no row back means refused.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{store_error, PgStore};
use crate::domain::ports::{Grant, RateBudget, RateQuota, StoreError};
use crate::domain::rate_limit::epoch_micros;

/// $1 key, $2 now, $3 interval (both µs), $4 burst, $5 tokens asked for. Answers the tokens
/// granted (first column), or, when refused, the wait for the next one (second column): the
/// second `SELECT` reads the row in the statement's snapshot (a data-modifying CTE's changes are
/// not visible to it). Under a race that snapshot may predate the version the upsert was judged
/// on (another replica's take committed meanwhile), so the wait is only a hint, clamped to one
/// interval, and never read as a grant.
const TAKE: &str = "WITH taken AS (
         INSERT INTO rate_limits AS r (key, tat, granted)
         VALUES ($1, $2 + LEAST($5, $4) * $3, LEAST($5, $4))
         ON CONFLICT (key) DO UPDATE SET
             granted = LEAST($5, ($2 + $4 * $3 - GREATEST(r.tat, $2)) / $3),
             tat = GREATEST(r.tat, $2) + LEAST($5, ($2 + $4 * $3 - GREATEST(r.tat, $2)) / $3) * $3
         WHERE $2 + $4 * $3 - GREATEST(r.tat, $2) >= $3
         RETURNING granted)
     SELECT granted, NULL::bigint FROM taken
     UNION ALL
     SELECT NULL::bigint, tat + $3 - $4 * $3 - $2 FROM rate_limits
     WHERE key = $1 AND NOT EXISTS (SELECT 1 FROM taken)";

#[async_trait]
impl RateBudget for PgStore {
    async fn take(
        &self,
        key: &str,
        quota: RateQuota,
        want: u32,
        now: DateTime<Utc>,
    ) -> Result<Grant, StoreError> {
        let interval = quota.interval_micros();
        let answer: Option<(Option<i64>, Option<i64>)> = sqlx::query_as(TAKE)
            .bind(key)
            .bind(epoch_micros(now))
            .bind(interval)
            .bind(i64::from(quota.burst.max(1)))
            .bind(i64::from(want.max(1)))
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(match answer {
            Some((Some(granted), _)) if granted > 0 => {
                Grant::Granted(u32::try_from(granted).unwrap_or(1))
            }
            // The next token comes within one interval (see `RateQuota::take`).
            Some((_, wait)) => Grant::Refused {
                retry_after_micros: wait.map_or(interval, |w| w.clamp(1, interval)),
            },
            // Refused while the row another replica inserted is not in this snapshot yet.
            None => Grant::Refused {
                retry_after_micros: interval,
            },
        })
    }
}
