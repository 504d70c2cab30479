//! [`UserRepository`] on PostgreSQL.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{PgStore, USER_COLUMNS};
use crate::domain::ports::{StoreError, UserRepository};
use crate::domain::session::SessionId;
use crate::domain::user::{EmailAddress, FullName, PasswordHash, User, UserId};
use crate::infrastructure::db::records::UserRecord;
use crate::infrastructure::db::store_error;

fn users(records: Vec<UserRecord>) -> Result<Vec<User>, StoreError> {
    records.into_iter().map(UserRecord::into_user).collect()
}

fn user(record: Option<UserRecord>) -> Result<Option<User>, StoreError> {
    record.map(UserRecord::into_user).transpose()
}

#[async_trait]
impl UserRepository for PgStore {
    #[tracing::instrument(skip_all, fields(user_id = %user.id))]
    async fn insert(&self, user: &User) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO users (id, username, email, full_name, password_hash, roles, is_active, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(user.id.as_uuid())
        .bind(user.username.as_str())
        .bind(user.email.as_ref().map(EmailAddress::as_str))
        .bind(user.full_name.as_ref().map(FullName::as_str))
        .bind(user.password_hash.as_str())
        .bind(user.roles.to_space_separated())
        .bind(user.is_active)
        .bind(user.created_at)
        .bind(user.updated_at)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE u.id = $1");
        user(
            sqlx::query_as(&sql)
                .bind(id.as_uuid())
                .fetch_optional(&self.pool)
                .await
                .map_err(store_error)?,
        )
    }

    async fn find_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE lower(u.username) = lower($1)");
        user(
            sqlx::query_as(&sql)
                .bind(username)
                .fetch_optional(&self.pool)
                .await
                .map_err(store_error)?,
        )
    }

    async fn find_active_by_session(
        &self,
        user_id: UserId,
        session_id: SessionId,
        now: DateTime<Utc>,
    ) -> Result<Option<Arc<User>>, StoreError> {
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.id = $1 AND s.user_id = $2 AND s.revoked_at IS NULL AND s.expires_at > $3
               AND u.is_active"
        );
        let record = sqlx::query_as(&sql)
            .bind(session_id.as_uuid())
            .bind(user_id.as_uuid())
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(user(record)?.map(Arc::new))
    }

    async fn list(&self, limit: u32, offset: u64) -> Result<(Vec<User>, u64), StoreError> {
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users u ORDER BY u.created_at, u.id LIMIT $1 OFFSET $2"
        );
        let records = sqlx::query_as(&sql)
            .bind(i64::from(limit))
            .bind(i64::try_from(offset).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        let total: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
            .fetch_one(&self.pool)
            .await
            .map_err(store_error)?;
        Ok((users(records)?, u64::try_from(total).unwrap_or_default()))
    }

    #[tracing::instrument(skip_all, fields(user_id = %user.id))]
    async fn update(&self, user: &User) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE users SET email = $1, full_name = $2, roles = $3, is_active = $4, updated_at = $5 WHERE id = $6",
        )
        .bind(user.email.as_ref().map(EmailAddress::as_str))
        .bind(user.full_name.as_ref().map(FullName::as_str))
        .bind(user.roles.to_space_separated())
        .bind(user.is_active)
        .bind(user.updated_at)
        .bind(user.id.as_uuid())
        .execute(&self.pool)
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
        let done =
            sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
                .bind(hash.as_str())
                .bind(now)
                .bind(id.as_uuid())
                .execute(&self.pool)
                .await
                .map_err(store_error)?;
        Ok(done.rows_affected() == 1)
    }
}
