//! Ending sessions: RFC 7009 revocation, logout, and logout everywhere.

use super::{AppError, AuthService, Event, Principal, RequestContext, TokenTypeHint};
use crate::domain::session::{RefreshToken, RevocationReason, SessionId};

impl AuthService {
    /// RFC 7009 revocation: revokes the session of a refresh token or of a valid access token.
    /// Unknown or invalid tokens are silently accepted, as the RFC requires.
    ///
    /// # Errors
    /// [`AppError::Unavailable`].
    pub async fn revoke(
        &self,
        token: &str,
        hint: Option<TokenTypeHint>,
        ctx: &RequestContext,
    ) -> Result<(), AppError> {
        let session = if hint == Some(TokenTypeHint::AccessToken) {
            match self.session_of_access_token(token) {
                Some(id) => Some(id),
                None => self.session_of_refresh_token(token).await?,
            }
        } else {
            match self.session_of_refresh_token(token).await? {
                Some(id) => Some(id),
                None => self.session_of_access_token(token),
            }
        };
        if let Some(session_id) = session {
            let now = self.ports.clock.now();
            if self
                .ports
                .tokens
                .revoke_session(session_id, RevocationReason::Revoked, now)
                .await?
            {
                self.audit
                    .event(Event::TokenRevoked, ctx)
                    .detail(format!("session {session_id}"))
                    .record()
                    .await?;
            }
        }
        Ok(())
    }

    /// Revokes the caller's session.
    ///
    /// # Errors
    /// [`AppError::Unavailable`].
    pub async fn logout(
        &self,
        principal: &Principal,
        ctx: &RequestContext,
    ) -> Result<(), AppError> {
        let session_id = principal.claims.session_id;
        self.ports
            .tokens
            .revoke_session(session_id, RevocationReason::Logout, self.ports.clock.now())
            .await?;
        self.audit
            .event(Event::Logout, ctx)
            .user(&principal.user)
            .detail(format!("session {session_id}"))
            .record()
            .await
    }

    /// Revokes every session of the caller.
    ///
    /// # Errors
    /// [`AppError::Unavailable`].
    pub async fn logout_all(
        &self,
        principal: &Principal,
        ctx: &RequestContext,
    ) -> Result<(), AppError> {
        let count = self
            .ports
            .tokens
            .revoke_user_sessions(
                principal.user.id,
                None,
                RevocationReason::LogoutAll,
                self.ports.clock.now(),
            )
            .await?;
        self.audit
            .event(Event::LogoutAll, ctx)
            .user(&principal.user)
            .detail(format!("{count} sessions revoked"))
            .record()
            .await
    }

    async fn session_of_refresh_token(&self, token: &str) -> Result<Option<SessionId>, AppError> {
        let hash = RefreshToken::from_presented(token).hash();
        Ok(self
            .ports
            .tokens
            .find_session_of_refresh_token(&hash)
            .await?)
    }

    fn session_of_access_token(&self, token: &str) -> Option<SessionId> {
        self.ports
            .codec
            .verify(token, self.ports.clock.now())
            .ok()
            .map(|claims| claims.session_id)
    }
}
