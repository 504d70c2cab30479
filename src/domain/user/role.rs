//! Roles and role sets: what a user may do, and what a token's scope grants.

use std::fmt;
use std::str::FromStr;

use crate::domain::validation::FieldError;

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
