//! Starting sessions and signing their access tokens.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{AppError, AuthService};
use crate::domain::session::{NewSession, RefreshToken, RefreshTokenRecord, Session, SessionId};
use crate::domain::token::{AccessClaims, AccessToken, TokenPair};
use crate::domain::user::{Roles, User};

impl AuthService {
    /// Starts a session for `user` as its credentials were checked (`user.credential_version`),
    /// optionally tied to a `parent` session; `None` when the user changed meanwhile (password
    /// changed, disabled, deleted, or the parent ended).
    pub(super) async fn start_session(
        &self,
        user: &User,
        scope: Roles,
        parent: Option<SessionId>,
    ) -> Result<Option<TokenPair>, AppError> {
        let now = self.ports.clock.now();
        let not_after = now + self.settings.session_max_lifetime;
        let expires_at = (now + self.settings.refresh_token_ttl).min(not_after);
        let session = Session {
            id: SessionId::new(),
            user_id: user.id,
            scope,
            created_at: now,
            expires_at,
            not_after,
            parent_id: parent,
        };
        let refresh_token = RefreshToken::generate();
        let access_token = self.sign_access_token(user, &session, now)?;
        let new = NewSession {
            first_token: Self::record(&refresh_token, &session, now, expires_at),
            session,
            credential_version: user.credential_version,
            max_live_sessions: self.settings.max_sessions_per_user,
            client_id: None,
        };
        let Some(expires_at) = self.ports.tokens.create_session(&new).await? else {
            return Ok(None);
        };
        Ok(Some(TokenPair {
            access_token,
            refresh_token,
            refresh_expires_at: expires_at,
            session_id: new.session.id,
            scope: new.session.scope,
        }))
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

    pub(super) fn sign_access_token(
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
            issued_at: now,
            not_before: now,
            expires_at: now + self.settings.access_token_ttl,
            token_id: Uuid::now_v7(),
        };
        let token = self.ports.codec.sign(&claims)?;
        Ok(AccessToken { token, claims })
    }
}
