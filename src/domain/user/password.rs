//! Plaintext passwords, the rules they must follow, and their stored hashes.

use std::fmt;
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

use crate::domain::validation::FieldError;

/// Passwords too common to accept, compared without regard to case.
pub trait PasswordBlocklist: Send + Sync {
    /// Whether `lowercase` (an already lower-cased password) is on the list.
    fn contains(&self, lowercase: &str) -> bool;
}

/// The password rules in force (NIST SP 800-63B: length and a blocklist, no composition
/// rules).
#[derive(Clone)]
pub struct PasswordPolicy {
    /// Fewest characters (Unicode scalar values) accepted.
    pub min_chars: usize,
    /// Common passwords to refuse; none when absent.
    pub blocklist: Option<Arc<dyn PasswordBlocklist>>,
}

impl PasswordPolicy {
    /// The most characters accepted; longer is rejected, never truncated.
    pub const MAX_CHARS: usize = 128;
}

impl fmt::Debug for PasswordPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordPolicy")
            .field("min_chars", &self.min_chars)
            .field("blocklist", &self.blocklist.is_some())
            .finish()
    }
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_chars: 8,
            blocklist: None,
        }
    }
}

/// A plaintext password: kept in a [`SecretString`] so that `Debug` never shows it.
#[derive(Clone)]
pub struct Password(SecretString);

impl Password {
    /// Checks a new password against the policy. Every character counts, Unicode included.
    ///
    /// # Errors
    /// A [`FieldError`] on `password`.
    pub fn parse(raw: &str, policy: &PasswordPolicy) -> Result<Self, FieldError> {
        let chars = raw.chars().count();
        if chars < policy.min_chars {
            return Err(FieldError::new(
                "password",
                "too_short",
                format!("must be at least {} characters long", policy.min_chars),
            ));
        }
        if chars > PasswordPolicy::MAX_CHARS {
            return Err(FieldError::new(
                "password",
                "too_long",
                format!(
                    "must be at most {} characters long",
                    PasswordPolicy::MAX_CHARS
                ),
            ));
        }
        if let Some(blocklist) = &policy.blocklist {
            if blocklist.contains(&raw.to_lowercase()) {
                return Err(FieldError::new(
                    "password",
                    "password_too_common",
                    "is one of the most common passwords; choose another",
                ));
            }
        }
        Ok(Self(SecretString::from(raw)))
    }

    /// A password offered at login, which is only compared, never validated: a wrong length
    /// simply fails to match.
    pub fn candidate(raw: &str) -> Self {
        Self(SecretString::from(raw))
    }

    /// The plaintext, for the hasher only.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([REDACTED])")
    }
}

/// A password hash in PHC string format. Not a secret as such, but never shown to clients.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Wraps a PHC string produced by a hasher or read from storage.
    pub fn new(phc: String) -> Self {
        Self(phc)
    }
    /// The PHC string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash([REDACTED])")
    }
}
