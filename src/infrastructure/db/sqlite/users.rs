//! [`UserRepository`] on SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

use super::{into_user, micros, store_error, user_columns, user_from_row, SqliteStore};
use crate::domain::ports::{StoreError, UserRepository};
use crate::domain::session::SessionId;
use crate::domain::user::{EmailAddress, FullName, PasswordHash, User, UserId};
use crate::infrastructure::db::records::UserRecord;

#[async_trait]
impl UserRepository for SqliteStore {
    #[tracing::instrument(skip_all, fields(user_id = %user.id))]
    async fn insert(&self, user: &User) -> Result<(), StoreError> {
        let writer = self.writer().await?;
        writer
            .prepare_cached(
                "INSERT INTO users (id, username, email, full_name, password_hash, roles, is_active, created_at, updated_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .and_then(|mut statement| {
                statement.execute(params![
                    user.id.to_string(),
                    user.username.as_str(),
                    user.email.as_ref().map(EmailAddress::as_str),
                    user.full_name.as_ref().map(FullName::as_str),
                    user.password_hash.as_str(),
                    user.roles.to_space_separated(),
                    user.is_active,
                    micros(user.created_at),
                    micros(user.updated_at),
                ])
            })
            .map_err(store_error)?;
        Ok(())
    }

    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let reader = self.reader().await?;
        let sql = concat!("SELECT ", user_columns!(), " FROM users u WHERE u.id = ?");
        let record = reader
            .prepare_cached(sql)
            .and_then(|mut s| s.query_row([id.to_string()], user_from_row).optional())
            .map_err(store_error)?;
        into_user(record)
    }

    async fn find_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        let reader = self.reader().await?;
        let sql = concat!(
            "SELECT ",
            user_columns!(),
            " FROM users u WHERE lower(u.username) = lower(?)"
        );
        let record = reader
            .prepare_cached(sql)
            .and_then(|mut s| s.query_row([username], user_from_row).optional())
            .map_err(store_error)?;
        into_user(record)
    }

    async fn find_active_by_session(
        &self,
        user_id: UserId,
        session_id: SessionId,
        now: DateTime<Utc>,
    ) -> Result<Option<User>, StoreError> {
        let reader = self.reader().await?;
        let sql = concat!(
            "SELECT ",
            user_columns!(),
            " FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.id = ? AND s.user_id = ? AND s.revoked_at IS NULL AND s.expires_at > ?
               AND u.is_active = 1"
        );
        let record = reader
            .prepare_cached(sql)
            .and_then(|mut s| {
                s.query_row(
                    params![session_id.to_string(), user_id.to_string(), micros(now)],
                    user_from_row,
                )
                .optional()
            })
            .map_err(store_error)?;
        into_user(record)
    }

    async fn list(&self, limit: u32, offset: u64) -> Result<(Vec<User>, u64), StoreError> {
        let reader = self.reader().await?;
        let sql = concat!(
            "SELECT ",
            user_columns!(),
            " FROM users u ORDER BY u.created_at, u.id LIMIT ? OFFSET ?"
        );
        let records = reader
            .prepare_cached(sql)
            .and_then(|mut s| {
                s.query_map(
                    params![i64::from(limit), i64::try_from(offset).unwrap_or(i64::MAX)],
                    user_from_row,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(store_error)?;
        let total: i64 = reader
            .prepare_cached("SELECT count(*) FROM users")
            .and_then(|mut s| s.query_row([], |row| row.get(0)))
            .map_err(store_error)?;
        let users = records
            .into_iter()
            .map(UserRecord::into_user)
            .collect::<Result<_, _>>()?;
        Ok((users, u64::try_from(total).unwrap_or_default()))
    }

    #[tracing::instrument(skip_all, fields(user_id = %user.id))]
    async fn update(&self, user: &User) -> Result<bool, StoreError> {
        let writer = self.writer().await?;
        let changed = writer
            .prepare_cached(
                "UPDATE users SET email = ?, full_name = ?, roles = ?, is_active = ?, updated_at = ? WHERE id = ?",
            )
            .and_then(|mut s| {
                s.execute(params![
                    user.email.as_ref().map(EmailAddress::as_str),
                    user.full_name.as_ref().map(FullName::as_str),
                    user.roles.to_space_separated(),
                    user.is_active,
                    micros(user.updated_at),
                    user.id.to_string(),
                ])
            })
            .map_err(store_error)?;
        Ok(changed == 1)
    }

    async fn update_password_hash(
        &self,
        id: UserId,
        hash: &PasswordHash,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let writer = self.writer().await?;
        let changed = writer
            .prepare_cached("UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?")
            .and_then(|mut s| s.execute(params![hash.as_str(), micros(now), id.to_string()]))
            .map_err(store_error)?;
        Ok(changed == 1)
    }
}
