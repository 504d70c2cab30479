//! Sessions (one login and every token descended from it) and opaque refresh tokens.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::audit::{AuditEvent, AuditEventKind};
use super::client::ClientId;
use super::oidc::{OidcScopes, SigninHash};
use super::user::{Roles, User, UserId};

super::id::uuid_id! {
    /// A session's id: a UUID v7 (the `sid` claim).
    SessionId
}

/// Why a session stopped working.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevocationReason {
    Logout,
    LogoutAll,
    Revoked,
    RefreshTokenReused,
    PasswordChanged,
    UserDisabled,
    /// The user started more sessions than the per-user cap; the oldest go.
    TooManySessions,
    /// The OAuth client the session was issued to was deleted.
    ClientDeleted,
    /// The OAuth client the session was issued to was disabled.
    ClientDisabled,
    /// The authorization code that started the session was presented again (it leaked).
    AuthorizationCodeReused,
    /// A client other than the session's presented its refresh token.
    WrongClient,
    /// The user ended it from their session list.
    EndedByUser,
}

impl RevocationReason {
    /// The reason's name in storage and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Logout => "logout",
            Self::LogoutAll => "logout_all",
            Self::Revoked => "revoked",
            Self::RefreshTokenReused => "refresh_token_reused",
            Self::PasswordChanged => "password_changed",
            Self::UserDisabled => "user_disabled",
            Self::TooManySessions => "too_many_sessions",
            Self::ClientDeleted => "client_deleted",
            Self::ClientDisabled => "client_disabled",
            Self::AuthorizationCodeReused => "authorization_code_reused",
            Self::WrongClient => "wrong_client",
            Self::EndedByUser => "ended_by_user",
        }
    }
}

/// One login: the scope it was granted and how long its refresh tokens may keep it alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: SessionId,
    pub user_id: UserId,
    /// The roles granted at login; every token of the session carries them.
    pub scope: Roles,
    /// The OpenID scope values granted (code flow only; stored with the roles in `scope`).
    pub oidc: OidcScopes,
    pub created_at: DateTime<Utc>,
    /// When the newest refresh token of the session expires.
    pub expires_at: DateTime<Utc>,
    /// The absolute end: no rotation extends the session past it (`SESSION_MAX_LIFETIME_SECONDS`
    /// after the login; a session started from another one keeps that one's end).
    pub not_after: DateTime<Utc>,
    /// The session this one was started from with `POST /auth/refresh-token`, if any: revoking
    /// that one revokes this one too, so a stolen access token cannot mint a session that
    /// outlives its victim's logout.
    pub parent_id: Option<SessionId>,
    /// The OAuth client the session's tokens are issued to; `None` for the password grant and
    /// for browser sign-ins. Deleting or disabling that client revokes the session. A session
    /// started from another one inherits the parent's client.
    pub client_id: Option<ClientId>,
}

/// A session to start (see [`crate::domain::ports::TokenRepository::create_session`]).
#[derive(Debug, Clone)]
pub struct NewSession {
    pub session: Session,
    /// The session's first refresh token; `None` for a browser sign-in, which has none.
    pub first_token: Option<RefreshTokenRecord>,
    /// For a browser sign-in, the hash of its cookie's token (unique), by which
    /// [`crate::domain::ports::TokenRepository::find_signin`] finds it.
    pub signin: Option<SigninHash>,
    /// The user's credential version the caller checked the password (or token) against.
    pub credential_version: i64,
    /// The most live sessions a user keeps; the oldest beyond are revoked.
    pub max_live_sessions: u32,
    /// Where the session was started (IP and user agent), shown in the user's session list.
    pub origin: super::account::SessionOrigin,
}

/// A refresh token to rotate (see
/// [`crate::domain::ports::TokenRepository::rotate_refresh_token`]).
#[derive(Debug, Clone)]
pub struct Rotation {
    pub presented: RefreshTokenHash,
    pub next: RefreshTokenHash,
    /// The replacement's expiry, before the session's `not_after` caps it.
    pub next_expires_at: DateTime<Utc>,
    pub now: DateTime<Utc>,
    /// How long after its rotation a used token may be presented again and get the same
    /// `next` back ([`RotationOutcome::Retried`]); zero: never (any reuse revokes). Only sound
    /// when `next` is a function of the presented token (see `RefreshSuccessorKey`).
    pub grace: chrono::Duration,
    /// Id, time, IP and user agent of the audit event the outcome will be recorded as.
    pub audit: AuditEvent,
}

/// The opaque refresh token a client holds: 256 random bits, base64url without padding.
/// Its `Debug` is redacted; only its hash is ever stored.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshToken(String);

impl RefreshToken {
    /// Number of random bytes in a token.
    pub const BYTES: usize = 32;

    /// A fresh token from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut bytes = [0u8; Self::BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Wraps a token a client presented (not checked: an unknown token simply matches nothing).
    pub fn from_presented(raw: &str) -> Self {
        Self(raw.to_owned())
    }

    /// The token to hand to the client.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The SHA-256 hash under which the token is stored. A plain hash suffices: the token has
    /// 256 bits of entropy, so it cannot be guessed from its hash.
    pub fn hash(&self) -> RefreshTokenHash {
        RefreshTokenHash(hex::encode(Sha256::digest(self.0.as_bytes())))
    }
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshToken([REDACTED])")
    }
}

/// The lowercase hex SHA-256 of a refresh token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RefreshTokenHash(String);

impl RefreshTokenHash {
    /// Wraps a hash read from storage.
    pub fn from_hex(hex: String) -> Self {
        Self(hex)
    }
    /// The hex string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A refresh token as stored: its hash, its session and its lifetime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenRecord {
    pub hash: RefreshTokenHash,
    pub session_id: SessionId,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A live refresh token, as introspection and revocation see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveRefreshToken {
    pub session: Session,
    pub user: Box<User>,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

/// What the store did with a presented refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotationOutcome {
    /// The token was live: it is now used, the replacement is stored, and the session (with its
    /// user, for the new access token) is returned.
    Rotated { session: Session, user: Box<User> },
    /// The token had been rotated no more than `grace` ago into `next`, which is still live
    /// and unused: a retry after a lost response. Nothing was changed; the caller hands out
    /// `next` again with a fresh access token.
    Retried { session: Session, user: Box<User> },
    /// The token had already been rotated: the whole session has been revoked.
    Reused {
        session_id: SessionId,
        user_id: UserId,
    },
    /// Unknown, expired, or its session or user is no longer active.
    Invalid,
}

impl RotationOutcome {
    /// The audit event that records this outcome, made from `template` (its id, time, IP and
    /// user agent); `None` for an invalid token, which is not an event.
    pub fn audit_event(&self, template: &AuditEvent) -> Option<AuditEvent> {
        let mut event = template.clone();
        match self {
            Self::Rotated { session, user } => {
                event.kind = AuditEventKind::TokenRefreshed;
                event.user_id = Some(user.id);
                event.username = Some(user.username.as_str().to_owned());
                event.success = true;
                event.detail = Some(format!("session {}", session.id));
            }
            Self::Retried { session, user } => {
                event.kind = AuditEventKind::RefreshTokenRetried;
                event.user_id = Some(user.id);
                event.username = Some(user.username.as_str().to_owned());
                event.success = true;
                event.detail = Some(format!(
                    "just-rotated refresh token presented again within the grace window; same successor returned; session {}",
                    session.id
                ));
            }
            Self::Reused {
                session_id,
                user_id,
            } => {
                event.kind = AuditEventKind::RefreshTokenReused;
                event.user_id = Some(*user_id);
                event.success = false;
                event.detail = Some(format!(
                    "already-rotated refresh token presented; session {session_id} revoked"
                ));
            }
            Self::Invalid => return None,
        }
        Some(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_tokens_carry_256_random_bits_in_base64url() {
        let token = RefreshToken::generate();
        let decoded = URL_SAFE_NO_PAD.decode(token.expose()).unwrap();
        assert_eq!(decoded.len(), 32);
        assert_ne!(token, RefreshToken::generate());
        assert!(!format!("{token:?}").contains(token.expose()));
    }

    #[test]
    fn a_refresh_token_hash_is_stable_and_not_the_token() {
        let token = RefreshToken::from_presented("abc");
        assert_eq!(token.hash(), RefreshToken::from_presented("abc").hash());
        assert_eq!(
            token.hash().as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}

/// What a store tells the holders of anything derived from its sessions (a live-session cache)
/// to forget: published after the change committed, on this process for its own writes and, on
/// PostgreSQL, on every replica for any write (see the store's invalidation feed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalidation {
    /// This session ended (revoked, shortened or deleted).
    Session(SessionId),
    /// This user changed or was deleted; every one of their sessions may have ended.
    User(UserId),
    /// Anything may have changed.
    All,
    /// The feed of other processes' changes is down: nothing derived may be trusted until
    /// [`Invalidation::FeedRestored`] (changes made meanwhile are not published).
    FeedLost,
    /// The feed is back; whatever was derived before it went down is stale.
    FeedRestored,
}

impl Invalidation {
    /// Whether this invalidation covers session `session` of user `user`.
    pub fn covers(&self, user: UserId, session: SessionId) -> bool {
        match self {
            Self::Session(id) => *id == session,
            Self::User(id) => *id == user,
            Self::All | Self::FeedLost | Self::FeedRestored => true,
        }
    }
}

/// Told of every [`Invalidation`] of a store it subscribed to. Called on the publishing
/// thread: must be quick and must not block.
pub trait InvalidationListener: Send + Sync {
    fn invalidated(&self, what: &Invalidation);
}

/// The invalidations a store publishes (the cache-invalidation port).
pub trait InvalidationFeed: Send + Sync {
    /// Adds `listener` for every invalidation published from now on.
    fn subscribe(&self, listener: std::sync::Arc<dyn InvalidationListener>);
}
