//! Row decoding: SQLite stores ids as text and times as microseconds since the epoch.

use chrono::{DateTime, Utc};
use rusqlite::Row;
use uuid::Uuid;

use crate::domain::ports::StoreError;
use crate::domain::session::Session;
use crate::domain::user::User;
use crate::infrastructure::db::records::{SessionRecord, UserRecord};

/// The `users` columns in the order [`user_record`] reads them, as a literal so queries are
/// `concat!`ed at compile time rather than formatted per call.
macro_rules! user_columns {
    () => {
        "u.id, u.username, u.email, u.full_name, u.password_hash, u.roles, u.is_active, u.credential_version, u.created_at, u.updated_at, u.email_verified, u.totp_enabled, u.passkey_count, u.recovery_codes_left"
    };
}
pub(in crate::infrastructure::db::sqlite) use user_columns;

pub(in crate::infrastructure::db::sqlite) fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

pub(in crate::infrastructure::db::sqlite) fn time(value: i64) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(value).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Integer,
            "time out of range".into(),
        )
    })
}

pub(in crate::infrastructure::db::sqlite) fn uuid(value: &str) -> rusqlite::Result<Uuid> {
    Uuid::parse_str(value).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// A `users` row in `user_columns!()` order (from column `at` on).
pub(in crate::infrastructure::db::sqlite) fn user_record(
    row: &Row<'_>,
    at: usize,
) -> rusqlite::Result<UserRecord> {
    Ok(UserRecord {
        id: uuid(&row.get::<_, String>(at)?)?,
        username: row.get(at + 1)?,
        email: row.get(at + 2)?,
        full_name: row.get(at + 3)?,
        password_hash: row.get(at + 4)?,
        roles: row.get(at + 5)?,
        is_active: row.get(at + 6)?,
        credential_version: row.get(at + 7)?,
        created_at: time(row.get(at + 8)?)?,
        updated_at: time(row.get(at + 9)?)?,
        email_verified: row.get(at + 10)?,
        totp_enabled: row.get(at + 11)?,
        passkey_count: row.get(at + 12)?,
        recovery_codes_left: row.get(at + 13)?,
    })
}

pub(in crate::infrastructure::db::sqlite) fn user_from_row(
    row: &Row<'_>,
) -> rusqlite::Result<UserRecord> {
    user_record(row, 0)
}

/// The `sessions` columns in the order [`session_from_row`] reads them.
pub(in crate::infrastructure::db::sqlite) const SESSION_COLUMNS: &str =
    "id, user_id, scope, created_at, expires_at, not_after, parent_id, client_id";

/// [`SESSION_COLUMNS`] of the table aliased `s`, for joins (as a literal, like `user_columns!`).
macro_rules! session_columns {
    () => {
        "s.id, s.user_id, s.scope, s.created_at, s.expires_at, s.not_after, s.parent_id, s.client_id"
    };
}
pub(in crate::infrastructure::db::sqlite) use session_columns;

/// A `sessions` row in [`SESSION_COLUMNS`] order (from column `at` on).
pub(in crate::infrastructure::db::sqlite) fn session_record(
    row: &Row<'_>,
    at: usize,
) -> rusqlite::Result<SessionRecord> {
    let optional_uuid = |i: usize| {
        row.get::<_, Option<String>>(at + i)?
            .map(|id| uuid(&id))
            .transpose()
    };
    Ok(SessionRecord {
        id: uuid(&row.get::<_, String>(at)?)?,
        user_id: uuid(&row.get::<_, String>(at + 1)?)?,
        scope: row.get(at + 2)?,
        created_at: time(row.get(at + 3)?)?,
        expires_at: time(row.get(at + 4)?)?,
        not_after: time(row.get(at + 5)?)?,
        parent_id: optional_uuid(6)?,
        client_id: optional_uuid(7)?,
    })
}

/// A `sessions` row in [`SESSION_COLUMNS`] order.
pub(in crate::infrastructure::db::sqlite) fn session_from_row(
    row: &Row<'_>,
) -> rusqlite::Result<SessionRecord> {
    session_record(row, 0)
}

pub(in crate::infrastructure::db::sqlite) fn into_user(
    record: Option<UserRecord>,
) -> Result<Option<User>, StoreError> {
    record.map(UserRecord::into_user).transpose()
}

pub(in crate::infrastructure::db::sqlite) fn into_session(
    record: SessionRecord,
) -> Result<Session, StoreError> {
    record.into_session()
}
