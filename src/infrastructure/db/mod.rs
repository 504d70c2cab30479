//! Storage adapters, chosen once at start-up from the `DATABASE_URL` scheme.

pub mod sqlite;

use std::sync::Arc;

use crate::domain::ports::{
    AuditLog, HealthProbe, LoginThrottle, Purge, StoreError, TokenRepository, UserRepository,
};

/// The repositories of one backend, as the wiring hands them to the use cases.
#[derive(Clone)]
pub struct Repositories {
    pub users: Arc<dyn UserRepository>,
    pub tokens: Arc<dyn TokenRepository>,
    pub throttle: Arc<dyn LoginThrottle>,
    pub audit: Arc<dyn AuditLog>,
    pub purge: Arc<dyn Purge>,
    pub health: Arc<dyn HealthProbe>,
}

/// Connects to the database named by `url`, applies the embedded migrations and returns its
/// repositories.
///
/// # Errors
/// [`StoreError::Unavailable`] when the database cannot be opened or migrated;
/// [`StoreError::Other`] for an unsupported scheme.
pub async fn connect(url: &str, max_connections: u32) -> Result<Repositories, StoreError> {
    if url.starts_with("sqlite:") {
        let store = Arc::new(sqlite::SqliteStore::connect(url, max_connections).await?);
        Ok(Repositories {
            users: store.clone(),
            tokens: store.clone(),
            throttle: store.clone(),
            audit: store.clone(),
            purge: store.clone(),
            health: store,
        })
    } else {
        let scheme = url.split(':').next().unwrap_or_default();
        Err(StoreError::Other(format!(
            "DATABASE_URL scheme '{scheme}:' is not supported; use sqlite://path"
        )))
    }
}

/// Translates a driver error into the port's error; `sqlx::Error` never leaves `db/`.
pub(crate) fn store_error(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            if db.message().contains("email") {
                StoreError::EmailTaken
            } else {
                StoreError::UsernameTaken
            }
        }
        sqlx::Error::Database(db) if db.message().contains("database is locked") => {
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
