//! Recording audit events (stored through the port and logged as a structured line) and
//! reading them back for administrators.

use std::sync::Arc;

use uuid::Uuid;

use super::{AppError, Principal, RequestContext};
use crate::domain::audit::{AuditEvent, AuditEventKind, AuditFilter, LoginFailure};
use crate::domain::ports::{AuditLog, Clock};
use crate::domain::user::{User, UserId};

/// Writes audit events; every use case that changes security state goes through it.
#[derive(Clone)]
pub struct Auditor {
    log: Arc<dyn AuditLog>,
    clock: Arc<dyn Clock>,
}

/// An event being described; [`AuditEntry::record`] stores and logs it.
#[must_use = "an audit entry does nothing until recorded"]
pub struct AuditEntry<'a> {
    auditor: &'a Auditor,
    event: AuditEvent,
}

impl Auditor {
    /// An auditor writing to `log` with times from `clock`.
    pub fn new(log: Arc<dyn AuditLog>, clock: Arc<dyn Clock>) -> Self {
        Self { log, clock }
    }

    /// Starts describing a successful event of `kind` by the caller in `ctx`.
    pub fn event<'a>(&'a self, kind: AuditEventKind, ctx: &RequestContext) -> AuditEntry<'a> {
        AuditEntry {
            auditor: self,
            event: AuditEvent {
                id: Uuid::now_v7(),
                at: self.clock.now(),
                kind,
                user_id: None,
                username: None,
                ip: ctx.ip,
                user_agent: ctx.user_agent.clone(),
                success: true,
                detail: None,
            },
        }
    }
}

impl AuditEntry<'_> {
    /// The user the event is about.
    pub fn user(mut self, user: &User) -> Self {
        self.event.user_id = Some(user.id);
        self.event.username = Some(user.username.as_str().to_owned());
        self
    }

    /// The id of the user the event is about, when only the id is known.
    pub fn user_id(mut self, id: UserId) -> Self {
        self.event.user_id = Some(id);
        self
    }

    /// The username as attempted (e.g. a failed login of an unknown user).
    pub fn username(mut self, username: &str) -> Self {
        self.event.username = Some(username.chars().take(64).collect());
        self
    }

    /// Marks the event as a failure.
    pub fn failed(mut self) -> Self {
        self.event.success = false;
        self
    }

    /// Why, in a few words. Never a secret.
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.event.detail = Some(detail.into());
        self
    }

    /// Marks the event as a failed password check, for `reason` (stored as its detail).
    pub fn failed_because(self, reason: LoginFailure) -> Self {
        self.failed().detail(reason.detail())
    }

    /// The event as described, for a store to record inside a transaction of its own (see
    /// [`Auditor::log`]).
    pub fn build(self) -> AuditEvent {
        self.event
    }

    /// Stores the event and logs it as one structured line.
    ///
    /// # Errors
    /// [`AppError::Unavailable`] when the store cannot take it.
    pub async fn record(self) -> Result<(), AppError> {
        self.auditor.log(&self.event);
        self.auditor.log.record(&self.event).await?;
        Ok(())
    }
}

impl Auditor {
    /// Logs an event that a store has already recorded in the same commit as its change, and
    /// lets the audit port's observers (metrics) count it.
    pub fn recorded(&self, event: &AuditEvent) {
        self.log(event);
        self.log.observe(event);
    }

    /// Logs an event as one structured line (an event stored by [`AuditEntry::record`], or by a
    /// store in the same commit as the change it describes).
    pub fn log(&self, e: &AuditEvent) {
        // One line, at `info` for a success and `warn` for a failure (tracing wants the level
        // as a constant, hence the macro).
        macro_rules! audit_line {
            ($level:ident) => {
                tracing::$level!(
                    event = e.kind.as_str(),
                    user_id = e.user_id.map(|id| id.to_string()),
                    username = e.username,
                    ip = e.ip.map(tracing::field::display),
                    detail = e.detail,
                    "audit"
                )
            };
        }
        if e.success {
            audit_line!(info);
        } else {
            audit_line!(warn);
        }
    }
}

/// Reading the audit trail.
#[derive(Clone)]
pub struct AuditService {
    log: Arc<dyn AuditLog>,
}

impl AuditService {
    /// The most events one page may hold.
    pub const MAX_LIMIT: u32 = 200;

    /// Reads through `log`.
    pub fn new(log: Arc<dyn AuditLog>) -> Self {
        Self { log }
    }

    /// Events matching `filter`, newest first. Admins only.
    ///
    /// # Errors
    /// [`AppError::Forbidden`], [`AppError::Validation`] (limit out of 1..=200),
    /// [`AppError::Unavailable`].
    pub async fn list(
        &self,
        principal: &Principal,
        filter: &AuditFilter,
    ) -> Result<Vec<AuditEvent>, AppError> {
        principal.require_admin()?;
        super::check_limit(filter.limit, Self::MAX_LIMIT)?;
        Ok(self.log.list(filter).await?)
    }
}
