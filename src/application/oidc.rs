//! The OpenID Connect provider's use cases: client authentication, the authorization request
//! and its code (`oidc/authorize.rs`), the token endpoint's code and client-credentials grants
//! (`oidc/grants.rs`), and what a client or a resource server asks about tokens later:
//! introspection, UserInfo, revocation, end session (`oidc/tokens.rs`).
//!
//! The password check, the sessions and the lockout are [`AuthService`]'s: a browser sign-in
//! is a session like any other, so every revocation path (logout-all, a password change, an
//! admin disabling the user or deleting the client) ends what the code flow issued.

mod authorize;
mod grants;
mod tokens;

use std::sync::Arc;

use chrono::Duration;

use super::{AppError, Auditor, AuthService, Ports};
use crate::domain::client::{Client, ClientId, ClientType, GrantType};
use crate::domain::ports::{AuthorizationCodeRepository, ClientRepository, IdTokenCodec};

pub use authorize::{
    AuthorizationRequest, AuthorizeError, AuthorizeOutcome, CodeRedirect, Prompt, ValidRequest,
};
pub use grants::ClientToken;
pub use tokens::{EndSession, Introspection, TokenKind, UserInfo};

/// The ports the provider needs beyond [`Ports`].
#[derive(Clone)]
pub struct OidcPorts {
    pub clients: Arc<dyn ClientRepository>,
    pub codes: Arc<dyn AuthorizationCodeRepository>,
    pub id_tokens: Arc<dyn IdTokenCodec>,
}

/// How the client authenticated at the token, introspection or revocation endpoint
/// (RFC 6749 §2.3.1): HTTP Basic, form fields, or `client_id` alone for a public client. Its
/// `Debug` never shows the secret.
#[derive(Clone)]
pub struct ClientCredentials {
    /// As sent: an unknown or malformed id is `invalid_client`.
    pub client_id: String,
    /// `None` for `none` (a public client).
    pub secret: Option<String>,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("client_id", &self.client_id)
            .field("secret", &self.secret.as_ref().map(|_| "[REDACTED]"))
            .finish()
    }
}

/// The provider's use cases.
#[derive(Clone)]
pub struct OidcService {
    auth: AuthService,
    ports: Ports,
    oidc: OidcPorts,
    audit: Auditor,
}

impl OidcService {
    /// The use cases over `auth`'s ports and the provider's own.
    pub fn new(auth: AuthService, oidc: OidcPorts) -> Self {
        let ports = auth.ports().clone();
        Self {
            audit: ports.auditor(),
            auth,
            ports,
            oidc,
        }
    }

    /// The lifetime of ID tokens and client-credentials access tokens: the access-token one.
    fn token_ttl(&self) -> Duration {
        self.auth.settings().access_token_ttl
    }

    /// Authenticates a client (RFC 6749 §2.3): a confidential client by its secret (compared in
    /// constant time), a public client by its id alone; a public client that sends a secret,
    /// a confidential one that sends none, an unknown or disabled client all fail alike.
    ///
    /// # Errors
    /// [`AppError::InvalidClient`], [`AppError::Unavailable`].
    pub async fn authenticate_client(
        &self,
        credentials: &ClientCredentials,
    ) -> Result<Client, AppError> {
        let client = self
            .find_active_client(&credentials.client_id)
            .await?
            .ok_or(AppError::InvalidClient)?;
        let authenticated = match (&client.secret_hash, &credentials.secret) {
            (Some(hash), Some(secret)) => hash.verify(secret),
            (None, None) => client.client_type == ClientType::Public,
            _ => false,
        };
        if authenticated {
            Ok(client)
        } else {
            Err(AppError::InvalidClient)
        }
    }

    /// The active client with this id, if `raw` is a client id at all.
    async fn find_active_client(&self, raw: &str) -> Result<Option<Client>, AppError> {
        let Ok(uuid) = uuid::Uuid::parse_str(raw) else {
            return Ok(None);
        };
        let client = self
            .oidc
            .clients
            .find_by_id(ClientId::from_uuid(uuid))
            .await?;
        Ok(client.filter(|c| c.is_active))
    }
}

/// # Errors
/// [`AppError::UnauthorizedClient`] unless `client` is registered for `grant`.
fn require_grant(client: &Client, grant: GrantType) -> Result<(), AppError> {
    if client.grant_types.contains(grant) {
        Ok(())
    } else {
        Err(AppError::UnauthorizedClient(match grant {
            GrantType::AuthorizationCode => "this client is not registered for authorization_code",
            GrantType::RefreshToken => "this client is not registered for refresh_token",
            GrantType::ClientCredentials => "this client is not registered for client_credentials",
        }))
    }
}

#[cfg(test)]
#[path = "oidc_tests.rs"]
mod tests;
