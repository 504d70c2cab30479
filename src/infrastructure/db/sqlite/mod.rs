//! The SQLite adapter for every repository port, on `rusqlite`.
//!
//! Tuned for a server: WAL, `synchronous=NORMAL`, foreign keys, a busy timeout, cached prepared
//! statements. Reads run inline on the calling task, on a pool of read-only connections beside
//! the writer (WAL): SQLite answers a point query in microseconds, less than a hop to another
//! thread costs (sqlx's SQLite driver sends each statement to a worker thread: that capped
//! `GET /users/me` at ~10% of the bare-axum ceiling). Writes go to one writer thread that owns
//! the only write connection and group-commits whatever queued while it was busy (see
//! [`SqliteStore::write`]), so rotations are serialised, commits are shared, and no write I/O
//! or WAL checkpoint ever blocks the async workers. Sessions already known to be live are
//! answered from memory ([`cache`]). Migrations are sqlx's, applied at start.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex as SyncMutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags, Row};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

mod audit;
mod cache;
mod files;
mod tokens;
mod users;

use super::records::{SessionRecord, UserRecord};
use super::DbOptions;
use crate::domain::ports::{HealthProbe, StoreError};
use crate::domain::session::Session;
use crate::domain::user::User;

/// The `users` columns in the order [`user_record`] reads them, as a literal so queries are
/// `concat!`ed at compile time rather than formatted per call.
macro_rules! user_columns {
    () => {
        "u.id, u.username, u.email, u.full_name, u.password_hash, u.roles, u.is_active, u.credential_version, u.created_at, u.updated_at"
    };
}
pub(super) use user_columns;

/// Users, sessions, refresh tokens, lockout counters and the audit log in one SQLite file.
pub struct SqliteStore {
    readers: Arc<ReaderPool>,
    /// The queue of the writer thread (see [`SqliteStore::write`]).
    writes: std::sync::mpsc::Sender<Job>,
    /// Whether the writer thread is running a batch now (for the pool gauges).
    writer_busy: Arc<AtomicBool>,
    acquire_timeout: Duration,
    /// Sessions known to be live (see [`cache`]).
    sessions: Arc<cache::SessionCache>,
}

/// A write queued for the writer thread: it runs inside the batch's transaction, in a savepoint
/// of its own (or is told why the batch could not begin), and returns what to do once the
/// batch's commit has succeeded or failed. `None` when its caller gave up before it started.
struct Job {
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

/// Read-only connections, opened on demand up to a maximum.
struct ReaderPool {
    path: PathBuf,
    idle: SyncMutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
    opened: std::sync::atomic::AtomicUsize,
}

impl ReaderPool {
    /// An idle reader, or a new one while the pool is below its size (the permit says so).
    fn checkout(self: &Arc<Self>, permit: OwnedSemaphorePermit) -> Result<Reader, StoreError> {
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let connection = match idle {
            Some(connection) => connection,
            None => {
                let connection = Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(|e| {
                    StoreError::Unavailable(format!("cannot open SQLite database: {e}"))
                })?;
                tune(&connection)?;
                self.opened
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                connection
            }
        };
        Ok(Reader {
            pool: Arc::clone(self),
            connection: Some(connection),
            _permit: permit,
        })
    }
}

/// A reader on loan; it goes back to the pool when dropped.
pub(super) struct Reader {
    pool: Arc<ReaderPool>,
    connection: Option<Connection>,
    _permit: OwnedSemaphorePermit,
}

impl std::ops::Deref for Reader {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.connection.as_ref().expect("present until dropped")
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        if let (Some(connection), Ok(mut idle)) = (self.connection.take(), self.pool.idle.lock()) {
            idle.push(connection);
        }
    }
}

fn tune(connection: &Connection) -> Result<(), StoreError> {
    connection
        // mmap: reads become memory accesses instead of pread calls; a larger page cache keeps
        // the hot index pages; checkpoints every 4,000 pages instead of 1,000 stall the writer
        // less often.
        .execute_batch(
            "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA mmap_size = 268435456;
             PRAGMA cache_size = -16384; PRAGMA wal_autocheckpoint = 4000; PRAGMA temp_store = MEMORY;",
        )
        .map_err(store_error)?;
    connection
        .busy_timeout(Duration::from_secs(5))
        .map_err(store_error)?;
    connection.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// The file of a `sqlite:` URL (`sqlite://path`, `sqlite:path`, with or without `?...`).
fn database_path(url: &str) -> Result<PathBuf, StoreError> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| StoreError::Other(format!("not a sqlite URL: {url}")))?;
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path.starts_with(":memory:") {
        return Err(StoreError::Other(
            "DATABASE_URL must name a SQLite file (in-memory databases are not shared between connections)".into(),
        ));
    }
    Ok(PathBuf::from(path))
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` and applies the migrations.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the file cannot be opened or migrated.
    pub async fn connect(url: &str, options: &DbOptions) -> Result<Self, StoreError> {
        let path = database_path(url)?;
        files::restrict_to_owner(&path)?;
        let migrator_options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Other(format!("invalid DATABASE_URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(5));
        let migrator = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(migrator_options)
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot open SQLite database: {e}")))?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&migrator)
            .await
            .map_err(|e| StoreError::Unavailable(format!("migration failed: {e}")))?;
        migrator.close().await;
        let writer = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| StoreError::Unavailable(format!("cannot open SQLite database: {e}")))?;
        tune(&writer)?;
        let checkpointer = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| StoreError::Unavailable(format!("cannot open SQLite database: {e}")))?;
        tune(&checkpointer)?;
        let sessions = Arc::new(cache::SessionCache::default());
        let writer_busy = Arc::new(AtomicBool::new(false));
        let writes = spawn_writer(
            writer,
            checkpointer,
            Arc::clone(&sessions),
            Arc::clone(&writer_busy),
        )?;
        Ok(Self {
            readers: Arc::new(ReaderPool {
                path,
                idle: SyncMutex::new(Vec::new()),
                permits: Arc::new(Semaphore::new(options.max_connections as usize)),
                opened: std::sync::atomic::AtomicUsize::new(0),
            }),
            writes,
            writer_busy,
            acquire_timeout: options.acquire_timeout,
            sessions,
        })
    }

    /// A reader slot (waiting at most the acquire timeout for one).
    async fn reader_permit(&self) -> Result<OwnedSemaphorePermit, StoreError> {
        tokio::time::timeout(
            self.acquire_timeout,
            self.readers.permits.clone().acquire_owned(),
        )
        .await
        .map_err(|_| StoreError::Unavailable("no SQLite reader free in time".into()))?
        .map_err(|_| StoreError::Unavailable("the SQLite store is closed".into()))
    }

    /// Runs the read `work` on a reader connection on the blocking pool, and gives up with
    /// [`StoreError::Unavailable`] after the acquire timeout.
    ///
    /// Reads used to run inline on the async workers (a hop to another thread costs more than
    /// an indexed point query), but a read stuck in the kernel (a frozen disk, a lock held by
    /// another process past the busy timeout) then blocked a runtime worker: with the disk
    /// frozen, `/health` and uncached `GET /users/me` hung 36 s and even the request timeout
    /// could not fire. Now a stuck read holds one reader and one blocking thread (both bounded
    /// by the reader pool), and the request answers 503. The hot path does not pay the hop:
    /// live sessions are answered from the cache.
    pub(super) async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let deadline = tokio::time::Instant::now() + self.acquire_timeout;
        let permit = self.reader_permit().await?;
        let pool = Arc::clone(&self.readers);
        // Opening a connection is file I/O too: it happens on the blocking thread as well.
        let task = tokio::task::spawn_blocking(move || {
            let reader = pool.checkout(permit)?;
            work(&reader).map_err(store_error)
        });
        match tokio::time::timeout_at(deadline, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(StoreError::Other("a SQLite read panicked".into())),
            Err(_) => Err(StoreError::Unavailable(
                "a SQLite read did not finish in time".into(),
            )),
        }
    }

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
fn spawn_writer(
    mut connection: Connection,
    checkpointer: Connection,
    sessions: Arc<cache::SessionCache>,
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

/// How often the checkpointer copies the WAL back into the database file.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(100);

/// Passive checkpoints on a thread of their own, beside the writer, every
/// [`CHECKPOINT_INTERVAL`]. The writer keeps SQLite's own automatic checkpoint, which is what
/// restarts the WAL from its beginning (so it cannot grow without bound under a constant stream
/// of writes); by the time it runs, this thread has already copied nearly every frame, so the
/// writer's stall is short. Chained refreshes went from about 5,700/s to about 6,500/s.
fn spawn_checkpointer(
    connection: Connection,
    writer_gone: std::sync::mpsc::Receiver<()>,
) -> Result<(), StoreError> {
    std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || loop {
            match writer_gone.recv_timeout(CHECKPOINT_INTERVAL) {
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                _ => return,
            }
            if let Err(error) =
                connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            {
                tracing::warn!(%error, "SQLite WAL checkpoint failed");
            }
        })
        .map(|_| ())
        .map_err(|e| StoreError::Unavailable(format!("cannot start the SQLite checkpointer: {e}")))
}

/// Translates a driver error into the port's error; `rusqlite::Error` never leaves `db/`.
pub(super) fn store_error(error: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    match &error {
        rusqlite::Error::SqliteFailure(failure, message) => match failure.code {
            ErrorCode::ConstraintViolation
                if failure.extended_code == 2067 || failure.extended_code == 1555 =>
            {
                if message.as_deref().unwrap_or_default().contains("email") {
                    StoreError::EmailTaken
                } else {
                    StoreError::UsernameTaken
                }
            }
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::CannotOpen
            | ErrorCode::SystemIoFailure
            | ErrorCode::FileLockingProtocolFailed
            | ErrorCode::DiskFull => StoreError::Unavailable(error.to_string()),
            _ => StoreError::Other(error.to_string()),
        },
        _ => StoreError::Other(error.to_string()),
    }
}

pub(super) fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

pub(super) fn time(value: i64) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(value).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Integer,
            "time out of range".into(),
        )
    })
}

pub(super) fn uuid(value: &str) -> rusqlite::Result<Uuid> {
    Uuid::parse_str(value).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// A `users` row in `user_columns!()` order (from column `at` on).
pub(super) fn user_record(row: &Row<'_>, at: usize) -> rusqlite::Result<UserRecord> {
    Ok(UserRecord {
        id: uuid(&row.get::<_, String>(at)?)?,
        username: row.get(at + 1)?,
        email: row.get(at + 2)?,
        full_name: row.get(at + 3)?,
        password_hash: row.get(at + 4)?,
        roles: row.get(at + 5)?,
        is_active: row.get(at + 6)?,
        credential_version: row.get(at + 7)?,
        created_at: time(row.get(at + 8)?)?,
        updated_at: time(row.get(at + 9)?)?,
    })
}

pub(super) fn user_from_row(row: &Row<'_>) -> rusqlite::Result<UserRecord> {
    user_record(row, 0)
}

/// The `sessions` columns in the order [`session_from_row`] reads them.
pub(super) const SESSION_COLUMNS: &str =
    "id, user_id, scope, created_at, expires_at, not_after, parent_id";

/// A `sessions` row in [`SESSION_COLUMNS`] order.
pub(super) fn session_from_row(row: &Row<'_>) -> rusqlite::Result<SessionRecord> {
    Ok(SessionRecord {
        id: uuid(&row.get::<_, String>(0)?)?,
        user_id: uuid(&row.get::<_, String>(1)?)?,
        scope: row.get(2)?,
        created_at: time(row.get(3)?)?,
        expires_at: time(row.get(4)?)?,
        not_after: time(row.get(5)?)?,
        parent_id: row
            .get::<_, Option<String>>(6)?
            .map(|id| uuid(&id))
            .transpose()?,
    })
}

pub(super) fn into_user(record: Option<UserRecord>) -> Result<Option<User>, StoreError> {
    record.map(UserRecord::into_user).transpose()
}

pub(super) fn into_session(record: SessionRecord) -> Result<Session, StoreError> {
    record.into_session()
}

impl super::PoolState for SqliteStore {
    fn pool_state(&self) -> (u32, usize) {
        let idle = self.readers.idle.lock().map_or(0, |idle| idle.len());
        let opened = self
            .readers
            .opened
            .load(std::sync::atomic::Ordering::Relaxed);
        (
            u32::try_from(opened + 1).unwrap_or(u32::MAX),
            idle + usize::from(!self.writer_busy.load(std::sync::atomic::Ordering::Relaxed)),
        )
    }
}

#[async_trait]
impl HealthProbe for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.read(|reader| reader.query_row("SELECT 1", [], |_| Ok(())))
            .await?;
        // A committed write through the writer: an unwritable file or a failing disk shows here.
        let now = micros(Utc::now());
        self.write(move |connection| {
            connection
                .prepare_cached("INSERT OR REPLACE INTO health_probe (id, at) VALUES (1, ?)")
                .and_then(|mut s| s.execute([now]))
                .map_err(store_error)
                .map(|_| ())
        })
        .await?;
        // A full disk does not always fail that write (the WAL reuses its own space until it
        // must grow), but the next checkpoint or growing write fails: ask the file system.
        let directory = self
            .readers
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), PathBuf::from);
        match free_bytes(&directory) {
            Some(free) if free < MIN_FREE_BYTES => Err(StoreError::Unavailable(format!(
                "only {free} bytes free beside the database"
            ))),
            _ => Ok(()),
        }
    }
}

/// Below this much free space beside the database the store is not ready: a WAL checkpoint
/// alone may need several pages, and a batch of writes a few more.
const MIN_FREE_BYTES: u64 = 1024 * 1024;

/// Free bytes (for unprivileged users) on the file system holding `directory`.
fn free_bytes(directory: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(directory.as_os_str().as_bytes()).ok()?;
    let mut stats = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a valid NUL-terminated string and `stats` is written by the call
    // before it is read (only when it returns 0).
    let stats = unsafe {
        if libc::statvfs(path.as_ptr(), stats.as_mut_ptr()) != 0 {
            return None;
        }
        stats.assume_init()
    };
    Some(stats.f_bavail.saturating_mul(stats.f_frsize))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> (SqliteStore, tempfile::TempDir) {
        let dir = tempfile::TempDir::new().unwrap();
        let url = format!("sqlite://{}/writer.db", dir.path().display());
        let options = DbOptions {
            max_connections: 2,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(5),
        };
        (SqliteStore::connect(&url, &options).await.unwrap(), dir)
    }

    fn insert_key(connection: &Connection, key: &str) -> Result<usize, StoreError> {
        connection
            .execute(
                "INSERT INTO login_throttle (login_key, failures, locks, updated_at) VALUES (?, 1, 0, 0)",
                [key],
            )
            .map_err(store_error)
    }

    async fn keys(store: &SqliteStore) -> Vec<String> {
        store
            .read(|reader| {
                reader
                    .prepare("SELECT login_key FROM login_throttle ORDER BY login_key")?
                    .query_map([], |row| row.get(0))?
                    .collect()
            })
            .await
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_in_one_batch_fail_alone_and_a_panic_does_not_stop_the_writer() {
        let (store, _dir) = store().await;
        // Queued together, so most likely one batch: the failing one (a duplicate key after a
        // first insert of its own) is rolled back to its savepoint, the others commit.
        let (a, failing, b) = tokio::join!(
            store.write(|c| insert_key(c, "a")),
            store.write(|c| {
                insert_key(c, "partial")?;
                insert_key(c, "partial")
            }),
            store.write(|c| insert_key(c, "b")),
        );
        assert_eq!(a.unwrap(), 1);
        assert_eq!(b.unwrap(), 1);
        assert!(failing.is_err());
        assert_eq!(keys(&store).await, ["a", "b"]);

        let panicked = store
            .write(|c| -> Result<usize, StoreError> {
                insert_key(c, "before-the-panic")?;
                panic!("a bug inside a write")
            })
            .await;
        assert!(panicked.is_err());
        assert_eq!(store.write(|c| insert_key(c, "c")).await.unwrap(), 1);
        assert_eq!(keys(&store).await, ["a", "b", "c"]);
    }
}
