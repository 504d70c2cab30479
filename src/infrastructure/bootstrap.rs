//! The one wiring place: settings → adapters → use cases → HTTP router.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;
use tokio::net::TcpListener;

use super::clock::SystemClock;
use super::config::{AppEnv, Settings};
use super::crypto::argon2::{Argon2Config, Argon2Hasher};
use super::crypto::jwt::JwtCodec;
use super::crypto::keys;
use super::db::{self, DbOptions};
use super::http::{
    self, AppState, ConnectionLimits, Discovery, HttpApp, HttpOptions, MetricsState, RateLimit,
};
use super::metrics::{self, MeteredAuditLog};
use super::passwords::CommonPasswords;
use crate::application::{
    AuditService, AuthService, AuthSettings, MaintenanceService, Ports, Retention, UserService,
};
use crate::domain::ports::{Clock, LockoutPolicy};
use crate::domain::user::PasswordPolicy;

/// A start-up failure, with a message an operator can act on.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartupError(pub String);

/// The use cases and the state the router serves, wired from settings.
pub struct Services {
    pub auth: AuthService,
    pub users: UserService,
    pub maintenance: MaintenanceService,
    pub state: AppState,
}

fn seconds(s: u64) -> chrono::Duration {
    chrono::Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX))
}

/// Connects the database (migrating it), builds the hasher and the token codec, and wires the
/// use cases. The clock is a parameter so tests can control time.
///
/// # Errors
/// [`StartupError`] when the database cannot be opened or a parameter is unusable.
pub async fn build_services(
    settings: &Settings,
    clock: Arc<dyn Clock>,
) -> Result<Services, StartupError> {
    let repos = db::connect(settings.database_url.expose_secret(), &db_options(settings))
        .await
        .map_err(|e| StartupError(format!("database: {e}")))?;
    let hasher = Arc::new(
        Argon2Hasher::with_legacy_bcrypt(
            Argon2Config {
                memory_kib: settings.argon2_memory_kib,
                iterations: settings.argon2_iterations,
                parallelism: settings.argon2_parallelism,
            },
            settings.hash_concurrency,
            Duration::from_millis(settings.hash_queue_timeout_ms),
            settings.legacy_bcrypt_cost,
        )
        .map_err(|e| StartupError(e.to_string()))?,
    );
    let codec = Arc::new(build_codec(settings)?);
    let codec_for_discovery = codec.clone();
    let ports = Ports {
        users: repos.users,
        tokens: repos.tokens,
        throttle: repos.throttle,
        audit: Arc::new(MeteredAuditLog::new(repos.audit.clone())),
        hasher,
        codec,
        clock: clock.clone(),
    };
    let lockout = LockoutPolicy {
        max_failures: settings.login_max_failures,
        base: seconds(settings.login_lockout_seconds),
        max: seconds(settings.login_lockout_max_seconds),
    };
    let auth = AuthService::new(
        ports.clone(),
        AuthSettings {
            access_token_ttl: seconds(settings.access_token_ttl_seconds),
            refresh_token_ttl: seconds(settings.refresh_token_ttl_seconds),
            session_max_lifetime: seconds(settings.session_max_lifetime_seconds),
            max_sessions_per_user: settings.max_sessions_per_user,
            lockout,
        },
    );
    let policy = PasswordPolicy {
        min_chars: settings.password_min_length,
        blocklist: Some(Arc::new(CommonPasswords::load())),
    };
    let (ports_users, ports_hasher) = (ports.users.clone(), ports.hasher.clone());
    let users = UserService::new(ports, policy, settings.registration_open, lockout);
    let maintenance = MaintenanceService::new(
        repos.purge,
        ports_users,
        ports_hasher,
        clock,
        Retention {
            audit: chrono::Duration::days(i64::from(settings.audit_retention_days)),
            revoked_sessions: chrono::Duration::days(7),
            login_failures: chrono::Duration::days(1),
        },
    );
    // Before the first request: failed logins are padded to a bcrypt verification's cost only
    // while bcrypt hashes are stored (see crypto::argon2).
    maintenance
        .check_legacy_hashes()
        .await
        .map_err(|e| StartupError(format!("database: {e}")))?;
    let discovery = Arc::new(Discovery::new(
        &settings.jwt_issuer,
        codec_for_discovery.jwks().clone(),
        codec_for_discovery.algorithm(),
    ));
    let state = AppState::new(http::Services {
        discovery,
        auth: auth.clone(),
        users: users.clone(),
        audit: AuditService::new(repos.audit),
        health: repos.health,
        metrics: Arc::new(MetricsState {
            handle: metrics::handle(),
            sample: Box::new(move || {
                let (size, idle) = repos.pool.pool_state();
                metrics::record_pool(size, idle);
            }),
        }),
        trust_proxy_headers: settings.trust_proxy_headers,
    });
    Ok(Services {
        auth,
        users,
        maintenance,
        state,
    })
}

/// The token codec of `settings`: the signing key and the keys still accepted.
///
/// # Errors
/// [`StartupError`] naming the key file or variable at fault.
pub fn build_codec(settings: &Settings) -> Result<JwtCodec, StartupError> {
    let algorithm = keys::parse_algorithm(&settings.jwt_algorithm).ok_or_else(|| {
        StartupError(format!(
            "JWT_ALGORITHM '{}' is not supported",
            settings.jwt_algorithm
        ))
    })?;
    let (signing, previous) = keys::load(&keys::KeySources {
        algorithm,
        secret: settings.jwt_secret.expose_secret().as_bytes(),
        private_key_file: settings.jwt_private_key_file.as_deref(),
        verify_key_files: &settings.jwt_verify_key_files,
        dev_key_dir: (settings.app_env != AppEnv::Production)
            .then_some(settings.jwt_dev_key_dir.as_path()),
    })
    .map_err(|e| StartupError(e.to_string()))?;
    JwtCodec::new(
        signing,
        previous,
        &settings.jwt_issuer,
        &settings.jwt_audience,
        settings.jwt_leeway_seconds,
    )
    .map_err(|e| StartupError(e.to_string()))
}

/// The pool options of `settings`.
pub fn db_options(settings: &Settings) -> DbOptions {
    DbOptions {
        max_connections: settings.database_max_connections,
        acquire_timeout: Duration::from_millis(settings.database_acquire_timeout_ms),
        statement_timeout: Duration::from_millis(settings.database_statement_timeout_ms),
    }
}

/// The HTTP options of `settings`.
pub fn http_options(settings: &Settings) -> HttpOptions {
    HttpOptions {
        body_limit_bytes: settings.body_limit_bytes,
        request_timeout: Duration::from_secs(settings.request_timeout_seconds),
        cors_allowed_origins: settings.cors_allowed_origins.clone(),
        rate_limit: settings.rate_limit_enabled.then_some(RateLimit {
            per_second: settings.rate_limit_per_second,
            burst: settings.rate_limit_burst,
        }),
        connections: ConnectionLimits {
            header_read_timeout: Duration::from_secs(settings.http_header_read_timeout_seconds),
            idle_timeout: Duration::from_secs(settings.http_idle_timeout_seconds),
            max_connections: settings.http_max_connections,
        },
    }
}

/// The full HTTP application for `settings`, on the system clock, and the housekeeping service
/// to run beside it.
///
/// # Errors
/// [`StartupError`].
pub async fn build_app(settings: &Settings) -> Result<(HttpApp, MaintenanceService), StartupError> {
    let services = build_services(settings, Arc::new(SystemClock)).await?;
    let router = http::router(services.state, &http_options(settings));
    Ok((router, services.maintenance))
}

/// Runs the purge every `interval` until the process ends. Failures are logged and retried at
/// the next tick.
pub fn spawn_purge_task(maintenance: MaintenanceService, interval: Duration) {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        loop {
            ticker.tick().await;
            if let Err(error) = maintenance.purge_once().await {
                tracing::warn!(%error, "purge failed; retrying at the next interval");
            }
        }
    });
}

/// Serves `app` (what [`http::router`] returns, or a bare [`axum::Router`] with the default
/// connection limits) on `listener` until `shutdown` completes; in-flight requests then finish.
/// Slow and idle connections are closed and open connections capped: see
/// [`http::serve`].
///
/// # Errors
/// An I/O error of the listener.
pub async fn serve(
    listener: TcpListener,
    app: impl Into<HttpApp>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = app.into();
    http::serve(listener, app.router, app.connections, shutdown).await
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}
