//! An OAuth 2.0 and OpenID Connect authentication service.
//!
//! It issues short-lived JWT access tokens (RFC 9068 profile) and opaque, rotating refresh tokens
//! with reuse detection, stores users with argon2id password hashes, and serves its HTTP API with
//! an OpenAPI document and Swagger UI.
//!
//! # Layout
//!
//! The crate is hexagonal and its dependencies point inward:
//!
//! - [`domain`]: entities, validated value types and the port traits. No framework, no I/O.
//! - [`application`]: the use cases (login, refresh, logout, registration, ...), written against
//!   the ports only.
//! - [`infrastructure`]: the adapters: configuration, telemetry, argon2, JWT, SQLite and
//!   PostgreSQL, the axum HTTP layer and the `seed` command. It is the only module that names a
//!   framework or a driver.
//!
//! `main.rs` and `bin/seed.rs` only parse the command line and call into
//! [`infrastructure::bootstrap`] (the wiring) and [`infrastructure::seed`].

pub mod application;
pub mod domain;
pub mod infrastructure;
