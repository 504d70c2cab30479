//! The user's own view of their account: the sessions they can see and end, where a session
//! came from, and the deletion of the account.

use std::net::IpAddr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::audit::AuditEvent;
use super::client::ClientId;
use super::ports::StoreError;
use super::session::SessionId;
use super::user::UserId;

/// Where a session was started: the client address and `User-Agent` of the request that
/// started it, shown to the user in their session list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionOrigin {
    pub ip: Option<IpAddr>,
    /// At most [`SessionOrigin::MAX_USER_AGENT_CHARS`] characters of the header, as sent.
    pub user_agent: Option<String>,
}

impl SessionOrigin {
    /// The longest user agent kept (longer ones are cut at a character boundary): real
    /// browsers send ~150 characters, and the HTTP layer keeps 256; an unbounded header would
    /// be an unbounded row.
    pub const MAX_USER_AGENT_CHARS: usize = 256;

    /// The origin of a request from `ip` with `user_agent`.
    pub fn new(ip: Option<IpAddr>, user_agent: Option<&str>) -> Self {
        Self {
            ip,
            user_agent: user_agent.map(|ua| ua.chars().take(Self::MAX_USER_AGENT_CHARS).collect()),
        }
    }
}

/// A live session as its user sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSummary {
    pub id: SessionId,
    pub created_at: DateTime<Utc>,
    /// The session's start, then its last refresh-token rotation (not every access-token use:
    /// that would be a write per authenticated request).
    pub last_used_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub origin: SessionOrigin,
    /// The OAuth client its tokens were issued to, if any.
    pub client_id: Option<ClientId>,
    /// Whether it is a browser sign-in of the hosted login page (no refresh token of its own).
    pub browser: bool,
}

/// What [`AccountRepository::delete_user`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletion {
    /// The user row is gone, with everything that hangs on it; the audit trail is scrubbed.
    Deleted,
    /// There is no such user.
    NotFound,
    /// The user is the last active admin; nothing was changed.
    LastAdmin,
}

/// The account operations of a user's own sessions and of deletion.
#[async_trait]
pub trait AccountRepository: Send + Sync {
    /// The user's live sessions (not revoked, not expired at `now`), newest first, browser
    /// sign-ins included.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn list_sessions(
        &self,
        user_id: UserId,
        now: DateTime<Utc>,
    ) -> Result<Vec<SessionSummary>, StoreError>;

    /// Revokes session `id` and every session started from it (at any depth), but only when it
    /// belongs to `user_id` and is live at `now`; returns whether it did. Another user's session
    /// is answered like an unknown one.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`]; nothing is changed then.
    async fn end_session(
        &self,
        user_id: UserId,
        id: SessionId,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Deletes user `user_id` in one commit: the user row (its sessions, refresh tokens,
    /// authorization codes and every other table that references the user go with it), its
    /// login-failure counter, and the personal data in the audit trail (username, IP and user
    /// agent of the user's events, the username of events that name it without an id, and
    /// the username an admin's `user_updated` detail carries), then records `event`. The last
    /// active admin is never deleted ([`Deletion::LastAdmin`], nothing changes); of concurrent
    /// deletions of the last two admins, one is refused.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`]; nothing is changed then.
    async fn delete_user(
        &self,
        user_id: UserId,
        event: &AuditEvent,
    ) -> Result<Deletion, StoreError>;
}

/// The text an admin's `user_updated` detail starts with: `by <admin's username>: ` (see
/// `UserService::update_user`). Deleting that admin rewrites it to `by <admin's id>: `.
pub fn updated_by_prefix(actor: &str) -> String {
    format!("by {actor}: ")
}

/// Whether space-separated role names include `admin` (as the stores keep them).
pub fn is_admin_roles(stored: &str) -> bool {
    stored.split(' ').any(|role| role == "admin")
}
