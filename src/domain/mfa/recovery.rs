//! Recovery codes: ten per confirmed authenticator, 80 random bits each, shown once as
//! `xxxx-xxxx-xxxx-xxxx` (base32, lower case) and accepted with or without dashes, spaces and
//! in any case. Stored as a plain SHA-256: at 80 bits a code cannot be found from its hash
//! by guessing (2^80 tries per code), so a slow hash would buy nothing but login time.

use std::fmt;

use rand::RngCore;
use sha2::{Digest, Sha256};

use super::totp::base32_encode;

/// How many codes a confirmation hands out.
pub const RECOVERY_CODE_COUNT: usize = 10;
const CODE_BYTES: usize = 10;
const CODE_CHARS: usize = 16;

/// A recovery code in its canonical form (16 upper-case base32 characters). `Debug` redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryCode(String);

impl RecoveryCode {
    /// A fresh code.
    pub fn generate() -> Self {
        let mut bytes = [0u8; CODE_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(base32_encode(&bytes))
    }

    /// Ten fresh codes.
    pub fn generate_set() -> Vec<Self> {
        (0..RECOVERY_CODE_COUNT).map(|_| Self::generate()).collect()
    }

    /// Reads a typed code: dashes and spaces ignored, any case; `None` unless 16 base32
    /// characters remain.
    pub fn parse(raw: &str) -> Option<Self> {
        if raw.len() > 64 {
            return None;
        }
        let canonical: String = raw
            .chars()
            .filter(|c| *c != '-' && !c.is_whitespace())
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let valid = canonical.len() == CODE_CHARS
            && canonical
                .bytes()
                .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b));
        valid.then_some(Self(canonical))
    }

    /// The code as shown to the user: `xxxx-xxxx-xxxx-xxxx`, lower case.
    pub fn display(&self) -> String {
        let lower = self.0.to_ascii_lowercase();
        let groups: Vec<&str> = (0..4).map(|i| &lower[i * 4..i * 4 + 4]).collect();
        groups.join("-")
    }

    /// The hash it is stored under.
    pub fn hash(&self) -> RecoveryCodeHash {
        RecoveryCodeHash(hex::encode(Sha256::digest(self.0.as_bytes())))
    }
}

impl fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecoveryCode([REDACTED])")
    }
}

/// The lowercase hex SHA-256 of a canonical recovery code.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecoveryCodeHash(String);

impl RecoveryCodeHash {
    /// Wraps a hash read from storage.
    pub fn from_hex(hex: String) -> Self {
        Self(hex)
    }

    /// The hex string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
