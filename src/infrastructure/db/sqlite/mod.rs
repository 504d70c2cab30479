//! The SQLite adapter for every repository port.
//!
//! Tuned for a server: WAL, `synchronous=NORMAL`, foreign keys, a busy timeout. Writes go
//! through a pool of exactly one connection, so write transactions never deadlock on lock
//! upgrade and the refresh rotation is serialised; reads use a separate pool and run in
//! parallel with the writer (WAL).

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqlitePool};
use uuid::Uuid;

mod audit;
mod tokens;
mod users;

use super::records::{SessionRecord, UserRecord};
use super::{store_error, DbOptions};
use crate::domain::ports::{HealthProbe, StoreError};
use crate::domain::session::Session;
use crate::domain::user::User;

pub(super) const USER_COLUMNS: &str =
    "u.id, u.username, u.email, u.full_name, u.password_hash, u.roles, u.is_active, u.created_at, u.updated_at";

/// Users, sessions and refresh tokens in one SQLite database file.
pub struct SqliteStore {
    pub(super) reader: SqlitePool,
    pub(super) writer: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` and applies the migrations.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the file cannot be opened or migrated.
    pub async fn connect(url: &str, pool: &DbOptions) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Other(format!("invalid DATABASE_URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(pool.acquire_timeout)
            .connect_with(options.clone())
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot open SQLite database: {e}")))?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&writer)
            .await
            .map_err(|e| StoreError::Unavailable(format!("migration failed: {e}")))?;
        let reader = SqlitePoolOptions::new()
            .max_connections(pool.max_connections)
            .acquire_timeout(pool.acquire_timeout)
            .connect_with(options.read_only(true))
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot open SQLite database: {e}")))?;
        Ok(Self { reader, writer })
    }
}

pub(super) fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

pub(super) fn time(row: &SqliteRow, column: &str) -> Result<DateTime<Utc>, StoreError> {
    let value: i64 = row.try_get(column).map_err(store_error)?;
    DateTime::from_timestamp_micros(value)
        .ok_or_else(|| StoreError::Other(format!("{column} out of range: {value}")))
}

pub(super) fn uuid(row: &SqliteRow, column: &str) -> Result<Uuid, StoreError> {
    let value: String = row.try_get(column).map_err(store_error)?;
    Uuid::parse_str(&value).map_err(|e| StoreError::Other(format!("bad {column} '{value}': {e}")))
}

pub(super) fn user_from_row(row: &SqliteRow) -> Result<User, StoreError> {
    let get = |column: &str| -> Result<Option<String>, StoreError> {
        row.try_get(column).map_err(store_error)
    };
    UserRecord {
        id: uuid(row, "id")?,
        username: get("username")?.unwrap_or_default(),
        email: get("email")?,
        full_name: get("full_name")?,
        password_hash: get("password_hash")?.unwrap_or_default(),
        roles: get("roles")?.unwrap_or_default(),
        is_active: row.try_get("is_active").map_err(store_error)?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    }
    .into_user()
}

pub(super) fn session_from_row(row: &SqliteRow) -> Result<Session, StoreError> {
    SessionRecord {
        id: uuid(row, "id")?,
        user_id: uuid(row, "user_id")?,
        scope: row.try_get("scope").map_err(store_error)?,
        created_at: time(row, "created_at")?,
        expires_at: time(row, "expires_at")?,
    }
    .into_session()
}

impl super::PoolState for SqliteStore {
    fn pool_state(&self) -> (u32, usize) {
        (
            self.reader.size() + self.writer.size(),
            self.reader.num_idle() + self.writer.num_idle(),
        )
    }
}

#[async_trait]
impl HealthProbe for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map(|_| ())
            .map_err(store_error)
    }
}
