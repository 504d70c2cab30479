//! The SQLite adapter for every repository port, on `rusqlite`.
//!
//! Tuned for a server: WAL, `synchronous=NORMAL`, foreign keys, a busy timeout, cached prepared
//! statements. SQLite answers a point query in microseconds, less than a hop to another thread
//! costs, so statements run inline on the calling task (sqlx's SQLite driver sends each one to a
//! worker thread: that capped `GET /users/me` at ~10% of the bare-axum ceiling). Writes go
//! through one connection behind an async mutex, in `BEGIN IMMEDIATE` transactions, so they
//! never deadlock on lock upgrade and the refresh rotation is serialised; reads use a pool of
//! read-only connections and run beside the writer (WAL). Unbounded work (the purge) runs on
//! the blocking pool. Migrations are sqlx's, applied at start.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex as SyncMutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags, Row};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

mod audit;
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
        "u.id, u.username, u.email, u.full_name, u.password_hash, u.roles, u.is_active, u.created_at, u.updated_at"
    };
}
pub(super) use user_columns;

/// Users, sessions, refresh tokens, lockout counters and the audit log in one SQLite file.
pub struct SqliteStore {
    readers: ReaderPool,
    writer: Arc<Mutex<Connection>>,
    acquire_timeout: Duration,
    /// Audit events waiting for the writer (see `AuditLog::record`).
    pub(super) pending_audit: SyncMutex<Vec<crate::domain::audit::AuditEvent>>,
}

/// Read-only connections, opened on demand up to a maximum.
struct ReaderPool {
    path: PathBuf,
    idle: SyncMutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
    opened: std::sync::atomic::AtomicUsize,
}

/// A reader on loan; it goes back to the pool when dropped.
pub(super) struct Reader<'a> {
    pool: &'a ReaderPool,
    connection: Option<Connection>,
    _permit: OwnedSemaphorePermit,
}

impl std::ops::Deref for Reader<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.connection.as_ref().expect("present until dropped")
    }
}

impl Drop for Reader<'_> {
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
        Ok(Self {
            readers: ReaderPool {
                path,
                idle: SyncMutex::new(Vec::new()),
                permits: Arc::new(Semaphore::new(options.max_connections as usize)),
                opened: std::sync::atomic::AtomicUsize::new(0),
            },
            writer: Arc::new(Mutex::new(writer)),
            acquire_timeout: options.acquire_timeout,
            pending_audit: SyncMutex::new(Vec::new()),
        })
    }

    /// A read-only connection (waiting at most the acquire timeout for one).
    pub(super) async fn reader(&self) -> Result<Reader<'_>, StoreError> {
        let permit = tokio::time::timeout(
            self.acquire_timeout,
            self.readers.permits.clone().acquire_owned(),
        )
        .await
        .map_err(|_| StoreError::Unavailable("no SQLite reader free in time".into()))?
        .map_err(|_| StoreError::Unavailable("the SQLite store is closed".into()))?;
        let idle = self
            .readers
            .idle
            .lock()
            .ok()
            .and_then(|mut idle| idle.pop());
        let connection = match idle {
            Some(connection) => connection,
            None => {
                let connection = Connection::open_with_flags(
                    &self.readers.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(|e| {
                    StoreError::Unavailable(format!("cannot open SQLite database: {e}"))
                })?;
                tune(&connection)?;
                self.readers
                    .opened
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                connection
            }
        };
        Ok(Reader {
            pool: &self.readers,
            connection: Some(connection),
            _permit: permit,
        })
    }

    /// The writer, for a short statement run inline.
    pub(super) async fn writer(
        &self,
    ) -> Result<tokio::sync::MutexGuard<'_, Connection>, StoreError> {
        tokio::time::timeout(self.acquire_timeout, self.writer.lock())
            .await
            .map_err(|_| StoreError::Unavailable("the SQLite writer stayed busy".into()))
    }

    /// Runs unbounded write work on the blocking pool, holding the writer.
    pub(super) async fn write_blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let mut writer =
            tokio::time::timeout(self.acquire_timeout, self.writer.clone().lock_owned())
                .await
                .map_err(|_| StoreError::Unavailable("the SQLite writer stayed busy".into()))?;
        tokio::task::spawn_blocking(move || work(&mut writer))
            .await
            .map_err(|e| StoreError::Other(format!("SQLite task failed: {e}")))?
    }
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
        created_at: time(row.get(at + 7)?)?,
        updated_at: time(row.get(at + 8)?)?,
    })
}

pub(super) fn user_from_row(row: &Row<'_>) -> rusqlite::Result<UserRecord> {
    user_record(row, 0)
}

/// A `sessions` row: id, user_id, scope, created_at, expires_at.
pub(super) fn session_from_row(row: &Row<'_>) -> rusqlite::Result<SessionRecord> {
    Ok(SessionRecord {
        id: uuid(&row.get::<_, String>(0)?)?,
        user_id: uuid(&row.get::<_, String>(1)?)?,
        scope: row.get(2)?,
        created_at: time(row.get(3)?)?,
        expires_at: time(row.get(4)?)?,
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
            idle + usize::from(self.writer.try_lock().is_ok()),
        )
    }
}

#[async_trait]
impl HealthProbe for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        let reader = self.reader().await?;
        reader
            .prepare_cached("SELECT 1")
            .and_then(|mut statement| statement.query_row([], |_| Ok(())))
            .map_err(store_error)
    }
}
