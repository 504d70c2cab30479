//! The audit trail of authentication events: who, when, from where, and whether it worked.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::user::UserId;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditEventKind {
    UserCreated,
    LoginSucceeded,
    LoginFailed,
    AccountLocked,
    TokenRefreshed,
    RefreshTokenReused,
    RefreshTokenIssued,
    TokenRevoked,
    Logout,
    LogoutAll,
    PasswordChanged,
    UserUpdated,
    ClientCreated,
    ClientUpdated,
    ClientDeleted,
    ClientSecretRotated,
    AuthorizationCodeExchanged,
    AuthorizationCodeReused,
    ClientCredentialsGranted,
    // Issue 14, sessions and the account.
    RefreshTokenRetried,
    SessionEnded,
    AccountDeleted,
    // Passkeys (issue 14, part P).
    PasskeyAdded,
    PasskeyRemoved,
    PasskeyVerified,
    PasskeyFailed,
    // Second factors (issue 14, TOTP).
    TotpEnrollmentStarted,
    TotpEnrolled,
    TotpDisabled,
    SecondFactorRequired,
    SecondFactorSucceeded,
    SecondFactorFailed,
    RecoveryCodeUsed,
    MfaReset,
    // Mail and account recovery.
    EmailVerificationSent,
    EmailVerified,
    PasswordResetRequested,
    PasswordResetCompleted,
    MailSent,
    MailFailed,
}

impl AuditEventKind {
    /// Every kind, for documentation and validation.
    pub const ALL: [AuditEventKind; 40] = [
        Self::UserCreated,
        Self::LoginSucceeded,
        Self::LoginFailed,
        Self::AccountLocked,
        Self::TokenRefreshed,
        Self::RefreshTokenReused,
        Self::RefreshTokenIssued,
        Self::TokenRevoked,
        Self::Logout,
        Self::LogoutAll,
        Self::PasswordChanged,
        Self::UserUpdated,
        Self::ClientCreated,
        Self::ClientUpdated,
        Self::ClientDeleted,
        Self::ClientSecretRotated,
        Self::AuthorizationCodeExchanged,
        Self::AuthorizationCodeReused,
        Self::ClientCredentialsGranted,
        Self::RefreshTokenRetried,
        Self::SessionEnded,
        Self::AccountDeleted,
        Self::PasskeyAdded,
        Self::PasskeyRemoved,
        Self::PasskeyVerified,
        Self::PasskeyFailed,
        Self::TotpEnrollmentStarted,
        Self::TotpEnrolled,
        Self::TotpDisabled,
        Self::SecondFactorRequired,
        Self::SecondFactorSucceeded,
        Self::SecondFactorFailed,
        Self::RecoveryCodeUsed,
        Self::MfaReset,
        Self::EmailVerificationSent,
        Self::EmailVerified,
        Self::PasswordResetRequested,
        Self::PasswordResetCompleted,
        Self::MailSent,
        Self::MailFailed,
    ];

    /// The event's snake_case name, as stored and served.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::UserCreated => "user_created",
            Self::LoginSucceeded => "login_succeeded",
            Self::LoginFailed => "login_failed",
            Self::AccountLocked => "account_locked",
            Self::TokenRefreshed => "token_refreshed",
            Self::RefreshTokenReused => "refresh_token_reused",
            Self::RefreshTokenIssued => "refresh_token_issued",
            Self::TokenRevoked => "token_revoked",
            Self::Logout => "logout",
            Self::LogoutAll => "logout_all",
            Self::PasswordChanged => "password_changed",
            Self::UserUpdated => "user_updated",
            Self::ClientCreated => "client_created",
            Self::ClientUpdated => "client_updated",
            Self::ClientDeleted => "client_deleted",
            Self::ClientSecretRotated => "client_secret_rotated",
            Self::AuthorizationCodeExchanged => "authorization_code_exchanged",
            Self::AuthorizationCodeReused => "authorization_code_reused",
            Self::ClientCredentialsGranted => "client_credentials_granted",
            Self::RefreshTokenRetried => "refresh_token_retried",
            Self::SessionEnded => "session_ended",
            Self::AccountDeleted => "account_deleted",
            Self::PasskeyAdded => "passkey_added",
            Self::PasskeyRemoved => "passkey_removed",
            Self::PasskeyVerified => "passkey_verified",
            Self::PasskeyFailed => "passkey_failed",
            Self::TotpEnrollmentStarted => "totp_enrollment_started",
            Self::TotpEnrolled => "totp_enrolled",
            Self::TotpDisabled => "totp_disabled",
            Self::SecondFactorRequired => "second_factor_required",
            Self::SecondFactorSucceeded => "second_factor_succeeded",
            Self::SecondFactorFailed => "second_factor_failed",
            Self::RecoveryCodeUsed => "recovery_code_used",
            Self::MfaReset => "mfa_reset",
            Self::EmailVerificationSent => "email_verification_sent",
            Self::EmailVerified => "email_verified",
            Self::PasswordResetRequested => "password_reset_requested",
            Self::PasswordResetCompleted => "password_reset_completed",
            Self::MailSent => "mail_sent",
            Self::MailFailed => "mail_failed",
        }
    }
}

impl FromStr for AuditEventKind {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == raw)
            .ok_or_else(|| format!("'{raw}' is not an audit event"))
    }
}

impl fmt::Display for AuditEventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One recorded event. `username` is the name as attempted (for failed logins of unknown users
/// too); `detail` says why, never with a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub kind: AuditEventKind,
    pub user_id: Option<UserId>,
    pub username: Option<String>,
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    pub success: bool,
    pub detail: Option<String>,
}

impl AuditEvent {
    /// Why this login failed, read from its stored detail; `None` for other events, and for a
    /// detail that names no [`LoginFailure`].
    pub fn login_failure(&self) -> Option<LoginFailure> {
        if self.kind != AuditEventKind::LoginFailed {
            return None;
        }
        self.detail.as_deref().and_then(LoginFailure::from_detail)
    }
}

#[cfg(test)]
impl AuditEvent {
    /// A failed login whose detail is `detail`, for tests.
    pub(crate) fn failed_login(detail: &str) -> Self {
        Self {
            id: Uuid::nil(),
            at: Utc::now(),
            kind: AuditEventKind::LoginFailed,
            user_id: None,
            username: None,
            ip: None,
            user_agent: None,
            success: false,
            detail: Some(detail.to_owned()),
        }
    }
}

/// Why a password check failed, as the audit trail stores it in the event's `detail` (the one
/// place where the reason and its stored text meet; the stored form is the text alone, so the
/// storage adapters need not know this type) and as the metrics label it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoginFailure {
    /// No user has this name (or the name can never be one).
    UnknownUser,
    /// The user exists and the password is wrong.
    WrongPassword,
    /// The user exists but is disabled.
    InactiveUser,
    /// The login key is locked after repeated failures (logins and password changes alike).
    AccountLocked,
    /// The password changed while it was being checked: the session is refused.
    PasswordChanged,
}

impl LoginFailure {
    /// Every reason.
    pub const ALL: [LoginFailure; 5] = [
        Self::UnknownUser,
        Self::WrongPassword,
        Self::InactiveUser,
        Self::AccountLocked,
        Self::PasswordChanged,
    ];

    /// The text stored as the event's `detail` (and served by the audit log).
    pub fn detail(self) -> &'static str {
        match self {
            Self::UnknownUser => "unknown user",
            Self::WrongPassword => "wrong password",
            Self::InactiveUser => "inactive user",
            Self::AccountLocked => "account locked",
            Self::PasswordChanged => "password changed during login",
        }
    }

    /// The reason a stored `detail` names, if any.
    pub fn from_detail(detail: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|reason| reason.detail() == detail)
    }
}

/// Which events to list: newest first, at most `limit`, strictly before `before` when given.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub user_id: Option<UserId>,
    pub kind: Option<AuditEventKind>,
    pub before: Option<DateTime<Utc>>,
    pub limit: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_failures_are_stored_as_the_texts_the_audit_log_has_always_shown() {
        let stored: Vec<&str> = LoginFailure::ALL.iter().map(|r| r.detail()).collect();
        assert_eq!(
            stored,
            [
                "unknown user",
                "wrong password",
                "inactive user",
                "account locked",
                "password changed during login"
            ]
        );
        for reason in LoginFailure::ALL {
            assert_eq!(LoginFailure::from_detail(reason.detail()), Some(reason));
        }
        assert_eq!(LoginFailure::from_detail("session 42"), None);
    }

    #[test]
    fn only_failed_logins_carry_a_login_failure() {
        let mut event = AuditEvent::failed_login("account locked");
        assert_eq!(event.login_failure(), Some(LoginFailure::AccountLocked));
        event.kind = AuditEventKind::PasswordChanged;
        assert_eq!(event.login_failure(), None);
    }
}
