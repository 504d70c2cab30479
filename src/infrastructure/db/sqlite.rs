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

use super::store_error;
use crate::domain::ports::{HealthProbe, StoreError, TokenRepository, UserRepository};
use crate::domain::session::{
    RefreshTokenHash, RefreshTokenRecord, RevocationReason, RotationOutcome, Session, SessionId,
};
use crate::domain::user::{EmailAddress, FullName, PasswordHash, Roles, User, UserId, Username};

const USER_COLUMNS: &str =
    "u.id, u.username, u.email, u.full_name, u.password_hash, u.roles, u.is_active, u.created_at, u.updated_at";

/// Users, sessions and refresh tokens in one SQLite database file.
pub struct SqliteStore {
    reader: SqlitePool,
    writer: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` and applies the migrations.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the file cannot be opened or migrated.
    pub async fn connect(url: &str, max_readers: u32) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Other(format!("invalid DATABASE_URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options.clone())
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot open SQLite database: {e}")))?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&writer)
            .await
            .map_err(|e| StoreError::Unavailable(format!("migration failed: {e}")))?;
        let reader = SqlitePoolOptions::new()
            .max_connections(max_readers)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options.read_only(true))
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot open SQLite database: {e}")))?;
        Ok(Self { reader, writer })
    }
}

fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

fn time(row: &SqliteRow, column: &str) -> Result<DateTime<Utc>, StoreError> {
    let value: i64 = row.try_get(column).map_err(store_error)?;
    DateTime::from_timestamp_micros(value)
        .ok_or_else(|| StoreError::Other(format!("{column} out of range: {value}")))
}

fn uuid(row: &SqliteRow, column: &str) -> Result<Uuid, StoreError> {
    let value: String = row.try_get(column).map_err(store_error)?;
    Uuid::parse_str(&value).map_err(|e| StoreError::Other(format!("bad {column} '{value}': {e}")))
}

fn corrupt(what: &str) -> impl Fn(crate::domain::validation::FieldError) -> StoreError + '_ {
    move |e| StoreError::Other(format!("stored {what} is invalid: {e}"))
}

fn user_from_row(row: &SqliteRow) -> Result<User, StoreError> {
    let text = |column: &str| -> Result<Option<String>, StoreError> {
        row.try_get(column).map_err(store_error)
    };
    Ok(User {
        id: UserId::from_uuid(uuid(row, "id")?),
        username: Username::parse(&text("username")?.unwrap_or_default())
            .map_err(corrupt("username"))?,
        email: text("email")?
            .map(|e| EmailAddress::parse(&e))
            .transpose()
            .map_err(corrupt("email"))?,
        full_name: text("full_name")?
            .map(|n| FullName::parse(&n))
            .transpose()
            .map_err(corrupt("full name"))?,
        roles: Roles::parse_space_separated(&text("roles")?.unwrap_or_default())
            .map_err(corrupt("roles"))?,
        is_active: row.try_get("is_active").map_err(store_error)?,
        password_hash: PasswordHash::new(text("password_hash")?.unwrap_or_default()),
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

fn session_from_row(row: &SqliteRow) -> Result<Session, StoreError> {
    let scope: String = row.try_get("scope").map_err(store_error)?;
    Ok(Session {
        id: SessionId::from_uuid(uuid(row, "id")?),
        user_id: UserId::from_uuid(uuid(row, "user_id")?),
        scope: Roles::parse_space_separated(&scope).map_err(corrupt("scope"))?,
        created_at: time(row, "created_at")?,
        expires_at: time(row, "expires_at")?,
    })
}

#[async_trait]
impl UserRepository for SqliteStore {
    #[tracing::instrument(skip_all, fields(user_id = %user.id))]
    async fn insert(&self, user: &User) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO users (id, username, email, full_name, password_hash, roles, is_active, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(user.id.to_string())
        .bind(user.username.as_str())
        .bind(user.email.as_ref().map(EmailAddress::as_str))
        .bind(user.full_name.as_ref().map(FullName::as_str))
        .bind(user.password_hash.as_str())
        .bind(user.roles.to_space_separated())
        .bind(user.is_active)
        .bind(micros(user.created_at))
        .bind(micros(user.updated_at))
        .execute(&self.writer)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE u.id = ?");
        let row = sqlx::query(&sql)
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await
            .map_err(store_error)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn find_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE lower(u.username) = lower(?)");
        let row = sqlx::query(&sql)
            .bind(username)
            .fetch_optional(&self.reader)
            .await
            .map_err(store_error)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn find_active_by_session(
        &self,
        user_id: UserId,
        session_id: SessionId,
        now: DateTime<Utc>,
    ) -> Result<Option<User>, StoreError> {
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.id = ? AND s.user_id = ? AND s.revoked_at IS NULL AND s.expires_at > ?
               AND u.is_active = 1"
        );
        let row = sqlx::query(&sql)
            .bind(session_id.to_string())
            .bind(user_id.to_string())
            .bind(micros(now))
            .fetch_optional(&self.reader)
            .await
            .map_err(store_error)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn update_password_hash(
        &self,
        id: UserId,
        hash: &PasswordHash,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?")
            .bind(hash.as_str())
            .bind(micros(now))
            .bind(id.to_string())
            .execute(&self.writer)
            .await
            .map_err(store_error)?;
        Ok(done.rows_affected() == 1)
    }
}

#[async_trait]
impl TokenRepository for SqliteStore {
    #[tracing::instrument(skip_all, fields(session_id = %session.id))]
    async fn create_session(
        &self,
        session: &Session,
        first_token: &RefreshTokenRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await.map_err(store_error)?;
        sqlx::query(
            "INSERT INTO sessions (id, user_id, scope, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(session.id.to_string())
        .bind(session.user_id.to_string())
        .bind(session.scope.to_space_separated())
        .bind(micros(session.created_at))
        .bind(micros(session.expires_at))
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
        )
        .bind(first_token.hash.as_str())
        .bind(first_token.session_id.to_string())
        .bind(micros(first_token.created_at))
        .bind(micros(first_token.expires_at))
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        tx.commit().await.map_err(store_error)
    }

    #[tracing::instrument(skip_all)]
    async fn rotate_refresh_token(
        &self,
        presented: &RefreshTokenHash,
        next: &RefreshTokenHash,
        next_expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<RotationOutcome, StoreError> {
        let now = micros(now);
        let mut tx = self.writer.begin().await.map_err(store_error)?;
        // The conditional update is the whole race: only a caller that flips `used_at` from
        // NULL rotates.
        let claimed: Option<String> = sqlx::query_scalar(
            "UPDATE refresh_tokens SET used_at = ?1
             WHERE token_hash = ?2 AND used_at IS NULL AND expires_at > ?1
               AND session_id IN (SELECT s.id FROM sessions s JOIN users u ON u.id = s.user_id
                                  WHERE s.revoked_at IS NULL AND u.is_active = 1)
             RETURNING session_id",
        )
        .bind(now)
        .bind(presented.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(store_error)?;

        if let Some(session_id) = claimed {
            sqlx::query(
                "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
            )
            .bind(next.as_str())
            .bind(&session_id)
            .bind(now)
            .bind(micros(next_expires_at))
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
            let session_row = sqlx::query(
                "UPDATE sessions SET expires_at = ? WHERE id = ?
                 RETURNING id, user_id, scope, created_at, expires_at",
            )
            .bind(micros(next_expires_at))
            .bind(&session_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(store_error)?;
            let session = session_from_row(&session_row)?;
            let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE u.id = ?");
            let user_row = sqlx::query(&sql)
                .bind(session.user_id.to_string())
                .fetch_one(&mut *tx)
                .await
                .map_err(store_error)?;
            let user = user_from_row(&user_row)?;
            tx.commit().await.map_err(store_error)?;
            return Ok(RotationOutcome::Rotated {
                session,
                user: Box::new(user),
            });
        }

        let used = sqlx::query(
            "SELECT t.session_id, s.user_id FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
             WHERE t.token_hash = ? AND t.used_at IS NOT NULL",
        )
        .bind(presented.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(store_error)?;
        let Some(used) = used else {
            return Ok(RotationOutcome::Invalid);
        };
        let session_id = SessionId::from_uuid(uuid(&used, "session_id")?);
        let user_id = UserId::from_uuid(uuid(&used, "user_id")?);
        sqlx::query(
            "UPDATE sessions SET revoked_at = ?, revoked_reason = ? WHERE id = ? AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(RevocationReason::RefreshTokenReused.as_str())
        .bind(session_id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(RotationOutcome::Reused {
            session_id,
            user_id,
        })
    }

    async fn find_session_of_refresh_token(
        &self,
        hash: &RefreshTokenHash,
    ) -> Result<Option<SessionId>, StoreError> {
        let row = sqlx::query("SELECT session_id FROM refresh_tokens WHERE token_hash = ?")
            .bind(hash.as_str())
            .fetch_optional(&self.reader)
            .await
            .map_err(store_error)?;
        row.map(|r| uuid(&r, "session_id").map(SessionId::from_uuid))
            .transpose()
    }

    async fn revoke_session(
        &self,
        id: SessionId,
        reason: RevocationReason,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = ?, revoked_reason = ? WHERE id = ? AND revoked_at IS NULL",
        )
        .bind(micros(now))
        .bind(reason.as_str())
        .bind(id.to_string())
        .execute(&self.writer)
        .await
        .map_err(store_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn revoke_user_sessions(
        &self,
        user_id: UserId,
        except: Option<SessionId>,
        reason: RevocationReason,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = ?, revoked_reason = ?
             WHERE user_id = ? AND revoked_at IS NULL AND id IS NOT ?",
        )
        .bind(micros(now))
        .bind(reason.as_str())
        .bind(user_id.to_string())
        .bind(except.map(|id| id.to_string()))
        .execute(&self.writer)
        .await
        .map_err(store_error)?;
        Ok(done.rows_affected())
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
