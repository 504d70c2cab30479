//! The ports: what the application needs from the outside world, in domain types only.
//!
//! Adapters live in `infrastructure` (the storage ones in `infrastructure::db`: SQLite,
//! PostgreSQL, and an in-memory one for tests).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub use super::account::{AccountRepository, Deletion, SessionOrigin, SessionSummary};
use super::audit::{AuditEvent, AuditFilter};
// Second factors (issue 14, TOTP): their own module, re-exported here.
use super::client::{Client, ClientChanges, ClientId, ClientSecretHash};
pub use super::lockout::{
    LockoutPolicy, ThrottleChange, ThrottleEvent, ThrottleOutcome, ThrottleState,
};
pub use super::mail::{MailComposer, MailStore, MailTransport, MailWaker};
pub use super::mfa::{MfaRepository, SealError, SecretSealer, TotpCredential};
use super::oidc::{CodeGrant, CodeHash, IdClaims, Redemption, SigninHash};
use super::session::{
    LiveRefreshToken, NewSession, RefreshTokenHash, RevocationReason, Rotation, RotationOutcome,
    Session, SessionId,
};
use super::token::{AccessClaims, ClientAccessClaims, VerifiedAccess};
use super::user::{LoginKey, Password, PasswordHash, User, UserChanges, UserId};
// Passkeys (issue 14, part P).
pub use super::passkey::{PasskeyRepository, WebAuthn};
// Shared rate limit (issue 15).
pub use super::rate_limit::{Grant, RateBudget, RateQuota};

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

    /// The user whose username has this canonical form.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn find_by_username(&self, key: &LoginKey) -> Result<Option<User>, StoreError>;

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

    /// Whether any user's password hash starts with `prefix` (see
    /// [`PasswordHasher::legacy_hash_prefix`]).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn has_password_hash_with_prefix(&self, prefix: &str) -> Result<bool, StoreError>;

    /// One page of users, oldest first, and the total number of users.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn list(&self, limit: u32, offset: u64) -> Result<(Vec<User>, u64), StoreError>;

    /// Applies an administrator's change in one atomic step, touching only the fields the
    /// change names (two admins changing different fields at once both keep their change); when
    /// it sets `is_active` to false, every session of the user is revoked in the same commit, and
    /// when it sets another e-mail address (or none), `email_verified` becomes false in it.
    /// Returns the user as stored afterwards and how many sessions were revoked, or `None` when
    /// there is no such user.
    ///
    /// # Errors
    /// [`StoreError::EmailTaken`] when another user has the e-mail address regardless of case;
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn update_fields(
        &self,
        id: UserId,
        changes: &UserChanges,
        now: DateTime<Utc>,
    ) -> Result<Option<(User, u64)>, StoreError>;

    /// A password change, in one commit: stores `hash`, bumps the user's credential version
    /// (so a login that checked the old password can no longer start a session), and revokes
    /// every session of the user but `keep`. Returns how many sessions were revoked, or `None`
    /// when there is no such user.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn change_password(
        &self,
        id: UserId,
        hash: &PasswordHash,
        keep: Option<SessionId>,
        now: DateTime<Utc>,
    ) -> Result<Option<u64>, StoreError>;

    /// Replaces the hash `old` by `new` (the same password, rehashed with current parameters)
    /// only if `old` is still the stored hash: an upgrade racing a password change loses.
    /// Returns whether it was replaced.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn upgrade_password_hash(
        &self,
        id: UserId,
        old: &PasswordHash,
        new: &PasswordHash,
    ) -> Result<bool, StoreError>;
}

/// Sessions and their refresh tokens (stored only as hashes).
#[async_trait]
pub trait TokenRepository: Send + Sync {
    /// Stores a new session together with its first refresh token, in one atomic step, only
    /// if the user is active and its credential version is still `new.credential_version`
    /// (a password change committed meanwhile refuses the session), and, for a session with a
    /// `parent_id`, only while that parent is live; such a session's `not_after` and expiry
    /// (and its first token's) are capped at the parent's `not_after`. When the user then has
    /// more than `new.max_live_sessions` live sessions, the oldest are revoked in the same
    /// commit; browser sign-ins are neither counted nor revoked by this cap (the code flow's
    /// sessions are their children, so revoking the oldest sign-in would end all of a user's
    /// apps; sign-ins only come from password checks, which the lockout and rate limit bound).
    /// Returns the session's expiry as stored, or `None` when it was refused.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`]; nothing is stored then.
    async fn create_session(&self, new: &NewSession) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Rotates a refresh token in one atomic step: when `rotation.presented` is live (unused,
    /// unexpired, session not revoked, user active) it is marked used, `rotation.next` is
    /// stored in its place, and the session is extended to `rotation.next_expires_at` but never
    /// past its `not_after`. Of several concurrent callers presenting the same token, exactly
    /// one gets [`RotationOutcome::Rotated`]. A token that was already used revokes its whole
    /// session (and the sessions started from it) and gives [`RotationOutcome::Reused`]. The
    /// audit event of the outcome ([`RotationOutcome::audit_event`] of `rotation.audit`) is
    /// stored in the same commit, so a rotation is never done without its event or the reverse.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`]; nothing is changed then.
    async fn rotate_refresh_token(
        &self,
        rotation: &Rotation,
    ) -> Result<RotationOutcome, StoreError>;

    /// The refresh token with this hash if it is live: unused, unexpired, its session neither
    /// revoked nor expired, its user active. Read only (nothing rotates).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn find_live_refresh_token(
        &self,
        hash: &RefreshTokenHash,
        now: DateTime<Utc>,
    ) -> Result<Option<LiveRefreshToken>, StoreError>;

    /// The browser sign-in whose cookie hashes to `hash`, with its user, if the session is
    /// neither revoked nor expired at `now` and the user is active.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn find_signin(
        &self,
        hash: &SigninHash,
        now: DateTime<Utc>,
    ) -> Result<Option<(Session, Arc<User>)>, StoreError>;

    /// The session a refresh token belongs to, whatever its state.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn find_session_of_refresh_token(
        &self,
        hash: &RefreshTokenHash,
    ) -> Result<Option<SessionId>, StoreError>;

    /// Revokes one session and every session started from it (`parent_id`), at any depth;
    /// returns false when it was unknown or already revoked.
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

/// Authorization codes, stored by hash until the purge.
#[async_trait]
pub trait AuthorizationCodeRepository: Send + Sync {
    /// Stores a newly issued code.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn insert(&self, grant: &CodeGrant) -> Result<(), StoreError>;

    /// Redeems the code with this hash in one atomic step. Unused and unexpired at `now`: it is
    /// marked used by `session_id` (the session the caller is about to start) and
    /// [`Redemption::Fresh`] returns what it was issued for. Already used (expired or not): it
    /// is marked replayed and [`Redemption::Replayed`] names the session of the first
    /// redemption. Otherwise [`Redemption::Unknown`]. Of concurrent redemptions of one code,
    /// exactly one is `Fresh`.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`]; nothing is changed then.
    async fn redeem(
        &self,
        hash: &CodeHash,
        session_id: SessionId,
        now: DateTime<Utc>,
    ) -> Result<Redemption, StoreError>;

    /// Whether the code was presented again after its redemption. The redeemer asks once its
    /// session is stored: a replay that came in between could not revoke it yet, so the
    /// redeemer does.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn was_replayed(&self, hash: &CodeHash) -> Result<bool, StoreError>;
}

/// Registered OAuth clients. Deleting or disabling one revokes every live session issued to it
/// (`NewSession::client_id`) in the same commit, so its tokens stop working at once.
#[async_trait]
pub trait ClientRepository: Send + Sync {
    /// Stores a new client.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn insert(&self, client: &Client) -> Result<(), StoreError>;

    /// The client with this id, active or not.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn find_by_id(&self, id: ClientId) -> Result<Option<Client>, StoreError>;

    /// One page of clients, oldest first, and the total number of clients.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn list(&self, limit: u32, offset: u64) -> Result<(Vec<Client>, u64), StoreError>;

    /// Applies an administrator's change in one atomic step, touching only the fields it names;
    /// when it sets `is_active` to false, every live session of the client is revoked in the
    /// same commit. Returns the client as stored afterwards and how many sessions were revoked,
    /// or `None` when there is no such client.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn update_fields(
        &self,
        id: ClientId,
        changes: &ClientChanges,
        now: DateTime<Utc>,
    ) -> Result<Option<(Client, u64)>, StoreError>;

    /// Deletes the client and revokes every live session of it, in one commit. Returns how many
    /// sessions were revoked, or `None` when there is no such client.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn delete(&self, id: ClientId, now: DateTime<Utc>) -> Result<Option<u64>, StoreError>;

    /// Replaces the client's secret hash (the old secret stops working at once); returns false
    /// when there is no such client.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn set_secret_hash(
        &self,
        id: ClientId,
        hash: &ClientSecretHash,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
}

/// The times a purge deletes by (see [`Purge::purge`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PurgeCutoffs {
    /// Sessions and refresh tokens that expired before it go; a login key locked past it stays.
    pub now: DateTime<Utc>,
    /// Sessions revoked before it go; so do authorization codes that expired before it (kept
    /// until then so that a late replay still revokes what the code issued).
    pub revoked_before: DateTime<Utc>,
    /// Audit events older than it go.
    pub audit_before: DateTime<Utc>,
    /// Login-failure counters idle since before it go (unless locked at `now`).
    pub throttle_before: DateTime<Utc>,
}

/// Housekeeping of what no longer matters.
#[async_trait]
pub trait Purge: Send + Sync {
    /// Deletes sessions (with their refresh tokens) that expired before `cutoffs.now` or were
    /// revoked before `cutoffs.revoked_before`, refresh tokens that expired before
    /// `cutoffs.now`, audit events older than `cutoffs.audit_before`, and login-failure
    /// counters idle since `cutoffs.throttle_before` and not locked at `cutoffs.now`. Returns
    /// how many rows went (a session's refresh tokens go with it uncounted). Not one atomic
    /// step: a purge that fails part-way has deleted some of it, and the next run goes on.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn purge(&self, cutoffs: &PurgeCutoffs) -> Result<u64, StoreError>;
}

/// The audit trail.
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Appends an event.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn record(&self, event: &AuditEvent) -> Result<(), StoreError>;

    /// Learns of an event that another port stored in the same commit as the change it
    /// describes (a refresh-token rotation, say), so that decorators counting events (metrics)
    /// see every event. Stores do nothing here.
    fn observe(&self, _event: &AuditEvent) {}

    /// Events matching the filter, newest first.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn list(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError>;
}

/// The lockout counters per login key, in the shared store so every replica sees them. Keys
/// are canonical usernames ([`LoginKey`]), known or not, so a lockout says nothing about whether
/// an account exists.
#[async_trait]
pub trait LoginThrottle: Send + Sync {
    /// Loads the key's counters, applies `change` to them ([`ThrottleChange::apply`], the
    /// domain's one decision) and stores the result, as one atomic read-modify-write:
    /// concurrent calls for one key, from any replica, are serialised.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`]; nothing is changed then.
    async fn apply(
        &self,
        key: &LoginKey,
        change: ThrottleChange,
    ) -> Result<ThrottleOutcome, StoreError>;
}

/// Whether the store can serve, for `/health`.
#[async_trait]
pub trait HealthProbe: Send + Sync {
    /// Reads and writes a probe row: a store that answers reads but cannot commit a write
    /// (disk full, read-only replica) is not ready.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the store cannot be reached or written.
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

    /// The text every legacy hash starts with (hashes this hasher verifies only to replace
    /// them at the next login, e.g. `$2` for imported bcrypt), if it accepts any.
    fn legacy_hash_prefix(&self) -> Option<&'static str> {
        None
    }

    /// Tells the hasher whether the store may hold legacy hashes. While it may, a failed
    /// verification of any hash costs as much as one of a legacy hash, so that the time of a
    /// wrong answer does not tell which accounts were imported; when none is left, failures
    /// cost an ordinary verification again.
    fn set_legacy_hashes_present(&self, _present: bool) {}
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

    /// Verifies signature, algorithm, type, issuer and audience, refuses any `crit` header, and
    /// checks `exp`, `nbf` and `iat` (not in the future) against `now`, with the configured
    /// leeway.
    ///
    /// # Errors
    /// [`TokenError::Invalid`] or [`TokenError::Expired`].
    fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<AccessClaims, TokenError>;

    /// Signs the claims of a `client_credentials` token (`sub` and `client_id` are the client,
    /// no `sid`): [`AccessTokenCodec::verify`] refuses such a token, so it never passes for a
    /// user's.
    ///
    /// # Errors
    /// [`TokenError::Signing`].
    fn sign_client(&self, claims: &ClientAccessClaims) -> Result<String, TokenError>;

    /// Verifies a token of either kind, with the checks of [`AccessTokenCodec::verify`]
    /// (for introspection).
    ///
    /// # Errors
    /// [`TokenError::Invalid`] or [`TokenError::Expired`].
    fn verify_any(&self, token: &str, now: DateTime<Utc>) -> Result<VerifiedAccess, TokenError>;
}

/// Signs and checks ID tokens (OpenID Connect Core §2), with an asymmetric key published in
/// the JWKS, whatever signs the access tokens.
pub trait IdTokenCodec: Send + Sync {
    /// Signs the claims; the issuer is the codec's.
    ///
    /// # Errors
    /// [`TokenError::Signing`].
    fn sign_id_token(&self, claims: &IdClaims) -> Result<String, TokenError>;

    /// Reads an `id_token_hint` (OpenID Connect RP-Initiated Logout §2): the signature, the
    /// algorithm and the issuer must check out; an expired token is accepted, as the
    /// specification allows. Returns the subject, the audience (client) and the `sid`.
    ///
    /// # Errors
    /// [`TokenError::Invalid`].
    fn read_id_token_hint(&self, token: &str) -> Result<IdTokenHint, TokenError>;
}

/// What an `id_token_hint` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdTokenHint {
    pub subject: UserId,
    pub audience: ClientId,
    pub session_id: SessionId,
}

/// The time, through a port so tests can move it.
pub trait Clock: Send + Sync {
    /// Now, truncated to microseconds (the precision every store keeps).
    fn now(&self) -> DateTime<Utc>;
}
