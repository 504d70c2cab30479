//! [`LoginThrottle`] on PostgreSQL: the counters are loaded and stored around the one domain
//! call, [`ThrottleChange::apply`], in one transaction holding the key's row lock.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{store_error, PgStore};
use crate::domain::ports::{
    LoginThrottle, StoreError, ThrottleChange, ThrottleOutcome, ThrottleState,
};
use crate::domain::user::LoginKey;

#[async_trait]
impl LoginThrottle for PgStore {
    async fn apply(
        &self,
        key: &LoginKey,
        change: ThrottleChange,
    ) -> Result<ThrottleOutcome, StoreError> {
        type Row = (i32, i32, i32, Option<DateTime<Utc>>, DateTime<Utc>, bool);
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        // The no-op upsert locks the key's row (creating it if absent) until commit: calls for
        // one key from every replica queue here, so read, policy and write are one step.
        let (failures, pending, locks, locked_until, updated_at, created): Row = sqlx::query_as(
            "INSERT INTO login_throttle (login_key, failures, pending, locks, updated_at)
             VALUES ($1, 0, 0, 0, $2)
             ON CONFLICT (login_key) DO UPDATE SET login_key = excluded.login_key
             RETURNING failures, pending, locks, locked_until, updated_at, (xmax = 0)",
        )
        .bind(key.as_str())
        .bind(change.now)
        .fetch_one(&mut *tx)
        .await
        .map_err(store_error)?;
        let count = |n: i32| u32::try_from(n).unwrap_or_default();
        let stored = (!created).then_some(ThrottleState {
            failures: count(failures),
            pending: count(pending),
            locks: count(locks),
            locked_until,
            updated_at,
        });
        let (next, outcome) = change.apply(stored);
        if !created && next == stored {
            // Refused or busy: nothing changes.
            tx.commit().await.map_err(store_error)?;
            return Ok(outcome);
        }
        let signed = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
        match next {
            Some(state) => sqlx::query(
                "UPDATE login_throttle SET failures = $2, pending = $3, locks = $4,
                 locked_until = $5, updated_at = $6 WHERE login_key = $1",
            )
            .bind(key.as_str())
            .bind(signed(state.failures))
            .bind(signed(state.pending))
            .bind(signed(state.locks))
            .bind(state.locked_until)
            .bind(state.updated_at),
            None => {
                sqlx::query("DELETE FROM login_throttle WHERE login_key = $1").bind(key.as_str())
            }
        }
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(outcome)
    }
}
