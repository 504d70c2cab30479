//! The scope of an OpenID Connect request: OpenID's own values (`openid`, `profile`, `email`,
//! `offline_access`) beside the role names of the password grant.

use std::fmt;

use crate::domain::user::{Role, Roles};

/// A scope value defined by OpenID Connect Core §5.4 and §11.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OidcScope {
    OpenId,
    Profile,
    Email,
    OfflineAccess,
}

impl OidcScope {
    /// Every OpenID scope value, in the order they are served.
    pub const ALL: [OidcScope; 4] = [
        Self::OpenId,
        Self::Profile,
        Self::Email,
        Self::OfflineAccess,
    ];

    /// The value's name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::OpenId => "openid",
            Self::Profile => "profile",
            Self::Email => "email",
            Self::OfflineAccess => "offline_access",
        }
    }

    /// The value named `raw`, if it is one.
    pub fn from_name(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of OpenID scope values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct OidcScopes(u8);

impl OidcScopes {
    /// The empty set (the password grant's sessions).
    pub const NONE: OidcScopes = OidcScopes(0);

    /// Whether `scope` is in the set.
    pub fn contains(&self, scope: OidcScope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// The set with `scope` added.
    #[must_use]
    pub fn with(self, scope: OidcScope) -> Self {
        Self(self.0 | scope.bit())
    }

    /// The set without `scope`.
    #[must_use]
    pub fn without(self, scope: OidcScope) -> Self {
        Self(self.0 & !scope.bit())
    }

    /// The values in both sets.
    #[must_use]
    pub fn intersection(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    /// The values, in [`OidcScope::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = OidcScope> + '_ {
        OidcScope::ALL.into_iter().filter(|s| self.contains(*s))
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }
}

/// A granted or requested scope: OpenID values and role names.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scope {
    pub oidc: OidcScopes,
    pub roles: Roles,
}

impl Scope {
    /// The longest scope string a request may carry, in bytes (every known value fits many
    /// times over; a longer one is refused rather than truncated).
    pub const MAX_LEN: usize = 1024;

    /// Parses space-separated values; `Err` names the first one that is neither an OpenID
    /// value nor a role (duplicates and extra spaces are ignored).
    ///
    /// # Errors
    /// The unknown value (cut to 64 characters, for the error text).
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.len() > Self::MAX_LEN {
            return Err(format!("longer than {} bytes", Self::MAX_LEN));
        }
        let mut oidc = OidcScopes::NONE;
        let mut roles = Vec::new();
        for value in raw.split(' ').filter(|v| !v.is_empty()) {
            if let Some(scope) = OidcScope::from_name(value) {
                oidc = oidc.with(scope);
            } else if let Ok(role) = value.parse::<Role>() {
                roles.push(role);
            } else {
                return Err(value.chars().take(64).collect());
            }
        }
        Ok(Self {
            oidc,
            roles: Roles::new(roles),
        })
    }

    /// Reads the stored `scope` column back (written by [`Scope::to_space_separated`]).
    ///
    /// # Errors
    /// A message naming the unknown value (corrupt data).
    pub fn from_stored(stored: &str) -> Result<Self, String> {
        Self::parse(stored).map_err(|value| format!("unknown scope value {value}"))
    }

    /// The values in both scopes.
    #[must_use]
    pub fn intersection(&self, other: &Scope) -> Scope {
        Scope {
            oidc: self.oidc.intersection(other.oidc),
            roles: self.roles.intersection(&other.roles),
        }
    }

    /// Whether `openid` is granted (the token response then carries an ID token).
    pub fn is_openid(&self) -> bool {
        self.oidc.contains(OidcScope::OpenId)
    }

    /// Whether the scope has no value at all.
    pub fn is_empty(&self) -> bool {
        self.oidc.is_empty() && self.roles.is_empty()
    }

    /// The values separated by spaces, OpenID values first: the `scope` of token responses,
    /// claims and storage.
    pub fn to_space_separated(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let names = self
            .oidc
            .iter()
            .map(|s| s.as_str())
            .chain(self.roles.iter().map(|r| r.as_str()));
        for name in names {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(name)?;
            first = false;
        }
        Ok(())
    }
}

impl From<Roles> for Scope {
    fn from(roles: Roles) -> Self {
        Self {
            oidc: OidcScopes::NONE,
            roles,
        }
    }
}
