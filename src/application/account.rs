//! The user's own sessions (list, end one) and the deletion of an account, by its user or by
//! an admin.

use std::sync::Arc;

use super::guard::{Check, PasswordGuard};
use super::mfa::{FactorUsed, SecondFactors};
use super::{AppError, Auditor, Ports, Principal, RequestContext};
use crate::domain::account::{AccountRepository, Deletion, SessionSummary};
use crate::domain::audit::AuditEventKind as Event;
use crate::domain::ports::LockoutPolicy;
use crate::domain::session::SessionId;
use crate::domain::user::{LoginKey, Password, User, UserId};

/// A session of the caller's list, and whether it is the one the caller's token belongs to.
#[derive(Debug, Clone)]
pub struct ListedSession {
    pub summary: SessionSummary,
    pub current: bool,
}

/// The account use cases.
#[derive(Clone)]
pub struct AccountService {
    ports: Ports,
    account: Arc<dyn AccountRepository>,
    audit: Auditor,
    guard: PasswordGuard,
    factors: SecondFactors,
}

impl AccountService {
    /// Wires the use cases to their ports; `lockout` guards the password and second-factor
    /// checks of a deletion, sharing its counters with the logins of the same account.
    pub fn new(
        ports: Ports,
        account: Arc<dyn AccountRepository>,
        factors: SecondFactors,
        lockout: LockoutPolicy,
    ) -> Self {
        Self {
            audit: ports.auditor(),
            guard: PasswordGuard::new(ports.clone(), lockout),
            ports,
            account,
            factors,
        }
    }

    /// The caller's live sessions, newest first: those of the password grant, of
    /// `POST /auth/refresh-token`, of the code flow, and the browser sign-ins of the hosted
    /// login page.
    ///
    /// # Errors
    /// [`AppError::Unavailable`].
    pub async fn sessions(&self, principal: &Principal) -> Result<Vec<ListedSession>, AppError> {
        let now = self.ports.clock.now();
        let sessions = self.account.list_sessions(principal.user.id, now).await?;
        Ok(sessions
            .into_iter()
            .map(|summary| ListedSession {
                current: summary.id == principal.claims.session_id,
                summary,
            })
            .collect())
    }

    /// Ends one of the caller's live sessions and every session started from it (the caller's
    /// own included: its token then stops working).
    ///
    /// # Errors
    /// [`AppError::SessionNotFound`] for an unknown id, an ended session or another user's
    /// (never telling which); [`AppError::Unavailable`].
    #[tracing::instrument(skip_all, fields(user_id = %principal.user.id))]
    pub async fn end_session(
        &self,
        principal: &Principal,
        id: SessionId,
        ctx: &RequestContext,
    ) -> Result<(), AppError> {
        let now = self.ports.clock.now();
        if !self.account.end_session(principal.user.id, id, now).await? {
            return Err(AppError::SessionNotFound);
        }
        self.audit
            .event(Event::SessionEnded, ctx)
            .user(&principal.user)
            .detail(format!("session {id} ended by its user"))
            .record()
            .await
    }

    /// Deletes the caller's account after checking the password (a wrong one counts toward
    /// the account's lockout, like a failed login) and, for a user with a second factor, the
    /// one-time code `otp`.
    ///
    /// # Errors
    /// [`AppError::WrongPassword`], [`AppError::WrongOtp`], [`AppError::AccountLocked`],
    /// [`AppError::LastAdmin`], [`AppError::Busy`], [`AppError::Unavailable`].
    #[tracing::instrument(skip_all, fields(user_id = %principal.user.id))]
    pub async fn delete_own_account(
        &self,
        principal: &Principal,
        password: &Password,
        otp: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<(), AppError> {
        let user = &principal.user;
        let key = self
            .guard
            .check_own_password(
                user,
                password,
                Check::AccountDeletion,
                Event::AccountDeleted,
                "wrong password",
                ctx,
            )
            .await?;
        if user.mfa.has_second_factor() {
            // The guess the password check reserved stays held until the second factor is
            // decided, as at a login: a right password alone clears nothing.
            self.check_second_factor(user, &key, otp, ctx).await?;
        } else {
            self.guard.succeeded(&key).await?;
        }
        self.delete(user.id, "by the user").await
    }

    /// The second factor of a self-service deletion, with the password's guess still reserved:
    /// a right code (TOTP or recovery code, used up) clears the failures; a wrong one counts
    /// toward the lockout like a wrong password; none gives the guess back (the password was
    /// right) and is refused.
    async fn check_second_factor(
        &self,
        user: &User,
        key: &LoginKey,
        otp: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<(), AppError> {
        let Some(otp) = otp else {
            self.guard.abandon(key).await;
            self.audit
                .event(Event::AccountDeleted, ctx)
                .user(user)
                .failed()
                .detail("no second factor given")
                .record()
                .await?;
            return Err(AppError::WrongOtp);
        };
        let used = match self.factors.verify(user, otp).await {
            Ok(used) => used,
            Err(error) => {
                self.guard.abandon(key).await;
                return Err(error);
            }
        };
        match used {
            Some(factor) => {
                self.guard.succeeded(key).await?;
                let event = match factor {
                    FactorUsed::Totp => Event::SecondFactorSucceeded,
                    FactorUsed::RecoveryCode => Event::RecoveryCodeUsed,
                };
                self.audit
                    .event(event, ctx)
                    .user(user)
                    .detail(format!(
                        "second factor: {} (account deletion)",
                        factor.name()
                    ))
                    .record()
                    .await
            }
            None => {
                self.audit
                    .event(Event::SecondFactorFailed, ctx)
                    .user(user)
                    .failed()
                    .detail("wrong or already used code (account deletion)")
                    .record()
                    .await?;
                self.guard.failed(key, Some(user), ctx).await?;
                Err(AppError::WrongOtp)
            }
        }
    }

    /// An administrator deletes a user (themself included, unless they are the last active
    /// admin).
    ///
    /// # Errors
    /// [`AppError::Forbidden`], [`AppError::UserNotFound`], [`AppError::LastAdmin`],
    /// [`AppError::Unavailable`].
    #[tracing::instrument(skip_all, fields(user_id = %id))]
    pub async fn delete_user(&self, principal: &Principal, id: UserId) -> Result<(), AppError> {
        principal.require_admin()?;
        self.delete(id, &format!("by admin {}", principal.user.id))
            .await
    }

    /// The deletion and its `account_deleted` event (the user id only: no name, no IP), in
    /// one commit.
    async fn delete(&self, id: UserId, by: &str) -> Result<(), AppError> {
        let event = self
            .audit
            .event(Event::AccountDeleted, &RequestContext::default())
            .user_id(id)
            .detail(format!("account deleted {by}"))
            .build();
        match self.account.delete_user(id, &event).await? {
            Deletion::Deleted => {
                self.audit.recorded(&event);
                Ok(())
            }
            Deletion::NotFound => Err(AppError::UserNotFound),
            Deletion::LastAdmin => Err(AppError::LastAdmin),
        }
    }
}

#[cfg(test)]
#[path = "account_tests.rs"]
mod tests;
