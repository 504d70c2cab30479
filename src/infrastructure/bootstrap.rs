//! The one wiring place: settings → adapters → use cases → HTTP router.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use secrecy::ExposeSecret;
use tokio::net::TcpListener;

use super::clock::SystemClock;
use super::config::Settings;
use super::crypto::argon2::{Argon2Config, Argon2Hasher};
use super::crypto::jwt::JwtCodec;
use super::db;
use super::http::{self, AppState};
use crate::application::{AuthService, AuthSettings, UserService};
use crate::domain::ports::Clock;
use crate::domain::user::PasswordPolicy;

/// A start-up failure, with a message an operator can act on.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartupError(pub String);

/// The use cases and the state the router serves, wired from settings.
pub struct Services {
    pub auth: AuthService,
    pub users: UserService,
    pub state: AppState,
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
    let repos = db::connect(
        settings.database_url.expose_secret(),
        settings.database_max_connections,
    )
    .await
    .map_err(|e| StartupError(format!("database: {e}")))?;
    let hasher = Arc::new(
        Argon2Hasher::new(
            Argon2Config {
                memory_kib: settings.argon2_memory_kib,
                iterations: settings.argon2_iterations,
                parallelism: settings.argon2_parallelism,
            },
            settings.hash_concurrency,
            Duration::from_millis(settings.hash_queue_timeout_ms),
        )
        .map_err(|e| StartupError(e.to_string()))?,
    );
    let codec = Arc::new(JwtCodec::hs256(
        &settings.jwt_secret,
        &settings.jwt_issuer,
        &settings.jwt_audience,
        settings.jwt_leeway_seconds,
    ));
    let seconds = |s: u64| chrono::Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX));
    let auth = AuthService::new(
        repos.users.clone(),
        repos.tokens.clone(),
        hasher.clone(),
        codec,
        clock.clone(),
        AuthSettings {
            access_token_ttl: seconds(settings.access_token_ttl_seconds),
            refresh_token_ttl: seconds(settings.refresh_token_ttl_seconds),
        },
    );
    let users = UserService::new(
        repos.users,
        repos.tokens,
        hasher,
        clock,
        PasswordPolicy {
            min_chars: settings.password_min_length,
        },
    );
    let state = AppState {
        auth: auth.clone(),
        users: users.clone(),
        health: repos.health,
        trust_proxy_headers: settings.trust_proxy_headers,
    };
    Ok(Services { auth, users, state })
}

/// The full HTTP application for `settings`, on the system clock.
///
/// # Errors
/// [`StartupError`].
pub async fn build_router(settings: &Settings) -> Result<Router, StartupError> {
    let services = build_services(settings, Arc::new(SystemClock)).await?;
    Ok(http::router(services.state, settings.body_limit_bytes))
}

/// Serves `router` on `listener` until `shutdown` completes; in-flight requests then finish.
///
/// # Errors
/// An I/O error of the listener.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
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
