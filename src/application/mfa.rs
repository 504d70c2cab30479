//! Second factors: TOTP enrolment, confirmation and removal by the user, the admin's reset,
//! and the check of a code at login ([`SecondFactors`], used by [`super::AuthService`]).

use std::sync::Arc;

use super::guard::{Check, PasswordGuard};
use super::{AppError, Auditor, Ports, Principal, RequestContext};
use crate::domain::audit::AuditEventKind as Event;
use crate::domain::mfa::{MfaRepository, OtpInput, RecoveryCode, SecretSealer, TotpSecret};
use crate::domain::passkey::PasskeyRepository;
use crate::domain::ports::{Clock, LockoutPolicy};
use crate::domain::user::{Password, User, UserId};

/// Which factor a login used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactorUsed {
    Totp,
    RecoveryCode,
}

impl FactorUsed {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Totp => "totp",
            Self::RecoveryCode => "recovery code",
        }
    }
}

/// Checks second factors: a TOTP code (each step accepted once) or a recovery code (each used
/// once). Costs microseconds plus two store round trips; runs only after a right password.
#[derive(Clone)]
pub struct SecondFactors {
    repo: Arc<dyn MfaRepository>,
    sealer: Arc<dyn SecretSealer>,
    clock: Arc<dyn Clock>,
}

impl SecondFactors {
    /// Over these ports.
    pub fn new(
        repo: Arc<dyn MfaRepository>,
        sealer: Arc<dyn SecretSealer>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            repo,
            sealer,
            clock,
        }
    }

    /// The store of the factors (for the pending sign-ins).
    pub(crate) fn repo(&self) -> &Arc<dyn MfaRepository> {
        &self.repo
    }

    /// Whether `raw` is a valid, unused second factor of `user`; a right one is used up in
    /// the same step (of two concurrent logins with one code, one gets `Some`).
    ///
    /// # Errors
    /// [`AppError::Unavailable`]; [`AppError::Internal`] when the stored secret does not open
    /// (wrong `MFA_ENCRYPTION_KEY`).
    pub(crate) async fn verify(
        &self,
        user: &User,
        raw: &str,
    ) -> Result<Option<FactorUsed>, AppError> {
        let now = self.clock.now();
        match OtpInput::parse(raw) {
            OtpInput::Totp(code) => {
                if !user.mfa.totp {
                    return Ok(None);
                }
                let Some(credential) = self.repo.find_totp(user.id).await? else {
                    return Ok(None);
                };
                if !credential.confirmed {
                    return Ok(None);
                }
                let secret = self.open(user.id, &credential.sealed)?;
                let Some(step) = secret.matching_step(&code, TotpSecret::step_of(now.timestamp()))
                else {
                    return Ok(None);
                };
                let accepted = self.repo.accept_totp_step(user.id, step).await?;
                Ok(accepted.then_some(FactorUsed::Totp))
            }
            OtpInput::Recovery(code) => {
                let used = self
                    .repo
                    .use_recovery_code(user.id, &code.hash(), now)
                    .await?;
                Ok(used.then_some(FactorUsed::RecoveryCode))
            }
            OtpInput::Malformed => Ok(None),
        }
    }

    fn open(
        &self,
        user: UserId,
        sealed: &crate::domain::mfa::SealedSecret,
    ) -> Result<TotpSecret, AppError> {
        self.sealer
            .open(user, sealed)
            .map(TotpSecret::from_bytes)
            .map_err(|e| AppError::Internal(format!("TOTP secret of user {user}: {e}")))
    }
}

/// A started enrolment: what the authenticator app needs.
#[derive(Debug)]
pub struct TotpEnrolment {
    pub secret: TotpSecret,
    pub otpauth_uri: String,
}

/// The second-factor use cases of the user and the admin.
#[derive(Clone)]
pub struct MfaService {
    ports: Ports,
    audit: Auditor,
    guard: PasswordGuard,
    factors: SecondFactors,
    /// The user's passkeys, which an admin reset removes too.
    passkeys: Arc<dyn PasskeyRepository>,
    /// The issuer label of the `otpauth://` URI.
    issuer_label: String,
}

impl MfaService {
    /// Wires the use cases; `lockout` guards their password checks, shared with the logins.
    pub fn new(
        ports: Ports,
        factors: SecondFactors,
        passkeys: Arc<dyn PasskeyRepository>,
        lockout: LockoutPolicy,
        issuer_label: String,
    ) -> Self {
        Self {
            audit: ports.auditor(),
            guard: PasswordGuard::new(ports.clone(), lockout),
            ports,
            factors,
            passkeys,
            issuer_label,
        }
    }

    /// Checks the caller's password under the lockout (like a password change).
    async fn check_password(
        &self,
        user: &User,
        password: &Password,
        event: Event,
        ctx: &RequestContext,
    ) -> Result<(), AppError> {
        let key = self
            .guard
            .check_own_password(
                user,
                password,
                Check::SecondFactorChange,
                event,
                "wrong password",
                ctx,
            )
            .await?;
        self.guard.succeeded(&key).await
    }

    /// Starts (or restarts) a TOTP enrolment after checking the password: a fresh secret,
    /// sealed and stored as pending until [`MfaService::confirm_totp`].
    ///
    /// # Errors
    /// [`AppError::TotpAlreadyEnabled`], [`AppError::WrongPassword`],
    /// [`AppError::AccountLocked`], [`AppError::Busy`], [`AppError::Unavailable`].
    #[tracing::instrument(skip_all, fields(user_id = %principal.user.id))]
    pub async fn enrol_totp(
        &self,
        principal: &Principal,
        password: &Password,
        ctx: &RequestContext,
    ) -> Result<TotpEnrolment, AppError> {
        let user = &principal.user;
        if user.mfa.totp {
            return Err(AppError::TotpAlreadyEnabled);
        }
        self.check_password(user, password, Event::TotpEnrollmentStarted, ctx)
            .await?;
        let secret = TotpSecret::generate();
        let now = self.ports.clock.now();
        let sealed = self.seal(user.id, &secret)?;
        if !self
            .factors
            .repo
            .store_pending_totp(user.id, &sealed, now)
            .await?
        {
            return Err(AppError::TotpAlreadyEnabled);
        }
        self.audit
            .event(Event::TotpEnrollmentStarted, ctx)
            .user(user)
            .record()
            .await?;
        let otpauth_uri = secret.otpauth_uri(&self.issuer_label, user.username.as_str());
        Ok(TotpEnrolment {
            secret,
            otpauth_uri,
        })
    }

    fn seal(
        &self,
        user: UserId,
        secret: &TotpSecret,
    ) -> Result<crate::domain::mfa::SealedSecret, AppError> {
        self.factors
            .sealer
            .seal(user, secret.expose())
            .map_err(|e| AppError::Internal(e.to_string()))
    }

    /// Confirms the pending enrolment with a first code and hands out ten recovery codes
    /// (replacing any earlier ones). The confirming code's step counts as used.
    ///
    /// # Errors
    /// [`AppError::TotpNotPending`], [`AppError::TotpAlreadyEnabled`], [`AppError::WrongOtp`],
    /// [`AppError::Unavailable`].
    #[tracing::instrument(skip_all, fields(user_id = %principal.user.id))]
    pub async fn confirm_totp(
        &self,
        principal: &Principal,
        code: &str,
        ctx: &RequestContext,
    ) -> Result<Vec<RecoveryCode>, AppError> {
        let user = &principal.user;
        let credential = self
            .factors
            .repo
            .find_totp(user.id)
            .await?
            .ok_or(AppError::TotpNotPending)?;
        if credential.confirmed {
            return Err(AppError::TotpAlreadyEnabled);
        }
        let secret = self.factors.open(user.id, &credential.sealed)?;
        let now = self.ports.clock.now();
        let step = match OtpInput::parse(code) {
            OtpInput::Totp(code) => {
                secret.matching_step(&code, TotpSecret::step_of(now.timestamp()))
            }
            _ => None,
        };
        let Some(step) = step else {
            self.audit
                .event(Event::TotpEnrolled, ctx)
                .user(user)
                .failed()
                .detail("wrong code")
                .record()
                .await?;
            return Err(AppError::WrongOtp);
        };
        let codes = RecoveryCode::generate_set();
        let hashes: Vec<_> = codes.iter().map(RecoveryCode::hash).collect();
        if !self
            .factors
            .repo
            .confirm_totp(user.id, &credential.sealed, step, &hashes, now)
            .await?
        {
            // Another enrolment replaced the secret (or a confirmation won) meanwhile.
            return Err(AppError::TotpNotPending);
        }
        self.audit
            .event(Event::TotpEnrolled, ctx)
            .user(user)
            .detail(format!("{} recovery codes issued", codes.len()))
            .record()
            .await?;
        Ok(codes)
    }

    /// Removes the caller's TOTP authenticator (pending or confirmed) and recovery codes after
    /// checking the password. Idempotent: without one it still answers success.
    ///
    /// # Errors
    /// [`AppError::WrongPassword`], [`AppError::AccountLocked`], [`AppError::Busy`],
    /// [`AppError::Unavailable`].
    #[tracing::instrument(skip_all, fields(user_id = %principal.user.id))]
    pub async fn disable_totp(
        &self,
        principal: &Principal,
        password: &Password,
        ctx: &RequestContext,
    ) -> Result<(), AppError> {
        let user = &principal.user;
        self.check_password(user, password, Event::TotpDisabled, ctx)
            .await?;
        let now = self.ports.clock.now();
        self.factors.repo.remove_totp(user.id, now).await?;
        self.audit
            .event(Event::TotpDisabled, ctx)
            .user(user)
            .detail("TOTP and recovery codes removed")
            .record()
            .await
    }

    /// An admin removes every second factor of a user: TOTP (pending or confirmed), recovery
    /// codes and passkeys.
    ///
    /// # Errors
    /// [`AppError::Forbidden`], [`AppError::UserNotFound`], [`AppError::Unavailable`].
    #[tracing::instrument(skip_all, fields(user_id = %id))]
    pub async fn admin_reset(
        &self,
        principal: &Principal,
        id: UserId,
        ctx: &RequestContext,
    ) -> Result<(), AppError> {
        principal.require_admin()?;
        let now = self.ports.clock.now();
        if !self.factors.repo.remove_totp(id, now).await? {
            return Err(AppError::UserNotFound);
        }
        // One by one (at most the per-user limit): each deletion keeps the user's passkey count
        // in step in its own commit.
        let mut removed = 0;
        for passkey in self.passkeys.list_passkeys(id).await? {
            if self.passkeys.delete_passkey(id, passkey.id).await? {
                removed += 1;
            }
        }
        self.audit
            .event(Event::MfaReset, ctx)
            .user_id(id)
            .detail(format!(
                "by admin {}: TOTP, recovery codes and {removed} passkey(s) removed",
                principal.user.id
            ))
            .record()
            .await
    }
}

#[cfg(test)]
#[path = "mfa_tests.rs"]
mod tests;
