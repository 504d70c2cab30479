//! What protects accounts: registration and password rules, sessions per user, the lockout
//! after failed password checks and the per-IP rate limit.

use secrecy::{ExposeSecret, SecretString};

use super::table::{row, Check, Fallback::*, Group, Value, Var};
use super::{mask_url, ConfigError};

/// Who may register and what a new password needs.
#[derive(Debug, Clone, Default)]
pub struct AccountSettings {
    /// Self-service registration; `false`: `POST /users` needs an admin bearer token.
    pub registration_open: bool,
    pub password_min_length: usize,
}

impl Group for AccountSettings {
    const VARS: &'static [Var<Self>] = &[
        row!(
            "PASSWORD_MIN_LENGTH",
            Fixed("8"),
            password_min_length = number()
        ),
        row!(
            "REGISTRATION_OPEN",
            Fixed("true"),
            registration_open = boolean()
        ),
    ];

    const CHECKS: &'static [Check<Self>] = &[(
        |s| (1..=128).contains(&s.password_min_length),
        "PASSWORD_MIN_LENGTH must be between 1 and 128",
    )];
}

/// How long a session may live and how many one user keeps.
#[derive(Debug, Clone, Default)]
pub struct SessionSettings {
    /// No rotation extends a session past its login plus this (the absolute lifetime).
    pub max_lifetime_seconds: u64,
    /// Live sessions one user keeps at most; a new one revokes the oldest beyond.
    pub max_per_user: u32,
}

impl Group for SessionSettings {
    const VARS: &'static [Var<Self>] = &[
        row!(
            "SESSION_MAX_LIFETIME_SECONDS",
            Fixed("2592000"),
            max_lifetime_seconds = number()
        ),
        row!(
            "MAX_SESSIONS_PER_USER",
            Fixed("100"),
            max_per_user = number()
        ),
    ];

    const CHECKS: &'static [Check<Self>] = &[
        (
            |s| s.max_lifetime_seconds > 0,
            "SESSION_MAX_LIFETIME_SECONDS must be positive",
        ),
        (
            |s| s.max_per_user > 0,
            "MAX_SESSIONS_PER_USER must be at least 1",
        ),
    ];
}

/// The lock of a username after consecutive failed password checks.
#[derive(Debug, Clone, Default)]
pub struct LockoutSettings {
    pub max_failures: u32,
    /// The first lock; each further one doubles, up to `max_seconds`.
    pub seconds: u64,
    pub max_seconds: u64,
}

impl Group for LockoutSettings {
    const VARS: &'static [Var<Self>] = &[
        row!("LOGIN_MAX_FAILURES", Fixed("5"), max_failures = number()),
        row!("LOGIN_LOCKOUT_SECONDS", Fixed("300"), seconds = number()),
        row!(
            "LOGIN_LOCKOUT_MAX_SECONDS",
            Fixed("86400"),
            max_seconds = number()
        ),
    ];

    const CHECKS: &'static [Check<Self>] = &[
        (
            |s| s.max_failures > 0,
            "LOGIN_MAX_FAILURES must be at least 1",
        ),
        (|s| s.seconds > 0, "LOGIN_LOCKOUT_SECONDS must be positive"),
        (
            |s| s.max_seconds >= s.seconds,
            "LOGIN_LOCKOUT_MAX_SECONDS must be at least LOGIN_LOCKOUT_SECONDS",
        ),
    ];
}

/// The per-client-IP rate limit of the credential endpoints.
#[derive(Debug, Clone, Default)]
pub struct RateLimitSettings {
    pub enabled: bool,
    pub per_second: u32,
    pub burst: u32,
    /// Issue 15: tokens a replica takes from the shared budget per round trip (at most an
    /// eighth of the burst is used).
    pub lease: u32,
    /// Issue 15: the shared budgets in Redis rather than in PostgreSQL.
    pub redis_url: Option<SecretString>,
    /// Issue 15: the prefix of the Redis keys.
    pub key_prefix: String,
}

fn redis_url(
    _: &RateLimitSettings,
    value: &Value<'_>,
) -> Result<Option<SecretString>, ConfigError> {
    let Some(raw) = value.raw else {
        return Ok(None);
    };
    let usable = url::Url::parse(raw)
        .ok()
        .is_some_and(|url| matches!(url.scheme(), "redis" | "unix" | "redis+unix"));
    if usable {
        Ok(Some(SecretString::from(raw.to_owned())))
    } else {
        // Never echo a password the value may hold.
        Err(ConfigError(format!(
            "REDIS_URL='{}' is not valid: must be redis://[USER:PASSWORD@]HOST[:PORT][/DB] or unix:///path/to/socket",
            mask_url(raw)
        )))
    }
}

impl Group for RateLimitSettings {
    const VARS: &'static [Var<Self>] = &[
        row!("RATE_LIMIT_ENABLED", Fixed("true"), enabled = boolean()),
        row!("RATE_LIMIT_PER_SECOND", Fixed("5"), per_second = number()),
        row!("RATE_LIMIT_BURST", Fixed("20"), burst = number()),
        row!("RATE_LIMIT_LEASE", Fixed("8"), lease = number()),
        row!(
            "REDIS_URL",
            Unset,
            redis_url <- redis_url,
            show = |s| s
                .redis_url
                .as_ref()
                .map_or_else(|| "(unset)".to_owned(), |u| mask_url(u.expose_secret()))
        ),
        row!(
            "RATE_LIMIT_KEY_PREFIX",
            Fixed("auth-service:rate:"),
            key_prefix = string(),
            show = |s| s.key_prefix.clone()
        ),
    ];

    const CHECKS: &'static [Check<Self>] = &[
        (
            |s| s.per_second > 0 && s.burst > 0,
            "RATE_LIMIT_PER_SECOND and RATE_LIMIT_BURST must be at least 1",
        ),
        (|s| s.lease > 0, "RATE_LIMIT_LEASE must be at least 1"),
    ];
}
