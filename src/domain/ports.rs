//! The ports: what the application needs from the outside world, in domain types only.
//!
//! Adapters live in `infrastructure`; in-memory fakes for the use-case tests live in
//! `application::fakes`.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::audit::{AuditEvent, AuditFilter};
use super::session::{
    RefreshTokenHash, RefreshTokenRecord, RevocationReason, RotationOutcome, Session, SessionId,
};
use super::token::AccessClaims;
use super::user::{Password, PasswordHash, User, UserId};

/// A failure of a repository.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another user already has this username (compared without regard to case).
    #[error("username is already taken")]
    UsernameTaken,
    /// Another user already has this e-mail address (compared without regard to case).
    #[error("e-mail address is already taken")]
    EmailTaken,
    /// The store cannot be reached or did not answer in time; retrying later may work.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Anything else (a bug, corrupt data). Logged, answered as an opaque 500.
    #[error("store failure: {0}")]
    Other(String),
}

/// Users, looked up and changed by the use cases.
#[async_trait]
pub trait UserRepository: Send + Sync {
    /// Stores a new user.
    ///
    /// # Errors
    /// [`StoreError::UsernameTaken`] or [`StoreError::EmailTaken`] when another user has the same
    /// username or e-mail address regardless of case; [`StoreError::Unavailable`] or
    /// [`StoreError::Other`] otherwise.
    async fn insert(&self, user: &User) -> Result<(), StoreError>;

    /// The user with this id, active or not.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, StoreError>;

    /// The user whose username equals `username` regardless of case.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn find_by_username(&self, username: &str) -> Result<Option<User>, StoreError>;

    /// The user `user_id` if it is active and session `session_id` is theirs, not revoked and not
    /// expired at `now`: the one check every authenticated request makes.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn find_active_by_session(
        &self,
        user_id: UserId,
        session_id: SessionId,
        now: DateTime<Utc>,
    ) -> Result<Option<Arc<User>>, StoreError>;

    /// One page of users, oldest first, and the total number of users.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn list(&self, limit: u32, offset: u64) -> Result<(Vec<User>, u64), StoreError>;

    /// Stores the changeable fields of `user` (e-mail, full name, roles, active flag,
    /// `updated_at`); returns false when there is no such user.
    ///
    /// # Errors
    /// [`StoreError::EmailTaken`] when another user has the e-mail address regardless of case;
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn update(&self, user: &User) -> Result<bool, StoreError>;

    /// Replaces the user's password hash; returns false when there is no such user.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn update_password_hash(
        &self,
        id: UserId,
        hash: &PasswordHash,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
}

/// Sessions and their refresh tokens (stored only as hashes).
#[async_trait]
pub trait TokenRepository: Send + Sync {
    /// Stores a new session together with its first refresh token.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn create_session(
        &self,
        session: &Session,
        first_token: &RefreshTokenRecord,
    ) -> Result<(), StoreError>;

    /// Rotates a refresh token in one atomic step: when `presented` is live (unused, unexpired,
    /// session not revoked, user active) it is marked used, `next` is stored in its place with
    /// `next_expires_at`, and the session is extended to that time. Of several concurrent callers
    /// presenting the same token, exactly one gets [`RotationOutcome::Rotated`]. A token that was
    /// already used revokes its whole session and gives [`RotationOutcome::Reused`].
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`]; nothing is changed then.
    async fn rotate_refresh_token(
        &self,
        presented: &RefreshTokenHash,
        next: &RefreshTokenHash,
        next_expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<RotationOutcome, StoreError>;

    /// The session a refresh token belongs to, whatever its state.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn find_session_of_refresh_token(
        &self,
        hash: &RefreshTokenHash,
    ) -> Result<Option<SessionId>, StoreError>;

    /// Revokes one session; returns false when it was unknown or already revoked.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn revoke_session(
        &self,
        id: SessionId,
        reason: RevocationReason,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Revokes every live session of a user but `except`; returns how many.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn revoke_user_sessions(
        &self,
        user_id: UserId,
        except: Option<SessionId>,
        reason: RevocationReason,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError>;
}

/// Housekeeping of what no longer matters.
#[async_trait]
pub trait Purge: Send + Sync {
    /// Deletes sessions (with their refresh tokens) that expired before `now` or were revoked
    /// before `revoked_before`, refresh tokens that expired before `now`, audit events older
    /// than `audit_before`, and login-failure counters idle since `throttle_before` and not
    /// locked at `now`. Returns how many rows went.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn purge(
        &self,
        now: DateTime<Utc>,
        revoked_before: DateTime<Utc>,
        audit_before: DateTime<Utc>,
        throttle_before: DateTime<Utc>,
    ) -> Result<u64, StoreError>;
}

/// The audit trail.
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Appends an event.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn record(&self, event: &AuditEvent) -> Result<(), StoreError>;

    /// Events matching the filter, newest first.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn list(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError>;
}

/// How failed logins lock an account.
#[derive(Debug, Clone, Copy)]
pub struct LockoutPolicy {
    /// Consecutive failures that lock the account.
    pub max_failures: u32,
    /// The first lock's length; each further lock (without a success between) doubles it.
    pub base: chrono::Duration,
    /// The longest a lock may grow to.
    pub max: chrono::Duration,
}

impl LockoutPolicy {
    /// How long the lock after `previous_locks` earlier locks lasts.
    pub fn lock_length(&self, previous_locks: u32) -> chrono::Duration {
        let factor = 1i32 << previous_locks.min(16);
        (self.base * factor).min(self.max)
    }
}

/// What the store knows of one login key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThrottleState {
    /// Consecutive failures since the last lock or success.
    pub failures: u32,
    /// Locks since the last success (each one doubles the next).
    pub locks: u32,
    /// Set while the key is locked.
    pub locked_until: Option<DateTime<Utc>>,
}

/// Consecutive failed logins per account, in the shared store so every replica sees them.
/// Keys are lower-cased usernames, so unknown usernames lock exactly like real ones and a
/// lockout says nothing about whether an account exists.
#[async_trait]
pub trait LoginThrottle: Send + Sync {
    /// The key's failures and locks; `locked_until` only when it is locked at `now`.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn state(&self, key: &str, now: DateTime<Utc>) -> Result<ThrottleState, StoreError>;

    /// Counts one failure, atomically. When the count reaches `policy.max_failures` the key is
    /// locked for [`LockoutPolicy::lock_length`] and the count starts again; the end of that new
    /// lock is returned.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn record_failure(
        &self,
        key: &str,
        now: DateTime<Utc>,
        policy: &LockoutPolicy,
    ) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Forgets the key's failures and earlier locks (after a successful login).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn record_success(&self, key: &str) -> Result<(), StoreError>;
}

/// Whether the store answers at all, for `/health`.
#[async_trait]
pub trait HealthProbe: Send + Sync {
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// A failure of the password hasher.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Every hashing slot stayed busy for the whole bounded wait; retry after this many seconds.
    #[error("password hashing is saturated")]
    Busy { retry_after_secs: u64 },
    /// The hasher failed (bad parameters, a corrupt stored hash).
    #[error("password hashing failed: {0}")]
    Failed(String),
}

/// Hashes and verifies passwords (argon2id in production).
#[async_trait]
pub trait PasswordHasher: Send + Sync {
    /// Hashes a new password into a PHC string with the configured parameters.
    ///
    /// # Errors
    /// [`HashError::Busy`] when no slot frees up in time; [`HashError::Failed`].
    async fn hash(&self, password: &Password) -> Result<PasswordHash, HashError>;

    /// Whether `password` matches `hash`.
    ///
    /// Every "no" costs the same work, whatever `hash` is (a current hash, a hash of another
    /// algorithm or cost, the dummy hash, an unusable one), so that the time to reject a wrong
    /// password tells nothing about the account. A stored `hash` that cannot be verified (corrupt,
    /// or outside what [`PasswordHasher::is_supported`] accepts) answers `false` after that same
    /// work and is logged as an error: a login against it fails like a wrong password.
    ///
    /// # Errors
    /// [`HashError::Busy`] when no slot frees up in time; [`HashError::Failed`] when the hasher
    /// itself fails (never because of `hash`).
    async fn verify(&self, password: &Password, hash: &PasswordHash) -> Result<bool, HashError>;

    /// A hash of a random password, made at start-up, verified against for unknown usernames so
    /// that they cost the same as wrong passwords.
    fn dummy_hash(&self) -> &PasswordHash;

    /// Whether `hash` is one this hasher can and will verify (for imports): its format checked
    /// completely (prefix, encoding, lengths, every parameter) and its parameters within what
    /// the hasher accepts (costs bounded so that one verification cannot stall or exhaust the
    /// hashing threads, or take a recognisably different time). A hash accepted here never makes
    /// [`PasswordHasher::verify`] fail; a hash refused here is refused at import.
    fn is_supported(&self, hash: &PasswordHash) -> bool;

    /// Whether `hash` was made with other parameters (or algorithm) than the configured ones.
    fn needs_rehash(&self, hash: &PasswordHash) -> bool;
}

/// Why an access token was refused. The reason is for logs; clients only learn "invalid_token".
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("access token rejected: {0}")]
    Invalid(&'static str),
    #[error("access token expired")]
    Expired,
    #[error("access token could not be signed: {0}")]
    Signing(String),
}

/// Signs and verifies access tokens.
pub trait AccessTokenCodec: Send + Sync {
    /// Signs the claims into a compact token.
    ///
    /// # Errors
    /// [`TokenError::Signing`].
    fn sign(&self, claims: &AccessClaims) -> Result<String, TokenError>;

    /// Verifies signature, algorithm, type, issuer and audience, and `exp`/`nbf` against `now`
    /// (with the configured leeway).
    ///
    /// # Errors
    /// [`TokenError::Invalid`] or [`TokenError::Expired`].
    fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<AccessClaims, TokenError>;
}

/// The time, through a port so tests can move it.
pub trait Clock: Send + Sync {
    /// Now, truncated to microseconds (the precision every store keeps).
    fn now(&self) -> DateTime<Utc>;
}
