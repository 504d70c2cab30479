//! The SQLite adapter for every repository port, on `rusqlite`.
//!
//! Tuned for a server: WAL, `synchronous=NORMAL`, foreign keys, a busy timeout, cached prepared
//! statements. Reads run on a pool of read-only connections beside the writer (WAL), on the
//! blocking pool (`reader.rs`): sqlx's SQLite driver sends each statement to a worker thread, and
//! that capped `GET /users/me` at ~10% of the bare-axum ceiling. Writes go to one writer thread
//! that owns the only write connection and group-commits whatever queued while it was busy
//! (`writer.rs`), so rotations are serialised, commits are shared, and no write I/O or WAL
//! checkpoint (`checkpoint.rs`) ever blocks the async workers. Sessions already known to be live
//! are answered from memory (`../session_cache.rs`). Migrations are sqlx's, applied at start.
//!
//! The ports are in the same files on every backend: `users.rs`, `clients.rs`, `tokens.rs`,
//! `codes.rs`, `passkeys.rs`, `audit.rs`, `throttle.rs`, `purge.rs`, with the driver's errors mapped in
//! `error.rs`; `rows.rs` decodes SQLite's columns and `files.rs` guards the database files.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use rusqlite::{Connection, OpenFlags};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

mod account;
mod audit;
mod checkpoint;
mod clients;
mod codes;
mod error;
mod files;
mod mail;
mod mfa;
mod passkeys;
mod purge;
mod reader;
mod rows;
mod throttle;
mod tokens;
mod users;
mod writer;

use super::session_cache::SessionCache;
use super::DbOptions;
use crate::domain::ports::{HealthProbe, StoreError};
use error::store_error;
use reader::ReaderPool;
use rows::{
    into_session, into_user, micros, session_columns, session_from_row, session_record, time,
    user_columns, user_from_row, user_record, uuid, SESSION_COLUMNS,
};
use writer::{spawn_writer, Job};

/// Users, sessions, refresh tokens, lockout counters and the audit log in one SQLite file.
pub struct SqliteStore {
    readers: Arc<ReaderPool>,
    /// The queue of the writer thread (see [`SqliteStore::write`]).
    writes: std::sync::mpsc::Sender<Job>,
    /// Whether the writer thread is running a batch now (for the pool gauges).
    writer_busy: Arc<AtomicBool>,
    acquire_timeout: Duration,
    /// Sessions known to be live (see [`crate::infrastructure::db::session_cache`]).
    sessions: Arc<SessionCache>,
    /// Rowids per writer job of the purge (see [`purge`]).
    purge_chunk: i64,
}

/// Opens a connection to the database at `path` (`flags` plus no mutex: each connection is
/// used by one thread at a time) and tunes it.
fn open(path: &std::path::Path, flags: OpenFlags) -> Result<Connection, StoreError> {
    let connection = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(|e| StoreError::Unavailable(format!("cannot open SQLite database: {e}")))?;
    tune(&connection)?;
    Ok(connection)
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
        let writer = open(&path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        let checkpointer = open(&path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        let sessions = Arc::new(SessionCache::new(options.session_cache_bytes));
        let writer_busy = Arc::new(AtomicBool::new(false));
        let writes = spawn_writer(
            writer,
            checkpointer,
            Arc::clone(&sessions),
            Arc::clone(&writer_busy),
        )?;
        Ok(Self {
            readers: Arc::new(ReaderPool::new(path, options.max_connections as usize)),
            writes,
            writer_busy,
            acquire_timeout: options.acquire_timeout,
            sessions,
            purge_chunk: purge::PURGE_CHUNK,
        })
    }
}

/// A store on a new database in a temporary directory, which lives as long as the guard.
#[cfg(test)]
pub(super) async fn test_store() -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::TempDir::new().expect("a temporary directory");
    let url = format!("sqlite://{}/test.db", dir.path().display());
    let options = DbOptions {
        max_connections: 2,
        acquire_timeout: Duration::from_secs(10),
        statement_timeout: Duration::from_secs(10),
        session_cache_bytes: 16 << 20,
    };
    let store = SqliteStore::connect(&url, &options).await;
    (store.expect("a new SQLite database"), dir)
}

impl crate::domain::session::InvalidationFeed for SqliteStore {
    fn subscribe(&self, listener: Arc<dyn crate::domain::session::InvalidationListener>) {
        crate::domain::session::InvalidationFeed::subscribe(&*self.sessions, listener);
    }
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
        match files::free_bytes(&directory) {
            Some(free) if free < files::MIN_FREE_BYTES => Err(StoreError::Unavailable(format!(
                "only {free} bytes free beside the database"
            ))),
            _ => Ok(()),
        }
    }
}
