//! Route modules; each exposes `router()` with its operations registered for OpenAPI.

pub mod account;
pub mod admin;
pub mod auth;
pub mod authorize;
pub mod clients;
pub mod health;
pub mod metrics;
pub mod mfa;
pub mod oidc;
pub mod passkey_login;
pub mod passkeys;
pub mod recovery;
mod responses;
pub mod users;
pub mod well_known;
