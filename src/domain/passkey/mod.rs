//! Passkeys (WebAuthn credentials) and the ceremonies that register and use them.
//!
//! The domain keeps a credential as the opaque text the WebAuthn adapter serialised (public key,
//! signature counter, backup state), beside what the service itself needs of it: its owner, its
//! credential id (unique across users), a name the user chose, and when it was added and used.
//! A ceremony's state (its challenge) lives in the shared store for a few minutes and is taken
//! once, so any replica can finish what another started and no challenge is answered twice.

mod ports;

use chrono::{DateTime, Utc};

use super::id::uuid_id;
use super::user::UserId;

pub use ports::{
    Challenge, NewCredential, PasskeyRepository, VerifiedUse, WebAuthn, WebAuthnError,
};

uuid_id!(
    /// A passkey's id (not its WebAuthn credential id).
    PasskeyId
);
uuid_id!(
    /// A WebAuthn ceremony in progress.
    CeremonyId
);

/// The most passkeys one user keeps; registering one more is refused (`passkey_limit_reached`).
pub const MAX_PASSKEYS_PER_USER: u32 = 10;
/// How long a ceremony can be finished after it started (browsers time out at 5 minutes too).
pub const CEREMONY_LIFETIME_SECONDS: i64 = 300;
/// The longest passkey name, in characters (Unicode scalar values).
pub const MAX_NAME_CHARS: usize = 64;

/// A passkey name: trimmed, 1 to [`MAX_NAME_CHARS`] characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyName(String);

impl PasskeyName {
    /// Parses a name the user chose.
    ///
    /// # Errors
    /// The broken rule's code (`invalid_length`, `invalid_characters`) and a message.
    pub fn parse(raw: &str) -> Result<Self, (&'static str, &'static str)> {
        let name = raw.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
            return Err(("invalid_length", "must be 1 to 64 characters"));
        }
        if name.chars().any(char::is_control) {
            return Err(("invalid_characters", "must not contain control characters"));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name given to a passkey registered without one.
    pub fn default_name() -> Self {
        Self("Passkey".to_owned())
    }

    /// A stored name (already valid when it was stored).
    pub fn from_stored(name: String) -> Self {
        Self(name)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A registered passkey.
#[derive(Clone, PartialEq, Eq)]
pub struct Passkey {
    pub id: PasskeyId,
    pub user_id: UserId,
    pub name: PasskeyName,
    /// The WebAuthn credential id, base64url without padding (unique across all users).
    pub credential_id: String,
    /// The credential as the WebAuthn adapter serialised it (public key, counter, flags).
    pub credential: String,
    /// The signature counter last seen (0 for authenticators that keep none).
    pub sign_count: u32,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for Passkey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passkey")
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .field("name", &self.name)
            .field("sign_count", &self.sign_count)
            .finish_non_exhaustive()
    }
}

/// What a ceremony is for (the finish must be of the same kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CeremonyKind {
    /// Registering a passkey for a signed-in user.
    Registration,
    /// Signing in with any passkey (usernameless, on the login page).
    Discoverable,
    /// Proving a known user holds one of their passkeys (a second factor).
    SecondFactor,
}

impl CeremonyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registration => "registration",
            Self::Discoverable => "discoverable",
            Self::SecondFactor => "second_factor",
        }
    }
}

/// A ceremony in progress: the state the WebAuthn adapter needs to finish it.
#[derive(Clone)]
pub struct Ceremony {
    pub id: CeremonyId,
    pub kind: CeremonyKind,
    /// The user it is for; `None` for a discoverable sign-in.
    pub user_id: Option<UserId>,
    /// The adapter's serialised state (the challenge among it).
    pub state: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for Ceremony {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ceremony")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("user_id", &self.user_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// The outcome of storing a new passkey.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddOutcome {
    Added,
    /// A passkey with this credential id is registered already (to this user or another).
    Duplicate,
    /// The user has `max` passkeys already.
    LimitReached,
    /// The user does not exist (any more).
    NoSuchUser,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_bounded_in_characters_and_free_of_control_characters() {
        assert_eq!(PasskeyName::parse("  Phone ").unwrap().as_str(), "Phone");
        assert!(PasskeyName::parse("   ").is_err());
        assert!(PasskeyName::parse("a\u{0}b").is_err());
        assert!(PasskeyName::parse("line\nbreak").is_err());
        let emoji = "🔑".repeat(MAX_NAME_CHARS);
        assert_eq!(PasskeyName::parse(&emoji).unwrap().as_str(), emoji);
        assert!(PasskeyName::parse(&"é".repeat(MAX_NAME_CHARS + 1)).is_err());
    }
}
