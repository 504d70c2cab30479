//! Use cases. They orchestrate the domain ports and know nothing of HTTP or SQL.

pub mod auth;
pub mod error;
#[cfg(test)]
pub(crate) mod fakes;
pub mod users;

use std::net::IpAddr;

use crate::domain::token::AccessClaims;
use crate::domain::user::User;

pub use auth::{AuthService, AuthSettings, TokenTypeHint};
pub use error::AppError;
pub use users::{NewUser, UserService};

/// Who is calling, as the HTTP layer saw it: for logs and the audit trail.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// The client address (the socket peer, or the proxy-reported one when trusted).
    pub ip: Option<IpAddr>,
    /// The `User-Agent` header, if any.
    pub user_agent: Option<String>,
}

/// An authenticated caller: a verified access token whose session and user are still active.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The user as stored now (not as the token remembers it).
    pub user: User,
    /// The verified claims of the presented token.
    pub claims: AccessClaims,
}
