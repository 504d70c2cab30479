//! Adapters: configuration, telemetry, the clock, argon2, JWT, SQLite and PostgreSQL, the axum
//! HTTP layer and the `seed` command. The only module that names a framework or a driver.

pub mod bootstrap;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod db;
pub mod http;
pub mod mail;
pub mod metrics;
pub mod passwords;
pub mod redis_rates;
pub mod seed;
pub mod telemetry;
pub mod webauthn;
