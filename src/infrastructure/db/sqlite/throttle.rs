//! [`LoginThrottle`] on SQLite: the counters are loaded and stored around the one domain call,
//! [`ThrottleChange::apply`], in one writer job.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};

use super::{micros, store_error, time, SqliteStore};
use crate::domain::ports::{
    LoginThrottle, StoreError, ThrottleChange, ThrottleOutcome, ThrottleState,
};
use crate::domain::user::LoginKey;

#[async_trait]
impl LoginThrottle for SqliteStore {
    async fn apply(
        &self,
        key: &LoginKey,
        change: ThrottleChange,
    ) -> Result<ThrottleOutcome, StoreError> {
        let key = key.as_str().to_owned();
        // On the writer thread, one job at a time: the read, the policy and the write are one
        // atomic step.
        self.write(move |tx| {
            let stored = tx
                .prepare_cached(
                    "SELECT failures, pending, locks, locked_until, updated_at
                     FROM login_throttle WHERE login_key = ?",
                )
                .and_then(|mut s| {
                    s.query_row([&key], |row| {
                        Ok(ThrottleState {
                            failures: row.get(0)?,
                            pending: row.get(1)?,
                            locks: row.get(2)?,
                            locked_until: row.get::<_, Option<i64>>(3)?.map(time).transpose()?,
                            updated_at: time(row.get(4)?)?,
                        })
                    })
                    .optional()
                })
                .map_err(store_error)?;
            let (next, outcome) = change.apply(stored);
            if next == stored {
                return Ok(outcome);
            }
            match next {
                Some(state) => tx
                    .prepare_cached(
                        "INSERT INTO login_throttle (login_key, failures, pending, locks, locked_until, updated_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                         ON CONFLICT (login_key) DO UPDATE SET failures = ?2, pending = ?3, locks = ?4,
                             locked_until = ?5, updated_at = ?6",
                    )
                    .and_then(|mut s| {
                        s.execute(params![
                            key,
                            state.failures,
                            state.pending,
                            state.locks,
                            state.locked_until.map(micros),
                            micros(state.updated_at),
                        ])
                    }),
                None => tx
                    .prepare_cached("DELETE FROM login_throttle WHERE login_key = ?")
                    .and_then(|mut s| s.execute([&key])),
            }
            .map_err(store_error)?;
            Ok(outcome)
        })
        .await
    }
}
