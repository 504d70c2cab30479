//! [`Purge`] on PostgreSQL, in bounded statements.
//!
//! Each statement deletes at most [`PURGE_CHUNK`] rows and commits on its own, and is repeated
//! until a table has nothing left to delete: a purge of millions of rows then never runs into
//! the per-connection `statement_timeout` (which would fail it at every run), nor holds the
//! locks of every deleted row, or a transaction that keeps vacuum from the table, until it
//! ends. Unlike SQLite's single writer, PostgreSQL lets other writes run beside it.
//!
//! Rows are counted as before: a session's refresh tokens go with it by `ON DELETE CASCADE`,
//! uncounted.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{store_error, PgStore};
use crate::domain::ports::{Purge, PurgeCutoffs, StoreError};

/// The most rows one statement of the purge deletes.
const PURGE_CHUNK: i64 = 5_000;

#[async_trait]
impl Purge for PgStore {
    async fn purge(&self, cutoffs: &PurgeCutoffs) -> Result<u64, StoreError> {
        let PurgeCutoffs {
            now,
            revoked_before,
            audit_before,
            throttle_before,
        } = *cutoffs;
        // Each: the table, and the condition of its rows that go with the values of $2 and on
        // ($1 is the chunk). The rows' ids are collected first (`ctid`, the row's physical
        // address, read back by a TID scan).
        let steps: [(&str, &str, &[DateTime<Utc>]); 7] = [
            (
                "sessions",
                "expires_at < $2 OR revoked_at < $3",
                &[now, revoked_before],
            ),
            ("refresh_tokens", "expires_at < $2", &[now]),
            // Kept until `revoked_before` after their expiry: a late replay still finds the
            // session the first redemption started.
            ("authorization_codes", "expires_at < $2", &[revoked_before]),
            ("audit_events", "at < $2", &[audit_before]),
            (
                "login_throttle",
                "updated_at < $2 AND (locked_until IS NULL OR locked_until < $3)",
                &[throttle_before, now],
            ),
            // Mail: tokens once expired (used or not), mails once sent and kept as long as
            // revoked sessions (unsent mails are never purged).
            ("mail_tokens", "expires_at < $2", &[now]),
            ("mail_outbox", "sent_at < $2", &[revoked_before]),
        ];
        let mut removed = 0;
        for (table, condition, values) in steps {
            let sql = format!(
                "DELETE FROM {table} WHERE ctid = ANY(ARRAY(
                     SELECT ctid FROM {table} WHERE {condition} LIMIT $1))"
            );
            loop {
                let mut query = sqlx::query(&sql).bind(PURGE_CHUNK);
                for value in values {
                    query = query.bind(*value);
                }
                let deleted = query
                    .execute(&self.pool)
                    .await
                    .map_err(store_error)?
                    .rows_affected();
                removed += deleted;
                if deleted < PURGE_CHUNK as u64 {
                    break;
                }
            }
        }
        // Only expired or long-revoked sessions go, which the cache would not answer for
        // anyway; emptied regardless, as SQLite does (the purge is rare).
        self.sessions.clear();
        // Rate-limit keys whose budget is full again (their TAT has passed): the same as no
        // row (issue 15). Microseconds, so outside the table of timestamps above.
        loop {
            let deleted = sqlx::query(
                "DELETE FROM rate_limits WHERE ctid = ANY(ARRAY(
                     SELECT ctid FROM rate_limits WHERE tat < $2 LIMIT $1))",
            )
            .bind(PURGE_CHUNK)
            .bind(now.timestamp_micros())
            .execute(&self.pool)
            .await
            .map_err(store_error)?
            .rows_affected();
            removed += deleted;
            if deleted < PURGE_CHUNK as u64 {
                break;
            }
        }
        Ok(removed)
    }
}
