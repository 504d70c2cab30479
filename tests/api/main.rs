//! HTTP integration tests: the real router on an ephemeral port, a fresh SQLite database per
//! test, driven with reqwest as a client would.

mod account;
mod admin;
mod asserts;
mod audit;
mod auth_token;
mod clients;
mod crypto_review;
mod docs;
mod edge;
mod errors;
mod health;
mod helpers;
mod hygiene;
mod interop;
mod lockout;
mod mail;
mod metrics;
mod oidc;
mod oidc_interop;
mod passkeys;
mod refresh;
mod rejections;
mod review;
mod sessions;
mod token_hygiene;
mod totp;
mod upgrade;
mod users;

#[path = "../support/mod.rs"]
mod support;
