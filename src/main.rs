//! `auth-service`: the server binary. `serve` (the default) loads the settings, starts
//! telemetry, builds the app and serves until SIGINT/SIGTERM; `migrate` applies the migrations
//! and exits; `check-config` validates the configuration and prints it with secrets masked;
//! `seed` creates users (the same command as `cargo run --bin seed`, without a second build).

use std::process::ExitCode;
use std::time::Duration;

use auth_service::infrastructure::bootstrap::{
    build_app, build_codec, build_id_token_codec, db_options, mfa_encryption_key, serve,
    shutdown_signal, spawn_purge_task, start,
};
use auth_service::infrastructure::config::{mask_url, AppEnv, Settings};
use auth_service::infrastructure::db;
use auth_service::infrastructure::seed::{self, SeedArgs};
use auth_service::infrastructure::telemetry::{self, LogStream};
use clap::{Parser, Subcommand};
use secrecy::ExposeSecret;

#[derive(Parser)]
#[command(
    name = "auth-service",
    version,
    about = "OAuth 2.0 and OpenID Connect authentication service",
    long_about = "OAuth 2.0 and OpenID Connect authentication service: the authorization code flow with PKCE and a hosted login page, ID tokens, client credentials, JWT access tokens, rotating refresh tokens, argon2id passwords.\n\nConfiguration comes from the environment, then .env.{APP_ENV}, then .env (see docs/configuration.md and .env.example)."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve HTTP until SIGINT or SIGTERM (the default).
    Serve,
    /// Apply the database migrations and exit (safe to run beside running replicas).
    Migrate,
    /// Validate the configuration and the signing keys, print every setting with secrets
    /// masked, and exit (1 when something is wrong).
    CheckConfig,
    Seed(SeedArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Some((settings, runtime)) = start("auth-service") else {
        return ExitCode::FAILURE;
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => runtime.block_on(run(settings)),
        Command::Migrate => runtime.block_on(migrate(settings)),
        Command::CheckConfig => check_config(&settings),
        Command::Seed(args) => runtime.block_on(seed::run(args, &settings)),
    }
}

async fn run(settings: Settings) -> ExitCode {
    // The server's output is its log; the tests and log shippers read it on standard output.
    telemetry::init(settings.logging.format, "info", LogStream::Stdout);
    if settings.app_env != AppEnv::Production && settings.tokens.uses_development_secret() {
        tracing::warn!("JWT_SECRET is not set: using the public development secret");
    }
    let (router, maintenance, mail_worker) = match build_app(&settings).await {
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
        Duration::from_secs(settings.retention.purge_interval_seconds),
    );
    let served = serve(listener, router, shutdown_signal()).await;
    // The round in progress finishes; what is left stays queued for the next start.
    mail_worker.stop().await;
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "server failed");
            ExitCode::FAILURE
        }
    }
}

async fn migrate(settings: Settings) -> ExitCode {
    telemetry::init(settings.logging.format, "warn", LogStream::Stderr);
    let url = settings.database.url.expose_secret();
    match db::connect(url, &db_options(&settings)).await {
        Ok(_) => {
            println!("migrations applied: {}", mask_url(url));
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("auth-service migrate: {error}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(settings: &Settings) -> ExitCode {
    for (name, value) in settings.entries() {
        println!("{name}={value}");
    }
    let built = build_codec(settings)
        .and_then(|codec| Ok((codec, build_id_token_codec(settings)?)))
        .and_then(|built| mfa_encryption_key(settings).map(|_| built));
    match built {
        Ok((codec, id_tokens)) => {
            println!(
                "configuration OK: signing with {} (kid {}); ID tokens with RS256 (kid {})",
                codec.algorithm(),
                codec.signing_kid(),
                id_tokens.kid()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("auth-service check-config: {error}");
            ExitCode::FAILURE
        }
    }
}
