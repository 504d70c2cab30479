//! Access-token claims (RFC 9068 profile) and the token pair a login returns.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::client::ClientId;
use super::oidc::{OidcScopes, Scope};
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
    /// The roles granted to the session (the role names of the `scope` claim).
    pub scope: Roles,
    /// The OpenID values granted to the session (the rest of the `scope` claim); none for the
    /// password grant.
    pub oidc: OidcScopes,
    /// The registered client the session's tokens are issued to (the `client_id` claim); `None`
    /// for the password grant.
    pub client_id: Option<ClientId>,
    pub issued_at: DateTime<Utc>,
    pub not_before: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The token's unique id (`jti`).
    pub token_id: Uuid,
}

impl AccessClaims {
    /// The whole granted scope, OpenID values and roles.
    pub fn granted_scope(&self) -> Scope {
        Scope {
            oidc: self.oidc,
            roles: self.scope.clone(),
        }
    }
}

/// What an access token of the `client_credentials` grant says: it acts for the client itself
/// (`sub` is the `client_id`), has no user and no session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAccessClaims {
    pub client_id: ClientId,
    /// The role names granted (the `scope` claim).
    pub scope: Roles,
    pub issued_at: DateTime<Utc>,
    pub not_before: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub token_id: Uuid,
}

/// A verified access token of either kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifiedAccess {
    /// A token acting for a user in a session.
    User(AccessClaims),
    /// A `client_credentials` token acting for a client.
    Client(ClientAccessClaims),
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
    pub scope: Scope,
    /// The ID token, when `openid` was granted in the code flow.
    pub id_token: Option<String>,
}
