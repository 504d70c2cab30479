//! The PostgreSQL adapter for every repository port: the store for production and for several
//! replicas behind a load balancer.
//!
//! One pool with a bounded acquire wait and a per-connection `statement_timeout`, so that an
//! unreachable or stuck database turns into quick 503s rather than hanging requests; the pool
//! reconnects by itself when the database comes back. Migrations take sqlx's advisory lock, so
//! replicas starting together apply them once.
//!
//! The ports are in the same files on every backend: `users.rs`, `clients.rs`, `tokens.rs`,
//! `codes.rs`, `passkeys.rs`, `audit.rs`, `throttle.rs`, `purge.rs`, with the driver's errors mapped in
//! `error.rs`.

use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

mod account;
mod audit;
mod clients;
mod codes;
mod error;
pub mod feed;
mod mail;
mod mfa;
mod passkeys;
mod purge;
mod rates;
mod throttle;
mod tokens;
mod users;

use super::session_cache::SessionCache;
use super::DbOptions;
use crate::domain::ports::{HealthProbe, StoreError};
use error::store_error;

const USER_COLUMNS: &str =
    "u.id, u.username, u.email, u.full_name, u.password_hash, u.roles, u.is_active, u.credential_version, u.created_at, u.updated_at, u.email_verified, u.totp_enabled, u.passkey_count, u.recovery_codes_left";

/// The `sessions` columns a [`crate::infrastructure::db::records::SessionRecord`] reads.
const SESSION_COLUMNS: &str =
    "id, user_id, scope, created_at, expires_at, not_after, parent_id, client_id";

/// Prepared statements kept per connection (see [`PgStore::connect`]).
const STATEMENT_CACHE_CAPACITY: usize = 256;

/// Every repository in one PostgreSQL database.
pub struct PgStore {
    pool: PgPool,
    /// Sessions known to be live (see [`crate::infrastructure::db::session_cache`]), kept
    /// correct across replicas by the invalidation [`feed`].
    sessions: Arc<SessionCache>,
    /// The listener applying other replicas' changes to `sessions`; stops with the store.
    _feed: feed::FeedTask,
}

impl PgStore {
    /// Connects to `url` and applies the migrations (under sqlx's advisory lock).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the database cannot be reached or migrated.
    pub async fn connect(url: &str, options: &DbOptions) -> Result<Self, StoreError> {
        let statement_timeout = format!("{}ms", options.statement_timeout.as_millis());
        let connect = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Other(format!("invalid DATABASE_URL: {e}")))?
            .application_name("auth-service")
            // Every query is prepared once per connection and kept (sqlx's default is 100): the
            // adapter has about a hundred distinct statements, so the hot ones (rotation,
            // session check, login) are never evicted by a burst of rare ones and re-parsed.
            .statement_cache_capacity(STATEMENT_CACHE_CAPACITY)
            .options([("statement_timeout", statement_timeout.as_str())]);
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect.clone())
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot connect to PostgreSQL: {e}")))?;
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Unavailable(format!("migration failed: {e}")))?;
        let sessions = Arc::new(SessionCache::new(options.session_cache_bytes));
        let feed = feed::start(&connect, Arc::clone(&sessions)).await;
        Ok(Self {
            pool,
            sessions,
            _feed: feed,
        })
    }
}

impl crate::domain::session::InvalidationFeed for PgStore {
    fn subscribe(&self, listener: Arc<dyn crate::domain::session::InvalidationListener>) {
        crate::domain::session::InvalidationFeed::subscribe(&*self.sessions, listener);
    }
}

impl super::PoolState for PgStore {
    fn pool_state(&self) -> (u32, usize) {
        (self.pool.size(), self.pool.num_idle())
    }
}

#[async_trait]
impl HealthProbe for PgStore {
    async fn ping(&self) -> Result<(), StoreError> {
        // A committed write: a read-only standby or a full disk is not ready.
        sqlx::query(
            "INSERT INTO health_probe (id, at) VALUES (1, now())
             ON CONFLICT (id) DO UPDATE SET at = excluded.at",
        )
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(store_error)
    }
}
