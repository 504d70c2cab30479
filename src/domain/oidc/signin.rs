//! The browser sign-in behind the hosted login page: after a good password, the browser holds
//! an opaque token in an `HttpOnly` cookie, and the service holds a session (with no refresh
//! token of its own) under the token's hash. Every later authorization for any client reuses
//! it until it ends; the sessions of the code flow are started as its children, so ending it
//! (RP-initiated logout, a password change, an admin disabling the user) ends them too.

use std::fmt;

/// The sign-in cookie's value. Its `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct SigninToken(String);

impl SigninToken {
    /// A fresh token.
    pub fn generate() -> Self {
        Self(super::random_256())
    }

    /// Wraps a cookie value the browser sent (unchecked: an unknown one matches nothing).
    pub fn from_presented(raw: &str) -> Self {
        Self(raw.to_owned())
    }

    /// The cookie value.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The hash it is stored under.
    pub fn hash(&self) -> SigninHash {
        SigninHash(super::sha256_hex(&self.0))
    }
}

impl fmt::Debug for SigninToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigninToken([REDACTED])")
    }
}

/// The lowercase hex SHA-256 of a sign-in token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SigninHash(String);

impl SigninHash {
    /// Wraps a hash read from storage.
    pub fn from_hex(hex: String) -> Self {
        Self(hex)
    }

    /// The hex string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
