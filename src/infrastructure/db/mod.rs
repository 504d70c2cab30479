//! Storage adapters: SQLite and PostgreSQL, chosen once at start-up from the `DATABASE_URL`
//! scheme, and an in-memory one ([`memory`]) for tests, which no URL selects. Each implements
//! every repository port in the same files (`users.rs`, `clients.rs`, `tokens.rs`, `codes.rs`, `passkeys.rs`,
//! `audit.rs`, `throttle.rs`, `purge.rs`, with its driver's errors mapped in `error.rs`), and the
//! contract suite (`tests/repository_contract.rs`) runs every case on each.

pub mod local_rates;
pub mod memory;
pub mod postgres;
mod records;
pub mod session_cache;
pub mod sqlite;

use std::sync::Arc;
use std::time::Duration;

use crate::domain::mail::MailStore;
use crate::domain::ports::MfaRepository;
use crate::domain::ports::RateBudget;
use crate::domain::ports::{
    AccountRepository, AuditLog, AuthorizationCodeRepository, ClientRepository, HealthProbe,
    LoginThrottle, Purge, StoreError, TokenRepository, UserRepository,
};
use crate::domain::session::InvalidationFeed;

/// The repositories of one backend, as the wiring hands them to the use cases.
#[derive(Clone)]
pub struct Repositories {
    pub users: Arc<dyn UserRepository>,
    pub clients: Arc<dyn ClientRepository>,
    pub tokens: Arc<dyn TokenRepository>,
    pub codes: Arc<dyn AuthorizationCodeRepository>,
    pub throttle: Arc<dyn LoginThrottle>,
    pub audit: Arc<dyn AuditLog>,
    pub purge: Arc<dyn Purge>,
    pub mail: Arc<dyn MailStore>,
    pub health: Arc<dyn HealthProbe>,
    pub pool: Arc<dyn PoolState>,
    pub account: Arc<dyn AccountRepository>,
    /// Passkeys and WebAuthn ceremonies.
    pub passkeys: Arc<dyn crate::domain::passkey::PasskeyRepository>,
    /// TOTP, recovery codes and pending sign-ins (issue 14, TOTP).
    pub mfa: Arc<dyn MfaRepository>,
    /// What the store tells caches to forget (issue 15): its own writes and, on PostgreSQL,
    /// every replica's.
    pub invalidations: Arc<dyn InvalidationFeed>,
    /// The per-client request budgets of the rate limit (issue 15): a table on PostgreSQL,
    /// this process's memory on SQLite (one process).
    pub rates: Arc<dyn RateBudget>,
}

/// The size and idle connections of a store's pool (for the metrics; not a domain port).
pub trait PoolState: Send + Sync {
    /// (connections open, of which idle).
    fn pool_state(&self) -> (u32, usize);
}

/// Pool settings of a database connection.
#[derive(Debug, Clone)]
pub struct DbOptions {
    /// Connections in the pool (for SQLite: read connections; writes use one more).
    pub max_connections: u32,
    /// How long a request waits for a connection before answering 503.
    pub acquire_timeout: Duration,
    /// The longest one statement may run (PostgreSQL).
    pub statement_timeout: Duration,
    /// The memory budget of the live-session cache ([`session_cache`]); 0 turns it off.
    pub session_cache_bytes: u64,
}

/// Connects to the database named by `url` (`sqlite:` or `postgres:`), applies the embedded
/// migrations and returns its repositories.
///
/// # Errors
/// [`StoreError::Unavailable`] when the database cannot be opened or migrated;
/// [`StoreError::Other`] for an unsupported scheme.
pub async fn connect(url: &str, options: &DbOptions) -> Result<Repositories, StoreError> {
    if url.starts_with("sqlite:") {
        let store = Arc::new(sqlite::SqliteStore::connect(url, options).await?);
        Ok(Repositories::of(
            store,
            Arc::new(local_rates::LocalBudget::default()),
        ))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        let store = Arc::new(postgres::PgStore::connect(url, options).await?);
        Ok(Repositories::of(store.clone(), store))
    } else {
        let scheme = url.split(':').next().unwrap_or_default();
        Err(StoreError::Other(format!(
            "DATABASE_URL scheme '{scheme}:' is not supported; use sqlite://path or postgres://..."
        )))
    }
}

impl Repositories {
    fn of<S>(store: Arc<S>, rates: Arc<dyn RateBudget>) -> Self
    where
        S: UserRepository
            + ClientRepository
            + TokenRepository
            + AuthorizationCodeRepository
            + LoginThrottle
            + AuditLog
            + Purge
            + MailStore
            + HealthProbe
            + PoolState
            + AccountRepository
            + crate::domain::passkey::PasskeyRepository
            + MfaRepository
            + InvalidationFeed
            + 'static,
    {
        Self {
            users: store.clone(),
            clients: store.clone(),
            tokens: store.clone(),
            codes: store.clone(),
            throttle: store.clone(),
            audit: store.clone(),
            purge: store.clone(),
            mail: store.clone(),
            health: Arc::new(CachedProbe::new(store.clone(), PROBE_TTL)),
            account: store.clone(),
            passkeys: store.clone(),
            mfa: store.clone(),
            invalidations: store.clone(),
            rates,
            pool: store,
        }
    }
}

/// How long a readiness answer is reused. The probe commits a write, which a load balancer
/// polling `/health` many times a second must not turn into a write per poll (the health
/// benchmark measures tens of thousands of requests a second); a second is far below any
/// readiness period.
const PROBE_TTL: Duration = Duration::from_secs(1);

/// A [`HealthProbe`] that answers from its last probe while that is younger than `ttl`. After
/// that, one caller probes again; callers arriving meanwhile get the last answer rather than
/// wait for the probe's write (which queues behind the store's other writes: during a login
/// storm that made `/health`'s p99 5 ms slower).
struct CachedProbe {
    inner: Arc<dyn HealthProbe>,
    ttl: Duration,
    last: std::sync::Mutex<Option<(std::time::Instant, Result<(), String>)>>,
    refreshing: tokio::sync::Mutex<()>,
}

impl CachedProbe {
    fn new(inner: Arc<dyn HealthProbe>, ttl: Duration) -> Self {
        Self {
            inner,
            ttl,
            last: std::sync::Mutex::new(None),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    /// The last answer if it is younger than `max_age`.
    fn cached(&self, max_age: Duration) -> Option<Result<(), StoreError>> {
        let last = self.last.lock().ok()?;
        let (at, answer) = last.as_ref()?;
        (at.elapsed() < max_age).then(|| answer.clone().map_err(StoreError::Unavailable))
    }
}

#[async_trait::async_trait]
impl HealthProbe for CachedProbe {
    async fn ping(&self) -> Result<(), StoreError> {
        if let Some(answer) = self.cached(self.ttl) {
            return answer;
        }
        let _refreshing = match self.refreshing.try_lock() {
            Ok(refreshing) => refreshing,
            Err(_) => {
                // Another caller is probing now: the last answer, unless it is far too old
                // (a probe stuck beyond the route's own deadline).
                if let Some(answer) = self.cached(self.ttl * 3) {
                    return answer;
                }
                let refreshing = self.refreshing.lock().await;
                if let Some(answer) = self.cached(self.ttl) {
                    return answer; // that caller's probe answered meanwhile
                }
                refreshing
            }
        };
        let answer = self.inner.ping().await;
        if let Ok(mut last) = self.last.lock() {
            let kept = answer.as_ref().map(|_| ()).map_err(ToString::to_string);
            *last = Some((std::time::Instant::now(), kept));
        }
        answer
    }
}

/// The clash a unique constraint of `users` stands for, by its name as the migrations of both
/// backends create it (the case-insensitive unique indexes, or a plain column's `table.column`);
/// `None` for any other constraint.
fn taken(constraint: &str) -> Option<StoreError> {
    match constraint {
        "users_username_ci" | "users.username" => Some(StoreError::UsernameTaken),
        "users_email_ci" | "users.email" => Some(StoreError::EmailTaken),
        _ => None,
    }
}
