//! [`UserRepository`] on PostgreSQL.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::tokens::revoke_all;
use super::{store_error, PgStore, USER_COLUMNS};
use crate::domain::ports::{StoreError, UserRepository};
use crate::domain::session::{RevocationReason, SessionId};
use crate::domain::user::{
    EmailAddress, FullName, LoginKey, PasswordHash, Roles, User, UserChanges, UserId,
};
use crate::infrastructure::db::records::UserRecord;
use crate::infrastructure::db::session_cache::Lookup;

/// A live session's expiry and its user.
#[derive(sqlx::FromRow)]
struct LiveSessionRecord {
    session_expires_at: DateTime<Utc>,
    #[sqlx(flatten)]
    user: UserRecord,
}

fn users(records: Vec<UserRecord>) -> Result<Vec<User>, StoreError> {
    records.into_iter().map(UserRecord::into_user).collect()
}

fn user(record: Option<UserRecord>) -> Result<Option<User>, StoreError> {
    record.map(UserRecord::into_user).transpose()
}

impl PgStore {
    /// The user `sql` (selecting [`USER_COLUMNS`] by its one parameter, `value`) finds.
    async fn find_user<'q, T>(&self, sql: &'q str, value: T) -> Result<Option<User>, StoreError>
    where
        T: 'q + Send + sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
    {
        let record = sqlx::query_as(sql)
            .bind(value)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        user(record)
    }
}

#[async_trait]
impl UserRepository for PgStore {
    #[tracing::instrument(skip_all, fields(user_id = %user.id))]
    async fn insert(&self, user: &User) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO users (id, username, email, full_name, password_hash, roles, is_active, credential_version, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(user.id.as_uuid())
        .bind(user.username.as_str())
        .bind(user.email.as_ref().map(EmailAddress::as_str))
        .bind(user.full_name.as_ref().map(FullName::as_str))
        .bind(user.password_hash.as_str())
        .bind(user.roles.to_space_separated())
        .bind(user.is_active)
        .bind(user.credential_version)
        .bind(user.created_at)
        .bind(user.updated_at)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    async fn has_password_hash_with_prefix(&self, prefix: &str) -> Result<bool, StoreError> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM users WHERE left(password_hash, length($1)) = $1)",
        )
        .bind(prefix)
        .fetch_one(&self.pool)
        .await
        .map_err(store_error)
    }

    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE u.id = $1");
        self.find_user(&sql, id.as_uuid()).await
    }

    async fn find_by_username(&self, key: &LoginKey) -> Result<Option<User>, StoreError> {
        // The key is canonical (ASCII lower case), as lower() of a stored username is (ASCII by
        // the username rules); lower() is never applied to what the client typed.
        let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE lower(u.username) = $1");
        self.find_user(&sql, key.as_str()).await
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
        let sql = format!(
            "SELECT s.expires_at AS session_expires_at, {USER_COLUMNS}
             FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.id = $1 AND s.user_id = $2 AND s.revoked_at IS NULL AND s.expires_at > $3
               AND u.is_active"
        );
        let record: Option<LiveSessionRecord> = sqlx::query_as(&sql)
            .bind(session_id.as_uuid())
            .bind(user_id.as_uuid())
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        let Some(record) = record else {
            return Ok(None);
        };
        let user = Arc::new(record.user.into_user()?);
        self.sessions.fill(
            epoch,
            session_id,
            record.session_expires_at,
            Arc::clone(&user),
        );
        Ok(Some(user))
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

    #[tracing::instrument(skip_all, fields(user_id = %id))]
    async fn update_fields(
        &self,
        id: UserId,
        changes: &UserChanges,
        now: DateTime<Utc>,
    ) -> Result<Option<(User, u64)>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        // One statement naming only the changed columns' values: a concurrent change of other
        // fields is never overwritten with what was read before (the row lock orders the two).
        let sql = format!(
            "UPDATE users AS u SET
                is_active = coalesce($1, u.is_active),
                roles = coalesce($2, u.roles),
                email = CASE WHEN $3 THEN $4 ELSE u.email END,
                email_verified = CASE WHEN $3 AND u.email IS DISTINCT FROM $4 THEN false
                                      ELSE u.email_verified END,
                full_name = CASE WHEN $5 THEN $6 ELSE u.full_name END,
                updated_at = $7
             WHERE u.id = $8 RETURNING {USER_COLUMNS}"
        );
        let record: Option<UserRecord> = sqlx::query_as(&sql)
            .bind(changes.is_active)
            .bind(changes.roles.as_ref().map(Roles::to_space_separated))
            .bind(changes.email.is_some())
            .bind(
                changes
                    .email
                    .as_ref()
                    .and_then(|e| e.as_ref().map(EmailAddress::as_str)),
            )
            .bind(changes.full_name.is_some())
            .bind(
                changes
                    .full_name
                    .as_ref()
                    .and_then(|n| n.as_ref().map(FullName::as_str)),
            )
            .bind(now)
            .bind(id.as_uuid())
            .fetch_optional(&mut *tx)
            .await
            .map_err(store_error)?;
        let Some(record) = record else {
            return Ok(None);
        };
        let revoked = if changes.is_active == Some(false) {
            revoke_all(&mut tx, id, None, RevocationReason::UserDisabled, now).await?
        } else {
            0
        };
        tx.commit().await.map_err(store_error)?;
        self.sessions.forget_user(id);
        Ok(Some((record.into_user()?, revoked)))
    }

    async fn change_password(
        &self,
        id: UserId,
        hash: &PasswordHash,
        keep: Option<SessionId>,
        now: DateTime<Utc>,
    ) -> Result<Option<u64>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        // The update takes the user's row lock: a login holding it (`FOR SHARE` while it starts
        // a session) commits first and its session is revoked below; one that comes after
        // sees the new credential version and starts none.
        let done = sqlx::query(
            "UPDATE users SET password_hash = $1, credential_version = credential_version + 1,
             updated_at = $2 WHERE id = $3",
        )
        .bind(hash.as_str())
        .bind(now)
        .bind(id.as_uuid())
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        let revoked = revoke_all(&mut tx, id, keep, RevocationReason::PasswordChanged, now).await?;
        tx.commit().await.map_err(store_error)?;
        self.sessions.forget_user(id);
        Ok(Some(revoked))
    }

    async fn upgrade_password_hash(
        &self,
        id: UserId,
        old: &PasswordHash,
        new: &PasswordHash,
    ) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2 AND password_hash = $3")
                .bind(new.as_str())
                .bind(id.as_uuid())
                .bind(old.as_str())
                .execute(&self.pool)
                .await
                .map_err(store_error)?;
        if done.rows_affected() == 1 {
            self.sessions.forget_user(id);
        }
        Ok(done.rows_affected() == 1)
    }
}
