//! The writer thread: the only write connection, group commit, and [`SqliteStore::write`].

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;

use super::checkpoint::spawn_checkpointer;
use super::{store_error, SqliteStore};
use crate::domain::ports::StoreError;
use crate::infrastructure::db::session_cache::SessionCache;

/// A write queued for the writer thread: it runs inside the batch's transaction, in a savepoint
/// of its own (or is told why the batch could not begin), and returns what to do once the
/// batch's commit has succeeded or failed. `None` when its caller gave up before it started.
pub(super) struct Job {
    claim: Arc<AtomicU8>,
    run: Run,
}
/// Runs a job in the open transaction, or tells it why the batch could not begin.
type Run = Box<dyn FnOnce(Result<&Connection, &StoreError>) -> Finish + Send>;
/// Delivers a job's result, given the outcome of the commit.
type Finish = Box<dyn FnOnce(Result<(), &StoreError>) + Send>;

/// [`Job::claim`] states: queued, taken by the writer, withdrawn by its caller.
const QUEUED: u8 = 0;
const TAKEN: u8 = 1;
const WITHDRAWN: u8 = 2;

impl SqliteStore {
    /// Runs `work` in a write transaction on the writer thread and returns its result once that
    /// is committed.
    ///
    /// Group commit: the writer thread takes every write queued while it was busy and runs
    /// them in one `BEGIN IMMEDIATE` transaction, each in a savepoint of its own (a write that
    /// fails is rolled back alone and reports its own error), then commits once. Under load,
    /// concurrent rotations, logins and audit events share one commit, and the pages they all
    /// touch (the ends of the time-ordered indexes) are written to the WAL once per batch rather
    /// than once per request; the commit's I/O and the WAL checkpoints never block the async
    /// workers. A write is never reported as failed after it was committed: if it has not
    /// started within the acquire timeout it is withdrawn before the error is returned, and once
    /// started it is awaited.
    pub(super) async fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (sender, mut receiver) = tokio::sync::oneshot::channel();
        let claim = Arc::new(AtomicU8::new(QUEUED));
        let job = Job {
            claim: Arc::clone(&claim),
            run: Box::new(
                move |connection: Result<&Connection, &StoreError>| -> Finish {
                    let result = match connection {
                        Ok(connection) => in_savepoint(connection, work),
                        Err(error) => Err(copy_error(error)),
                    };
                    Box::new(move |committed: Result<(), &StoreError>| {
                        let outcome = match committed {
                            Ok(()) => result,
                            Err(error) => Err(copy_error(error)),
                        };
                        let _ = sender.send(outcome);
                    })
                },
            ),
        };
        self.writes
            .send(job)
            .map_err(|_| StoreError::Unavailable("the SQLite writer has stopped".into()))?;
        let closed = || StoreError::Other("a queued SQLite write was dropped".into());
        match tokio::time::timeout(self.acquire_timeout, &mut receiver).await {
            Ok(result) => result.map_err(|_| closed())?,
            Err(_) => {
                if claim
                    .compare_exchange(QUEUED, WITHDRAWN, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    return Err(StoreError::Unavailable(
                        "the SQLite writer stayed busy".into(),
                    ));
                }
                // Already running: its result is on the way.
                receiver.await.map_err(|_| closed())?
            }
        }
    }
}

/// Starts the writer thread, which owns the write connection until the store is dropped. When
/// idle it also looks for other processes' writes: `PRAGMA data_version` on a connection
/// changes only with commits made through other connections, and this process writes through
/// this one alone, so a change means a foreign write, and the session cache is emptied.
pub(super) fn spawn_writer(
    mut connection: Connection,
    checkpointer: Connection,
    sessions: Arc<SessionCache>,
    busy: Arc<AtomicBool>,
) -> Result<std::sync::mpsc::Sender<Job>, StoreError> {
    let (sender, receiver) = std::sync::mpsc::channel::<Job>();
    // Ends the checkpointer when the writer thread ends (its sender is dropped).
    let (alive, writer_gone) = std::sync::mpsc::channel::<()>();
    spawn_checkpointer(checkpointer, writer_gone)?;
    // The baseline is taken before the store is returned, so before any session is cached: no
    // foreign write after it goes unnoticed.
    let baseline: Option<i64> = connection
        .query_row("PRAGMA data_version", [], |row| row.get::<_, i64>(0))
        .ok();
    std::thread::Builder::new()
        .name("sqlite-writer".into())
        .spawn(move || {
            let _alive = alive;
            let mut seen_version = baseline;
            let mut last_look = std::time::Instant::now();
            loop {
                let first = match receiver.recv_timeout(FOREIGN_WRITE_POLL) {
                    Ok(job) => Some(job),
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => None,
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
                };
                if first.is_none() || last_look.elapsed() >= FOREIGN_WRITE_POLL {
                    last_look = std::time::Instant::now();
                    let version =
                        connection.query_row("PRAGMA data_version", [], |row| row.get::<_, i64>(0));
                    match version {
                        Ok(version) => {
                            if seen_version.is_some_and(|seen| seen != version) {
                                tracing::debug!(
                                    "another process wrote to the database; session cache emptied"
                                );
                                sessions.clear();
                            }
                            seen_version = Some(version);
                        }
                        Err(_) => sessions.clear(), // unreadable: assume the worst
                    }
                }
                let Some(first) = first else { continue };
                let jobs: Vec<Job> = std::iter::once(first)
                    .chain(receiver.try_iter())
                    .filter(|job| {
                        job.claim
                            .compare_exchange(QUEUED, TAKEN, Ordering::AcqRel, Ordering::Acquire)
                            .is_ok()
                    })
                    .collect();
                if jobs.is_empty() {
                    continue;
                }
                busy.store(true, Ordering::Relaxed);
                // A bug that panics inside a write must not take the writer down with it, or no
                // write would ever succeed again: its batch is rolled back, its callers see their
                // job dropped (a 500), and the thread goes on.
                let batch = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    run_batch(&mut connection, jobs);
                }));
                if batch.is_err() {
                    if !connection.is_autocommit() {
                        let _ = connection.execute_batch("ROLLBACK");
                    }
                    tracing::error!("a SQLite write panicked; its batch was rolled back");
                }
                busy.store(false, Ordering::Relaxed);
            }
        })
        .map(|_| sender)
        .map_err(|e| StoreError::Unavailable(format!("cannot start the SQLite writer thread: {e}")))
}

/// The same error again, for every job of a batch whose commit failed.
fn copy_error(error: &StoreError) -> StoreError {
    match error {
        StoreError::UsernameTaken => StoreError::UsernameTaken,
        StoreError::EmailTaken => StoreError::EmailTaken,
        StoreError::Unavailable(message) => StoreError::Unavailable(message.clone()),
        StoreError::Other(message) => StoreError::Other(message.clone()),
    }
}

/// Runs `work` inside a savepoint, rolled back if it fails.
fn in_savepoint<T>(
    connection: &Connection,
    work: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    connection
        .execute_batch("SAVEPOINT job")
        .map_err(store_error)?;
    let result = work(connection);
    let end = if result.is_ok() {
        "RELEASE job"
    } else {
        "ROLLBACK TO job; RELEASE job"
    };
    match (result, connection.execute_batch(end).map_err(store_error)) {
        (Ok(value), Ok(())) => Ok(value),
        (Err(error), _) | (Ok(_), Err(error)) => Err(error),
    }
}

/// One transaction for every job of the batch, then each job's result.
fn run_batch(connection: &mut Connection, jobs: Vec<Job>) {
    if let Err(error) = connection
        .execute_batch("BEGIN IMMEDIATE")
        .map_err(store_error)
    {
        for job in jobs {
            (job.run)(Err(&error))(Err(&error));
        }
        return;
    }
    // Some errors (I/O, disk full) make SQLite roll the whole transaction back by itself; then
    // the jobs before have lost their work and the jobs after must not run outside it.
    let lost = || {
        StoreError::Unavailable("the SQLite write transaction was rolled back by an error".into())
    };
    let mut failed: Option<StoreError> = None;
    let mut finishes: Vec<Finish> = Vec::with_capacity(jobs.len());
    for job in jobs {
        if failed.is_none() && connection.is_autocommit() {
            failed = Some(lost());
        }
        finishes.push(match &failed {
            Some(error) => (job.run)(Err(error)),
            None => (job.run)(Ok(&*connection)),
        });
    }
    if failed.is_none() && connection.is_autocommit() {
        failed = Some(lost());
    }
    let committed = match failed {
        Some(error) => Err(error),
        None => connection.execute_batch("COMMIT").map_err(store_error),
    };
    if committed.is_err() && !connection.is_autocommit() {
        let _ = connection.execute_batch("ROLLBACK");
    }
    for finish in finishes {
        finish(committed.as_ref().copied());
    }
}

/// How often another process's writes are looked for.
const FOREIGN_WRITE_POLL: Duration = Duration::from_millis(250);

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
