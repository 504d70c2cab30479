//! Entities, validated value types and the ports the application needs. Depends on no framework.

pub mod account;
pub mod audit;
pub mod client;
mod id;
pub mod lockout;
pub mod mail;
pub mod mfa;
pub mod oidc;
pub mod passkey;
pub mod ports;
pub mod rate_limit;
pub mod session;
pub mod token;
pub mod user;
pub mod validation;
