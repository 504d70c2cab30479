//! [`UserRepository`] on SQLite.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

use super::cache::Lookup;
use super::{
    into_user, micros, store_error, time, user_columns, user_from_row, user_record, SqliteStore,
};
use crate::domain::ports::{StoreError, UserRepository};
use crate::domain::session::SessionId;
use crate::domain::user::{PasswordHash, User, UserId};
use crate::infrastructure::db::records::UserRecord;

#[async_trait]
impl UserRepository for SqliteStore {
    #[tracing::instrument(skip_all, fields(user_id = %user.id))]
    async fn insert(&self, user: &User) -> Result<(), StoreError> {
        let row = (
            user.id.to_string(),
            user.username.as_str().to_owned(),
            user.email.as_ref().map(|e| e.as_str().to_owned()),
            user.full_name.as_ref().map(|n| n.as_str().to_owned()),
            user.password_hash.as_str().to_owned(),
            user.roles.to_space_separated(),
            user.is_active,
            micros(user.created_at),
            micros(user.updated_at),
        );
        self.write(move |connection| {
            connection
                .prepare_cached(
                    "INSERT INTO users (id, username, email, full_name, password_hash, roles, is_active, created_at, updated_at)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                )
                .and_then(|mut statement| statement.execute(row))
                .map_err(store_error)?;
            Ok(())
        })
        .await
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
    ) -> Result<Option<Arc<User>>, StoreError> {
        let epoch = match self.sessions.lookup(user_id, session_id, now) {
            Lookup::Live(user) => return Ok(Some(user)),
            Lookup::Miss(epoch) => epoch,
        };
        let reader = self.reader().await?;
        let sql = concat!(
            "SELECT s.expires_at, ",
            user_columns!(),
            " FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.id = ? AND s.user_id = ? AND s.revoked_at IS NULL AND s.expires_at > ?
               AND u.is_active = 1"
        );
        let found = reader
            .prepare_cached(sql)
            .and_then(|mut s| {
                s.query_row(
                    params![session_id.to_string(), user_id.to_string(), micros(now)],
                    |row| Ok((time(row.get(0)?)?, user_record(row, 1)?)),
                )
                .optional()
            })
            .map_err(store_error)?;
        drop(reader);
        let Some((expires_at, record)) = found else {
            return Ok(None);
        };
        let user = Arc::new(record.into_user()?);
        self.sessions
            .fill(epoch, session_id, expires_at, Arc::clone(&user));
        Ok(Some(user))
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
        let row = (
            user.email.as_ref().map(|e| e.as_str().to_owned()),
            user.full_name.as_ref().map(|n| n.as_str().to_owned()),
            user.roles.to_space_separated(),
            user.is_active,
            micros(user.updated_at),
            user.id.to_string(),
        );
        let changed = self
            .write(move |connection| {
                connection
                    .prepare_cached(
                        "UPDATE users SET email = ?, full_name = ?, roles = ?, is_active = ?, updated_at = ? WHERE id = ?",
                    )
                    .and_then(|mut s| s.execute(row))
                    .map_err(store_error)
            })
            .await?;
        self.sessions.forget_user(user.id);
        Ok(changed == 1)
    }

    async fn update_password_hash(
        &self,
        id: UserId,
        hash: &PasswordHash,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let hash = hash.as_str().to_owned();
        let changed = self
            .write(move |connection| {
                connection
                    .prepare_cached(
                        "UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?",
                    )
                    .and_then(|mut s| s.execute(params![hash, micros(now), id.to_string()]))
                    .map_err(store_error)
            })
            .await?;
        self.sessions.forget_user(id);
        Ok(changed == 1)
    }
}
