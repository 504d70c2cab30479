//! Use cases. They orchestrate the domain ports and know nothing of HTTP or SQL.

pub mod account;
pub mod audit;
pub mod auth;
pub mod clients;
pub mod error;
mod guard;
#[cfg(test)]
pub(crate) mod harness;
pub mod mail;
pub mod maintenance;
pub mod mfa;
pub mod oidc;
pub mod passkeys;
pub mod users;

use std::net::IpAddr;
use std::sync::Arc;

use crate::domain::ports::{
    AccessTokenCodec, AuditLog, Clock, LoginThrottle, PasswordHasher, TokenRepository,
    UserRepository,
};
use crate::domain::token::AccessClaims;
use crate::domain::user::{Role, User};
use crate::domain::validation::FieldError;

pub use account::{AccountService, ListedSession};
pub use audit::{AuditService, Auditor};
pub use auth::{AuthService, AuthSettings, BrowserSignIn, RefreshSuccessorKey, TokenTypeHint};
pub use clients::{ClientPatch, ClientService, NewClient, RegisteredClient};
pub use error::AppError;
pub use mail::{Delivery, MailPolicy, MailPorts, RecoveryService, ResetLogin};
pub use maintenance::{MaintenanceService, Retention};
pub use mfa::{MfaService, SecondFactors};
pub use oidc::{ClientCredentials, OidcPorts, OidcService};
pub use passkeys::{PasskeyService, StartedCeremony};
pub use users::{ImportedUser, NewUser, UserPatch, UserService};

/// Every port the use cases drive, as the wiring hands them over.
#[derive(Clone)]
pub struct Ports {
    pub users: Arc<dyn UserRepository>,
    pub tokens: Arc<dyn TokenRepository>,
    pub throttle: Arc<dyn LoginThrottle>,
    pub audit: Arc<dyn AuditLog>,
    pub hasher: Arc<dyn PasswordHasher>,
    pub codec: Arc<dyn AccessTokenCodec>,
    pub clock: Arc<dyn Clock>,
}

impl Ports {
    /// The auditor over these ports.
    pub fn auditor(&self) -> Auditor {
        Auditor::new(self.audit.clone(), self.clock.clone())
    }
}

/// Who is calling, as the HTTP layer saw it: for logs and the audit trail.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// The client address (the socket peer, or the proxy-reported one when trusted).
    pub ip: Option<IpAddr>,
    /// The `User-Agent` header, if any.
    pub user_agent: Option<String>,
}

/// An authenticated caller: a verified access token whose session and user are still active.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The user as stored now (not as the token remembers it).
    pub user: Arc<User>,
    /// The verified claims of the presented token.
    pub claims: AccessClaims,
}

impl Principal {
    /// Whether the caller may act as `role`: the token's scope grants it *and* the user still
    /// has it (a demotion takes effect on the next request, not at token expiry).
    pub fn has_role(&self, role: Role) -> bool {
        self.claims.scope.contains(role) && self.user.roles.contains(role)
    }

    /// # Errors
    /// [`AppError::Forbidden`] unless the caller acts as an admin.
    pub fn require_admin(&self) -> Result<(), AppError> {
        if self.has_role(Role::Admin) {
            Ok(())
        } else {
            Err(AppError::Forbidden)
        }
    }
}

/// Checks a page size against `1..=max`.
pub(crate) fn check_limit(limit: u32, max: u32) -> Result<(), AppError> {
    if (1..=max).contains(&limit) {
        Ok(())
    } else {
        Err(AppError::Validation(vec![FieldError::new(
            "limit",
            "out_of_range",
            format!("must be between 1 and {max}"),
        )]))
    }
}
