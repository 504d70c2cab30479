//! Login, refresh, revocation and logout: the session life cycle.

mod issuance;
mod revocation;
mod second_factor;
mod successor;

pub use second_factor::SignInStep;

pub(crate) use issuance::{origin_of, SessionStart};
pub use successor::RefreshSuccessorKey;

use std::sync::Arc;

use chrono::Duration;

use super::guard::{Check, PasswordGuard};
use super::{AppError, Auditor, Ports, Principal, RequestContext};
use crate::domain::audit::{AuditEventKind as Event, LoginFailure};
use crate::domain::oidc::{Scope, SigninToken};
use crate::domain::ports::{LockoutPolicy, TokenError};
use crate::domain::session::{RefreshToken, Rotation, RotationOutcome, Session, SessionId};
use crate::domain::token::TokenPair;
use crate::domain::user::{LoginKey, Password, Roles, User};

/// Token and session lifetimes and the brute-force policy.
#[derive(Debug, Clone, Copy)]
pub struct AuthSettings {
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    /// No rotation extends a session past its login plus this.
    pub session_max_lifetime: Duration,
    /// The most live sessions one user keeps; a new one revokes the oldest beyond.
    pub max_sessions_per_user: u32,
    pub lockout: LockoutPolicy,
    /// How long a just-rotated refresh token may be presented again and get the same
    /// successor (`REFRESH_REUSE_GRACE_SECONDS`); zero: off.
    pub refresh_reuse_grace: Duration,
    /// Derives a refresh token's successor from it while the grace window is on.
    pub successor_key: RefreshSuccessorKey,
}

/// What kind of token a revocation request says it carries (RFC 7009 `token_type_hint`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenTypeHint {
    AccessToken,
    RefreshToken,
}

/// A browser sign-in just started: the cookie token to set, the session behind it and its user.
#[derive(Debug)]
pub struct BrowserSignIn {
    pub token: SigninToken,
    pub session: Session,
    pub user: Arc<User>,
}

/// The session use cases.
#[derive(Clone)]
pub struct AuthService {
    ports: Ports,
    audit: Auditor,
    guard: PasswordGuard,
    settings: AuthSettings,
    /// The check of TOTP and recovery codes; without it, a user with a second factor cannot
    /// log in (see [`AuthService::with_second_factors`]).
    second_factors: Option<super::mfa::SecondFactors>,
}

impl AuthService {
    /// Wires the use cases to their ports.
    pub fn new(ports: Ports, settings: AuthSettings) -> Self {
        Self {
            audit: ports.auditor(),
            guard: PasswordGuard::new(ports.clone(), settings.lockout),
            ports,
            settings,
            second_factors: None,
        }
    }

    /// The same use cases, checking second factors with `factors`.
    #[must_use]
    pub fn with_second_factors(mut self, factors: super::mfa::SecondFactors) -> Self {
        self.second_factors = Some(factors);
        self
    }

    /// The ports the use cases drive (for the provider's use cases, which build on these).
    pub(crate) fn ports(&self) -> &Ports {
        &self.ports
    }

    /// The configured lifetimes.
    pub fn settings(&self) -> AuthSettings {
        self.settings
    }

    /// The password grant: checks the credentials and starts a session.
    ///
    /// `scope` (space-separated role names) narrows the session to those of the user's roles;
    /// without it the session gets all of them. A name that can never be a username is refused
    /// before any lookup; unknown users cost one hash verification, like wrong passwords, and
    /// get the same error. Every password check holds one of the `lockout.max_failures`
    /// guesses of its key's window (see [`crate::domain::lockout`]), whether or not the
    /// account exists. A password change that commits while the password is being checked
    /// refuses the session.
    ///
    /// # Errors
    /// [`AppError::InvalidScope`], [`AppError::AccountLocked`], [`AppError::InvalidCredentials`],
    /// [`AppError::Busy`], [`AppError::Unavailable`].
    #[tracing::instrument(skip_all, fields(username = tracing::field::Empty, ip = ctx.ip.map(tracing::field::display)))]
    pub async fn login(
        &self,
        username: &str,
        password: &Password,
        scope: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<TokenPair, AppError> {
        self.login_with_otp(username, password, None, scope, ctx)
            .await
    }

    /// [`AuthService::login`] with a second factor: for a user with one, `otp` (a TOTP code
    /// or a recovery code) is checked after a right password. Without `otp` such a login is
    /// [`AppError::MfaRequired`], which neither counts as a failure nor clears the key's
    /// failures (the guess is given back); a wrong `otp` counts as a failed guess of the key,
    /// exactly like a wrong password, and answers [`AppError::InvalidCredentials`].
    ///
    /// # Errors
    /// As [`AuthService::login`], and [`AppError::MfaRequired`].
    #[tracing::instrument(skip_all, fields(username = tracing::field::Empty, ip = ctx.ip.map(tracing::field::display)))]
    pub async fn login_with_otp(
        &self,
        username: &str,
        password: &Password,
        otp: Option<&str>,
        scope: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<TokenPair, AppError> {
        let requested = scope
            .map(|raw| {
                Roles::parse_space_separated(raw)
                    .map_err(|error| AppError::InvalidScope(error.message))
            })
            .transpose()?;
        let user = self.check_credentials(username, password, ctx).await?;
        if user.mfa.has_second_factor() {
            self.second_factor(&user, otp, ctx).await?;
        }
        let scope = match requested {
            Some(requested) => requested.intersection(&user.roles),
            None => user.roles.clone(),
        };
        let start = SessionStart::password_grant(&user, scope.into(), ctx);
        let Some(pair) = self.start_session(start).await? else {
            self.record_changed_meanwhile(&user, ctx).await?;
            return Err(AppError::InvalidCredentials);
        };
        self.audit
            .event(Event::LoginSucceeded, ctx)
            .user(&user)
            .detail(format!("session {}", pair.session_id))
            .record()
            .await?;
        Ok(pair)
    }

    /// The browser sign-in of the hosted login page: the same password check as
    /// [`AuthService::login`] (same lockout, timing and audit), then a sign-in session whose
    /// cookie token is returned. `for_client` names the client whose authorization request
    /// led here, for the audit trail.
    ///
    /// # Errors
    /// As [`AuthService::login`], but for the scope.
    #[tracing::instrument(skip_all, fields(username = tracing::field::Empty, ip = ctx.ip.map(tracing::field::display)))]
    pub async fn sign_in(
        &self,
        username: &str,
        password: &Password,
        for_client: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<BrowserSignIn, AppError> {
        match self
            .sign_in_first_step(username, password, for_client, ctx)
            .await?
        {
            SignInStep::Done(signin) => Ok(signin),
            SignInStep::SecondFactor(_) => Err(AppError::MfaRequired),
        }
    }

    /// The browser sign-in of a user whose password was just checked (and second factor, if
    /// any): starts the sign-in session and audits it.
    async fn complete_sign_in(
        &self,
        user: User,
        for_client: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<BrowserSignIn, AppError> {
        let Some((token, session)) = self.start_signin(&user, ctx).await? else {
            self.record_changed_meanwhile(&user, ctx).await?;
            return Err(AppError::InvalidCredentials);
        };
        let client = for_client.map_or(String::new(), |c| format!(" for client {c}"));
        self.audit
            .event(Event::LoginSucceeded, ctx)
            .user(&user)
            .detail(format!("browser sign-in {}{client}", session.id))
            .record()
            .await?;
        Ok(BrowserSignIn {
            token,
            session,
            user: Arc::new(user),
        })
    }

    /// The browser sign-in whose cookie carries `token`, with its user, if it is still live.
    ///
    /// # Errors
    /// [`AppError::Unavailable`].
    pub async fn find_sign_in(
        &self,
        token: &SigninToken,
    ) -> Result<Option<(Session, Arc<User>)>, AppError> {
        let now = self.ports.clock.now();
        Ok(self.ports.tokens.find_signin(&token.hash(), now).await?)
    }

    async fn record_changed_meanwhile(
        &self,
        user: &User,
        ctx: &RequestContext,
    ) -> Result<(), AppError> {
        self.audit
            .event(Event::LoginFailed, ctx)
            .user(user)
            .failed_because(LoginFailure::PasswordChanged)
            .record()
            .await
    }

    /// Checks a username and password under the lockout, and audits a failure. A name that can
    /// never be a username is refused before any lookup; unknown users cost one hash
    /// verification, like wrong passwords, and get the same error. Every password check holds
    /// one of the `lockout.max_failures` guesses of its key's window, whether or not the
    /// account exists.
    async fn check_credentials(
        &self,
        username: &str,
        password: &Password,
        ctx: &RequestContext,
    ) -> Result<User, AppError> {
        let Some(key) = LoginKey::parse(username) else {
            self.audit
                .event(Event::LoginFailed, ctx)
                .failed_because(LoginFailure::UnknownUser)
                .record()
                .await?;
            return Err(AppError::InvalidCredentials);
        };
        tracing::Span::current().record("username", key.as_str());
        self.guard.reserve(&key, Check::Login, ctx).await?;
        let (user, matches) = match self.check_password(&key, password).await {
            Ok(checked) => checked,
            Err(error) => {
                self.guard.abandon(&key).await;
                return Err(error);
            }
        };
        let user = match user {
            Some(user) if matches && user.is_active => user,
            user => {
                let reason = match &user {
                    Some(user) if !user.is_active => LoginFailure::InactiveUser,
                    Some(_) => LoginFailure::WrongPassword,
                    None => LoginFailure::UnknownUser,
                };
                let entry = self
                    .audit
                    .event(Event::LoginFailed, ctx)
                    .username(key.as_str())
                    .failed_because(reason);
                let entry = match &user {
                    Some(user) => entry.user_id(user.id),
                    None => entry,
                };
                entry.record().await?;
                self.guard.failed(&key, user.as_ref(), ctx).await?;
                return Err(AppError::InvalidCredentials);
            }
        };
        // For a user with a second factor the guess stays reserved until that factor is
        // decided (see `second_factor.rs`): a right password alone must not clear the failures
        // that wrong codes added, or the password would buy unlimited code guesses.
        if !user.mfa.has_second_factor() {
            self.guard.succeeded(&key).await?;
        }
        self.rehash_if_outdated(&user, password).await;
        Ok(user)
    }

    /// The user with this key (if any) and whether `password` is theirs; an unknown user is
    /// checked against the dummy hash, at the same cost.
    async fn check_password(
        &self,
        key: &LoginKey,
        password: &Password,
    ) -> Result<(Option<User>, bool), AppError> {
        let user = self.ports.users.find_by_username(key).await?;
        // A disabled account is checked against the dummy hash, like an unknown user: its
        // password is never verified, so neither the answer, nor its timing, nor the lockout
        // tells a right password from a wrong one.
        let hash = match &user {
            Some(user) if user.is_active => &user.password_hash,
            _ => self.ports.hasher.dummy_hash(),
        };
        let matches = self.ports.hasher.verify(password, hash).await?;
        Ok((user, matches))
    }

    /// The refresh grant: rotates the presented refresh token. Presenting an already-rotated
    /// token revokes its whole session, unless the retry window is on
    /// ([`AuthSettings::refresh_reuse_grace`]) and the token was rotated within it into a
    /// successor that is still unused: then that same successor comes back with a fresh access
    /// token (a client retrying after a lost response). The new access token's scope is the
    /// session's scope narrowed to the roles the user has now (a demotion shows in the next
    /// refresh), and the session never outlives its `not_after`. The rotation and its audit
    /// event are one commit.
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
        let grace = self.settings.refresh_reuse_grace.max(Duration::zero());
        // With the window off, the successor is random as before: nothing but the stored
        // hashes ties it to its predecessor.
        let next = if grace > Duration::zero() {
            self.settings.successor_key.successor(presented)
        } else {
            RefreshToken::generate()
        };
        let rotation = Rotation {
            presented: presented.hash(),
            next: next.hash(),
            next_expires_at: now + self.settings.refresh_token_ttl,
            now,
            grace,
            audit: self.audit.event(Event::TokenRefreshed, ctx).build(),
        };
        let outcome = self.ports.tokens.rotate_refresh_token(&rotation).await?;
        if let Some(event) = outcome.audit_event(&rotation.audit) {
            self.audit.recorded(&event);
        }
        match outcome {
            RotationOutcome::Rotated { mut session, user }
            | RotationOutcome::Retried { mut session, user } => {
                session.scope = session.scope.intersection(&user.roles);
                let access_token = self.sign_access_token(&user, &session, now)?;
                Ok(TokenPair {
                    access_token,
                    refresh_token: next,
                    refresh_expires_at: session.expires_at,
                    session_id: session.id,
                    scope: Scope {
                        oidc: session.oidc,
                        roles: session.scope,
                    },
                    id_token: None,
                })
            }
            RotationOutcome::Reused { .. } => Err(AppError::RefreshTokenReused),
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
    /// first refresh token and how long it lives. The new session is tied to the caller's: it ends when the caller's
    /// session is revoked (logout included) and never lives past the caller's session's
    /// absolute end, so a stolen access token cannot turn into a session that outlives its
    /// victim's logout. It counts toward the per-user session cap like any other.
    ///
    /// # Errors
    /// [`AppError::InvalidToken`] when the caller's session or credentials changed meanwhile;
    /// [`AppError::Unavailable`].
    pub async fn issue_refresh_token(
        &self,
        principal: &Principal,
        ctx: &RequestContext,
    ) -> Result<(RefreshToken, Duration, SessionId), AppError> {
        let scope = principal.claims.scope.intersection(&principal.user.roles);
        let now = self.ports.clock.now();
        let parent = principal.claims.session_id;
        let Some(pair) = self
            .start_session(SessionStart {
                parent: Some(parent),
                ..SessionStart::password_grant(&principal.user, scope.into(), ctx)
            })
            .await?
        else {
            return Err(AppError::InvalidToken(TokenError::Invalid(
                "credentials changed",
            )));
        };
        self.audit
            .event(Event::RefreshTokenIssued, ctx)
            .user(&principal.user)
            .detail(format!(
                "new session {} from session {parent}",
                pair.session_id
            ))
            .record()
            .await?;
        let lifetime = pair.refresh_expires_at - now;
        Ok((pair.refresh_token, lifetime, pair.session_id))
    }

    async fn rehash_if_outdated(&self, user: &User, password: &Password) {
        if !self.ports.hasher.needs_rehash(&user.password_hash) {
            return;
        }
        // Best effort: a failed upgrade must not fail a correct login. Compare-and-set on the
        // old hash, so an upgrade racing a password change never restores the old password.
        match self.ports.hasher.hash(password).await {
            Ok(hash) => match self
                .ports
                .users
                .upgrade_password_hash(user.id, &user.password_hash, &hash)
                .await
            {
                Ok(true) => {
                    tracing::info!(user_id = %user.id, "password hash upgraded to current parameters");
                }
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(user_id = %user.id, %error, "could not store upgraded password hash");
                }
            },
            Err(error) => tracing::warn!(user_id = %user.id, %error, "could not rehash password"),
        }
    }
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
