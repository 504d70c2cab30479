//! The in-memory adapter for every repository port: one mutex over plain collections, so each
//! port method is atomic as the ports demand. For the use-case unit tests and the contract suite
//! (fast, no I/O, time under the caller's control); it keeps nothing across a restart and is not
//! selectable through `DATABASE_URL`.
//!
//! The ports are in the same files as on the other backends: `users.rs`, `clients.rs`,
//! `tokens.rs`, `codes.rs`, `passkeys.rs`, `audit.rs`, `throttle.rs`, `purge.rs`, with `error.rs` for the one
//! failure a mutex can have.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

mod account;
mod audit;
mod clients;
mod codes;
mod error;
mod mail;
mod mfa;
mod passkeys;
mod purge;
mod throttle;
mod tokens;
mod users;

use super::{PoolState, Repositories};
use crate::domain::audit::{AuditEvent, AuditEventKind};
use crate::domain::client::Client;
use crate::domain::oidc::{CodeGrant, CodeHash, SigninHash};
use crate::domain::ports::{HealthProbe, StoreError, ThrottleState};
use crate::domain::session::{
    Invalidation, InvalidationFeed, InvalidationListener, RefreshTokenHash, RefreshTokenRecord,
    Session, SessionId,
};
use crate::domain::user::{User, UserId};

/// A session as stored: revoked when `revoked_at` is set.
#[derive(Debug, Clone)]
struct StoredSession {
    session: Session,
    revoked_at: Option<DateTime<Utc>>,
    /// A browser sign-in's cookie hash.
    signin: Option<SigninHash>,
    /// Where it was started.
    origin: crate::domain::account::SessionOrigin,
    /// Its start, then its last rotation.
    last_used_at: DateTime<Utc>,
}

/// An authorization code as stored.
#[derive(Debug, Clone)]
struct StoredCode {
    grant: CodeGrant,
    /// The session its redemption started.
    redeemed_by: Option<SessionId>,
    replayed: bool,
}

/// A refresh token as stored: used once rotated.
#[derive(Debug, Clone)]
struct StoredToken {
    record: RefreshTokenRecord,
    /// When it was rotated; `None` while unused.
    used_at: Option<DateTime<Utc>>,
}

/// Every table, behind the store's one mutex.
#[derive(Default)]
struct State {
    users: Vec<User>,
    clients: Vec<Client>,
    sessions: HashMap<SessionId, StoredSession>,
    tokens: HashMap<RefreshTokenHash, StoredToken>,
    codes: HashMap<CodeHash, StoredCode>,
    throttle: HashMap<String, ThrottleState>,
    audit: Vec<AuditEvent>,
    passkeys: Vec<crate::domain::passkey::Passkey>,
    ceremonies: HashMap<crate::domain::passkey::CeremonyId, crate::domain::passkey::Ceremony>,
    /// TOTP authenticators, recovery codes, pending sign-ins (issue 14, TOTP).
    mfa: mfa::MfaTables,
    mail_tokens: HashMap<crate::domain::mail::MailTokenHash, mail::StoredToken>,
    outbox: Vec<mail::StoredMail>,
    /// The store's [`InvalidationFeed`] subscribers.
    subscribers: Vec<Arc<dyn InvalidationListener>>,
}

impl State {
    /// Tells every subscriber, under the store's lock (the change is applied: a reader that
    /// reacts waits for the lock and then sees it).
    fn publish(&self, what: Invalidation) {
        for subscriber in &self.subscribers {
            subscriber.invalidated(&what);
        }
    }
}

/// Users, sessions, refresh tokens, lockout counters and the audit log in memory. Clones share
/// the same data.
#[derive(Default, Clone)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// This store's repositories, as [`super::connect`] returns them for a database.
    pub fn repositories(&self) -> Repositories {
        Repositories::of(
            Arc::new(self.clone()),
            Arc::new(super::local_rates::LocalBudget::default()),
        )
    }

    /// How many sessions of the user are not revoked.
    ///
    /// # Panics
    /// When a port method panicked while holding the store's lock.
    pub fn live_sessions(&self, user_id: UserId) -> usize {
        let state = self.lock().expect("the store's lock");
        state
            .sessions
            .values()
            .filter(|s| s.session.user_id == user_id && s.revoked_at.is_none())
            .count()
    }

    /// The kinds of the audit events recorded so far, oldest first.
    ///
    /// # Panics
    /// When a port method panicked while holding the store's lock.
    pub fn audit_kinds(&self) -> Vec<AuditEventKind> {
        let state = self.lock().expect("the store's lock");
        state.audit.iter().map(|e| e.kind).collect()
    }

    /// Sets a user's `is_active` flag (behind the ports' back: no session is revoked).
    ///
    /// # Panics
    /// When a port method panicked while holding the store's lock.
    pub fn set_active(&self, user_id: UserId, active: bool) {
        let mut state = self.lock().expect("the store's lock");
        if let Some(user) = state.users.iter_mut().find(|u| u.id == user_id) {
            user.is_active = active;
        }
    }
}

impl InvalidationFeed for MemoryStore {
    fn subscribe(&self, listener: Arc<dyn InvalidationListener>) {
        self.lock()
            .expect("the store's lock")
            .subscribers
            .push(listener);
    }
}

impl PoolState for MemoryStore {
    /// No connections: nothing open, nothing idle.
    fn pool_state(&self) -> (u32, usize) {
        (0, 0)
    }
}

#[async_trait]
impl HealthProbe for MemoryStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.lock().map(|_| ())
    }
}
