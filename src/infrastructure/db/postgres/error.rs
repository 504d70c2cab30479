//! PostgreSQL errors as the ports' [`StoreError`].

use crate::domain::ports::StoreError;
use crate::infrastructure::db::taken;

/// Translates a driver error into the port's error; `sqlx::Error` never leaves `db/`.
///
/// A unique violation is a username or e-mail clash only when the violated constraint is the
/// index that guards it (`constraint()` names it); any other one (a primary-key collision, say)
/// is a [`StoreError::Other`].
pub(super) fn store_error(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => db
            .constraint()
            .and_then(taken)
            .unwrap_or_else(|| StoreError::Other(error.to_string())),
        // Connection exceptions (08), refused logins (28), a missing database (3D), a
        // transaction rolled back for a deadlock or a serialization failure (40), insufficient
        // resources (53), a database not accepting connections (55000), operator intervention
        // such as a shutdown or a terminated backend (57, including 57014, a statement
        // timeout). All of them pass on a retry or when the database is back.
        sqlx::Error::Database(db)
            if db.code().is_some_and(|code| {
                ["08", "28", "3D", "40", "53", "57"]
                    .iter()
                    .any(|class| code.starts_with(class))
                    || code == "55000"
            }) =>
        {
            StoreError::Unavailable(error.to_string())
        }
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            StoreError::Unavailable(error.to_string())
        }
        sqlx::Error::Tls(_) | sqlx::Error::Protocol(_) | sqlx::Error::WorkerCrashed => {
            StoreError::Unavailable(error.to_string())
        }
        _ => StoreError::Other(error.to_string()),
    }
}
