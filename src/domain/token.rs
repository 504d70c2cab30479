//! Access-token claims (RFC 9068 profile) and the token pair a login returns.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::session::{RefreshToken, SessionId};
use super::user::{Roles, UserId};

/// What a verified access token says. Issuer and audience are the codec's business.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessClaims {
    pub user_id: UserId,
    pub session_id: SessionId,
    pub username: String,
    /// The user's roles when the token was issued.
    pub roles: Roles,
    /// The roles granted to the session (the `scope` claim).
    pub scope: Roles,
    pub issued_at: DateTime<Utc>,
    pub not_before: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The token's unique id (`jti`).
    pub token_id: Uuid,
}

/// A signed access token and the claims it carries.
#[derive(Debug, Clone)]
pub struct AccessToken {
    pub token: String,
    pub claims: AccessClaims,
}

/// What a successful login or refresh hands to the client.
#[derive(Debug, Clone)]
pub struct TokenPair {
    pub access_token: AccessToken,
    pub refresh_token: RefreshToken,
    pub refresh_expires_at: DateTime<Utc>,
    pub session_id: SessionId,
    pub scope: Roles,
}
