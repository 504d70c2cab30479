//! [`UserRepository`] on SQLite.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

use super::tokens::revoke_all;
use super::{
    into_user, micros, store_error, time, user_columns, user_from_row, user_record, SqliteStore,
};
use crate::domain::ports::{StoreError, UserRepository};
use crate::domain::session::{RevocationReason, SessionId};
use crate::domain::user::{LoginKey, PasswordHash, Roles, User, UserChanges, UserId};
use crate::infrastructure::db::records::UserRecord;
use crate::infrastructure::db::session_cache::Lookup;

impl SqliteStore {
    /// The user `sql` (selecting `user_columns!()` by its one parameter, `value`) finds.
    async fn find_user(
        &self,
        sql: &'static str,
        value: String,
    ) -> Result<Option<User>, StoreError> {
        let record = self
            .read(move |reader| {
                reader
                    .prepare_cached(sql)?
                    .query_row([value], user_from_row)
                    .optional()
            })
            .await?;
        into_user(record)
    }
}

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
            user.credential_version,
            micros(user.created_at),
            micros(user.updated_at),
        );
        self.write(move |connection| {
            connection
                .prepare_cached(
                    "INSERT INTO users (id, username, email, full_name, password_hash, roles, is_active, credential_version, created_at, updated_at)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                )
                .and_then(|mut statement| statement.execute(row))
                .map_err(store_error)?;
            Ok(())
        })
        .await
    }

    async fn has_password_hash_with_prefix(&self, prefix: &str) -> Result<bool, StoreError> {
        let prefix = prefix.to_owned();
        self.read(move |reader| {
            reader
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM users WHERE substr(password_hash, 1, length(?1)) = ?1)",
                )?
                .query_row([prefix], |row| row.get(0))
        })
        .await
    }

    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let sql = concat!("SELECT ", user_columns!(), " FROM users u WHERE u.id = ?");
        self.find_user(sql, id.to_string()).await
    }

    async fn find_by_username(&self, key: &LoginKey) -> Result<Option<User>, StoreError> {
        // The key is already canonical (ASCII lower case), and so is lower() of a stored
        // username (ASCII by the username rules): the unique index on lower(username) answers.
        let sql = concat!(
            "SELECT ",
            user_columns!(),
            " FROM users u WHERE lower(u.username) = ?"
        );
        self.find_user(sql, key.as_str().to_owned()).await
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
        let sql = concat!(
            "SELECT s.expires_at, ",
            user_columns!(),
            " FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.id = ? AND s.user_id = ? AND s.revoked_at IS NULL AND s.expires_at > ?
               AND u.is_active = 1"
        );
        let found = self
            .read(move |reader| {
                reader
                    .prepare_cached(sql)?
                    .query_row(
                        params![session_id.to_string(), user_id.to_string(), micros(now)],
                        |row| Ok((time(row.get(0)?)?, user_record(row, 1)?)),
                    )
                    .optional()
            })
            .await?;
        let Some((expires_at, record)) = found else {
            return Ok(None);
        };
        let user = Arc::new(record.into_user()?);
        self.sessions
            .fill(epoch, session_id, expires_at, Arc::clone(&user));
        Ok(Some(user))
    }

    async fn list(&self, limit: u32, offset: u64) -> Result<(Vec<User>, u64), StoreError> {
        let sql = concat!(
            "SELECT ",
            user_columns!(),
            " FROM users u ORDER BY u.created_at, u.id LIMIT ? OFFSET ?"
        );
        let (records, total) = self
            .read(move |reader| {
                let records = reader
                    .prepare_cached(sql)?
                    .query_map(
                        params![i64::from(limit), i64::try_from(offset).unwrap_or(i64::MAX)],
                        user_from_row,
                    )?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                let total: i64 = reader
                    .prepare_cached("SELECT count(*) FROM users")?
                    .query_row([], |row| row.get(0))?;
                Ok((records, total))
            })
            .await?;
        let users = records
            .into_iter()
            .map(UserRecord::into_user)
            .collect::<Result<_, _>>()?;
        Ok((users, u64::try_from(total).unwrap_or_default()))
    }

    #[tracing::instrument(skip_all, fields(user_id = %id))]
    async fn update_fields(
        &self,
        id: UserId,
        changes: &UserChanges,
        now: DateTime<Utc>,
    ) -> Result<Option<(User, u64)>, StoreError> {
        // One statement: each column is either the one named by the change or itself, so a
        // concurrent change of other fields is never overwritten with what was read before.
        let email = changes
            .email
            .as_ref()
            .map(|e| e.as_ref().map(|e| e.as_str().to_owned()));
        let full_name = changes
            .full_name
            .as_ref()
            .map(|n| n.as_ref().map(|n| n.as_str().to_owned()));
        let row = (
            changes.is_active,
            changes.roles.as_ref().map(Roles::to_space_separated),
            email.is_some(),
            email.flatten(),
            full_name.is_some(),
            full_name.flatten(),
            micros(now),
            id.to_string(),
        );
        let disable = changes.is_active == Some(false);
        let sql = "UPDATE users SET
                is_active = coalesce(?1, is_active),
                roles = coalesce(?2, roles),
                email = CASE WHEN ?3 THEN ?4 ELSE email END,
                email_verified = CASE WHEN ?3 AND email IS NOT ?4 THEN 0 ELSE email_verified END,
                full_name = CASE WHEN ?5 THEN ?6 ELSE full_name END,
                updated_at = ?7
             WHERE id = ?8";
        let select = concat!("SELECT ", user_columns!(), " FROM users u WHERE u.id = ?");
        let updated = self
            .write(move |connection| {
                let changed = connection
                    .prepare_cached(sql)
                    .and_then(|mut s| s.execute(row.clone()))
                    .map_err(store_error)?;
                if changed == 0 {
                    return Ok(None);
                }
                let record = connection
                    .prepare_cached(select)
                    .and_then(|mut s| s.query_row([&row.7], user_from_row).optional())
                    .map_err(store_error)?;
                let revoked = match (&record, disable) {
                    (Some(_), true) => revoke_all(
                        connection,
                        &row.7,
                        None,
                        RevocationReason::UserDisabled,
                        row.6,
                    )?,
                    _ => 0,
                };
                Ok(record.map(|record| (record, revoked)))
            })
            .await?;
        self.sessions.forget_user(id);
        updated
            .map(|(record, revoked)| Ok((record.into_user()?, revoked)))
            .transpose()
    }

    async fn change_password(
        &self,
        id: UserId,
        hash: &PasswordHash,
        keep: Option<SessionId>,
        now: DateTime<Utc>,
    ) -> Result<Option<u64>, StoreError> {
        let hash = hash.as_str().to_owned();
        let revoked = self
            .write(move |connection| {
                let user_id = id.to_string();
                let changed = connection
                    .prepare_cached(
                        "UPDATE users SET password_hash = ?, credential_version = credential_version + 1,
                         updated_at = ? WHERE id = ?",
                    )
                    .and_then(|mut s| s.execute(params![hash, micros(now), user_id]))
                    .map_err(store_error)?;
                if changed == 0 {
                    return Ok(None);
                }
                let keep = keep.map(|id| id.to_string());
                revoke_all(
                    connection,
                    &user_id,
                    keep.as_deref(),
                    RevocationReason::PasswordChanged,
                    micros(now),
                )
                .map(Some)
            })
            .await?;
        self.sessions.forget_user(id);
        Ok(revoked)
    }

    async fn upgrade_password_hash(
        &self,
        id: UserId,
        old: &PasswordHash,
        new: &PasswordHash,
    ) -> Result<bool, StoreError> {
        let (old, new) = (old.as_str().to_owned(), new.as_str().to_owned());
        let changed = self
            .write(move |connection| {
                connection
                    .prepare_cached(
                        "UPDATE users SET password_hash = ? WHERE id = ? AND password_hash = ?",
                    )
                    .and_then(|mut s| s.execute(params![new, id.to_string(), old]))
                    .map_err(store_error)
            })
            .await?;
        self.sessions.forget_user(id);
        Ok(changed == 1)
    }
}
