//! Mail and account recovery: the single-use tokens of e-mail verification and password reset,
//! the mails that carry them, and the two ports behind them: the durable outbox ([`MailStore`])
//! and the transport that sends one message ([`MailTransport`]).
//!
//! A token is 256 random bits, handed out once (in a mail) and stored only as its SHA-256. The
//! mail that carries it is written to the outbox in the same commit as the token, so a token
//! never exists without its mail, and a mail is never lost: the worker claims it under a lease,
//! sends it, and marks it sent; a failure schedules a retry.

use std::fmt;

use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::ports::StoreError;
use super::user::{EmailAddress, UserId};

/// What a token (and the mail carrying it) is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenPurpose {
    /// Proves the user reads the mail of their address (24 hours).
    EmailVerification,
    /// Sets a new password without the old one (30 minutes).
    PasswordReset,
}

impl TokenPurpose {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EmailVerification => "email_verification",
            Self::PasswordReset => "password_reset",
        }
    }

    /// The purpose stored under `raw`.
    pub fn parse(raw: &str) -> Option<Self> {
        [Self::EmailVerification, Self::PasswordReset]
            .into_iter()
            .find(|p| p.as_str() == raw)
    }

    /// How long a token of this purpose may be used.
    pub fn lifetime(self) -> chrono::Duration {
        match self {
            Self::EmailVerification => chrono::Duration::hours(24),
            Self::PasswordReset => chrono::Duration::minutes(30),
        }
    }
}

/// A single-use token as the user holds it. Its `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct MailToken(String);

impl MailToken {
    /// A fresh token: 256 random bits from the operating system, base64url.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Wraps a token a client presented (unchecked: an unknown token matches nothing).
    pub fn from_presented(raw: &str) -> Self {
        Self(raw.to_owned())
    }

    /// The token, to put in the mail.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The hash it is stored under (lowercase hex SHA-256).
    pub fn hash(&self) -> MailTokenHash {
        MailTokenHash(hex::encode(Sha256::digest(self.0.as_bytes())))
    }
}

impl fmt::Debug for MailToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MailToken([REDACTED])")
    }
}

/// The lowercase hex SHA-256 of a [`MailToken`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MailTokenHash(String);

impl MailTokenHash {
    /// Wraps a hash read from storage.
    pub fn from_hex(hex: String) -> Self {
        Self(hex)
    }

    /// The hex string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A token as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenGrant {
    pub hash: MailTokenHash,
    pub purpose: TokenPurpose,
    pub user_id: UserId,
    /// The address the token was sent to.
    pub email: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A mail's subject and bodies.
#[derive(Clone, PartialEq, Eq)]
pub struct MailContent {
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl fmt::Debug for MailContent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The bodies carry a token.
        f.debug_struct("MailContent")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// A mail to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMail {
    /// Unique; also the `Message-ID`, so a duplicate delivery is recognisable.
    pub id: Uuid,
    pub user_id: UserId,
    pub to: String,
    pub kind: TokenPurpose,
    pub content: MailContent,
    pub created_at: DateTime<Utc>,
}

/// A mail a worker claimed and now sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedMail {
    pub id: Uuid,
    pub user_id: UserId,
    pub to: String,
    pub kind: TokenPurpose,
    pub content: MailContent,
    /// Failed attempts before this one.
    pub attempts: u32,
}

/// The answer of [`MailStore::issue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Issued {
    /// The token and its mail are stored.
    Queued,
    /// The address already got `limit` mails in the window: nothing was stored.
    RateLimited,
}

/// The answer of [`MailStore::verify_email`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// The user's address is verified now.
    Verified(UserId),
    /// The token was good, but the user's address changed since: it is used up, nothing set.
    AddressChanged(UserId),
    /// Unknown, used, expired, or of another purpose.
    Invalid,
}

/// The per-address limit of mails: at most `max` mails to one address (regardless of case)
/// created after `since`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressLimit {
    pub max: u32,
    pub since: DateTime<Utc>,
}

/// The durable side of mail: tokens and the outbox.
#[async_trait]
pub trait MailStore: Send + Sync {
    /// In one commit: deletes the user's unused tokens of `token.purpose`, stores `token` and
    /// queues `mail` (due at once), unless `limit` is reached for `mail.to`, in which case
    /// nothing is stored. Concurrent calls for one address (from any replica) never exceed the
    /// limit together.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`]; nothing is stored then.
    async fn issue(
        &self,
        token: &TokenGrant,
        mail: &NewMail,
        limit: AddressLimit,
    ) -> Result<Issued, StoreError>;

    /// The unused, unexpired token of `purpose` with this hash, without using it.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn find_token(
        &self,
        hash: &MailTokenHash,
        purpose: TokenPurpose,
        now: DateTime<Utc>,
    ) -> Result<Option<TokenGrant>, StoreError>;

    /// Uses the token in one atomic step: of concurrent callers, exactly one gets it back;
    /// `None` when it is unknown, used, expired or of another purpose.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn consume_token(
        &self,
        hash: &MailTokenHash,
        purpose: TokenPurpose,
        now: DateTime<Utc>,
    ) -> Result<Option<TokenGrant>, StoreError>;

    /// In one commit: uses the verification token and sets the user's `email_verified` if the
    /// user's address is still the one the token was sent to.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn verify_email(
        &self,
        hash: &MailTokenHash,
        now: DateTime<Utc>,
    ) -> Result<Verification, StoreError>;

    /// The id of the user with this e-mail address (regardless of case).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn find_user_by_email(&self, email: &EmailAddress) -> Result<Option<UserId>, StoreError>;

    /// Claims up to `limit` unsent mails due at `now` whose lease is free, leasing them until
    /// `lease_until`: until then no other caller (in any replica) claims them.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ClaimedMail>, StoreError>;

    /// Marks a mail sent (and empties its bodies, which hold a token in clear).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn mark_sent(&self, id: Uuid, now: DateTime<Utc>) -> Result<(), StoreError>;

    /// Records a failed attempt: counts it, keeps `error` (no address, no token), frees the
    /// lease and makes the mail due again at `retry_at`.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn mark_failed(
        &self,
        id: Uuid,
        error: &str,
        retry_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// How many mails are unsent, and when the next one may be claimed: its retry time, or the
    /// end of its lease if later (so a worker does not spin on mails another one is sending).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn outbox_state(&self) -> Result<(u64, Option<DateTime<Utc>>), StoreError>;
}

/// Why a send failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct SendError(pub String);

/// Sends one message (SMTP, or a file in development).
#[async_trait]
pub trait MailTransport: Send + Sync {
    /// Sends `mail`, with `mail.id` as its `Message-ID`.
    ///
    /// # Errors
    /// [`SendError`] with a reason that names no address and no token.
    async fn send(&self, mail: &ClaimedMail) -> Result<(), SendError>;
}

/// What a mail says, before it is written.
#[derive(Debug, Clone, Copy)]
pub enum MailMessage<'a> {
    /// The verification of `email`, with the token.
    Verification {
        username: &'a str,
        token: &'a MailToken,
    },
    /// The password reset link.
    PasswordReset {
        username: &'a str,
        token: &'a MailToken,
    },
}

/// Writes a mail's subject and bodies (templates, links to the public URL).
pub trait MailComposer: Send + Sync {
    /// The content of `message`.
    fn compose(&self, message: MailMessage<'_>) -> MailContent;
}

/// Wakes the sender of this process at once after a mail was queued (others poll).
pub trait MailWaker: Send + Sync {
    /// Wakes the sender; a no-op when none runs.
    fn wake(&self);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_256_random_bits_stored_only_as_their_hash_and_never_shown() {
        let token = MailToken::generate();
        assert_eq!(token.expose().len(), 43);
        assert_ne!(token, MailToken::generate());
        assert_eq!(
            token.hash(),
            MailToken::from_presented(token.expose()).hash()
        );
        assert_eq!(token.hash().as_str().len(), 64);
        assert!(!format!("{token:?}").contains(token.expose()));
        assert_eq!(
            TokenPurpose::parse("password_reset"),
            Some(TokenPurpose::PasswordReset)
        );
        assert_eq!(TokenPurpose::parse("x"), None);
    }
}
