//! The ports of the second factors: their storage, and the sealing of TOTP secrets.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::pending::{PendingSignin, PendingSigninHash};
use super::recovery::RecoveryCodeHash;
use super::totp::{SealedSecret, TotpStep};
use crate::domain::ports::StoreError;
use crate::domain::user::UserId;

/// A user's TOTP authenticator as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpCredential {
    pub sealed: SealedSecret,
    /// False while enrolment waits for its first code.
    pub confirmed: bool,
    /// The last step a code was accepted for (confirmation included).
    pub last_step: Option<TotpStep>,
}

/// A failure to seal or open a secret.
#[derive(Debug, thiserror::Error)]
#[error("secret sealing failed: {0}")]
pub struct SealError(pub &'static str);

/// Encrypts secrets at rest with authenticated encryption, bound to the user they belong to:
/// a sealed secret copied to another user's row does not open.
pub trait SecretSealer: Send + Sync {
    /// Seals `plaintext` for `user` (a fresh random nonce each time).
    ///
    /// # Errors
    /// [`SealError`] when the cipher fails.
    fn seal(&self, user: UserId, plaintext: &[u8]) -> Result<SealedSecret, SealError>;

    /// Opens what [`SecretSealer::seal`] sealed for `user`.
    ///
    /// # Errors
    /// [`SealError`] when it was sealed for another user, with another key, or was altered.
    fn open(&self, user: UserId, sealed: &SealedSecret) -> Result<Vec<u8>, SealError>;
}

/// TOTP authenticators, recovery codes and pending sign-ins. Every write that changes whether
/// a user has TOTP or how many recovery codes are left updates the user's
/// [`crate::domain::user::MfaSummary`] (`totp_enabled`, `recovery_codes_left`) in the same
/// commit.
#[async_trait]
pub trait MfaRepository: Send + Sync {
    /// Stores `sealed` as the user's pending (unconfirmed) authenticator, replacing a pending
    /// one; returns false, changing nothing, when the user already has a confirmed one.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`] (also for an unknown user).
    async fn store_pending_totp(
        &self,
        user: UserId,
        sealed: &SealedSecret,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// The user's authenticator, pending or confirmed.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn find_totp(&self, user: UserId) -> Result<Option<TotpCredential>, StoreError>;

    /// Confirms the pending authenticator, only if it is still pending and still `sealed` (a
    /// new enrolment meanwhile wins), with `step` as its last accepted step; replaces the
    /// user's recovery codes by `codes`, in the same commit. Returns whether it confirmed.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`]; nothing is changed then.
    async fn confirm_totp(
        &self,
        user: UserId,
        sealed: &SealedSecret,
        step: TotpStep,
        codes: &[RecoveryCodeHash],
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Accepts a code of step `step` for the user's confirmed authenticator: one conditional
    /// update that sets the last accepted step to `step` only if it is later than the stored
    /// one. Of concurrent callers with the same step, exactly one gets true.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn accept_totp_step(&self, user: UserId, step: TotpStep) -> Result<bool, StoreError>;

    /// Uses up one recovery code: deletes it and decrements the user's count, in one commit.
    /// Of concurrent callers with the same code, exactly one gets true.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn use_recovery_code(
        &self,
        user: UserId,
        code: &RecoveryCodeHash,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Removes the user's authenticator (pending or confirmed) and every recovery code, in one
    /// commit. Returns false when there is no such user.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn remove_totp(&self, user: UserId, now: DateTime<Utc>) -> Result<bool, StoreError>;

    /// Stores a pending sign-in (and drops the expired ones).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn insert_pending_signin(&self, pending: &PendingSignin) -> Result<(), StoreError>;

    /// The pending sign-in with this hash, if unexpired at `now`.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn find_pending_signin(
        &self,
        hash: &PendingSigninHash,
        now: DateTime<Utc>,
    ) -> Result<Option<PendingSignin>, StoreError>;

    /// Takes (deletes) the pending sign-in if unexpired at `now`; of concurrent callers exactly
    /// one gets true.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Other`].
    async fn take_pending_signin(
        &self,
        hash: &PendingSigninHash,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
}
