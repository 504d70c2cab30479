//! The server's wiring: the token codec, the HTTP state over the use cases, the router, the
//! purge task, and serving until a signal.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;
use tokio::net::TcpListener;

use super::{build_use_cases, StartupError, UseCases};
use crate::application::{
    AuditService, AuthService, MaintenanceService, OidcPorts, OidcService, UserService,
};
use crate::domain::ports::Clock;
use crate::infrastructure::clock::SystemClock;
use crate::infrastructure::config::{AppEnv, JwtAlgorithm, Settings};
use crate::infrastructure::crypto::id_token::{self, RsaIdTokenCodec};
use crate::infrastructure::crypto::jwt::JwtCodec;
use crate::infrastructure::crypto::keys;
use crate::infrastructure::http::{
    self, AppState, BrowserSettings, ConnectionLimits, Discovery, HttpApp, HttpOptions,
    MetricsState, RateLimit,
};
use crate::infrastructure::mail::MailWorker;
use crate::infrastructure::metrics;

/// The use cases and the state the router serves, wired from settings.
pub struct Services {
    pub auth: AuthService,
    pub users: UserService,
    pub maintenance: MaintenanceService,
    pub state: AppState,
    /// The mail worker, running until stopped or dropped.
    pub mail_worker: MailWorker,
}

/// Builds the token codec, the use cases around it (see [`build_use_cases`]) and the HTTP
/// state: discovery document, metrics recorder and audit queries. The clock is a parameter so
/// tests can control time.
///
/// # Errors
/// [`StartupError`] when a key, the database or a parameter is unusable.
pub async fn build_services(
    settings: &Settings,
    clock: Arc<dyn Clock>,
) -> Result<Services, StartupError> {
    let codec = Arc::new(build_codec(settings)?);
    // Keys first: a missing key stops the start before the database is touched.
    let id_tokens = build_id_token_codec(settings)?;
    let UseCases {
        auth,
        account,
        users,
        clients,
        maintenance,
        passkeys,
        recovery,
        mail_waker,
        repos,
        mfa,
    } = build_use_cases(settings, clock, codec.clone()).await?;
    let discovery = Arc::new(Discovery::new(
        &settings.tokens.issuer,
        &settings.tokens.audience,
        id_tokens.jwks_with(codec.jwks()),
        codec.algorithm(),
    ));
    let oidc = OidcService::new(
        auth.clone(),
        OidcPorts {
            clients: repos.clients.clone(),
            codes: repos.codes.clone(),
            id_tokens,
        },
    );
    let pool = repos.pool;
    let rate_budget = rate_budget(settings, repos.rates).await?;
    let state = AppState::new(http::Services {
        discovery,
        auth: auth.clone(),
        users: users.clone(),
        account,
        recovery: recovery.clone(),
        clients,
        oidc,
        passkeys,
        mfa,
        browser: Arc::new(BrowserSettings::new(&settings.tokens.issuer)),
        audit: AuditService::new(repos.audit),
        health: repos.health,
        metrics: Arc::new(MetricsState {
            handle: metrics::handle(),
            sample: Box::new(move || {
                let (size, idle) = pool.pool_state();
                metrics::record_pool(size, idle);
                crate::infrastructure::db::postgres::feed::record_gauge();
            }),
        }),
        trust_proxy_headers: settings.http.trust_proxy_headers,
        rate_budget,
    });
    let (waker, sends) = mail_waker;
    let mail_worker = MailWorker::spawn(recovery, waker, sends);
    Ok(Services {
        auth,
        users,
        maintenance,
        state,
        mail_worker,
    })
}

/// The token codec of `settings`: the signing key and the keys still accepted.
///
/// # Errors
/// [`StartupError`] naming the key file or variable at fault.
pub fn build_codec(settings: &Settings) -> Result<JwtCodec, StartupError> {
    let tokens = &settings.tokens;
    let (signing, previous) = keys::load(&keys::KeySources {
        algorithm: tokens.algorithm,
        secret: tokens.secret.expose_secret().as_bytes(),
        private_key_file: tokens.private_key_file.as_deref(),
        verify_key_files: &tokens.verify_key_files,
        dev_key_dir: (settings.app_env != AppEnv::Production)
            .then_some(tokens.dev_key_dir.as_path()),
    })
    .map_err(|e| StartupError(e.to_string()))?;
    JwtCodec::new(
        signing,
        previous,
        &tokens.issuer,
        &tokens.audience,
        tokens.leeway_seconds,
    )
    .map(|codec| codec.with_token_cache(tokens.token_cache_mib << 20))
    .map_err(|e| StartupError(e.to_string()))
}

/// The ID-token signer of `settings`: `OIDC_SIGNING_KEY_FILE`; else, when access tokens are
/// RS256, `JWT_PRIVATE_KEY_FILE`; else, outside production, the development RSA key in
/// `JWT_DEV_KEY_DIR`. Its key set to publish is `codec.jwks_with(access_codec.jwks())`.
///
/// # Errors
/// [`StartupError`] naming the key file or variable at fault; in production without a key, what
/// to set.
pub fn build_id_token_codec(settings: &Settings) -> Result<Arc<RsaIdTokenCodec>, StartupError> {
    let tokens = &settings.tokens;
    let key = id_token::load_key(&id_token::IdKeySources {
        key_file: tokens.oidc_signing_key_file.as_deref(),
        access_key_file: tokens
            .private_key_file
            .as_deref()
            .filter(|_| tokens.algorithm == JwtAlgorithm::Rs256),
        dev_key_dir: (settings.app_env != AppEnv::Production)
            .then_some(tokens.dev_key_dir.as_path()),
    })
    .map_err(|e| StartupError(e.to_string()))?;
    RsaIdTokenCodec::new(key, &tokens.issuer)
        .map(Arc::new)
        .map_err(|e| StartupError(e.to_string()))
}

/// The rate limit's budgets (issue 15): in Redis when `REDIS_URL` is set, else the database's
/// (a table on PostgreSQL, this process's memory on SQLite); `None` with the limit off.
///
/// # Errors
/// [`StartupError`] when `REDIS_URL` is set but Redis cannot be reached at start (a wrong URL
/// is a deployment error; an outage later only makes the limit per replica meanwhile).
async fn rate_budget(
    settings: &Settings,
    database: Arc<dyn crate::domain::ports::RateBudget>,
) -> Result<Option<Arc<dyn crate::domain::ports::RateBudget>>, StartupError> {
    let limit = &settings.rate_limit;
    if !limit.enabled {
        return Ok(None);
    }
    let Some(url) = &limit.redis_url else {
        return Ok(Some(database));
    };
    use secrecy::ExposeSecret as _;
    let redis = crate::infrastructure::redis_rates::RedisBudget::connect(
        url.expose_secret(),
        &limit.key_prefix,
    )
    .await
    .map_err(|e| StartupError(format!("REDIS_URL: {e}")))?;
    Ok(Some(Arc::new(redis)))
}

/// The HTTP options of `settings`.
pub fn http_options(settings: &Settings) -> HttpOptions {
    let (server, limit) = (&settings.http, &settings.rate_limit);
    HttpOptions {
        body_limit_bytes: server.body_limit_bytes,
        request_timeout: Duration::from_secs(server.request_timeout_seconds),
        cors_allowed_origins: server.cors_allowed_origins.clone(),
        rate_limit: limit.enabled.then_some(RateLimit {
            per_second: limit.per_second,
            burst: limit.burst,
            lease: limit.lease,
        }),
        connections: ConnectionLimits {
            header_read_timeout: Duration::from_secs(server.header_read_timeout_seconds),
            idle_timeout: Duration::from_secs(server.idle_timeout_seconds),
            max_connections: server.max_connections,
        },
    }
}

/// The full HTTP application for `settings`, on the system clock, the housekeeping service
/// to run beside it, and the mail worker (already running; stop it after serving).
///
/// # Errors
/// [`StartupError`].
pub async fn build_app(
    settings: &Settings,
) -> Result<(HttpApp, MaintenanceService, MailWorker), StartupError> {
    let services = build_services(settings, Arc::new(SystemClock)).await?;
    let router = http::router(services.state, &http_options(settings));
    Ok((router, services.maintenance, services.mail_worker))
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
