//! Settings from the environment and `.env.{APP_ENV}` / `.env`, validated once at start.
//!
//! Precedence: the process environment, then `.env.{APP_ENV}`, then `.env` (dotenvy never
//! overrides a variable that is already set).

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;

use secrecy::{ExposeSecret, SecretString};

/// The deployment environment, from `APP_ENV`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppEnv {
    Development,
    Testing,
    Production,
}

impl AppEnv {
    /// The name used in `APP_ENV` and in `.env.{name}`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Development => "development",
            Self::Testing => "testing",
            Self::Production => "production",
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// A configuration value that cannot be used; the message names the variable.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(pub String);

/// The secret used outside production when `JWT_SECRET` is not set. Refused in production.
pub const DEVELOPMENT_JWT_SECRET: &str = "development-only-secret-do-not-use-in-production!";

/// Every setting of the service. `Debug` masks the secrets.
#[derive(Clone)]
pub struct Settings {
    pub app_env: AppEnv,
    pub host: IpAddr,
    pub port: u16,
    pub database_url: SecretString,
    pub database_max_connections: u32,
    pub database_acquire_timeout_ms: u64,
    pub database_statement_timeout_ms: u64,
    pub jwt_secret: SecretString,
    pub jwt_algorithm: String,
    /// PKCS#8 PEM signing key for EdDSA, ES256 and RS256.
    pub jwt_private_key_file: Option<PathBuf>,
    /// PEM keys still accepted for verification after a rotation.
    pub jwt_verify_key_files: Vec<PathBuf>,
    /// Where development keeps the signing key it generates when none is configured.
    pub jwt_dev_key_dir: PathBuf,
    pub jwt_issuer: String,
    pub jwt_audience: String,
    pub jwt_leeway_seconds: u64,
    pub access_token_ttl_seconds: u64,
    pub refresh_token_ttl_seconds: u64,
    /// No rotation extends a session past its login plus this (the absolute lifetime).
    pub session_max_lifetime_seconds: u64,
    /// Live sessions one user keeps at most; a new one revokes the oldest beyond.
    pub max_sessions_per_user: u32,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    pub hash_concurrency: usize,
    pub hash_queue_timeout_ms: u64,
    /// The highest cost of an imported bcrypt hash, and the bcrypt cost failed verifications
    /// are padded to while bcrypt hashes are stored; `None` (`off`): bcrypt hashes refused.
    pub legacy_bcrypt_cost: Option<u32>,
    pub password_min_length: usize,
    pub trust_proxy_headers: bool,
    pub body_limit_bytes: usize,
    pub log_format: LogFormat,
    pub login_max_failures: u32,
    pub login_lockout_seconds: u64,
    pub login_lockout_max_seconds: u64,
    pub registration_open: bool,
    pub rate_limit_enabled: bool,
    pub rate_limit_per_second: u32,
    pub rate_limit_burst: u32,
    pub request_timeout_seconds: u64,
    /// A connection that has not sent a complete request head this long after it opened is
    /// closed (slowloris).
    pub http_header_read_timeout_seconds: u64,
    /// A keep-alive connection idle this long between requests is closed.
    pub http_idle_timeout_seconds: u64,
    /// Open client connections at most; the server lowers it below the process's file
    /// descriptor limit.
    pub http_max_connections: usize,
    /// Origins allowed by CORS; empty: CORS off (no header is sent).
    pub cors_allowed_origins: Vec<String>,
    pub audit_retention_days: u32,
    pub purge_interval_seconds: u64,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.entries()).finish()
    }
}

impl Settings {
    /// Every setting under its variable name, as in effect, with secrets masked: what
    /// `auth-service check-config` prints.
    pub fn entries(&self) -> Vec<(&'static str, String)> {
        let list = |items: Vec<String>| {
            if items.is_empty() {
                "(none)".to_owned()
            } else {
                items.join(",")
            }
        };
        let secret = |s: &SecretString| {
            let len = s.expose_secret().len();
            if s.expose_secret() == DEVELOPMENT_JWT_SECRET {
                "(public development value)".to_owned()
            } else {
                format!("******** ({len} bytes)")
            }
        };
        vec![
            ("APP_ENV", self.app_env.as_str().to_owned()),
            ("HOST", self.host.to_string()),
            ("PORT", self.port.to_string()),
            ("DATABASE_URL", mask_url(self.database_url.expose_secret())),
            (
                "DATABASE_MAX_CONNECTIONS",
                self.database_max_connections.to_string(),
            ),
            (
                "DATABASE_ACQUIRE_TIMEOUT_MS",
                self.database_acquire_timeout_ms.to_string(),
            ),
            (
                "DATABASE_STATEMENT_TIMEOUT_MS",
                self.database_statement_timeout_ms.to_string(),
            ),
            ("JWT_ALGORITHM", self.jwt_algorithm.clone()),
            ("JWT_SECRET", secret(&self.jwt_secret)),
            (
                "JWT_PRIVATE_KEY_FILE",
                self.jwt_private_key_file
                    .as_ref()
                    .map_or("(none)".into(), |p| p.display().to_string()),
            ),
            (
                "JWT_VERIFY_KEY_FILES",
                list(
                    self.jwt_verify_key_files
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect(),
                ),
            ),
            (
                "JWT_DEV_KEY_DIR",
                self.jwt_dev_key_dir.display().to_string(),
            ),
            ("JWT_ISSUER", self.jwt_issuer.clone()),
            ("JWT_AUDIENCE", self.jwt_audience.clone()),
            ("JWT_LEEWAY_SECONDS", self.jwt_leeway_seconds.to_string()),
            (
                "ACCESS_TOKEN_TTL_SECONDS",
                self.access_token_ttl_seconds.to_string(),
            ),
            (
                "REFRESH_TOKEN_TTL_SECONDS",
                self.refresh_token_ttl_seconds.to_string(),
            ),
            (
                "SESSION_MAX_LIFETIME_SECONDS",
                self.session_max_lifetime_seconds.to_string(),
            ),
            (
                "MAX_SESSIONS_PER_USER",
                self.max_sessions_per_user.to_string(),
            ),
            ("ARGON2_MEMORY_KIB", self.argon2_memory_kib.to_string()),
            ("ARGON2_ITERATIONS", self.argon2_iterations.to_string()),
            ("ARGON2_PARALLELISM", self.argon2_parallelism.to_string()),
            ("HASH_CONCURRENCY", self.hash_concurrency.to_string()),
            (
                "HASH_QUEUE_TIMEOUT_MS",
                self.hash_queue_timeout_ms.to_string(),
            ),
            (
                "LEGACY_BCRYPT_COST",
                self.legacy_bcrypt_cost
                    .map_or_else(|| "off".to_owned(), |cost| cost.to_string()),
            ),
            ("PASSWORD_MIN_LENGTH", self.password_min_length.to_string()),
            ("LOGIN_MAX_FAILURES", self.login_max_failures.to_string()),
            (
                "LOGIN_LOCKOUT_SECONDS",
                self.login_lockout_seconds.to_string(),
            ),
            (
                "LOGIN_LOCKOUT_MAX_SECONDS",
                self.login_lockout_max_seconds.to_string(),
            ),
            ("REGISTRATION_OPEN", self.registration_open.to_string()),
            ("RATE_LIMIT_ENABLED", self.rate_limit_enabled.to_string()),
            (
                "RATE_LIMIT_PER_SECOND",
                self.rate_limit_per_second.to_string(),
            ),
            ("RATE_LIMIT_BURST", self.rate_limit_burst.to_string()),
            ("TRUST_PROXY_HEADERS", self.trust_proxy_headers.to_string()),
            ("BODY_LIMIT_BYTES", self.body_limit_bytes.to_string()),
            (
                "REQUEST_TIMEOUT_SECONDS",
                self.request_timeout_seconds.to_string(),
            ),
            (
                "HTTP_HEADER_READ_TIMEOUT_SECONDS",
                self.http_header_read_timeout_seconds.to_string(),
            ),
            (
                "HTTP_IDLE_TIMEOUT_SECONDS",
                self.http_idle_timeout_seconds.to_string(),
            ),
            (
                "HTTP_MAX_CONNECTIONS",
                self.http_max_connections.to_string(),
            ),
            (
                "CORS_ALLOWED_ORIGINS",
                list(self.cors_allowed_origins.clone()),
            ),
            (
                "AUDIT_RETENTION_DAYS",
                self.audit_retention_days.to_string(),
            ),
            (
                "PURGE_INTERVAL_SECONDS",
                self.purge_interval_seconds.to_string(),
            ),
            (
                "LOG_FORMAT",
                match self.log_format {
                    LogFormat::Json => "json",
                    LogFormat::Pretty => "pretty",
                }
                .to_owned(),
            ),
        ]
    }
}

/// A database URL with any password replaced by `***`.
pub fn mask_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

impl Settings {
    /// Loads `.env.{APP_ENV}` and `.env` into the process environment (without overriding what
    /// is set) and reads the settings from it.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first unusable variable.
    pub fn load() -> Result<Self, ConfigError> {
        let env_name = std::env::var("APP_ENV").unwrap_or_else(|_| "development".into());
        let _ = dotenvy::from_filename(format!(".env.{env_name}"));
        let _ = dotenvy::from_filename(".env");
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// Reads the settings through `lookup` (the environment, or a map in tests).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first unusable variable.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |key: &str| lookup(key).filter(|v| !v.trim().is_empty());
        let app_env = match get("APP_ENV").as_deref().unwrap_or("development") {
            "development" => AppEnv::Development,
            "testing" => AppEnv::Testing,
            "production" => AppEnv::Production,
            other => {
                return Err(ConfigError(format!(
                    "APP_ENV='{other}' is not one of development, testing, production"
                )))
            }
        };
        let host: IpAddr = parse(&get, "HOST", "127.0.0.1")?;
        let port: u16 = parse(&get, "PORT", "8000")?;
        let jwt_algorithm = get("JWT_ALGORITHM").unwrap_or_else(|| "HS256".into());
        if !["HS256", "EdDSA", "ES256", "RS256"].contains(&jwt_algorithm.as_str()) {
            return Err(ConfigError(format!(
                "JWT_ALGORITHM='{jwt_algorithm}' is not one of HS256, EdDSA, ES256, RS256"
            )));
        }
        let jwt_private_key_file = get("JWT_PRIVATE_KEY_FILE").map(PathBuf::from);
        let jwt_secret = if jwt_algorithm == "HS256" {
            jwt_secret(app_env, get("JWT_SECRET"))?
        } else {
            if app_env == AppEnv::Production && jwt_private_key_file.is_none() {
                return Err(ConfigError(format!(
                    "JWT_PRIVATE_KEY_FILE is not set; production with JWT_ALGORITHM={jwt_algorithm} needs a PKCS#8 PEM private key, e.g. from `openssl genpkey -algorithm ed25519`"
                )));
            }
            // Unused for signing; kept so nothing else ever falls back to an empty secret.
            SecretString::from(get("JWT_SECRET").unwrap_or_else(|| DEVELOPMENT_JWT_SECRET.into()))
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let settings = Settings {
            app_env,
            host,
            port,
            database_url: SecretString::from(
                get("DATABASE_URL").unwrap_or_else(|| "sqlite://auth.db".into()),
            ),
            database_max_connections: parse(&get, "DATABASE_MAX_CONNECTIONS", "8")?,
            database_acquire_timeout_ms: parse(&get, "DATABASE_ACQUIRE_TIMEOUT_MS", "2000")?,
            database_statement_timeout_ms: parse(&get, "DATABASE_STATEMENT_TIMEOUT_MS", "5000")?,
            jwt_secret,
            jwt_algorithm,
            jwt_private_key_file,
            jwt_verify_key_files: get("JWT_VERIFY_KEY_FILES")
                .map(|v| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|p| !p.is_empty())
                        .map(PathBuf::from)
                        .collect()
                })
                .unwrap_or_default(),
            jwt_dev_key_dir: PathBuf::from(
                get("JWT_DEV_KEY_DIR").unwrap_or_else(|| "jwt-dev-keys".into()),
            ),
            jwt_issuer: get("JWT_ISSUER").unwrap_or_else(|| format!("http://{host}:{port}")),
            jwt_audience: get("JWT_AUDIENCE").unwrap_or_else(|| "auth-service".into()),
            jwt_leeway_seconds: parse(&get, "JWT_LEEWAY_SECONDS", "30")?,
            access_token_ttl_seconds: parse(&get, "ACCESS_TOKEN_TTL_SECONDS", "900")?,
            refresh_token_ttl_seconds: parse(&get, "REFRESH_TOKEN_TTL_SECONDS", "1209600")?,
            session_max_lifetime_seconds: parse(&get, "SESSION_MAX_LIFETIME_SECONDS", "2592000")?,
            max_sessions_per_user: parse(&get, "MAX_SESSIONS_PER_USER", "100")?,
            argon2_memory_kib: parse(&get, "ARGON2_MEMORY_KIB", "19456")?,
            argon2_iterations: parse(&get, "ARGON2_ITERATIONS", "2")?,
            argon2_parallelism: parse(&get, "ARGON2_PARALLELISM", "1")?,
            hash_concurrency: parse(&get, "HASH_CONCURRENCY", &cores.to_string())?,
            hash_queue_timeout_ms: parse(&get, "HASH_QUEUE_TIMEOUT_MS", "2000")?,
            legacy_bcrypt_cost: match get("LEGACY_BCRYPT_COST").as_deref().map(str::trim) {
                Some("off") => None,
                _ => Some(parse(&get, "LEGACY_BCRYPT_COST", "12")?),
            },
            password_min_length: parse(&get, "PASSWORD_MIN_LENGTH", "8")?,
            trust_proxy_headers: parse(&get, "TRUST_PROXY_HEADERS", "false")?,
            body_limit_bytes: parse(&get, "BODY_LIMIT_BYTES", "65536")?,
            login_max_failures: parse(&get, "LOGIN_MAX_FAILURES", "5")?,
            login_lockout_seconds: parse(&get, "LOGIN_LOCKOUT_SECONDS", "300")?,
            login_lockout_max_seconds: parse(&get, "LOGIN_LOCKOUT_MAX_SECONDS", "86400")?,
            registration_open: parse(&get, "REGISTRATION_OPEN", "true")?,
            rate_limit_enabled: parse(&get, "RATE_LIMIT_ENABLED", "true")?,
            rate_limit_per_second: parse(&get, "RATE_LIMIT_PER_SECOND", "5")?,
            rate_limit_burst: parse(&get, "RATE_LIMIT_BURST", "20")?,
            request_timeout_seconds: parse(&get, "REQUEST_TIMEOUT_SECONDS", "30")?,
            http_header_read_timeout_seconds: parse(
                &get,
                "HTTP_HEADER_READ_TIMEOUT_SECONDS",
                "10",
            )?,
            http_idle_timeout_seconds: parse(&get, "HTTP_IDLE_TIMEOUT_SECONDS", "60")?,
            http_max_connections: parse(&get, "HTTP_MAX_CONNECTIONS", "10000")?,
            cors_allowed_origins: get("CORS_ALLOWED_ORIGINS")
                .map(|v| {
                    v.split(',')
                        .map(|o| o.trim().trim_end_matches('/').to_owned())
                        .filter(|o| !o.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            audit_retention_days: parse(&get, "AUDIT_RETENTION_DAYS", "90")?,
            purge_interval_seconds: parse(&get, "PURGE_INTERVAL_SECONDS", "3600")?,
            log_format: match get("LOG_FORMAT").as_deref() {
                None if app_env == AppEnv::Production => LogFormat::Json,
                None | Some("pretty") => LogFormat::Pretty,
                Some("json") => LogFormat::Json,
                Some(other) => {
                    return Err(ConfigError(format!(
                        "LOG_FORMAT='{other}' is not one of pretty, json"
                    )))
                }
            },
        };
        settings.check_ranges()?;
        Ok(settings)
    }

    fn check_ranges(&self) -> Result<(), ConfigError> {
        let checks: [(bool, &str); 20] = [
            (
                self.database_acquire_timeout_ms > 0 && self.database_statement_timeout_ms > 0,
                "DATABASE_ACQUIRE_TIMEOUT_MS and DATABASE_STATEMENT_TIMEOUT_MS must be positive",
            ),
            (
                self.login_max_failures > 0,
                "LOGIN_MAX_FAILURES must be at least 1",
            ),
            (
                self.login_lockout_seconds > 0,
                "LOGIN_LOCKOUT_SECONDS must be positive",
            ),
            (
                self.login_lockout_max_seconds >= self.login_lockout_seconds,
                "LOGIN_LOCKOUT_MAX_SECONDS must be at least LOGIN_LOCKOUT_SECONDS",
            ),
            (
                self.rate_limit_per_second > 0 && self.rate_limit_burst > 0,
                "RATE_LIMIT_PER_SECOND and RATE_LIMIT_BURST must be at least 1",
            ),
            (
                self.request_timeout_seconds > 0,
                "REQUEST_TIMEOUT_SECONDS must be positive",
            ),
            (
                self.http_header_read_timeout_seconds > 0 && self.http_idle_timeout_seconds > 0,
                "HTTP_HEADER_READ_TIMEOUT_SECONDS and HTTP_IDLE_TIMEOUT_SECONDS must be positive",
            ),
            (
                self.http_max_connections > 0,
                "HTTP_MAX_CONNECTIONS must be at least 1",
            ),
            (
                self.purge_interval_seconds > 0,
                "PURGE_INTERVAL_SECONDS must be positive",
            ),
            (
                self.access_token_ttl_seconds > 0,
                "ACCESS_TOKEN_TTL_SECONDS must be positive",
            ),
            (
                self.refresh_token_ttl_seconds > 0,
                "REFRESH_TOKEN_TTL_SECONDS must be positive",
            ),
            (
                !matches!(self.legacy_bcrypt_cost, Some(cost) if !(4..=31).contains(&cost)),
                "LEGACY_BCRYPT_COST must be a bcrypt cost from 4 to 31, or off",
            ),
            (
                self.session_max_lifetime_seconds > 0,
                "SESSION_MAX_LIFETIME_SECONDS must be positive",
            ),
            (
                self.max_sessions_per_user > 0,
                "MAX_SESSIONS_PER_USER must be at least 1",
            ),
            (
                self.hash_concurrency > 0,
                "HASH_CONCURRENCY must be at least 1",
            ),
            (
                self.database_max_connections > 0,
                "DATABASE_MAX_CONNECTIONS must be at least 1",
            ),
            (
                (1..=128).contains(&self.password_min_length),
                "PASSWORD_MIN_LENGTH must be between 1 and 128",
            ),
            (
                self.body_limit_bytes >= 1024,
                "BODY_LIMIT_BYTES must be at least 1024",
            ),
            (
                self.argon2_parallelism >= 1 && self.argon2_iterations >= 1,
                "ARGON2_ITERATIONS and ARGON2_PARALLELISM must be at least 1",
            ),
            (
                self.argon2_memory_kib >= 8 * self.argon2_parallelism,
                "ARGON2_MEMORY_KIB must be at least 8 x ARGON2_PARALLELISM",
            ),
        ];
        if let Some((_, message)) = checks.iter().find(|(ok, _)| !ok) {
            return Err(ConfigError((*message).to_owned()));
        }
        match self
            .cors_allowed_origins
            .iter()
            .find(|o| !(o.starts_with("http://") || o.starts_with("https://")) || o.as_str() == "*")
        {
            Some(origin) => Err(ConfigError(format!(
                "CORS_ALLOWED_ORIGINS: '{origin}' is not an origin like https://app.example.com"
            ))),
            None => Ok(()),
        }
    }

    /// The address to listen on.
    pub fn bind_address(&self) -> std::net::SocketAddr {
        (self.host, self.port).into()
    }
}

fn parse<T: FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    key: &str,
    default: &str,
) -> Result<T, ConfigError> {
    let raw = get(key).unwrap_or_else(|| default.to_owned());
    raw.trim()
        .parse()
        .map_err(|_| ConfigError(format!("{key}='{raw}' is not a valid value")))
}

fn jwt_secret(env: AppEnv, configured: Option<String>) -> Result<SecretString, ConfigError> {
    const HINT: &str =
        "set JWT_SECRET to at least 32 random bytes, e.g. the output of `openssl rand -base64 48`";
    match (env, configured) {
        (AppEnv::Production, None) => Err(ConfigError(format!(
            "JWT_SECRET is not set; production requires it: {HINT}"
        ))),
        (AppEnv::Production, Some(secret)) if secret.len() < 32 => Err(ConfigError(format!(
            "JWT_SECRET is too short ({} bytes); production requires at least 32: {HINT}",
            secret.len()
        ))),
        (AppEnv::Production, Some(secret)) if secret == DEVELOPMENT_JWT_SECRET => Err(ConfigError(
            format!("JWT_SECRET is the public development value; {HINT}"),
        )),
        (_, Some(secret)) => Ok(SecretString::from(secret)),
        (_, None) => Ok(SecretString::from(DEVELOPMENT_JWT_SECRET)),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_lookup(|key| map.get(key).cloned())
    }

    #[test]
    fn defaults_follow_the_contract() {
        let s = load(&[]).unwrap();
        assert_eq!(s.app_env, AppEnv::Development);
        assert_eq!(s.port, 8000);
        assert_eq!(s.database_url.expose_secret(), "sqlite://auth.db");
        assert_eq!(s.jwt_issuer, "http://127.0.0.1:8000");
        assert_eq!(s.jwt_audience, "auth-service");
        assert_eq!(
            (
                s.argon2_memory_kib,
                s.argon2_iterations,
                s.argon2_parallelism
            ),
            (19456, 2, 1)
        );
        assert_eq!(
            (s.access_token_ttl_seconds, s.refresh_token_ttl_seconds),
            (900, 1_209_600)
        );
        assert_eq!(s.body_limit_bytes, 64 * 1024);
        assert_eq!(s.log_format, LogFormat::Pretty);
    }

    #[test]
    fn production_refuses_a_missing_short_or_development_secret_and_names_the_variable() {
        for vars in [
            vec![("APP_ENV", "production")],
            vec![("APP_ENV", "production"), ("JWT_SECRET", "short")],
            vec![
                ("APP_ENV", "production"),
                ("JWT_SECRET", DEVELOPMENT_JWT_SECRET),
            ],
        ] {
            let error = load(&vars).unwrap_err().to_string();
            assert!(error.contains("JWT_SECRET"), "{error}");
        }
        let ok = load(&[("APP_ENV", "production"), ("JWT_SECRET", &"k".repeat(32))]).unwrap();
        assert_eq!(ok.log_format, LogFormat::Json);
    }

    #[test]
    fn asymmetric_algorithms_need_a_key_file_in_production_but_no_secret() {
        let error = load(&[("APP_ENV", "production"), ("JWT_ALGORITHM", "EdDSA")])
            .unwrap_err()
            .to_string();
        assert!(error.contains("JWT_PRIVATE_KEY_FILE"), "{error}");
        let ok = load(&[
            ("APP_ENV", "production"),
            ("JWT_ALGORITHM", "RS256"),
            ("JWT_PRIVATE_KEY_FILE", "/etc/auth/key.pem"),
            (
                "JWT_VERIFY_KEY_FILES",
                "/etc/auth/old1.pem, /etc/auth/old2.pem",
            ),
        ])
        .unwrap();
        assert_eq!(ok.jwt_verify_key_files.len(), 2);
        let error = load(&[("JWT_ALGORITHM", "HS512")]).unwrap_err().to_string();
        assert!(error.contains("JWT_ALGORITHM"), "{error}");
    }

    #[test]
    fn bad_values_name_their_variable() {
        let error = load(&[("PORT", "eighty")]).unwrap_err().to_string();
        assert!(error.contains("PORT"), "{error}");
        let error = load(&[("HASH_CONCURRENCY", "0")]).unwrap_err().to_string();
        assert!(error.contains("HASH_CONCURRENCY"), "{error}");
    }

    #[test]
    fn security_settings_have_safe_defaults_and_parse_lists() {
        let s = load(&[]).unwrap();
        assert_eq!((s.login_max_failures, s.login_lockout_seconds), (5, 300));
        assert!(s.registration_open && s.rate_limit_enabled);
        assert!(s.cors_allowed_origins.is_empty(), "CORS is off by default");
        let s = load(&[(
            "CORS_ALLOWED_ORIGINS",
            "https://a.example, http://localhost:3000/",
        )])
        .unwrap();
        assert_eq!(
            s.cors_allowed_origins,
            ["https://a.example", "http://localhost:3000"]
        );
        let error = load(&[("CORS_ALLOWED_ORIGINS", "*")])
            .unwrap_err()
            .to_string();
        assert!(error.contains("CORS_ALLOWED_ORIGINS"), "{error}");
    }

    #[test]
    fn connection_limits_have_defaults_and_refuse_zero() {
        let s = load(&[]).unwrap();
        assert_eq!(
            (
                s.http_header_read_timeout_seconds,
                s.http_idle_timeout_seconds,
                s.http_max_connections
            ),
            (10, 60, 10_000)
        );
        for name in [
            "HTTP_HEADER_READ_TIMEOUT_SECONDS",
            "HTTP_IDLE_TIMEOUT_SECONDS",
            "HTTP_MAX_CONNECTIONS",
        ] {
            let error = load(&[(name, "0")]).unwrap_err().to_string();
            assert!(error.contains(name), "{error}");
        }
    }

    #[test]
    fn debug_output_masks_secrets() {
        let s = load(&[
            ("JWT_SECRET", "super-secret-value-that-is-long-enough"),
            ("DATABASE_URL", "postgres://app:pa55word@db/auth"),
        ])
        .unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains("super-secret"), "{shown}");
        assert!(!shown.contains("pa55word"), "{shown}");
        assert!(shown.contains("postgres://app:***@db/auth"), "{shown}");
    }
}
