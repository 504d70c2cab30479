//! SQLite errors as the ports' [`StoreError`].

use rusqlite::ErrorCode;

use crate::domain::ports::StoreError;
use crate::infrastructure::db::taken;

/// `SQLITE_CONSTRAINT_UNIQUE`: a unique index or `UNIQUE` column refused a row (a primary-key
/// collision is `SQLITE_CONSTRAINT_PRIMARYKEY`, 1555, and clashes with no username or e-mail).
const CONSTRAINT_UNIQUE: i32 = 2067;

/// Translates a driver error into the port's error; `rusqlite::Error` never leaves `db/`.
pub(super) fn store_error(error: rusqlite::Error) -> StoreError {
    match &error {
        rusqlite::Error::SqliteFailure(failure, message) => match failure.code {
            ErrorCode::ConstraintViolation if failure.extended_code == CONSTRAINT_UNIQUE => {
                violated(message.as_deref().unwrap_or_default())
                    .and_then(taken)
                    .unwrap_or_else(|| StoreError::Other(error.to_string()))
            }
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::CannotOpen
            | ErrorCode::SystemIoFailure
            | ErrorCode::FileLockingProtocolFailed
            | ErrorCode::DiskFull => StoreError::Unavailable(error.to_string()),
            _ => StoreError::Other(error.to_string()),
        },
        _ => StoreError::Other(error.to_string()),
    }
}

/// The constraint a unique violation names. The message is SQLite's only carrier of it:
/// `UNIQUE constraint failed: index 'users_username_ci'` for an index on an expression (such as
/// the case-insensitive ones), `UNIQUE constraint failed: users.email` for a column.
fn violated(message: &str) -> Option<&str> {
    let carrier = message.strip_prefix("UNIQUE constraint failed: ")?;
    Some(
        carrier
            .strip_prefix("index '")
            .and_then(|name| name.strip_suffix('\''))
            .unwrap_or(carrier),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unique_violation(extended_code: i32, message: &str) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error {
                code: ErrorCode::ConstraintViolation,
                extended_code,
            },
            Some(message.into()),
        )
    }

    #[test]
    fn only_the_username_and_email_constraints_are_clashes() {
        let map = |code, message| store_error(unique_violation(code, message));
        let username = "UNIQUE constraint failed: index 'users_username_ci'";
        let email = "UNIQUE constraint failed: index 'users_email_ci'";
        assert!(matches!(map(2067, username), StoreError::UsernameTaken));
        assert!(matches!(map(2067, email), StoreError::EmailTaken));
        assert!(matches!(
            map(2067, "UNIQUE constraint failed: users.email"),
            StoreError::EmailTaken
        ));
        for other in [
            "UNIQUE constraint failed: users.id",
            "UNIQUE constraint failed: users.email_verified",
            "UNIQUE constraint failed: index 'users_email_ci_old'",
            "UNIQUE constraint failed: audit_events.id",
        ] {
            assert!(matches!(map(2067, other), StoreError::Other(_)), "{other}");
        }
        assert!(matches!(
            map(1555, "UNIQUE constraint failed: users.id"),
            StoreError::Other(_)
        ));
    }
}
