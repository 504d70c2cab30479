//! The lockout around every password check (logins and password changes alike): a guess is
//! reserved before the password is checked and reported after, so the policy in
//! [`crate::domain::lockout`] bounds the guesses whatever the concurrency.

use super::{AppError, Auditor, Ports, RequestContext};
use crate::domain::audit::{AuditEventKind as Event, LoginFailure};
use crate::domain::ports::{LockoutPolicy, ThrottleChange, ThrottleEvent, ThrottleOutcome};
use crate::domain::user::{LoginKey, Password, User};

/// Reserves and reports password guesses per login key.
#[derive(Clone)]
pub(crate) struct PasswordGuard {
    ports: Ports,
    audit: Auditor,
    policy: LockoutPolicy,
}

/// Which use case checks the password, for the audit trail.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Check {
    Login,
    PasswordChange,
    AccountDeletion,
    /// The password check of a TOTP enrolment or removal.
    SecondFactorChange,
}

impl Check {
    fn event(self) -> Event {
        match self {
            Self::Login => Event::LoginFailed,
            Self::PasswordChange => Event::PasswordChanged,
            Self::AccountDeletion => Event::AccountDeleted,
            Self::SecondFactorChange => Event::SecondFactorFailed,
        }
    }
}

impl PasswordGuard {
    /// How long a guess waits for a free slot in its key's window; a password check takes
    /// tens of milliseconds, so this outlasts a burst of them.
    const BUSY_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
    /// How often it looks again meanwhile (each look is a store round trip, so not too often:
    /// the per-IP rate limit bounds how many requests of one client can be waiting).
    const BUSY_POLL: std::time::Duration = std::time::Duration::from_millis(50);

    pub(crate) fn new(ports: Ports, policy: LockoutPolicy) -> Self {
        Self {
            audit: ports.auditor(),
            ports,
            policy,
        }
    }

    /// Reserves one guess for `key`. While every guess left in the window is being checked
    /// by concurrent requests, waits for one of them to finish (up to [`Self::BUSY_WAIT`]):
    /// legitimate parallel logins of one account go through one after another, and no more
    /// passwords are checked at once than the lockout allows.
    ///
    /// # Errors
    /// [`AppError::AccountLocked`] (audited) when the key is locked, or stays busy for the whole
    /// wait; [`AppError::Unavailable`].
    pub(crate) async fn reserve(
        &self,
        key: &LoginKey,
        check: Check,
        ctx: &RequestContext,
    ) -> Result<(), AppError> {
        let waited_from = tokio::time::Instant::now();
        let until = loop {
            match self.apply(key, ThrottleEvent::Attempt).await? {
                ThrottleOutcome::Allowed | ThrottleOutcome::Locked { .. } => return Ok(()),
                ThrottleOutcome::Refused { until } => break until,
                ThrottleOutcome::Busy if waited_from.elapsed() < Self::BUSY_WAIT => {
                    tokio::time::sleep(Self::BUSY_POLL).await;
                }
                ThrottleOutcome::Busy => {
                    break self.ports.clock.now() + chrono::Duration::seconds(1)
                }
            }
        };
        let now = self.ports.clock.now();
        self.audit
            .event(check.event(), ctx)
            .username(key.as_str())
            .failed_because(LoginFailure::AccountLocked)
            .record()
            .await?;
        let retry_after_secs = u64::try_from((until - now).num_seconds() + 1).unwrap_or(1);
        Err(AppError::AccountLocked { retry_after_secs })
    }

    /// Reports the reserved guess as wrong; audits the lock it may cause.
    ///
    /// # Errors
    /// [`AppError::Unavailable`].
    pub(crate) async fn failed(
        &self,
        key: &LoginKey,
        user: Option<&User>,
        ctx: &RequestContext,
    ) -> Result<(), AppError> {
        if let ThrottleOutcome::Locked { until } = self.apply(key, ThrottleEvent::Failure).await? {
            let detail = format!(
                "locked until {} after {} failed password checks",
                until.to_rfc3339(),
                self.policy.max_failures
            );
            let entry = self
                .audit
                .event(Event::AccountLocked, ctx)
                .username(key.as_str())
                .failed()
                .detail(detail);
            match user {
                Some(user) => entry.user(user),
                None => entry,
            }
            .record()
            .await?;
        }
        Ok(())
    }

    /// Reports the reserved guess as right: the key's counters are forgotten.
    ///
    /// # Errors
    /// [`AppError::Unavailable`].
    pub(crate) async fn succeeded(&self, key: &LoginKey) -> Result<(), AppError> {
        self.apply(key, ThrottleEvent::Success).await.map(|_| ())
    }

    /// Checks a signed-in user's own password under the lockout (a password change, a TOTP
    /// enrolment or removal, an account deletion): reserves a guess of the user's key and
    /// verifies. A wrong password is audited as a failed `event` with `detail`, counted toward
    /// the lockout, and refused. A right one returns the key with its guess still reserved: the
    /// caller reports it ([`Self::succeeded`], or after a second factor).
    ///
    /// # Errors
    /// [`AppError::WrongPassword`], [`AppError::AccountLocked`], [`AppError::Busy`],
    /// [`AppError::Unavailable`].
    pub(crate) async fn check_own_password(
        &self,
        user: &User,
        password: &Password,
        check: Check,
        event: Event,
        detail: &str,
        ctx: &RequestContext,
    ) -> Result<LoginKey, AppError> {
        let key = user.username.login_key();
        self.reserve(&key, check, ctx).await?;
        let matches = match self
            .ports
            .hasher
            .verify(password, &user.password_hash)
            .await
        {
            Ok(matches) => matches,
            Err(error) => {
                self.abandon(&key).await;
                return Err(error.into());
            }
        };
        if !matches {
            self.audit
                .event(event, ctx)
                .user(user)
                .failed()
                .detail(detail)
                .record()
                .await?;
            self.failed(&key, Some(user), ctx).await?;
            return Err(AppError::WrongPassword);
        }
        Ok(key)
    }

    /// Gives back a guess that was not decided (the hasher was busy, the store failed, the
    /// account is inactive). Best effort: an unreported guess expires by itself.
    pub(crate) async fn abandon(&self, key: &LoginKey) {
        if let Err(error) = self.apply(key, ThrottleEvent::Abandon).await {
            tracing::warn!(%error, "could not give back a reserved password guess");
        }
    }

    async fn apply(
        &self,
        key: &LoginKey,
        event: ThrottleEvent,
    ) -> Result<ThrottleOutcome, AppError> {
        let now = self.ports.clock.now();
        Ok(self
            .ports
            .throttle
            .apply(
                key,
                ThrottleChange {
                    event,
                    policy: self.policy,
                    now,
                },
            )
            .await?)
    }
}
