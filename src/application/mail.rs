//! Mail and account recovery: e-mail verification, password reset, and the delivery of the
//! outbox that carries their tokens.
//!
//! A request writes its token and the mail carrying it in one commit ([`MailStore::issue`]);
//! the mail worker of the infrastructure claims due mails ([`RecoveryService::claim_due`]) and
//! hands each to [`RecoveryService::deliver`], which sends it, marks it sent, or schedules the
//! next attempt with exponential backoff. A mail is never dropped: after any number of
//! failures it stays queued and is retried at the capped interval.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::guard::PasswordGuard;
use super::{AppError, Auditor, Ports, Principal, RequestContext};
use crate::domain::audit::AuditEventKind as Event;
use crate::domain::lockout::LockoutPolicy;
use crate::domain::mail::{
    AddressLimit, ClaimedMail, Issued, MailComposer, MailMessage, MailStore, MailToken,
    MailTransport, MailWaker, NewMail, TokenGrant, TokenPurpose, Verification,
};
use crate::domain::user::{EmailAddress, LoginKey, Password, PasswordPolicy, User};
use crate::domain::validation::FieldError;

/// The longest token text looked up (tokens are 43 characters; anything longer is unknown).
const MAX_TOKEN_LEN: usize = 128;

/// The ports of mail beyond [`Ports`].
#[derive(Clone)]
pub struct MailPorts {
    pub store: Arc<dyn MailStore>,
    pub transport: Arc<dyn MailTransport>,
    pub composer: Arc<dyn MailComposer>,
    pub waker: Arc<dyn MailWaker>,
}

/// The tunables of mail.
#[derive(Debug, Clone, Copy)]
pub struct MailPolicy {
    /// At most this many mails to one address per hour (all replicas together).
    pub per_address_per_hour: u32,
    /// The first retry's delay; each further failure doubles it.
    pub retry_base: Duration,
    /// The longest delay between two attempts.
    pub retry_max: Duration,
    /// How long a claimed mail is reserved for the worker that claimed it.
    pub lease: Duration,
}

/// Who asks for a password reset: an address or a username, as typed.
#[derive(Debug, Clone)]
pub enum ResetLogin {
    Email(EmailAddress),
    Username(LoginKey),
    /// A username no account can have: looked up as nothing.
    Nobody,
}

/// What [`RecoveryService::deliver`] did with a mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Sent,
    /// Failed; due again at this time.
    Retry(DateTime<Utc>),
}

/// The mail and recovery use cases.
#[derive(Clone)]
pub struct RecoveryService {
    ports: Ports,
    mail: MailPorts,
    audit: Auditor,
    guard: PasswordGuard,
    policy: PasswordPolicy,
    settings: MailPolicy,
}

impl RecoveryService {
    /// Wires the use cases; `policy` is the password rules a reset must meet, `lockout` the
    /// login lockout whose counters a completed reset clears.
    pub fn new(
        ports: Ports,
        mail: MailPorts,
        policy: PasswordPolicy,
        lockout: LockoutPolicy,
        settings: MailPolicy,
    ) -> Self {
        Self {
            audit: ports.auditor(),
            guard: PasswordGuard::new(ports.clone(), lockout),
            ports,
            mail,
            policy,
            settings,
        }
    }

    /// Sends the caller a verification mail (a new one replaces the earlier unused tokens).
    ///
    /// # Errors
    /// [`AppError::NoEmailAddress`], [`AppError::EmailAlreadyVerified`],
    /// [`AppError::MailRateLimited`], [`AppError::Unavailable`].
    #[tracing::instrument(skip_all, fields(user_id = %principal.user.id))]
    pub async fn request_verification(
        &self,
        principal: &Principal,
        ctx: &RequestContext,
    ) -> Result<(), AppError> {
        let user = &principal.user;
        let email = user.email.as_ref().ok_or(AppError::NoEmailAddress)?;
        if user.email_verified {
            return Err(AppError::EmailAlreadyVerified);
        }
        let issued = self
            .queue(user, email, TokenPurpose::EmailVerification)
            .await?;
        let event = self
            .audit
            .event(Event::EmailVerificationSent, ctx)
            .user(user);
        if issued == Issued::RateLimited {
            event
                .failed()
                .detail("per-address mail limit reached")
                .record()
                .await?;
            return Err(AppError::MailRateLimited);
        }
        event.record().await
    }

    /// Verifies the address the token was sent to, if the user still has it.
    ///
    /// # Errors
    /// [`AppError::InvalidVerificationToken`] (unknown, used, expired),
    /// [`AppError::EmailChanged`] (the token is used up), [`AppError::Unavailable`].
    #[tracing::instrument(skip_all)]
    pub async fn verify_email(&self, token: &str, ctx: &RequestContext) -> Result<(), AppError> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(AppError::InvalidVerificationToken);
        }
        let hash = MailToken::from_presented(token).hash();
        let now = self.ports.clock.now();
        match self.mail.store.verify_email(&hash, now).await? {
            Verification::Verified(id) => {
                self.audit
                    .event(Event::EmailVerified, ctx)
                    .user_id(id)
                    .record()
                    .await
            }
            Verification::AddressChanged(id) => {
                self.audit
                    .event(Event::EmailVerified, ctx)
                    .user_id(id)
                    .failed()
                    .detail("the address changed since the token was sent")
                    .record()
                    .await?;
                Err(AppError::EmailChanged)
            }
            Verification::Invalid => Err(AppError::InvalidVerificationToken),
        }
    }

    /// Checks the shape of a reset request: exactly one of `email` and `username`. Answered
    /// before anything is looked up, so the answer never depends on the account.
    ///
    /// # Errors
    /// [`AppError::Validation`].
    pub fn parse_reset_request(
        &self,
        email: Option<&str>,
        username: Option<&str>,
    ) -> Result<ResetLogin, AppError> {
        match (email, username) {
            (Some(email), None) => EmailAddress::parse(email)
                .map(ResetLogin::Email)
                .map_err(|e| AppError::Validation(vec![e])),
            (None, Some(username)) => {
                Ok(LoginKey::parse(username).map_or(ResetLogin::Nobody, ResetLogin::Username))
            }
            (None, None) => Err(AppError::Validation(vec![FieldError::new(
                "email",
                "required",
                "send either email or username",
            )])),
            (Some(_), Some(_)) => Err(AppError::Validation(vec![FieldError::new(
                "username",
                "conflicting",
                "send either email or username, not both",
            )])),
        }
    }

    /// Looks the account up and, for an active user with an address, queues the reset mail
    /// (within the per-address limit). Returns nothing either way: the caller has answered
    /// already, and this runs after the answer so that its time says nothing.
    ///
    /// # Errors
    /// [`AppError::Unavailable`] (logged by the caller; nobody waits for it).
    #[tracing::instrument(skip_all)]
    pub async fn request_password_reset(
        &self,
        login: ResetLogin,
        ctx: &RequestContext,
    ) -> Result<(), AppError> {
        let user = match login {
            ResetLogin::Email(email) => match self.mail.store.find_user_by_email(&email).await? {
                Some(id) => self.ports.users.find_by_id(id).await?,
                None => None,
            },
            ResetLogin::Username(key) => self.ports.users.find_by_username(&key).await?,
            ResetLogin::Nobody => None,
        };
        let Some(user) = user.filter(|u| u.is_active) else {
            return Ok(());
        };
        let Some(email) = user.email.clone() else {
            return Ok(());
        };
        let issued = self
            .queue(&user, &email, TokenPurpose::PasswordReset)
            .await?;
        let event = self
            .audit
            .event(Event::PasswordResetRequested, ctx)
            .user(&user);
        match issued {
            Issued::Queued => event.record().await,
            Issued::RateLimited => {
                event
                    .failed()
                    .detail("per-address mail limit reached")
                    .record()
                    .await
            }
        }
    }

    /// Whether a reset token is usable now (the hosted page shows its form only then).
    ///
    /// # Errors
    /// [`AppError::InvalidResetToken`], [`AppError::Unavailable`].
    pub async fn check_reset_token(&self, token: &str) -> Result<(), AppError> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(AppError::InvalidResetToken);
        }
        let hash = MailToken::from_presented(token).hash();
        let now = self.ports.clock.now();
        match (self.mail.store)
            .find_token(&hash, TokenPurpose::PasswordReset, now)
            .await?
        {
            Some(_) => Ok(()),
            None => Err(AppError::InvalidResetToken),
        }
    }

    /// Sets a new password with a reset token: the token is checked, the password checked
    /// against the rules and hashed, then the token used (of concurrent confirmations exactly
    /// one gets past this) and the password stored with every session of the user revoked; the
    /// account's login lockout is cleared.
    ///
    /// # Errors
    /// [`AppError::InvalidResetToken`], [`AppError::Validation`] (on `new_password`),
    /// [`AppError::Busy`], [`AppError::Unavailable`].
    #[tracing::instrument(skip_all)]
    pub async fn confirm_password_reset(
        &self,
        token: &str,
        new_password: &str,
        ctx: &RequestContext,
    ) -> Result<(), AppError> {
        self.check_reset_token(token).await?;
        let new = Password::parse(new_password, &self.policy)
            .map_err(|error| AppError::Validation(vec![error.for_field("new_password")]))?;
        let hash = self.ports.hasher.hash(&new).await?;
        let now = self.ports.clock.now();
        let token_hash = MailToken::from_presented(token).hash();
        let grant = (self.mail.store)
            .consume_token(&token_hash, TokenPurpose::PasswordReset, now)
            .await?
            .ok_or(AppError::InvalidResetToken)?;
        let user = (self.ports.users.find_by_id(grant.user_id).await?)
            .filter(|u| u.is_active)
            .ok_or(AppError::InvalidResetToken)?;
        let revoked = (self.ports.users)
            .change_password(user.id, &hash, None, now)
            .await?
            .ok_or(AppError::InvalidResetToken)?;
        // The failed guesses were against the old password: a locked-out user who reset it
        // signs in at once. Best effort: the lock expires by itself otherwise.
        if let Err(error) = self.guard.succeeded(&user.username.login_key()).await {
            tracing::warn!(%error, "could not clear the login lockout after a reset");
        }
        self.audit
            .event(Event::PasswordResetCompleted, ctx)
            .user(&user)
            .detail(format!("{revoked} sessions revoked"))
            .record()
            .await
    }

    /// Stores a fresh token of `purpose` for `user` and queues its mail, in one commit, then
    /// wakes this process's sender.
    async fn queue(
        &self,
        user: &User,
        email: &EmailAddress,
        purpose: TokenPurpose,
    ) -> Result<Issued, AppError> {
        let token = MailToken::generate();
        let now = self.ports.clock.now();
        let grant = TokenGrant {
            hash: token.hash(),
            purpose,
            user_id: user.id,
            email: email.as_str().to_owned(),
            created_at: now,
            expires_at: now + purpose.lifetime(),
        };
        let username = user.username.as_str();
        let message = match purpose {
            TokenPurpose::EmailVerification => MailMessage::Verification {
                username,
                token: &token,
            },
            TokenPurpose::PasswordReset => MailMessage::PasswordReset {
                username,
                token: &token,
            },
        };
        let mail = NewMail {
            id: Uuid::now_v7(),
            user_id: user.id,
            to: email.as_str().to_owned(),
            kind: purpose,
            content: self.mail.composer.compose(message),
            created_at: now,
        };
        let limit = AddressLimit {
            max: self.settings.per_address_per_hour,
            since: now - Duration::hours(1),
        };
        let issued = self.mail.store.issue(&grant, &mail, limit).await?;
        if issued == Issued::Queued {
            self.mail.waker.wake();
        }
        Ok(issued)
    }

    /// Claims up to `limit` due mails for this worker (leased: no other worker sends them
    /// meanwhile).
    ///
    /// # Errors
    /// [`AppError::Unavailable`].
    pub async fn claim_due(&self, limit: u32) -> Result<Vec<ClaimedMail>, AppError> {
        let now = self.ports.clock.now();
        Ok((self.mail.store)
            .claim_due(now, now + self.settings.lease, limit)
            .await?)
    }

    /// Sends one claimed mail and records the outcome: sent, or failed and due again after the
    /// backoff (`retry_base` doubled per failure before, at most `retry_max`).
    ///
    /// # Errors
    /// [`AppError::Unavailable`] when the outcome cannot be stored (the lease then runs out
    /// and the mail is sent again: the `Message-ID` is the same).
    pub async fn deliver(&self, mail: &ClaimedMail) -> Result<Delivery, AppError> {
        let ctx = RequestContext::default();
        let detail = format!("{} mail, attempt {}", mail.kind.as_str(), mail.attempts + 1);
        match self.mail.transport.send(mail).await {
            Ok(()) => {
                let now = self.ports.clock.now();
                self.mail.store.mark_sent(mail.id, now).await?;
                self.audit
                    .event(Event::MailSent, &ctx)
                    .user_id(mail.user_id)
                    .detail(detail)
                    .record()
                    .await?;
                Ok(Delivery::Sent)
            }
            Err(error) => {
                let retry_at = self.ports.clock.now() + self.backoff(mail.attempts);
                (self.mail.store)
                    .mark_failed(mail.id, &error.0, retry_at)
                    .await?;
                self.audit
                    .event(Event::MailFailed, &ctx)
                    .user_id(mail.user_id)
                    .failed()
                    .detail(format!("{detail}: {}", error.0))
                    .record()
                    .await?;
                Ok(Delivery::Retry(retry_at))
            }
        }
    }

    /// The delay after the `failures_before + 1`th failure.
    fn backoff(&self, failures_before: u32) -> Duration {
        let factor = 1i32
            .checked_shl(failures_before.min(30))
            .unwrap_or(i32::MAX);
        let delay = self
            .settings
            .retry_base
            .checked_mul(factor)
            .unwrap_or(self.settings.retry_max);
        delay.min(self.settings.retry_max)
    }

    /// Unsent mails, and when the next is due.
    ///
    /// # Errors
    /// [`AppError::Unavailable`].
    pub async fn outbox_state(&self) -> Result<(u64, Option<DateTime<Utc>>), AppError> {
        Ok(self.mail.store.outbox_state().await?)
    }

    /// The shortest new password accepted (for the page's form).
    pub fn min_password_length(&self) -> usize {
        self.policy.min_chars
    }

    /// The clock's time.
    pub fn now(&self) -> DateTime<Utc> {
        self.ports.clock.now()
    }
}

#[cfg(test)]
#[path = "mail_tests.rs"]
mod tests;
