//! Housekeeping: expired sessions and tokens, old audit events, idle login counters.

use std::sync::Arc;

use chrono::Duration;

use super::AppError;
use crate::domain::ports::{Clock, Purge};

/// How long things are kept.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Audit events older than this are deleted.
    pub audit: Duration,
    /// Revoked sessions are kept this long (for support questions), then deleted.
    pub revoked_sessions: Duration,
    /// Login-failure counters idle this long are forgotten.
    pub login_failures: Duration,
}

/// Runs the purge.
#[derive(Clone)]
pub struct MaintenanceService {
    store: Arc<dyn Purge>,
    clock: Arc<dyn Clock>,
    retention: Retention,
}

impl MaintenanceService {
    /// Purges `store` with the given retention.
    pub fn new(store: Arc<dyn Purge>, clock: Arc<dyn Clock>, retention: Retention) -> Self {
        Self {
            store,
            clock,
            retention,
        }
    }

    /// One purge pass; returns how many rows went.
    ///
    /// # Errors
    /// [`AppError::Unavailable`].
    pub async fn purge_once(&self) -> Result<u64, AppError> {
        let now = self.clock.now();
        let removed = self
            .store
            .purge(
                now,
                now - self.retention.revoked_sessions,
                now - self.retention.audit,
                now - self.retention.login_failures,
            )
            .await?;
        tracing::info!(
            removed,
            "purged expired sessions, tokens and old audit events"
        );
        Ok(removed)
    }
}
