//! Users and the validated value types they are made of ("parse, don't validate").

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use super::validation::FieldError;

/// A user's id: a UUID v7, so ids sort by creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(Uuid);

impl UserId {
    /// A fresh, time-ordered id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
    /// Wraps an id read from storage or a token.
    pub fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }
    /// The UUID inside.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl Default for UserId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
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

/// What a user may do. Scope values are role names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    User,
    Admin,
}

impl Role {
    /// Every role the service knows.
    pub const ALL: [Role; 2] = [Role::User, Role::Admin];

    /// The role's name in tokens, scopes and storage.
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }
}

impl FromStr for Role {
    type Err = FieldError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == raw)
            .ok_or_else(|| {
                FieldError::new(
                    "roles",
                    "unknown_role",
                    format!("'{raw}' is not a role (known roles: user, admin)"),
                )
            })
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of roles, kept sorted and without duplicates.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Roles(Vec<Role>);

impl Roles {
    /// The set of the given roles.
    pub fn new(roles: impl IntoIterator<Item = Role>) -> Self {
        let mut roles: Vec<Role> = roles.into_iter().collect();
        roles.sort();
        roles.dedup();
        Self(roles)
    }

    /// Parses space-separated role names, as stored and as in a `scope` parameter.
    ///
    /// # Errors
    /// The first unknown role name.
    pub fn parse_space_separated(raw: &str) -> Result<Self, FieldError> {
        raw.split_whitespace()
            .map(Role::from_str)
            .collect::<Result<Vec<_>, _>>()
            .map(Self::new)
    }

    /// Whether `role` is in the set.
    pub fn contains(&self, role: Role) -> bool {
        self.0.contains(&role)
    }

    /// The roles of `self` that `other` also has.
    pub fn intersection(&self, other: &Roles) -> Roles {
        Roles(
            self.0
                .iter()
                .copied()
                .filter(|r| other.contains(*r))
                .collect(),
        )
    }

    /// Iterates the roles in order.
    pub fn iter(&self) -> impl Iterator<Item = Role> + '_ {
        self.0.iter().copied()
    }

    /// The role names in order.
    pub fn names(&self) -> Vec<String> {
        self.0.iter().map(|r| r.as_str().to_owned()).collect()
    }

    /// Space-separated role names (the `scope` format).
    pub fn to_space_separated(&self) -> String {
        self.names().join(" ")
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

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
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
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
mod tests {
    use super::*;

    #[test]
    fn a_login_key_is_the_ascii_lower_case_of_a_possible_username_only() {
        assert_eq!(LoginKey::parse("MiKe.In").unwrap().as_str(), "mike.in");
        assert_eq!(
            Username::parse("Mike.In").unwrap().login_key(),
            LoginKey::parse("mike.in").unwrap()
        );
        // U+0130 lower-cases to "i̇" in Unicode, to "i" nowhere: not a username at all.
        assert_eq!(LoginKey::parse("m\u{130}ke.in"), None);
        assert_eq!(LoginKey::parse("K\u{212A}elvin"), None);
        assert_eq!(LoginKey::parse(&"a".repeat(65_536)), None);
        assert_eq!(LoginKey::parse("al\0ice"), None);
        assert_eq!(LoginKey::parse("al\nice"), None);
        assert_eq!(LoginKey::parse("ab"), None);
    }

    #[test]
    fn usernames_follow_the_contract_rules() {
        assert!(Username::parse("alice").is_ok());
        assert!(Username::parse("a.b_c-9").is_ok());
        assert_eq!(Username::parse("ab").unwrap_err().code, "invalid_length");
        assert_eq!(
            Username::parse(&"a".repeat(33)).unwrap_err().code,
            "invalid_length"
        );
        assert_eq!(
            Username::parse("al ice").unwrap_err().code,
            "invalid_characters"
        );
        assert_eq!(
            Username::parse("äbc").unwrap_err().code,
            "invalid_characters"
        );
    }

    #[test]
    fn passwords_count_unicode_characters_and_are_never_truncated() {
        let policy = PasswordPolicy::default();
        // Eight characters, but sixteen bytes.
        assert!(Password::parse("пароль12", &policy).is_ok());
        assert_eq!(
            Password::parse("short", &policy).unwrap_err().code,
            "too_short"
        );
        assert!(Password::parse(&"x".repeat(128), &policy).is_ok());
        assert_eq!(
            Password::parse(&"x".repeat(129), &policy).unwrap_err().code,
            "too_long"
        );
        let strict = PasswordPolicy {
            min_chars: 12,
            blocklist: None,
        };
        assert!(Password::parse("elevenchars", &strict).is_err());
    }

    struct TwoCommon;
    impl PasswordBlocklist for TwoCommon {
        fn contains(&self, lowercase: &str) -> bool {
            ["password1", "iloveyou!"].contains(&lowercase)
        }
    }

    #[test]
    fn common_passwords_are_refused_regardless_of_case() {
        let policy = PasswordPolicy {
            min_chars: 8,
            blocklist: Some(Arc::new(TwoCommon)),
        };
        let error = Password::parse("PassWord1", &policy).unwrap_err();
        assert_eq!(error.code, "password_too_common");
        assert!(Password::parse("password12", &policy).is_ok());
    }

    #[test]
    fn passwords_and_hashes_never_show_in_debug_output() {
        let password = Password::candidate("hunter22");
        assert!(!format!("{password:?}").contains("hunter22"));
        let hash = PasswordHash::new("$argon2id$secret".into());
        assert!(!format!("{hash:?}").contains("argon2id"));
    }

    #[test]
    fn emails_are_checked_for_syntax() {
        for ok in ["a@example.com", "first.last+tag@sub.example.org"] {
            assert!(EmailAddress::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@b",
            "a@@b.com",
            "a b@c.com",
            "a@-b.com",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn roles_parse_sort_and_intersect() {
        let roles = Roles::parse_space_separated("admin user admin").unwrap();
        assert_eq!(roles.names(), vec!["user", "admin"]);
        assert_eq!(
            Roles::parse_space_separated("user root").unwrap_err().code,
            "unknown_role"
        );
        let only_user = Roles::new([Role::User]);
        assert_eq!(roles.intersection(&only_user), only_user);
    }

    #[test]
    fn full_names_are_limited_to_100_characters() {
        assert!(FullName::parse(&"é".repeat(100)).is_ok());
        assert_eq!(
            FullName::parse(&"é".repeat(101)).unwrap_err().code,
            "too_long"
        );
    }
}
