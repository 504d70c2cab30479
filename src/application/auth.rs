//! Login, refresh, revocation and logout: the session life cycle.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::{AppError, Auditor, Ports, Principal, RequestContext};
use crate::domain::audit::AuditEventKind as Event;
use crate::domain::ports::{LockoutPolicy, TokenError};
use crate::domain::session::{
    RefreshToken, RefreshTokenRecord, RevocationReason, RotationOutcome, Session, SessionId,
};
use crate::domain::token::{AccessClaims, AccessToken, TokenPair};
use crate::domain::user::{Password, Roles, User};

/// Token lifetimes and the brute-force policy.
#[derive(Debug, Clone, Copy)]
pub struct AuthSettings {
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub lockout: LockoutPolicy,
}

/// What kind of token a revocation request says it carries (RFC 7009 `token_type_hint`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenTypeHint {
    AccessToken,
    RefreshToken,
}

/// The session use cases.
#[derive(Clone)]
pub struct AuthService {
    ports: Ports,
    audit: Auditor,
    settings: AuthSettings,
}

impl AuthService {
    /// Wires the use cases to their ports.
    pub fn new(ports: Ports, settings: AuthSettings) -> Self {
        Self {
            audit: ports.auditor(),
            ports,
            settings,
        }
    }

    /// The configured lifetimes.
    pub fn settings(&self) -> AuthSettings {
        self.settings
    }

    /// The password grant: checks the credentials and starts a session.
    ///
    /// `scope` (space-separated role names) narrows the session to those of the user's roles;
    /// without it the session gets all of them. Unknown users cost one hash verification, like
    /// wrong passwords, and get the same error. After `lockout.max_failures` consecutive
    /// failures the username is locked, whether or not the account exists.
    ///
    /// # Errors
    /// [`AppError::InvalidScope`], [`AppError::AccountLocked`], [`AppError::InvalidCredentials`],
    /// [`AppError::Busy`], [`AppError::Unavailable`].
    #[tracing::instrument(skip_all, fields(username = %username, ip = ctx.ip.map(tracing::field::display)))]
    pub async fn login(
        &self,
        username: &str,
        password: &Password,
        scope: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<TokenPair, AppError> {
        let requested = scope
            .map(|raw| {
                Roles::parse_space_separated(raw)
                    .map_err(|error| AppError::InvalidScope(error.message))
            })
            .transpose()?;
        let key = username.to_lowercase();
        let now = self.ports.clock.now();
        let throttle = self.ports.throttle.state(&key, now).await?;
        if let Some(until) = throttle.locked_until {
            self.audit
                .event(Event::LoginFailed, ctx)
                .username(username)
                .failed()
                .detail("account locked")
                .record()
                .await?;
            let retry_after_secs = u64::try_from((until - now).num_seconds() + 1).unwrap_or(1);
            return Err(AppError::AccountLocked { retry_after_secs });
        }
        let user = self.ports.users.find_by_username(username).await?;
        let hash = user
            .as_ref()
            .map_or(self.ports.hasher.dummy_hash(), |u| &u.password_hash);
        let matches = self.ports.hasher.verify(password, hash).await?;
        let user = match user {
            Some(user) if matches => user,
            user => {
                let reason = if user.is_some() {
                    "wrong password"
                } else {
                    "unknown user"
                };
                let entry = self
                    .audit
                    .event(Event::LoginFailed, ctx)
                    .username(username)
                    .failed()
                    .detail(reason);
                let entry = match &user {
                    Some(user) => entry.user_id(user.id),
                    None => entry,
                };
                entry.record().await?;
                if let Some(until) = self
                    .ports
                    .throttle
                    .record_failure(&key, now, &self.settings.lockout)
                    .await?
                {
                    let detail = format!(
                        "locked until {} after {} failed logins",
                        until.to_rfc3339(),
                        self.settings.lockout.max_failures
                    );
                    self.audit
                        .event(Event::AccountLocked, ctx)
                        .username(username)
                        .failed()
                        .detail(detail)
                        .record()
                        .await?;
                }
                return Err(AppError::InvalidCredentials);
            }
        };
        if !user.is_active {
            self.audit
                .event(Event::LoginFailed, ctx)
                .user(&user)
                .failed()
                .detail("inactive user")
                .record()
                .await?;
            return Err(AppError::InvalidCredentials);
        }
        if throttle.failures > 0 || throttle.locks > 0 {
            self.ports.throttle.record_success(&key).await?;
        }
        self.rehash_if_outdated(&user, password).await;
        let scope = match requested {
            Some(requested) => requested.intersection(&user.roles),
            None => user.roles.clone(),
        };
        let pair = self.start_session(&user, scope).await?;
        self.audit
            .event(Event::LoginSucceeded, ctx)
            .user(&user)
            .detail(format!("session {}", pair.session_id))
            .record()
            .await?;
        Ok(pair)
    }

    /// The refresh grant: rotates the presented refresh token. Presenting an already-rotated
    /// token revokes its whole session.
    ///
    /// # Errors
    /// [`AppError::InvalidRefreshToken`], [`AppError::RefreshTokenReused`],
    /// [`AppError::Unavailable`].
    #[tracing::instrument(skip_all, fields(ip = ctx.ip.map(tracing::field::display)))]
    pub async fn refresh(
        &self,
        presented: &RefreshToken,
        ctx: &RequestContext,
    ) -> Result<TokenPair, AppError> {
        let now = self.ports.clock.now();
        let next = RefreshToken::generate();
        let next_expires_at = now + self.settings.refresh_token_ttl;
        let outcome = self
            .ports
            .tokens
            .rotate_refresh_token(&presented.hash(), &next.hash(), next_expires_at, now)
            .await?;
        match outcome {
            RotationOutcome::Rotated { session, user } => {
                let access_token = self.sign_access_token(&user, &session, now)?;
                self.audit
                    .event(Event::TokenRefreshed, ctx)
                    .user(&user)
                    .detail(format!("session {}", session.id))
                    .record()
                    .await?;
                Ok(TokenPair {
                    access_token,
                    refresh_token: next,
                    refresh_expires_at: next_expires_at,
                    session_id: session.id,
                    scope: session.scope,
                })
            }
            RotationOutcome::Reused {
                session_id,
                user_id,
            } => {
                let detail = format!(
                    "already-rotated refresh token presented; session {session_id} revoked"
                );
                self.audit
                    .event(Event::RefreshTokenReused, ctx)
                    .user_id(user_id)
                    .failed()
                    .detail(detail)
                    .record()
                    .await?;
                Err(AppError::RefreshTokenReused)
            }
            RotationOutcome::Invalid => Err(AppError::InvalidRefreshToken),
        }
    }

    /// Verifies an access token and checks that its session and user are still active.
    ///
    /// # Errors
    /// [`AppError::InvalidToken`], [`AppError::Unavailable`].
    pub async fn authenticate(&self, access_token: &str) -> Result<Principal, AppError> {
        let now = self.ports.clock.now();
        let claims = self.ports.codec.verify(access_token, now)?;
        let user = self
            .ports
            .users
            .find_active_by_session(claims.user_id, claims.session_id, now)
            .await?
            .ok_or(AppError::InvalidToken(TokenError::Invalid(
                "session revoked or user inactive",
            )))?;
        Ok(Principal { user, claims })
    }

    /// Starts a new session for an authenticated caller, with the caller's scope, and returns its
    /// first refresh token.
    ///
    /// # Errors
    /// [`AppError::Unavailable`].
    pub async fn issue_refresh_token(
        &self,
        principal: &Principal,
        ctx: &RequestContext,
    ) -> Result<(RefreshToken, DateTime<Utc>, SessionId), AppError> {
        let scope = principal.claims.scope.intersection(&principal.user.roles);
        let now = self.ports.clock.now();
        let (session, token, expires_at) = self.new_session(&principal.user, scope, now);
        self.ports
            .tokens
            .create_session(&session, &Self::record(&token, &session, now, expires_at))
            .await?;
        self.audit
            .event(Event::RefreshTokenIssued, ctx)
            .user(&principal.user)
            .detail(format!("new session {}", session.id))
            .record()
            .await?;
        Ok((token, expires_at, session.id))
    }

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

    async fn rehash_if_outdated(&self, user: &User, password: &Password) {
        if !self.ports.hasher.needs_rehash(&user.password_hash) {
            return;
        }
        // Best effort: a failed upgrade must not fail a correct login.
        match self.ports.hasher.hash(password).await {
            Ok(hash) => {
                if let Err(error) = self
                    .ports
                    .users
                    .update_password_hash(user.id, &hash, self.ports.clock.now())
                    .await
                {
                    tracing::warn!(user_id = %user.id, %error, "could not store upgraded password hash");
                } else {
                    tracing::info!(user_id = %user.id, "password hash upgraded to current parameters");
                }
            }
            Err(error) => tracing::warn!(user_id = %user.id, %error, "could not rehash password"),
        }
    }

    async fn start_session(&self, user: &User, scope: Roles) -> Result<TokenPair, AppError> {
        let now = self.ports.clock.now();
        let (session, refresh_token, expires_at) = self.new_session(user, scope, now);
        let access_token = self.sign_access_token(user, &session, now)?;
        self.ports
            .tokens
            .create_session(
                &session,
                &Self::record(&refresh_token, &session, now, expires_at),
            )
            .await?;
        Ok(TokenPair {
            access_token,
            refresh_token,
            refresh_expires_at: expires_at,
            session_id: session.id,
            scope: session.scope,
        })
    }

    fn new_session(
        &self,
        user: &User,
        scope: Roles,
        now: DateTime<Utc>,
    ) -> (Session, RefreshToken, DateTime<Utc>) {
        let expires_at = now + self.settings.refresh_token_ttl;
        let session = Session {
            id: SessionId::new(),
            user_id: user.id,
            scope,
            created_at: now,
            expires_at,
        };
        (session, RefreshToken::generate(), expires_at)
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

    fn sign_access_token(
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

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
