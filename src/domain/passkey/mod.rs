//! Passkeys (WebAuthn credentials) and the ceremonies that register and use them.
//!
//! The domain keeps a credential as the opaque text the WebAuthn adapter serialised (public key,
//! signature counter, backup state), beside what the service itself needs of it: its owner, its
//! credential id (unique across users), a name the user chose, and when it was added and used.
//! A ceremony's state (its challenge) lives in the shared store for a few minutes and is taken
//! once, so any replica can finish what another started and no challenge is answered twice.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::id::uuid_id;
use super::ports::StoreError;
use super::user::UserId;

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

/// Passkeys and WebAuthn ceremonies in the shared store.
#[async_trait]
pub trait PasskeyRepository: Send + Sync {
    /// Stores a ceremony.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn insert_ceremony(&self, ceremony: &Ceremony) -> Result<(), StoreError>;

    /// Takes (deletes and returns) the ceremony `id` if it is of `kind`, for `user_id`, and not
    /// expired at `now`. Of concurrent callers, at most one gets it; a taken ceremony is gone
    /// whatever the finish then decides.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn take_ceremony(
        &self,
        id: CeremonyId,
        kind: CeremonyKind,
        user_id: Option<UserId>,
        now: DateTime<Utc>,
    ) -> Result<Option<Ceremony>, StoreError>;

    /// Stores a new passkey and adds one to its user's `passkey_count`, in one commit, unless
    /// its credential id is registered already or the user has `max` passkeys.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn add_passkey(&self, passkey: &Passkey, max: u32) -> Result<AddOutcome, StoreError>;

    /// The user's passkeys, oldest first.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn list_passkeys(&self, user_id: UserId) -> Result<Vec<Passkey>, StoreError>;

    /// The passkey with this WebAuthn credential id.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn find_by_credential_id(
        &self,
        credential_id: &str,
    ) -> Result<Option<Passkey>, StoreError>;

    /// Records a use: stores the updated `credential` and `sign_count` and sets `last_used_at`,
    /// only if the stored counter is still below `sign_count` (or both are 0: an authenticator
    /// without a counter). Of two uses racing with one counter value, one is recorded; false
    /// for the other, and when the passkey is gone.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn record_use(
        &self,
        id: PasskeyId,
        credential: &str,
        sign_count: u32,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Deletes the passkey `id` of `user_id` and takes one from the user's `passkey_count`, in
    /// one commit; false when the user has no such passkey (another user's included).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn delete_passkey(&self, user_id: UserId, id: PasskeyId) -> Result<bool, StoreError>;

    /// Deletes ceremonies that expired before `now`; returns how many.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn purge_ceremonies(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;
}

/// Options for the browser and the state to keep, from the start of a ceremony.
pub struct Challenge {
    /// The JSON the browser's `navigator.credentials.create`/`get` takes (`{"publicKey": …}`).
    pub options: String,
    /// The adapter's state, to be stored with the ceremony.
    pub state: String,
}

/// A credential the WebAuthn adapter verified at registration.
pub struct NewCredential {
    pub credential_id: String,
    pub credential: String,
    pub sign_count: u32,
}

/// An assertion the WebAuthn adapter verified.
pub struct VerifiedUse {
    /// The credential with its counter and backup state updated.
    pub credential: String,
    pub sign_count: u32,
}

/// Why the WebAuthn adapter refused a response.
#[derive(Debug, thiserror::Error)]
pub enum WebAuthnError {
    /// Not a WebAuthn response at all (bad JSON, bad base64, missing fields).
    #[error("malformed WebAuthn response: {0}")]
    Malformed(String),
    /// A well-formed response that does not verify (challenge, origin, RP id, signature, user
    /// verification, counter); the text says what, without secrets.
    #[error("WebAuthn response refused: {0}")]
    Refused(String),
    /// The credential is one the ceremony excluded (already registered to the user).
    #[error("this credential is registered already")]
    AlreadyRegistered,
    /// The adapter itself failed (a stored state that does not decode).
    #[error("WebAuthn failure: {0}")]
    Internal(String),
}

/// The WebAuthn relying party: creates challenges and verifies the browser's answers.
pub trait WebAuthn: Send + Sync {
    /// A registration for `user_id` (also the WebAuthn user handle), excluding `existing`
    /// credentials; the credential must be discoverable and user-verified.
    ///
    /// # Errors
    /// [`WebAuthnError::Internal`].
    fn start_registration(
        &self,
        user_id: UserId,
        username: &str,
        existing: &[Passkey],
    ) -> Result<Challenge, WebAuthnError>;

    /// Verifies a registration response (`response`: the browser's credential JSON).
    ///
    /// # Errors
    /// [`WebAuthnError`].
    fn finish_registration(
        &self,
        state: &str,
        response: &str,
    ) -> Result<NewCredential, WebAuthnError>;

    /// The credential id (base64url) a registration response names, unverified: to tell a
    /// credential registered already (webauthn-rs reports an excluded credential as an altered
    /// algorithm).
    ///
    /// # Errors
    /// [`WebAuthnError::Malformed`].
    fn registration_credential_id(&self, response: &str) -> Result<String, WebAuthnError>;

    /// A usernameless authentication: any discoverable credential of this relying party.
    ///
    /// # Errors
    /// [`WebAuthnError::Internal`].
    fn start_discoverable(&self) -> Result<Challenge, WebAuthnError>;

    /// An authentication restricted to `passkeys` (one user's).
    ///
    /// # Errors
    /// [`WebAuthnError::Internal`].
    fn start_for(&self, passkeys: &[Passkey]) -> Result<Challenge, WebAuthnError>;

    /// The credential id (base64url) and user handle an assertion names, unverified: which
    /// passkey to verify it with.
    ///
    /// # Errors
    /// [`WebAuthnError::Malformed`].
    fn identify(&self, response: &str) -> Result<(String, Option<uuid::Uuid>), WebAuthnError>;

    /// Verifies an assertion against the ceremony `state` and the stored `passkey`.
    ///
    /// # Errors
    /// [`WebAuthnError`].
    fn finish_authentication(
        &self,
        kind: CeremonyKind,
        state: &str,
        response: &str,
        passkey: &Passkey,
    ) -> Result<VerifiedUse, WebAuthnError>;
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
