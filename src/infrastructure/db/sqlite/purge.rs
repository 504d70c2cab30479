//! [`Purge`] on SQLite, in bounded steps on the single writer.
//!
//! A purge may have millions of rows to delete. Deleted in one writer job, it held the only
//! write connection for the whole time, and every login, refresh and audit event queued
//! behind it waited (and timed out after the acquire timeout). So each table is walked in
//! windows of [`SqliteStore::purge_chunk`] consecutive rowids, each window its own short
//! writer job: other writes are committed between two windows. A window examines at most that
//! many rows, through the rowid (no scan of a column without an index, such as
//! `sessions.revoked_at`), and the walk runs from the table's lowest rowid to its highest as
//! the purge began (rows added since are new, not due for deletion).
//!
//! Rows are counted as the one-statement purge counted them: a session's refresh tokens went
//! with it by `ON DELETE CASCADE`, uncounted. They are deleted first here, window by window
//! (a session can hold thousands of used tokens, which a cascade would delete in one job),
//! still uncounted; then the expired tokens of the sessions that stay, counted.

use async_trait::async_trait;
use rusqlite::params_from_iter;

use super::{micros, store_error, SqliteStore};
use crate::domain::ports::{Purge, PurgeCutoffs, StoreError};

/// What one purge deletes from one table, per window of rowids (`?1 < rowid <= ?2`), with
/// `?3` and `?4` the step's two times (a statement may use only the first). Every statement runs; the last one's rows are counted.
struct Step {
    table: &'static str,
    statements: &'static [&'static str],
}

const STEPS: [Step; 4] = [
    Step {
        table: "refresh_tokens",
        statements: &[
            // The tokens of the sessions deleted below (uncounted, as a cascade would be).
            "DELETE FROM refresh_tokens WHERE rowid > ?1 AND rowid <= ?2
               AND EXISTS (SELECT 1 FROM sessions s WHERE s.id = refresh_tokens.session_id
                             AND (s.expires_at < ?3 OR s.revoked_at < ?4))",
            "DELETE FROM refresh_tokens WHERE rowid > ?1 AND rowid <= ?2 AND expires_at < ?3",
        ],
    },
    Step {
        table: "sessions",
        statements: &["DELETE FROM sessions WHERE rowid > ?1 AND rowid <= ?2
                         AND (expires_at < ?3 OR revoked_at < ?4)"],
    },
    Step {
        table: "audit_events",
        statements: &["DELETE FROM audit_events WHERE rowid > ?1 AND rowid <= ?2 AND at < ?3"],
    },
    Step {
        table: "login_throttle",
        statements: &["DELETE FROM login_throttle WHERE rowid > ?1 AND rowid <= ?2
                         AND updated_at < ?3 AND (locked_until IS NULL OR locked_until < ?4)"],
    },
];

/// How many consecutive rowids one writer job of the purge covers, unless a test sets
/// [`SqliteStore::purge_chunk`] smaller. The write that waits longest behind the purge waits
/// about one window: measured with the purge test's data (debug build, a shared 2-core
/// machine), at most 90 ms with windows of 5,000 rowids and 22 ms with 500. A purge of a
/// million rows is then a thousand jobs, whose own overhead (a queue hop, a savepoint) is
/// negligible beside the deletes.
pub(super) const PURGE_CHUNK: i64 = 1_000;

#[async_trait]
impl Purge for SqliteStore {
    async fn purge(&self, cutoffs: &PurgeCutoffs) -> Result<u64, StoreError> {
        let (now, revoked_before) = (micros(cutoffs.now), micros(cutoffs.revoked_before));
        let times = [
            (now, revoked_before),
            (now, revoked_before),
            (micros(cutoffs.audit_before), 0),
            (micros(cutoffs.throttle_before), now),
        ];
        let mut removed = 0;
        let mut outcome = Ok(());
        for (step, (first, second)) in STEPS.iter().zip(times) {
            match self.purge_table(step, first, second).await {
                Ok(count) => removed += count,
                Err(error) => {
                    outcome = Err(error);
                    break;
                }
            }
        }
        // Only expired or long-revoked sessions go, which the cache would not answer for
        // anyway; emptied regardless (even after a failure part-way), as the purge is rare.
        self.sessions.clear();
        outcome.map(|()| removed)
    }
}

impl SqliteStore {
    /// One step of the purge, window by window; how many rows its counted statement deleted.
    async fn purge_table(
        &self,
        step: &'static Step,
        first: i64,
        second: i64,
    ) -> Result<u64, StoreError> {
        let bounds = format!("SELECT min(rowid) - 1, max(rowid) FROM {}", step.table);
        let (low, high): (Option<i64>, Option<i64>) = self
            .read(move |reader| reader.query_row(&bounds, [], |row| Ok((row.get(0)?, row.get(1)?))))
            .await?;
        let (Some(mut from), Some(high)) = (low, high) else {
            return Ok(0); // an empty table
        };
        let chunk = self.purge_chunk.max(1);
        let mut removed = 0;
        while from < high {
            let to = from.saturating_add(chunk).min(high);
            removed += self
                .write(move |tx| {
                    let mut counted = 0;
                    for sql in step.statements {
                        let mut statement = tx.prepare_cached(sql).map_err(store_error)?;
                        let values = [from, to, first, second];
                        let used = values.iter().take(statement.parameter_count());
                        counted = statement
                            .execute(params_from_iter(used))
                            .map_err(store_error)?;
                    }
                    Ok(counted as u64)
                })
                .await?;
            from = to;
        }
        Ok(removed)
    }
}

#[cfg(test)]
#[path = "purge_tests.rs"]
mod tests;
