//! [`Purge`] on SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::params_from_iter;

use super::{micros, store_error, SqliteStore};
use crate::domain::ports::{Purge, StoreError};

#[async_trait]
impl Purge for SqliteStore {
    async fn purge(
        &self,
        now: DateTime<Utc>,
        revoked_before: DateTime<Utc>,
        audit_before: DateTime<Utc>,
        throttle_before: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let (now, revoked_before, audit_before, throttle_before) = (
            micros(now),
            micros(revoked_before),
            micros(audit_before),
            micros(throttle_before),
        );
        // On the writer thread, never on the async workers: possibly millions of rows.
        let removed = self.write(move |tx| {
            let statements: [(&str, Vec<i64>); 4] = [
                // Refresh tokens go with their session (ON DELETE CASCADE).
                (
                    "DELETE FROM sessions WHERE expires_at < ? OR revoked_at < ?",
                    vec![now, revoked_before],
                ),
                ("DELETE FROM refresh_tokens WHERE expires_at < ?", vec![now]),
                ("DELETE FROM audit_events WHERE at < ?", vec![audit_before]),
                (
                    "DELETE FROM login_throttle WHERE updated_at < ? AND (locked_until IS NULL OR locked_until < ?)",
                    vec![throttle_before, now],
                ),
            ];
            let mut removed = 0;
            for (sql, values) in statements {
                removed += tx
                    .execute(sql, params_from_iter(values))
                    .map_err(store_error)? as u64;
            }
            Ok(removed)
        })
        .await;
        // Only expired or long-revoked sessions go, which the cache would not answer for
        // anyway; emptied regardless, as the purge is rare.
        self.sessions.clear();
        removed
    }
}
