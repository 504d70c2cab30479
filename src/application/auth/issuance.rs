//! Starting sessions and signing their access tokens.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{AppError, AuthService};
use crate::application::RequestContext;
use crate::domain::account::SessionOrigin;
use crate::domain::client::ClientId;
use crate::domain::oidc::{Scope, SigninToken};
use crate::domain::session::{NewSession, RefreshToken, RefreshTokenRecord, Session, SessionId};
use crate::domain::token::{AccessClaims, AccessToken, TokenPair};
use crate::domain::user::User;

/// A session to start for a user whose credentials (or code) were just checked.
pub(crate) struct SessionStart<'a> {
    pub user: &'a User,
    pub scope: Scope,
    /// The session it is started from: it ends with it and never outlives its absolute end.
    pub parent: Option<SessionId>,
    /// The client its tokens are issued to (the code flow).
    pub client_id: Option<ClientId>,
    /// The id to give it (a code redemption names it before the session exists).
    pub id: SessionId,
    /// The IP and user agent of the request that starts it.
    pub origin: SessionOrigin,
}

impl<'a> SessionStart<'a> {
    /// A session of the password grant: every role asked for, no client, no parent, started
    /// by the request `ctx`.
    pub fn password_grant(user: &'a User, scope: Scope, ctx: &RequestContext) -> Self {
        Self {
            user,
            scope,
            parent: None,
            client_id: None,
            id: SessionId::new(),
            origin: origin_of(ctx),
        }
    }
}

/// The session origin of a request.
pub(crate) fn origin_of(ctx: &RequestContext) -> SessionOrigin {
    SessionOrigin::new(ctx.ip, ctx.user_agent.as_deref())
}

impl AuthService {
    /// Starts a session as the user's credentials were checked (`user.credential_version`);
    /// `None` when the user changed meanwhile (password changed, disabled, deleted, or the
    /// parent ended).
    pub(crate) async fn start_session(
        &self,
        start: SessionStart<'_>,
    ) -> Result<Option<TokenPair>, AppError> {
        let now = self.ports.clock.now();
        let not_after = now + self.settings.session_max_lifetime;
        let expires_at = (now + self.settings.refresh_token_ttl).min(not_after);
        let session = Session {
            id: start.id,
            user_id: start.user.id,
            scope: start.scope.roles,
            oidc: start.scope.oidc,
            created_at: now,
            expires_at,
            not_after,
            parent_id: start.parent,
            client_id: start.client_id,
        };
        let refresh_token = RefreshToken::generate();
        let new = NewSession {
            first_token: Some(Self::record(&refresh_token, &session, now, expires_at)),
            signin: None,
            session,
            credential_version: start.user.credential_version,
            max_live_sessions: self.settings.max_sessions_per_user,
            origin: start.origin,
        };
        let Some(expires_at) = self.ports.tokens.create_session(&new).await? else {
            return Ok(None);
        };
        let mut session = new.session;
        session.expires_at = expires_at;
        let access_token = self.sign_access_token(start.user, &session, now)?;
        Ok(Some(TokenPair {
            access_token,
            refresh_token,
            refresh_expires_at: expires_at,
            session_id: session.id,
            scope: Scope {
                oidc: session.oidc,
                roles: session.scope,
            },
            id_token: None,
        }))
    }

    /// Starts a browser sign-in for `user`: a session with no refresh token, found again by the
    /// returned cookie token. `None` when the user changed meanwhile.
    pub(crate) async fn start_signin(
        &self,
        user: &User,
        ctx: &RequestContext,
    ) -> Result<Option<(SigninToken, Session)>, AppError> {
        let now = self.ports.clock.now();
        // A sign-in is never extended, so its expiry is also its absolute end: the code-flow
        // sessions started under it are capped at it.
        let not_after =
            (now + self.settings.refresh_token_ttl).min(now + self.settings.session_max_lifetime);
        let token = SigninToken::generate();
        let new = NewSession {
            session: Session {
                id: SessionId::new(),
                user_id: user.id,
                scope: Default::default(),
                oidc: Default::default(),
                created_at: now,
                expires_at: not_after,
                not_after,
                parent_id: None,
                client_id: None,
            },
            first_token: None,
            signin: Some(token.hash()),
            credential_version: user.credential_version,
            max_live_sessions: self.settings.max_sessions_per_user,
            origin: origin_of(ctx),
        };
        let Some(expires_at) = self.ports.tokens.create_session(&new).await? else {
            return Ok(None);
        };
        let mut session = new.session;
        session.expires_at = expires_at;
        Ok(Some((token, session)))
    }

    fn record(
        token: &RefreshToken,
        session: &Session,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> RefreshTokenRecord {
        RefreshTokenRecord {
            hash: token.hash(),
            session_id: session.id,
            created_at: now,
            expires_at,
        }
    }

    pub(crate) fn sign_access_token(
        &self,
        user: &User,
        session: &Session,
        now: DateTime<Utc>,
    ) -> Result<AccessToken, AppError> {
        let claims = AccessClaims {
            user_id: user.id,
            session_id: session.id,
            username: user.username.as_str().to_owned(),
            roles: user.roles.clone(),
            scope: session.scope.clone(),
            oidc: session.oidc,
            client_id: session.client_id,
            issued_at: now,
            not_before: now,
            expires_at: now + self.settings.access_token_ttl,
            token_id: Uuid::now_v7(),
        };
        let token = self.ports.codec.sign(&claims)?;
        Ok(AccessToken { token, claims })
    }
}
