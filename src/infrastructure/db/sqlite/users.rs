//! [`UserRepository`] on SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{micros, store_error, SqliteStore, USER_COLUMNS};
use crate::domain::ports::{StoreError, UserRepository};
use crate::domain::session::SessionId;
use crate::domain::user::{EmailAddress, FullName, PasswordHash, User, UserId};

use super::user_from_row;

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

    async fn list(&self, limit: u32, offset: u64) -> Result<(Vec<User>, u64), StoreError> {
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users u ORDER BY u.created_at, u.id LIMIT ? OFFSET ?"
        );
        let rows = sqlx::query(&sql)
            .bind(i64::from(limit))
            .bind(i64::try_from(offset).unwrap_or(i64::MAX))
            .fetch_all(&self.reader)
            .await
            .map_err(store_error)?;
        let total: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
            .fetch_one(&self.reader)
            .await
            .map_err(store_error)?;
        let users = rows.iter().map(user_from_row).collect::<Result<_, _>>()?;
        Ok((users, u64::try_from(total).unwrap_or_default()))
    }

    #[tracing::instrument(skip_all, fields(user_id = %user.id))]
    async fn update(&self, user: &User) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE users SET email = ?, full_name = ?, roles = ?, is_active = ?, updated_at = ? WHERE id = ?",
        )
        .bind(user.email.as_ref().map(EmailAddress::as_str))
        .bind(user.full_name.as_ref().map(FullName::as_str))
        .bind(user.roles.to_space_separated())
        .bind(user.is_active)
        .bind(micros(user.updated_at))
        .bind(user.id.to_string())
        .execute(&self.writer)
        .await
        .map_err(store_error)?;
        Ok(done.rows_affected() == 1)
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
