//! `auth-service`: load settings, start telemetry, build the app, serve until a signal.

use std::process::ExitCode;

use auth_service::infrastructure::bootstrap::{
    build_app, serve, shutdown_signal, spawn_purge_task,
};
use auth_service::infrastructure::config::{AppEnv, Settings, DEVELOPMENT_JWT_SECRET};
use auth_service::infrastructure::telemetry;
use secrecy::ExposeSecret;

#[tokio::main]
async fn main() -> ExitCode {
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("auth-service: {error}");
            return ExitCode::FAILURE;
        }
    };
    telemetry::init(settings.log_format, "info");
    if settings.app_env != AppEnv::Production
        && settings.jwt_secret.expose_secret() == DEVELOPMENT_JWT_SECRET
    {
        tracing::warn!("JWT_SECRET is not set: using the public development secret");
    }
    let (router, maintenance) = match build_app(&settings).await {
        Ok(app) => app,
        Err(error) => {
            tracing::error!(%error, "cannot start");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(settings.bind_address()).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(%error, address = %settings.bind_address(), "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    let address = listener
        .local_addr()
        .map_or_else(|_| settings.bind_address().to_string(), |a| a.to_string());
    tracing::info!(
        %address,
        env = settings.app_env.as_str(),
        version = env!("CARGO_PKG_VERSION"),
        "listening; Swagger UI at /docs"
    );
    spawn_purge_task(
        maintenance,
        std::time::Duration::from_secs(settings.purge_interval_seconds),
    );
    match serve(listener, router, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "server failed");
            ExitCode::FAILURE
        }
    }
}
