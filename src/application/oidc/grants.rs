//! The token endpoint's grants for registered clients: `authorization_code` (RFC 6749 §4.1.3
//! with RFC 7636 §4.5), `client_credentials` (§4.4), and the client check of `refresh_token`
//! for sessions issued to a client (§6).

use chrono::Duration;
use uuid::Uuid;

use super::{require_grant, OidcService};
use crate::application::auth::SessionStart;
use crate::application::{AppError, RequestContext};
use crate::domain::audit::AuditEventKind as Event;
use crate::domain::client::{Client, ClientScope, ClientType, GrantType};
use crate::domain::oidc::{
    at_hash, AuthorizationCode, CodeVerifier, IdClaims, OidcScope, ProfileClaims, Redemption, Scope,
};
use crate::domain::session::{RevocationReason, SessionId};
use crate::domain::token::{ClientAccessClaims, TokenPair};
use crate::domain::user::{Roles, User};

/// An access token of the `client_credentials` grant.
#[derive(Debug, Clone)]
pub struct ClientToken {
    pub access_token: String,
    pub expires_in: Duration,
    pub scope: Roles,
}

impl OidcService {
    /// Exchanges an authorization code (already authenticated `client`): the code must be
    /// live, issued to this client for this `redirect_uri`, and its PKCE challenge met by
    /// `verifier` (a verifier for a code without a challenge is refused too). Starts a
    /// session for the client under the user's browser sign-in (or, with `offline_access`,
    /// one that outlives it) and returns its tokens, with an ID token when `openid` was
    /// granted. A code presented a second time is refused and revokes what the first
    /// exchange issued.
    ///
    /// # Errors
    /// [`AppError::InvalidGrant`], [`AppError::UnauthorizedClient`], [`AppError::InvalidRequest`],
    /// [`AppError::Unavailable`].
    pub async fn exchange_code(
        &self,
        client: &Client,
        code: &str,
        redirect_uri: Option<&str>,
        verifier: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<TokenPair, AppError> {
        require_grant(client, GrantType::AuthorizationCode)?;
        let verifier = verifier
            .map(CodeVerifier::parse)
            .transpose()
            .map_err(|why| AppError::InvalidRequest(why.into()))?;
        let now = self.ports.clock.now();
        let code = AuthorizationCode::from_presented(code);
        let session_id = SessionId::new();
        let grant = match self
            .oidc
            .codes
            .redeem(&code.hash(), session_id, now)
            .await?
        {
            Redemption::Fresh(grant) => grant,
            Redemption::Replayed { session_id } => {
                self.revoke_after_replay(session_id, client, ctx).await?;
                return Err(AppError::InvalidGrant(
                    "the authorization code was already used",
                ));
            }
            Redemption::Unknown => {
                return Err(AppError::InvalidGrant(
                    "the authorization code is unknown or expired",
                ))
            }
        };
        if grant.client_id != client.id {
            return Err(AppError::InvalidGrant(
                "the authorization code was issued to another client",
            ));
        }
        if redirect_uri != Some(grant.redirect_uri.as_str()) {
            return Err(AppError::InvalidGrant(
                "redirect_uri differs from the authorization request's",
            ));
        }
        match (&grant.challenge, &verifier) {
            (Some(challenge), Some(verifier)) if challenge.matches(verifier) => {}
            (Some(_), Some(_)) => {
                return Err(AppError::InvalidGrant(
                    "code_verifier does not match the code_challenge",
                ))
            }
            (Some(_), None) => {
                return Err(AppError::InvalidGrant(
                    "code_verifier is missing (the request sent a code_challenge)",
                ))
            }
            (None, Some(_)) => {
                return Err(AppError::InvalidGrant(
                    "code_verifier sent, but the authorization request had no code_challenge",
                ))
            }
            (None, None) => {}
        }
        let user = self
            .ports
            .users
            .find_by_id(grant.user_id)
            .await?
            .filter(|u| u.is_active)
            .ok_or(AppError::InvalidGrant("the user is no longer active"))?;
        let mut scope = grant.scope.clone();
        scope.roles = scope.roles.intersection(&user.roles);
        let offline = scope.oidc.contains(OidcScope::OfflineAccess);
        let start = SessionStart {
            user: &user,
            scope: scope.clone(),
            // A session for offline access outlives the browser sign-in (and its logout); any
            // other ends with it.
            parent: (!offline).then_some(grant.signin_id),
            client_id: Some(client.id),
            id: session_id,
            origin: crate::application::auth::origin_of(ctx),
        };
        let Some(mut pair) = self.auth.start_session(start).await? else {
            return Err(AppError::InvalidGrant(
                "the sign-in behind the authorization code has ended",
            ));
        };
        if self.oidc.codes.was_replayed(&code.hash()).await? {
            // A replay came in before the session existed, so it could not revoke it.
            self.revoke_after_replay(session_id, client, ctx).await?;
            return Err(AppError::InvalidGrant(
                "the authorization code was already used",
            ));
        }
        if scope.is_openid() {
            let claims = IdClaims {
                subject: user.id,
                audience: client.id,
                issued_at: now,
                expires_at: now + self.token_ttl(),
                auth_time: grant.auth_time,
                nonce: grant.nonce.clone(),
                at_hash: Some(at_hash(&pair.access_token.token)),
                session_id: grant.signin_id,
                profile: profile_claims(&user, &scope),
            };
            // An RS256 signature is ~1 ms of CPU: on the blocking pool, not a runtime worker.
            let codec = self.oidc.id_tokens.clone();
            let signed = tokio::task::spawn_blocking(move || codec.sign_id_token(&claims))
                .await
                .map_err(|e| AppError::Internal(format!("ID-token signing task: {e}")))?;
            pair.id_token = Some(signed?);
        }
        self.audit
            .event(Event::AuthorizationCodeExchanged, ctx)
            .user(&user)
            .detail(format!("client {} session {}", client.id, pair.session_id))
            .record()
            .await?;
        Ok(pair)
    }

    /// Whether the code flow's token response carries the refresh token: when
    /// `offline_access` was granted or the client is registered for `refresh_token`.
    pub fn hands_out_refresh_token(&self, client: &Client, pair: &TokenPair) -> bool {
        pair.scope.oidc.contains(OidcScope::OfflineAccess)
            || client.grant_types.contains(GrantType::RefreshToken)
    }

    async fn revoke_after_replay(
        &self,
        session_id: SessionId,
        client: &Client,
        ctx: &RequestContext,
    ) -> Result<(), AppError> {
        let now = self.ports.clock.now();
        let revoked = self
            .ports
            .tokens
            .revoke_session(session_id, RevocationReason::AuthorizationCodeReused, now)
            .await?;
        self.audit
            .event(Event::AuthorizationCodeReused, ctx)
            .failed()
            .detail(format!(
                "client {}; session {session_id} {}",
                client.id,
                if revoked { "revoked" } else { "already ended" }
            ))
            .record()
            .await
    }

    /// The `client_credentials` grant (RFC 6749 §4.4) for an authenticated confidential client
    /// registered for it: an access token for the client itself, no refresh token. `scope`
    /// (role names) must be within the client's allowed scope; without it the client gets all
    /// of its allowed role names. OpenID values describe a user, so they are refused.
    ///
    /// # Errors
    /// [`AppError::UnauthorizedClient`], [`AppError::InvalidScope`], [`AppError::Unavailable`].
    pub async fn client_credentials(
        &self,
        client: &Client,
        scope: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<ClientToken, AppError> {
        if client.client_type != ClientType::Confidential {
            return Err(AppError::UnauthorizedClient(
                "a public client cannot use client_credentials",
            ));
        }
        require_grant(client, GrantType::ClientCredentials)?;
        let allowed = allowed_scope(&client.scope).roles;
        let roles = match scope {
            None => allowed,
            Some(raw) => {
                let requested = Scope::parse(raw).map_err(|value| {
                    AppError::InvalidScope(format!("unknown scope value '{value}'"))
                })?;
                if !requested.oidc.is_empty() {
                    return Err(AppError::InvalidScope(
                        "OpenID scope values describe a user; client_credentials has none".into(),
                    ));
                }
                if requested.roles.intersection(&allowed) != requested.roles {
                    return Err(AppError::InvalidScope(
                        "the scope asks for more than this client is allowed".into(),
                    ));
                }
                requested.roles
            }
        };
        let now = self.ports.clock.now();
        let ttl = self.token_ttl();
        let claims = ClientAccessClaims {
            client_id: client.id,
            scope: roles.clone(),
            issued_at: now,
            not_before: now,
            expires_at: now + ttl,
            token_id: Uuid::now_v7(),
        };
        let access_token = self.ports.codec.sign_client(&claims)?;
        self.audit
            .event(Event::ClientCredentialsGranted, ctx)
            .detail(format!("client {}", client.id))
            .record()
            .await?;
        Ok(ClientToken {
            access_token,
            expires_in: ttl,
            scope: roles,
        })
    }

    /// After a refresh (already rotated): a session issued to a client may only be refreshed
    /// by that client, authenticated when it is confidential (RFC 6749 §6). Anyone else
    /// presenting its refresh token has stolen it: the session is revoked at once, so the thief
    /// gets nothing and the rightful client's next refresh fails too.
    ///
    /// # Errors
    /// [`AppError::InvalidGrant`] (the session was revoked), [`AppError::Unavailable`].
    pub async fn check_refresh_client(
        &self,
        pair: &TokenPair,
        client: Option<&Client>,
        ctx: &RequestContext,
    ) -> Result<(), AppError> {
        let Some(owner) = pair.access_token.claims.client_id else {
            // The password grant's sessions belong to no client.
            return Ok(());
        };
        let owner_is_confidential = self
            .oidc
            .clients
            .find_by_id(owner)
            .await?
            .is_some_and(|c| c.client_type == ClientType::Confidential);
        // The client the session was issued to holds its refresh token legitimately, whether
        // it got it through `offline_access` or its `refresh_token` registration.
        let allowed = match client {
            Some(client) => client.id == owner,
            None => !owner_is_confidential,
        };
        if allowed {
            return Ok(());
        }
        let now = self.ports.clock.now();
        self.ports
            .tokens
            .revoke_session(pair.session_id, RevocationReason::WrongClient, now)
            .await?;
        self.audit
            .event(Event::TokenRevoked, ctx)
            .user_id(pair.access_token.claims.user_id)
            .failed()
            .detail(format!(
                "session {} of client {owner} refreshed without that client's authentication; revoked",
                pair.session_id
            ))
            .record()
            .await?;
        Err(AppError::InvalidGrant(
            "this refresh token belongs to another client (or needs its authentication)",
        ))
    }
}

/// A client's allowed scope as a [`Scope`].
pub(super) fn allowed_scope(scope: &ClientScope) -> Scope {
    Scope::parse(&scope.to_space_separated()).unwrap_or_default()
}

/// The profile claims `scope` grants (OpenID Connect Core §5.4).
pub(super) fn profile_claims(user: &User, scope: &Scope) -> ProfileClaims {
    let mut claims = ProfileClaims::default();
    if scope.oidc.contains(OidcScope::Profile) {
        claims.preferred_username = Some(user.username.as_str().to_owned());
        claims.name = user.full_name.as_ref().map(|n| n.as_str().to_owned());
    }
    if scope.oidc.contains(OidcScope::Email) {
        if let Some(email) = &user.email {
            claims.email = Some(email.as_str().to_owned());
            claims.email_verified = Some(user.email_verified);
        }
    }
    claims
}
