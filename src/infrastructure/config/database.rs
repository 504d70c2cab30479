//! `DATABASE_URL` and the connection pool.

use secrecy::{ExposeSecret, SecretString};

use super::table::{row, Check, Fallback::*, Group, Value, Var};
use super::{mask_url, ConfigError};

/// The database and its pool.
#[derive(Clone)]
pub struct DatabaseSettings {
    /// `sqlite:` or `postgres:` (`postgresql:`); may hold a password.
    pub url: SecretString,
    pub max_connections: u32,
    pub acquire_timeout_ms: u64,
    pub statement_timeout_ms: u64,
    /// The memory budget of the live-session cache, in MiB (0: no cache).
    pub session_cache_mib: u64,
}

/// The schemes the storage adapters open.
const SCHEMES: [&str; 3] = ["sqlite:", "postgres:", "postgresql:"];

fn url(_: &DatabaseSettings, value: &Value<'_>) -> Result<SecretString, ConfigError> {
    let raw = value.raw.unwrap_or_default();
    if SCHEMES.iter().any(|scheme| raw.starts_with(scheme)) {
        return Ok(SecretString::from(raw.to_owned()));
    }
    // Never echo a password the value may hold.
    let shown = mask_url(raw);
    let hint = if raw.contains("://") {
        String::new()
    } else {
        format!("; for this file, use sqlite://{raw}")
    };
    Err(ConfigError(format!(
        "DATABASE_URL='{shown}' is not valid: must be sqlite://PATH or postgres://USER:PASSWORD@HOST:5432/DATABASE{hint}"
    )))
}

/// Unless set: 8 on SQLite (read connections; unchanged), and on PostgreSQL 8 per core, from 8
/// to 32. A PostgreSQL rotation or login is one statement whose time is mostly the wait for its
/// commit to reach the disk; more connections than cores let commits share one flush (measured
/// on 2 cores: chained refresh 736/s at 4, ~1,300/s at 8, ~1,850/s at 16, ~1,600/s at 32).
fn max_connections(s: &DatabaseSettings, value: &Value<'_>) -> Result<u32, ConfigError> {
    match value.raw {
        Some(_) => value.number(),
        None if s.url.expose_secret().starts_with("postgres") => Ok(postgres_pool_for(
            std::thread::available_parallelism().map_or(1, |n| n.get()),
        )),
        None => Ok(8),
    }
}

/// The default PostgreSQL pool for `cores` cores: 8 per core, from 8 to 32.
pub(crate) fn postgres_pool_for(cores: usize) -> u32 {
    u32::try_from(cores.saturating_mul(8))
        .unwrap_or(u32::MAX)
        .clamp(8, 32)
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: SecretString::from(""),
            max_connections: 0,
            acquire_timeout_ms: 0,
            statement_timeout_ms: 0,
            session_cache_mib: 0,
        }
    }
}

impl Group for DatabaseSettings {
    const VARS: &'static [Var<Self>] = &[
        row!(
            "DATABASE_URL",
            Fixed("sqlite://auth.db"),
            url <- url,
            show = |s| mask_url(s.url.expose_secret())
        ),
        row!(
            "DATABASE_MAX_CONNECTIONS",
            Computed("8; on PostgreSQL 8 per core, from 8 to 32"),
            max_connections <- max_connections,
            show = |s| s.max_connections.to_string()
        ),
        row!(
            "DATABASE_ACQUIRE_TIMEOUT_MS",
            Fixed("2000"),
            acquire_timeout_ms = number()
        ),
        row!(
            "DATABASE_STATEMENT_TIMEOUT_MS",
            Fixed("5000"),
            statement_timeout_ms = number()
        ),
        row!(
            "SESSION_CACHE_MIB",
            Fixed("64"),
            session_cache_mib = number()
        ),
    ];

    const CHECKS: &'static [Check<Self>] = &[
        (
            |s| s.acquire_timeout_ms > 0 && s.statement_timeout_ms > 0,
            "DATABASE_ACQUIRE_TIMEOUT_MS and DATABASE_STATEMENT_TIMEOUT_MS must be positive",
        ),
        (
            |s| s.max_connections > 0,
            "DATABASE_MAX_CONNECTIONS must be at least 1",
        ),
        (
            |s| s.session_cache_mib <= 65_536,
            "SESSION_CACHE_MIB must be at most 65536 (64 GiB)",
        ),
    ];
}
