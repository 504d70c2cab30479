//! The two ports of passkeys: their storage (with the ceremonies) and the WebAuthn relying party.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{AddOutcome, Ceremony, CeremonyId, CeremonyKind, Passkey, PasskeyId};
use crate::domain::ports::StoreError;
use crate::domain::user::UserId;

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
    /// Passkeys are off on this server (no usable relying party is configured).
    #[error("passkeys are not configured on this server")]
    Off,
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
