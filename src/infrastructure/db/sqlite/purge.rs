//! [`Purge`] on SQLite, in bounded steps on the single writer.
//!
//! A purge may have millions of rows to delete. Deleted in one writer job, it held the only
//! write connection for the whole time, and every login, refresh and audit event queued
//! behind it waited (and timed out after the acquire timeout). So the purge is a series of
//! short writer jobs, each deleting at most [`SqliteStore::purge_chunk`] rows: other writes are
//! committed between two jobs.
//!
//! Each job finds its rows through an index on the time that makes them due (`expires_at`,
//! `revoked_at`, `at`), so a purge costs what it deletes, not what the tables hold. Walking
//! every table in windows of rowids instead cost 4.3 s of CPU at every purge with a million
//! live sessions and nothing due (the one-statement purge before it: a 117 ms scan, in one
//! job); through the indexes, that purge takes milliseconds. Only `login_throttle` has no such
//! index (its rows are written at every failed login, where an index would cost): it is walked
//! in windows of rowids, a window examining at most `purge_chunk` rows.
//!
//! Rows are counted as the one-statement purge counted them: a session's refresh tokens go with
//! it by `ON DELETE CASCADE`, in its job, uncounted; then the expired tokens of the sessions that
//! stay, counted.

use async_trait::async_trait;

use super::{micros, store_error, SqliteStore};
use crate::domain::ports::{Purge, PurgeCutoffs, StoreError};

/// How one step of the purge finds its rows.
enum Walk {
    /// Through an index: `select` returns the rowids of at most `?1` (the chunk) due rows, `?2`
    /// the time they are due before; `delete` removes one of them by its rowid (`?1`). Each job
    /// does one chunk, until a job finds fewer. The rowids are read first and deleted one by one
    /// because a `DELETE ... WHERE rowid IN (SELECT ...)` is planned from the table's
    /// statistics: with stale ones (`ANALYZE` run while the table was small) SQLite scanned the
    /// whole table in every job (11 ms per job at 200,000 audit events with nothing due).
    Due {
        select: &'static str,
        delete: &'static str,
    },
    /// By windows of rowids, `?1 < rowid <= ?2`, from the lowest rowid to the highest as the
    /// step began (rows added since are new, not due), with `?3` and `?4` the step's two times.
    Windows { delete: &'static str },
}

/// The purge's steps, in order, with the two times each uses (see [`Purge::purge`]).
const STEPS: [Walk; 8] = [
    // Sessions: their refresh tokens go with them (`ON DELETE CASCADE`), uncounted.
    Walk::Due {
        select: "SELECT rowid FROM sessions WHERE expires_at < ?2 ORDER BY expires_at LIMIT ?1",
        delete: "DELETE FROM sessions WHERE rowid = ?1",
    },
    Walk::Due {
        select: "SELECT rowid FROM sessions WHERE revoked_at < ?2 ORDER BY revoked_at LIMIT ?1",
        delete: "DELETE FROM sessions WHERE rowid = ?1",
    },
    Walk::Due {
        select: "SELECT rowid FROM refresh_tokens WHERE expires_at < ?2
                 ORDER BY expires_at LIMIT ?1",
        delete: "DELETE FROM refresh_tokens WHERE rowid = ?1",
    },
    // Authorization codes are kept until `revoked_before` after their expiry, so that a late
    // replay still finds the session the first redemption started.
    Walk::Due {
        select: "SELECT rowid FROM authorization_codes WHERE expires_at < ?2
                 ORDER BY expires_at LIMIT ?1",
        delete: "DELETE FROM authorization_codes WHERE rowid = ?1",
    },
    Walk::Due {
        select: "SELECT rowid FROM audit_events WHERE at < ?2 ORDER BY at LIMIT ?1",
        delete: "DELETE FROM audit_events WHERE rowid = ?1",
    },
    Walk::Windows {
        delete: "DELETE FROM login_throttle WHERE rowid > ?1 AND rowid <= ?2
                   AND updated_at < ?3 AND (locked_until IS NULL OR locked_until < ?4)",
    },
    // Mail: tokens once expired (used or not), mails once sent and kept as long as revoked
    // sessions (unsent mails are never purged).
    Walk::Due {
        select: "SELECT rowid FROM mail_tokens WHERE expires_at < ?2 ORDER BY expires_at LIMIT ?1",
        delete: "DELETE FROM mail_tokens WHERE rowid = ?1",
    },
    Walk::Due {
        select: "SELECT rowid FROM mail_outbox WHERE sent_at < ?2 ORDER BY sent_at LIMIT ?1",
        delete: "DELETE FROM mail_outbox WHERE rowid = ?1",
    },
];

/// How many rows one writer job of the purge deletes (or, for `login_throttle`, examines),
/// unless a test sets [`SqliteStore::purge_chunk`] smaller. The write that waits longest
/// behind the purge waits about one job: measured with the purge test's data (debug build, a
/// shared 2-core machine), at most 90 ms with 5,000 rows per job and 22 ms with 500. A purge
/// of a million rows is then a thousand jobs, whose own overhead (a queue hop, a savepoint) is
/// negligible beside the deletes.
pub(super) const PURGE_CHUNK: i64 = 1_000;

#[async_trait]
impl Purge for SqliteStore {
    async fn purge(&self, cutoffs: &PurgeCutoffs) -> Result<u64, StoreError> {
        let now = micros(cutoffs.now);
        let times = [
            (now, 0),
            (micros(cutoffs.revoked_before), 0),
            (now, 0),
            (micros(cutoffs.revoked_before), 0),
            (micros(cutoffs.audit_before), 0),
            (micros(cutoffs.throttle_before), now),
            (now, 0),
            (micros(cutoffs.revoked_before), 0),
        ];
        let mut removed = 0;
        let mut outcome = Ok(());
        for (step, (first, second)) in STEPS.iter().zip(times) {
            let deleted = match step {
                Walk::Due { select, delete } => self.purge_due(select, delete, first).await,
                Walk::Windows { delete } => self.purge_windows(delete, first, second).await,
            };
            match deleted {
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
    /// A [`Walk::Due`] step: jobs of at most one chunk of rows until one finds fewer.
    async fn purge_due(
        &self,
        select: &'static str,
        delete: &'static str,
        due_before: i64,
    ) -> Result<u64, StoreError> {
        let chunk = self.purge_chunk.max(1);
        let mut removed = 0;
        loop {
            let (found, deleted) = self
                .write(move |tx| {
                    let rowids = tx
                        .prepare_cached(select)
                        .and_then(|mut s| {
                            s.query_map([chunk, due_before], |row| row.get::<_, i64>(0))?
                                .collect::<Result<Vec<_>, _>>()
                        })
                        .map_err(store_error)?;
                    let mut statement = tx.prepare_cached(delete).map_err(store_error)?;
                    let mut deleted = 0;
                    for rowid in &rowids {
                        deleted += statement.execute([rowid]).map_err(store_error)?;
                    }
                    Ok((rowids.len(), deleted as u64))
                })
                .await?;
            removed += deleted;
            if (found as i64) < chunk {
                return Ok(removed);
            }
        }
    }

    /// A [`Walk::Windows`] step on `login_throttle`, window by window.
    async fn purge_windows(
        &self,
        delete: &'static str,
        first: i64,
        second: i64,
    ) -> Result<u64, StoreError> {
        let (low, high): (Option<i64>, Option<i64>) = self
            .read(|reader| {
                reader.query_row(
                    "SELECT min(rowid) - 1, max(rowid) FROM login_throttle",
                    [],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
            })
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
                    tx.prepare_cached(delete)
                        .and_then(|mut s| s.execute([from, to, first, second]))
                        .map(|count| count as u64)
                        .map_err(store_error)
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
