//! What clients and resource servers ask about tokens after they were issued: introspection
//! (RFC 7662), UserInfo (OpenID Connect Core §5.3), revocation by a client (RFC 7009), and the
//! end of a browser sign-in (OpenID Connect RP-Initiated Logout 1.0).

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::grants::profile_claims;
use super::OidcService;
use crate::application::{AppError, Principal, RequestContext, TokenTypeHint};
use crate::domain::audit::AuditEventKind as Event;
use crate::domain::client::{Client, ClientId, ClientType};
use crate::domain::oidc::{OidcScope, ProfileClaims};
use crate::domain::ports::IdTokenHint;
use crate::domain::session::{RefreshToken, RevocationReason, Session, SessionId};
use crate::domain::token::VerifiedAccess;
use crate::domain::user::{User, UserId};

/// Which kind of token was introspected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    AccessToken,
    RefreshToken,
}

/// What introspection says of a live token (a dead one is just `active: false`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Introspection {
    pub kind: TokenKind,
    /// Space-separated, OpenID values first.
    pub scope: String,
    pub client_id: Option<ClientId>,
    pub username: Option<String>,
    /// The user id, or the client id for a client-credentials token.
    pub subject: String,
    pub expires_at: DateTime<Utc>,
    pub issued_at: DateTime<Utc>,
    pub session_id: Option<SessionId>,
}

/// The UserInfo response: the subject and the claims of the granted scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub subject: UserId,
    pub profile: ProfileClaims,
}

/// A checked end-session request.
#[derive(Debug, Clone)]
pub struct EndSession {
    /// The `id_token_hint`, when it was valid: the logout needs no confirmation then.
    pub hint: Option<IdTokenHint>,
    /// A registered `post_logout_redirect_uri` of the client, to redirect to afterwards.
    pub redirect_uri: Option<String>,
    pub state: Option<String>,
    /// The client that asked (from the hint, or `client_id`), for the page and the audit.
    pub client: Option<Client>,
}

impl OidcService {
    /// RFC 7662 introspection for an authenticated confidential client: `None` (inactive) for
    /// anything that is not a live token of this service, including one whose session was
    /// revoked, whose user is disabled or deleted, or whose client is disabled or deleted.
    ///
    /// # Errors
    /// [`AppError::UnauthorizedClient`] for a public client; [`AppError::Unavailable`].
    pub async fn introspect(
        &self,
        caller: &Client,
        token: &str,
        hint: Option<TokenTypeHint>,
    ) -> Result<Option<Introspection>, AppError> {
        if caller.client_type != ClientType::Confidential {
            return Err(AppError::UnauthorizedClient(
                "only a confidential client may introspect tokens",
            ));
        }
        if hint == Some(TokenTypeHint::RefreshToken) {
            if let Some(found) = self.introspect_refresh_token(token).await? {
                return Ok(Some(found));
            }
            return self.introspect_access_token(token).await;
        }
        if let Some(found) = self.introspect_access_token(token).await? {
            return Ok(Some(found));
        }
        self.introspect_refresh_token(token).await
    }

    async fn introspect_access_token(
        &self,
        token: &str,
    ) -> Result<Option<Introspection>, AppError> {
        let now = self.ports.clock.now();
        let Ok(verified) = self.ports.codec.verify_any(token, now) else {
            return Ok(None);
        };
        match verified {
            VerifiedAccess::User(claims) => {
                let live = self
                    .ports
                    .users
                    .find_active_by_session(claims.user_id, claims.session_id, now)
                    .await?;
                Ok(live.map(|user| Introspection {
                    kind: TokenKind::AccessToken,
                    scope: claims.granted_scope().to_space_separated(),
                    client_id: claims.client_id,
                    username: Some(user.username.as_str().to_owned()),
                    subject: claims.user_id.to_string(),
                    expires_at: claims.expires_at,
                    issued_at: claims.issued_at,
                    session_id: Some(claims.session_id),
                }))
            }
            VerifiedAccess::Client(claims) => {
                let client = self.oidc.clients.find_by_id(claims.client_id).await?;
                let live = client.is_some_and(|c| c.is_active);
                Ok(live.then(|| Introspection {
                    kind: TokenKind::AccessToken,
                    scope: claims.scope.to_space_separated(),
                    client_id: Some(claims.client_id),
                    username: None,
                    subject: claims.client_id.to_string(),
                    expires_at: claims.expires_at,
                    issued_at: claims.issued_at,
                    session_id: None,
                }))
            }
        }
    }

    async fn introspect_refresh_token(
        &self,
        token: &str,
    ) -> Result<Option<Introspection>, AppError> {
        let now = self.ports.clock.now();
        let hash = RefreshToken::from_presented(token).hash();
        let Some(live) = self
            .ports
            .tokens
            .find_live_refresh_token(&hash, now)
            .await?
        else {
            return Ok(None);
        };
        let session = &live.session;
        let scope = crate::domain::oidc::Scope {
            oidc: session.oidc,
            roles: session.scope.intersection(&live.user.roles),
        };
        Ok(Some(Introspection {
            kind: TokenKind::RefreshToken,
            scope: scope.to_space_separated(),
            client_id: session.client_id,
            username: Some(live.user.username.as_str().to_owned()),
            subject: live.user.id.to_string(),
            expires_at: live.expires_at,
            issued_at: live.created_at,
            session_id: Some(session.id),
        }))
    }

    /// OpenID Connect UserInfo for a live access token that was granted `openid`.
    ///
    /// # Errors
    /// [`AppError::InsufficientScope`] without `openid`.
    pub fn userinfo(&self, principal: &Principal) -> Result<UserInfo, AppError> {
        let scope = principal.claims.granted_scope();
        if !scope.oidc.contains(OidcScope::OpenId) {
            return Err(AppError::InsufficientScope("openid"));
        }
        Ok(UserInfo {
            subject: principal.user.id,
            profile: profile_claims(&principal.user, &scope),
        })
    }

    /// RFC 7009 revocation, with the client check of §2.1: a token issued to a registered
    /// client is revoked only at that client's request (authenticated when it is
    /// confidential); the password grant's tokens belong to no client and are revoked for
    /// anyone who holds them, as before. Anything else is accepted and ignored, so the answer
    /// never tells whether a token is valid.
    ///
    /// # Errors
    /// [`AppError::Unavailable`].
    pub async fn revoke(
        &self,
        caller: Option<&Client>,
        token: &str,
        hint: Option<TokenTypeHint>,
        ctx: &RequestContext,
    ) -> Result<(), AppError> {
        let now = self.ports.clock.now();
        let access = || match self.ports.codec.verify(token, now) {
            Ok(claims) => Some((claims.session_id, claims.client_id)),
            Err(_) => None,
        };
        let found = if hint == Some(TokenTypeHint::AccessToken) {
            match access() {
                Some(found) => Some(found),
                None => self.owner_of_refresh_token(token, now).await?,
            }
        } else {
            match self.owner_of_refresh_token(token, now).await? {
                Some(found) => Some(found),
                None => access(),
            }
        };
        let Some((session_id, owner)) = found else {
            return Ok(());
        };
        if !self.may_revoke(owner, caller).await? {
            tracing::info!(%session_id, "revocation of another client's token ignored");
            return Ok(());
        }
        if self
            .ports
            .tokens
            .revoke_session(session_id, RevocationReason::Revoked, now)
            .await?
        {
            let by = caller.map_or(String::new(), |c| format!(" by client {}", c.id));
            self.audit
                .event(Event::TokenRevoked, ctx)
                .detail(format!("session {session_id}{by}"))
                .record()
                .await?;
        }
        Ok(())
    }

    /// The session of a refresh token and its client. A live token's client is known; for one
    /// already rotated the session is found without it, as the password grant always did
    /// (whoever holds an old token can end its session through reuse detection anyway).
    async fn owner_of_refresh_token(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(SessionId, Option<ClientId>)>, AppError> {
        let hash = RefreshToken::from_presented(token).hash();
        if let Some(live) = self
            .ports
            .tokens
            .find_live_refresh_token(&hash, now)
            .await?
        {
            return Ok(Some((live.session.id, live.session.client_id)));
        }
        let session = self
            .ports
            .tokens
            .find_session_of_refresh_token(&hash)
            .await?;
        Ok(session.map(|id| (id, None)))
    }

    async fn may_revoke(
        &self,
        owner: Option<ClientId>,
        caller: Option<&Client>,
    ) -> Result<bool, AppError> {
        Ok(match (owner, caller) {
            (None, _) => true,
            (Some(owner), Some(caller)) => owner == caller.id,
            (Some(owner), None) => self
                .oidc
                .clients
                .find_by_id(owner)
                .await?
                .is_some_and(|c| c.client_type == ClientType::Public),
        })
    }

    /// Checks an end-session request: a valid `id_token_hint` names the sign-in to end (an
    /// invalid one is refused); a `post_logout_redirect_uri` must be registered for the client
    /// named by the hint's audience or by `client_id` (which must agree).
    ///
    /// # Errors
    /// [`AppError::InvalidRequest`] with the reason, for the error page.
    pub async fn check_end_session(
        &self,
        id_token_hint: Option<&str>,
        client_id: Option<&str>,
        post_logout_redirect_uri: Option<&str>,
        state: Option<&str>,
    ) -> Result<EndSession, AppError> {
        let hint = match id_token_hint {
            Some(raw) => Some(self.oidc.id_tokens.read_id_token_hint(raw).map_err(|_| {
                AppError::InvalidRequest(
                    "id_token_hint is not an ID token issued by this service".into(),
                )
            })?),
            None => None,
        };
        let named = match client_id {
            Some(raw) => Some(self.find_active_client(raw).await?.ok_or_else(|| {
                AppError::InvalidRequest("client_id names no active client".into())
            })?),
            None => None,
        };
        let client = match (&hint, named) {
            (Some(hint), Some(named)) if named.id != hint.audience => {
                return Err(AppError::InvalidRequest(
                    "client_id differs from the audience of id_token_hint".into(),
                ))
            }
            (_, Some(named)) => Some(named),
            (Some(hint), None) => self
                .oidc
                .clients
                .find_by_id(hint.audience)
                .await?
                .filter(|c| c.is_active),
            (None, None) => None,
        };
        let redirect_uri = match post_logout_redirect_uri {
            None => None,
            Some(uri) => {
                let registered = client.as_ref().is_some_and(|c| {
                    c.post_logout_redirect_uris
                        .iter()
                        .any(|r| r.as_str() == uri)
                });
                if !registered {
                    return Err(AppError::InvalidRequest(
                        "post_logout_redirect_uri is not registered for this client".into(),
                    ));
                }
                Some(uri.to_owned())
            }
        };
        if state.is_some_and(|s| s.len() > 2048) {
            return Err(AppError::InvalidRequest(
                "state is longer than 2048 bytes".into(),
            ));
        }
        Ok(EndSession {
            hint,
            redirect_uri,
            state: state.map(str::to_owned),
            client,
        })
    }

    /// Ends the browser sign-in named by a valid hint and the browser's own sign-in (when it is
    /// the same user's, or when the user confirmed), with every session started under them.
    ///
    /// # Errors
    /// [`AppError::Unavailable`].
    pub async fn end_session(
        &self,
        request: &EndSession,
        browser: Option<(Session, Arc<User>)>,
        confirmed: bool,
        ctx: &RequestContext,
    ) -> Result<(), AppError> {
        let now = self.ports.clock.now();
        let mut ended = Vec::new();
        if let Some(hint) = &request.hint {
            ended.push((hint.session_id, hint.subject));
        }
        if let Some((session, user)) = &browser {
            let same_user = request.hint.as_ref().is_some_and(|h| h.subject == user.id);
            if (confirmed || same_user) && !ended.iter().any(|(id, _)| *id == session.id) {
                ended.push((session.id, user.id));
            }
        }
        for (session_id, user_id) in ended {
            if self
                .ports
                .tokens
                .revoke_session(session_id, RevocationReason::Logout, now)
                .await?
            {
                let client = request.client.as_ref().map_or(String::new(), |c| {
                    format!(" at the request of client {}", c.id)
                });
                self.audit
                    .event(Event::Logout, ctx)
                    .user_id(user_id)
                    .detail(format!("browser sign-in {session_id} ended{client}"))
                    .record()
                    .await?;
            }
        }
        Ok(())
    }
}
