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
}

impl AuditEventKind {
    /// Every kind, for documentation and validation.
    pub const ALL: [AuditEventKind; 12] = [
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

/// Which events to list: newest first, at most `limit`, strictly before `before` when given.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub user_id: Option<UserId>,
    pub kind: Option<AuditEventKind>,
    pub before: Option<DateTime<Utc>>,
    pub limit: u32,
}
