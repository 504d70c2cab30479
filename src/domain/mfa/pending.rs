//! The pending sign-in of the hosted login page: after a right password for a user with a
//! second factor, the page asks for the code. What the two steps share is stored (so any
//! replica can take the second step) under the hash of a random token that the page carries in
//! a hidden field; it lives a few minutes and is taken once.

use std::fmt;

use chrono::{DateTime, Utc};

use crate::domain::user::UserId;

/// How long the second step may be taken after the password.
pub const PENDING_SIGNIN_SECONDS: i64 = 300;

/// The token of a pending sign-in (256 random bits). `Debug` redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct PendingSigninToken(String);

impl PendingSigninToken {
    /// A fresh token.
    pub fn generate() -> Self {
        Self(crate::domain::oidc::random_token())
    }

    /// Wraps a token a form sent back (unchecked: an unknown one matches nothing).
    pub fn from_presented(raw: &str) -> Self {
        Self(raw.to_owned())
    }

    /// The value to put in the form.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The hash it is stored under.
    pub fn hash(&self) -> PendingSigninHash {
        PendingSigninHash(crate::domain::oidc::token_hash(&self.0))
    }
}

impl fmt::Debug for PendingSigninToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PendingSigninToken([REDACTED])")
    }
}

/// The lowercase hex SHA-256 of a pending sign-in token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PendingSigninHash(String);

impl PendingSigninHash {
    /// Wraps a hash read from storage.
    pub fn from_hex(hex: String) -> Self {
        Self(hex)
    }

    /// The hex string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password step waiting for its second factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingSignin {
    pub hash: PendingSigninHash,
    pub user_id: UserId,
    /// The user's credential version when the password was checked: a password change
    /// meanwhile voids the pending sign-in.
    pub credential_version: i64,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}
