//! Client secrets: 256 random bits from the operating system, base64url without padding,
//! shown once and stored as their SHA-256.
//!
//! SHA-256 and not argon2: a password hash is slow to make guessing a low-entropy password
//! expensive, but a guess of a 256-bit random secret succeeds with probability 2^-256 whatever
//! the hash costs, so a fast hash loses nothing, and it keeps a client authentication from
//! costing an argon2 slot (tens of milliseconds of CPU) per request.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A freshly generated secret, to show once. Its `Debug` does not print it.
pub struct ClientSecret(String);

impl ClientSecret {
    /// Random bytes per secret (256 bits).
    pub const BYTES: usize = 32;

    /// A new secret from the OS RNG.
    pub fn generate() -> Self {
        let mut bytes = [0u8; Self::BYTES];
        OsRng.fill_bytes(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The secret's text, to hand to the client once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The hash to store.
    pub fn hash(&self) -> ClientSecretHash {
        ClientSecretHash::of(&self.0)
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret(..)")
    }
}

/// The stored form of a secret: its SHA-256 in lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSecretHash(String);

impl ClientSecretHash {
    /// The hash of `secret`.
    pub fn of(secret: &str) -> Self {
        Self(hex::encode(Sha256::digest(secret.as_bytes())))
    }

    /// Wraps a hash read from storage.
    pub fn from_stored(stored: String) -> Self {
        Self(stored)
    }

    /// The hex text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is the secret of this hash. The comparison of the two digests takes
    /// the same time wherever they differ, so timing tells nothing about the stored hash.
    pub fn verify(&self, presented: &str) -> bool {
        let presented = Self::of(presented);
        bool::from(presented.0.as_bytes().ct_eq(self.0.as_bytes()))
    }
}
