//! Housekeeping: expired sessions and tokens, old audit events, idle login counters.

use std::sync::Arc;

use chrono::Duration;

use super::AppError;
use crate::domain::passkey::PasskeyRepository;
use crate::domain::ports::{Clock, PasswordHasher, Purge, PurgeCutoffs, UserRepository};

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
    users: Arc<dyn UserRepository>,
    hasher: Arc<dyn PasswordHasher>,
    clock: Arc<dyn Clock>,
    retention: Retention,
    /// Expired WebAuthn ceremonies go with each purge too, when set.
    ceremonies: Option<Arc<dyn PasskeyRepository>>,
}

impl MaintenanceService {
    /// Purges `store` with the given retention, and keeps `hasher` told whether `users` hold
    /// legacy password hashes.
    pub fn new(
        store: Arc<dyn Purge>,
        users: Arc<dyn UserRepository>,
        hasher: Arc<dyn PasswordHasher>,
        clock: Arc<dyn Clock>,
        retention: Retention,
    ) -> Self {
        Self {
            store,
            users,
            hasher,
            clock,
            retention,
            ceremonies: None,
        }
    }

    /// Also deletes expired WebAuthn ceremonies (abandoned passkey sign-ins and registrations)
    /// with each purge.
    #[must_use]
    pub fn purging_ceremonies(mut self, passkeys: Arc<dyn PasskeyRepository>) -> Self {
        self.ceremonies = Some(passkeys);
        self
    }

    /// Asks the store whether any legacy password hash is left and tells the hasher (which
    /// pads failed verifications only while one may be). Run at start and with every purge.
    ///
    /// # Errors
    /// [`AppError::Unavailable`]; the hasher keeps what it knew.
    pub async fn check_legacy_hashes(&self) -> Result<bool, AppError> {
        let Some(prefix) = self.hasher.legacy_hash_prefix() else {
            return Ok(false);
        };
        let present = self.users.has_password_hash_with_prefix(prefix).await?;
        self.hasher.set_legacy_hashes_present(present);
        Ok(present)
    }

    /// One purge pass (and a fresh [`Self::check_legacy_hashes`]); returns how many rows went.
    ///
    /// # Errors
    /// [`AppError::Unavailable`].
    pub async fn purge_once(&self) -> Result<u64, AppError> {
        self.check_legacy_hashes().await?;
        let now = self.clock.now();
        let removed = self
            .store
            .purge(&PurgeCutoffs {
                now,
                revoked_before: now - self.retention.revoked_sessions,
                audit_before: now - self.retention.audit,
                throttle_before: now - self.retention.login_failures,
            })
            .await?;
        let removed = match &self.ceremonies {
            Some(ceremonies) => removed + ceremonies.purge_ceremonies(now).await?,
            None => removed,
        };
        tracing::info!(
            removed,
            "purged expired sessions, tokens and old audit events"
        );
        Ok(removed)
    }
}
