//! The second factor of a login: the password grant's `otp`, and the hosted login page's
//! second step over a pending sign-in stored in the database (so any replica can take it).
//!
//! The lockout: after a right password, the guess it reserved is held until the second factor
//! is decided. A right factor clears the key's failures; a wrong one is a failure of the key,
//! like a wrong password; no factor (the password grant's `mfa_required`, or the page moving
//! to its second step) gives the guess back without clearing anything. So a stolen password
//! buys no more code guesses than the lockout allows.

use chrono::Duration;

use super::{AuthService, BrowserSignIn};
use crate::application::guard::Check;
use crate::application::mfa::FactorUsed;
use crate::application::{AppError, RequestContext};
use crate::domain::audit::AuditEventKind as Event;
use crate::domain::mfa::{PendingSignin, PendingSigninToken, PENDING_SIGNIN_SECONDS};
use crate::domain::user::{Password, User};

/// Where the hosted login page goes after a right password.
#[derive(Debug)]
pub enum SignInStep {
    /// Signed in (the user has no second factor).
    Done(BrowserSignIn),
    /// Ask for the second factor; the page carries this token to the second step.
    SecondFactor(PendingSigninToken),
}

impl AuthService {
    /// Decides the second factor of `user`, whose right password holds a reserved guess.
    ///
    /// # Errors
    /// [`AppError::MfaRequired`] without `otp`; [`AppError::InvalidCredentials`] for a wrong
    /// one (counted as a failure); [`AppError::Unavailable`], [`AppError::Internal`].
    pub(super) async fn second_factor(
        &self,
        user: &User,
        otp: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<FactorUsed, AppError> {
        let key = user.username.login_key();
        let Some(otp) = otp else {
            self.guard.abandon(&key).await;
            self.audit
                .event(Event::SecondFactorRequired, ctx)
                .user(user)
                .failed()
                .detail("password right, no second factor sent")
                .record()
                .await?;
            return Err(AppError::MfaRequired);
        };
        self.check_factor(user, otp, ctx).await
    }

    /// Checks `otp` for `user` against the key's reserved guess: a right one clears the
    /// failures, a wrong one counts.
    async fn check_factor(
        &self,
        user: &User,
        otp: &str,
        ctx: &RequestContext,
    ) -> Result<FactorUsed, AppError> {
        let key = user.username.login_key();
        let Some(factors) = &self.second_factors else {
            self.guard.abandon(&key).await;
            return Err(AppError::Internal(
                "second factors are not wired into the login".into(),
            ));
        };
        let used = match factors.verify(user, otp).await {
            Ok(used) => used,
            Err(error) => {
                self.guard.abandon(&key).await;
                return Err(error);
            }
        };
        let Some(used) = used else {
            self.audit
                .event(Event::SecondFactorFailed, ctx)
                .user(user)
                .failed()
                .detail("wrong or already used code")
                .record()
                .await?;
            self.guard.failed(&key, Some(user), ctx).await?;
            return Err(AppError::InvalidCredentials);
        };
        self.guard.succeeded(&key).await?;
        let event = match used {
            FactorUsed::Totp => Event::SecondFactorSucceeded,
            FactorUsed::RecoveryCode => Event::RecoveryCodeUsed,
        };
        self.audit
            .event(event, ctx)
            .user(user)
            .detail(used.name_for_audit())
            .record()
            .await?;
        Ok(used)
    }

    /// The hosted login page's password step: the same check as [`AuthService::login`]; a user
    /// without a second factor is signed in, one with a second factor gets a pending sign-in
    /// (valid [`PENDING_SIGNIN_SECONDS`]) for [`AuthService::sign_in_second_step`].
    ///
    /// # Errors
    /// As [`AuthService::sign_in`].
    #[tracing::instrument(skip_all, fields(username = tracing::field::Empty, ip = ctx.ip.map(tracing::field::display)))]
    pub async fn sign_in_first_step(
        &self,
        username: &str,
        password: &Password,
        for_client: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<SignInStep, AppError> {
        let user = self.check_credentials(username, password, ctx).await?;
        if !user.mfa.has_second_factor() {
            return Ok(SignInStep::Done(
                self.complete_sign_in(user, for_client, ctx).await?,
            ));
        }
        let key = user.username.login_key();
        self.guard.abandon(&key).await;
        let Some(factors) = &self.second_factors else {
            return Err(AppError::Internal(
                "second factors are not wired into the login".into(),
            ));
        };
        let token = PendingSigninToken::generate();
        let now = self.ports.clock.now();
        let pending = PendingSignin {
            hash: token.hash(),
            user_id: user.id,
            credential_version: user.credential_version,
            created_at: now,
            expires_at: now + Duration::seconds(PENDING_SIGNIN_SECONDS),
        };
        factors.repo().insert_pending_signin(&pending).await?;
        self.audit
            .event(Event::SecondFactorRequired, ctx)
            .user(&user)
            .detail("password right; the login page asks for the second factor")
            .record()
            .await?;
        Ok(SignInStep::SecondFactor(token))
    }

    /// The hosted login page's second step: the pending sign-in of `token` (unexpired, its
    /// user active with the same credentials), then `otp` under the key's lockout; a right
    /// factor takes the pending sign-in (once) and signs in.
    ///
    /// # Errors
    /// [`AppError::SignInExpired`] (unknown, expired or used token, or the user changed);
    /// [`AppError::InvalidCredentials`] for a wrong code (counted toward the lockout, the
    /// pending sign-in stays for another try); [`AppError::AccountLocked`], [`AppError::Busy`],
    /// [`AppError::Unavailable`].
    #[tracing::instrument(skip_all, fields(ip = ctx.ip.map(tracing::field::display)))]
    pub async fn sign_in_second_step(
        &self,
        token: &PendingSigninToken,
        otp: &str,
        for_client: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<BrowserSignIn, AppError> {
        let user = self.pending_user(token).await?;
        let key = user.username.login_key();
        self.guard.reserve(&key, Check::Login, ctx).await?;
        self.check_factor(&user, otp, ctx).await?;
        self.finish_pending_sign_in(token, user, for_client, ctx)
            .await
    }

    /// The user of the pending sign-in of `token`: unexpired, the user active with the same
    /// credentials as when the password was checked.
    ///
    /// # Errors
    /// [`AppError::SignInExpired`], [`AppError::Unavailable`].
    pub async fn pending_user(&self, token: &PendingSigninToken) -> Result<User, AppError> {
        let Some(factors) = &self.second_factors else {
            return Err(AppError::SignInExpired);
        };
        let now = self.ports.clock.now();
        let Some(pending) = factors
            .repo()
            .find_pending_signin(&token.hash(), now)
            .await?
        else {
            return Err(AppError::SignInExpired);
        };
        self.ports
            .users
            .find_by_id(pending.user_id)
            .await?
            .filter(|u| u.is_active && u.credential_version == pending.credential_version)
            .ok_or(AppError::SignInExpired)
    }

    /// Ends the second step once the caller verified a second factor of `user` (the pending
    /// sign-in's user, from [`AuthService::pending_user`]) by other means (a passkey): takes
    /// the pending sign-in (once) and signs in.
    ///
    /// # Errors
    /// [`AppError::SignInExpired`] when the pending sign-in was taken or expired meanwhile;
    /// [`AppError::Unavailable`].
    pub async fn finish_pending_sign_in(
        &self,
        token: &PendingSigninToken,
        user: User,
        for_client: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<BrowserSignIn, AppError> {
        let Some(factors) = &self.second_factors else {
            return Err(AppError::SignInExpired);
        };
        let now = self.ports.clock.now();
        if !factors
            .repo()
            .take_pending_signin(&token.hash(), now)
            .await?
        {
            return Err(AppError::SignInExpired);
        }
        self.complete_sign_in(user, for_client, ctx).await
    }
}

impl FactorUsed {
    fn name_for_audit(self) -> String {
        format!("second factor: {}", self.name())
    }
}
