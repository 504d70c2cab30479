//! Users and the validated value types they are made of ("parse, don't validate").

mod password;
mod role;

use std::fmt;

use chrono::{DateTime, Utc};

use super::validation::FieldError;
pub use password::{Password, PasswordBlocklist, PasswordHash, PasswordPolicy};
pub use role::{Role, Roles};

super::id::uuid_id! {
    /// A user's id: a UUID v7, so ids sort by creation time.
    UserId
}

/// 3–32 characters of `a-z A-Z 0-9 . _ -`. Kept as typed; compared without regard to case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub const MIN_LEN: usize = 3;
    pub const MAX_LEN: usize = 32;

    /// Checks the username rules.
    ///
    /// # Errors
    /// A [`FieldError`] on `username` saying which rule failed.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let len = raw.chars().count();
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&len) {
            return Err(FieldError::new(
                "username",
                "invalid_length",
                format!(
                    "must be {}-{} characters long",
                    Self::MIN_LEN,
                    Self::MAX_LEN
                ),
            ));
        }
        if !raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(FieldError::new(
                "username",
                "invalid_characters",
                "may contain only letters a-z and A-Z, digits, '.', '_' and '-'",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The username as the user typed it at registration.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The canonical form that keys lookups and the lockout.
    pub fn login_key(&self) -> LoginKey {
        LoginKey(self.0.to_ascii_lowercase())
    }
}

/// The one canonical form of a username, computed here and nowhere else: what a login looks
/// the account up by and what its lockout counters are keyed by, on every backend.
///
/// Usernames are ASCII (see [`Username::parse`]), so the canonical form is the ASCII lower case:
/// no locale or Unicode case folding can make two spellings meet in one place and part in another
/// (`mİke` is not a username, so it is refused before any lookup instead of being folded one way
/// by Rust and another by PostgreSQL).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LoginKey(String);

impl LoginKey {
    /// The key of what a client typed as a username, or `None` when no account can ever have
    /// that name (wrong length or characters): such a login is refused before any lookup.
    pub fn parse(raw: &str) -> Option<Self> {
        // Bounded before anything looks at the characters (a 64 KB name costs nothing).
        if raw.len() > Username::MAX_LEN {
            return None;
        }
        Username::parse(raw).ok().map(|name| name.login_key())
    }

    /// The canonical text (ASCII lower case).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LoginKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A syntactically valid e-mail address (ASCII, `local@domain.tld`), unique regardless of case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailAddress(String);

impl EmailAddress {
    const MAX_LEN: usize = 254;

    /// Checks the address's syntax: one `@`, a dot-atom local part, and a domain of
    /// dot-separated labels of letters, digits and hyphens with at least one dot.
    ///
    /// # Errors
    /// A [`FieldError`] on `email`.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let invalid = || FieldError::new("email", "invalid_email", "is not a valid e-mail address");
        if raw.len() > Self::MAX_LEN || !raw.is_ascii() {
            return Err(invalid());
        }
        let (local, domain) = raw.split_once('@').ok_or_else(invalid)?;
        // RFC 5321 caps the local part at 64 octets, but real providers do not agree on it;
        // the whole address stays within 254.
        let local_ok = !local.is_empty()
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if local_ok && domain_ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(invalid())
        }
    }

    /// The address as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A display name of at most 100 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullName(String);

impl FullName {
    pub const MAX_LEN: usize = 100;

    /// # Errors
    /// A [`FieldError`] on `full_name` when it is longer than 100 characters or has control
    /// characters.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        if raw.chars().count() > Self::MAX_LEN {
            return Err(FieldError::new(
                "full_name",
                "too_long",
                format!("must be at most {} characters long", Self::MAX_LEN),
            ));
        }
        if raw.chars().any(char::is_control) {
            return Err(FieldError::new(
                "full_name",
                "invalid_characters",
                "must not contain control characters",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A user account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub username: Username,
    pub email: Option<EmailAddress>,
    pub full_name: Option<FullName>,
    pub roles: Roles,
    pub is_active: bool,
    pub password_hash: PasswordHash,
    /// Bumped by every password change: a login whose password check saw an older version
    /// cannot start a session (see [`crate::domain::ports::TokenRepository::create_session`]).
    pub credential_version: i64,
    /// Whether the user proved they receive mail at `email` (reset when it changes).
    pub email_verified: bool,
    /// The user's second factors, as the user object shows them.
    pub mfa: MfaSummary,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A user's second factors: kept on the user (the stores update it in the same commit as the
/// factors themselves), so reading a user tells whether a login needs a second factor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MfaSummary {
    /// A confirmed TOTP authenticator.
    pub totp: bool,
    /// Registered passkeys.
    pub passkeys: u32,
    /// Unused recovery codes.
    pub recovery_codes_left: u32,
}

impl MfaSummary {
    /// Whether a login must show a second factor (a TOTP authenticator or a passkey).
    pub fn has_second_factor(&self) -> bool {
        self.totp || self.passkeys > 0
    }
}

/// An administrator's change to a user: `None` leaves a field as it is; `Some(None)` clears an
/// optional one. Stores apply only the fields named, atomically.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserChanges {
    pub is_active: Option<bool>,
    pub roles: Option<Roles>,
    pub email: Option<Option<EmailAddress>>,
    pub full_name: Option<Option<FullName>>,
}

#[cfg(test)]
mod tests;
