//! Registered OAuth clients (RFC 6749 §2, with RFC 7591's field names): the applications that
//! will ask for tokens on a user's behalf, each with its redirect URIs, grant types and allowed
//! scope, and for a confidential client a secret stored only as a hash.
//!
//! Every field is validated here (`redirect.rs` for the URIs, `secret.rs` for the secrets), so a
//! stored client is always a valid one.

mod redirect;
mod secret;

use chrono::{DateTime, Utc};

use super::validation::FieldError;
pub use redirect::RedirectUri;
pub use secret::{ClientSecret, ClientSecretHash};

super::id::uuid_id! {
    /// A client's id: a UUID v7, served as its hyphenated text (`client_id`).
    ClientId
}

/// Whether a client can keep a secret (RFC 6749 §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientType {
    /// A server-side application: it has a secret.
    Confidential,
    /// A native or browser application: it cannot keep a secret, so it has none.
    Public,
}

impl ClientType {
    /// The type's name, as stored and served.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Confidential => "confidential",
            Self::Public => "public",
        }
    }

    /// Parses `public` or `confidential`.
    ///
    /// # Errors
    /// `client_type` / `invalid_value` for anything else.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        match raw {
            "confidential" => Ok(Self::Confidential),
            "public" => Ok(Self::Public),
            _ => Err(FieldError::new(
                "client_type",
                "invalid_value",
                "must be 'public' or 'confidential'",
            )),
        }
    }
}

/// The OAuth grants a client may use (a closed set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
}

impl GrantType {
    /// Every grant type a client may be registered for.
    pub const ALL: [GrantType; 3] = [
        Self::AuthorizationCode,
        Self::RefreshToken,
        Self::ClientCredentials,
    ];

    /// The grant's name (RFC 7591 `grant_types` values).
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::RefreshToken => "refresh_token",
            Self::ClientCredentials => "client_credentials",
        }
    }

    /// The grant named `raw`, if it is one of [`GrantType::ALL`].
    pub fn from_name(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == raw)
    }
}

/// The grant types of a client: non-empty, without duplicates, in a fixed order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantTypes(Vec<GrantType>);

impl GrantTypes {
    /// What a client gets when it names none (RFC 7591 §2: `authorization_code`).
    pub fn default_for_new() -> Self {
        Self(vec![GrantType::AuthorizationCode])
    }

    /// Parses the names, for a client of type `client_type` (a public client cannot use
    /// `client_credentials`: it has no secret to authenticate with).
    ///
    /// # Errors
    /// `grant_types` / `invalid_length` (none, or more than the set), `unknown_grant_type`,
    /// `not_allowed_for_public_client`.
    pub fn parse(names: &[String], client_type: ClientType) -> Result<Self, FieldError> {
        let field = "grant_types";
        if names.is_empty() || names.len() > GrantType::ALL.len() {
            return Err(FieldError::new(
                field,
                "invalid_length",
                "must name between 1 and 3 grant types",
            ));
        }
        let mut grants = Vec::new();
        for name in names {
            let grant = GrantType::from_name(name).ok_or_else(|| {
                FieldError::new(
                    field,
                    "unknown_grant_type",
                    "must be among authorization_code, refresh_token and client_credentials",
                )
            })?;
            if grant == GrantType::ClientCredentials && client_type == ClientType::Public {
                return Err(FieldError::new(
                    field,
                    "not_allowed_for_public_client",
                    "a public client has no secret, so it cannot use client_credentials",
                ));
            }
            grants.push(grant);
        }
        grants.sort_unstable();
        grants.dedup();
        Ok(Self(grants))
    }

    /// Reads the stored space-separated names back.
    ///
    /// # Errors
    /// A message naming the unknown grant (corrupt data).
    pub fn from_stored(stored: &str) -> Result<Self, String> {
        stored
            .split_whitespace()
            .map(|name| GrantType::from_name(name).ok_or_else(|| format!("grant type {name}")))
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// Whether the client may use `grant`.
    pub fn contains(&self, grant: GrantType) -> bool {
        self.0.contains(&grant)
    }

    /// The names, in order.
    pub fn names(&self) -> Vec<String> {
        self.0.iter().map(|g| g.as_str().to_owned()).collect()
    }

    /// The names separated by spaces (the stored form).
    pub fn to_space_separated(&self) -> String {
        self.names().join(" ")
    }
}

/// The scope a client may request: space-separated values among [`ClientScope::KNOWN`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientScope(Vec<&'static str>);

impl ClientScope {
    /// The values a client may be allowed: OpenID Connect's and the service's role names.
    pub const KNOWN: [&'static str; 6] = [
        "openid",
        "profile",
        "email",
        "offline_access",
        "user",
        "admin",
    ];
    /// The longest scope string accepted (all known values fit many times over).
    pub const MAX_LEN: usize = 200;

    /// What a client gets when it names none: `openid`.
    pub fn default_for_new() -> Self {
        Self(vec!["openid"])
    }

    /// Parses a space-separated list of known values (duplicates dropped, order kept).
    ///
    /// # Errors
    /// `scope` / `invalid_length` (empty or over [`ClientScope::MAX_LEN`] bytes),
    /// `unknown_scope`.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        if raw.len() > Self::MAX_LEN || raw.split(' ').all(str::is_empty) {
            return Err(FieldError::new(
                "scope",
                "invalid_length",
                format!(
                    "must name at least one value, in at most {} characters",
                    Self::MAX_LEN
                ),
            ));
        }
        let mut values = Vec::new();
        for value in raw.split(' ').filter(|v| !v.is_empty()) {
            let known = Self::KNOWN
                .into_iter()
                .find(|k| *k == value)
                .ok_or_else(|| {
                    FieldError::new(
                        "scope",
                        "unknown_scope",
                        format!("values must be among: {}", Self::KNOWN.join(" ")),
                    )
                })?;
            if !values.contains(&known) {
                values.push(known);
            }
        }
        Ok(Self(values))
    }

    /// The space-separated values (served and stored).
    pub fn to_space_separated(&self) -> String {
        self.0.join(" ")
    }
}

/// A client's display name: 1 to 100 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientName(String);

impl ClientName {
    pub const MAX_LEN: usize = 100;

    /// # Errors
    /// `client_name` / `invalid_length` (empty, blank or too long), `invalid_characters`.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        if raw.trim().is_empty() || raw.chars().count() > Self::MAX_LEN {
            return Err(FieldError::new(
                "client_name",
                "invalid_length",
                format!("must be 1-{} characters long, not blank", Self::MAX_LEN),
            ));
        }
        if raw.chars().any(char::is_control) {
            return Err(FieldError::new(
                "client_name",
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

/// The redirect URIs of one list (`redirect_uris` or `post_logout_redirect_uris`).
pub struct RedirectUris;

impl RedirectUris {
    /// The most URIs in one list.
    pub const MAX: usize = 10;

    /// Parses every URI of a list named `field`; `required` lists must not be empty.
    ///
    /// # Errors
    /// `field` / `invalid_length` for an empty required list or one over [`RedirectUris::MAX`];
    /// the first failing URI's error otherwise (see [`RedirectUri::parse`]).
    pub fn parse(
        field: &str,
        raw: &[String],
        required: bool,
    ) -> Result<Vec<RedirectUri>, FieldError> {
        if raw.len() > Self::MAX || (required && raw.is_empty()) {
            return Err(FieldError::new(
                field,
                "invalid_length",
                format!("must hold {}-{} URIs", usize::from(required), Self::MAX),
            ));
        }
        let mut uris: Vec<RedirectUri> = Vec::with_capacity(raw.len());
        for uri in raw {
            let uri = RedirectUri::parse(field, uri)?;
            if !uris.contains(&uri) {
                uris.push(uri);
            }
        }
        Ok(uris)
    }
}

/// A registered client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub id: ClientId,
    pub name: ClientName,
    pub client_type: ClientType,
    pub redirect_uris: Vec<RedirectUri>,
    pub post_logout_redirect_uris: Vec<RedirectUri>,
    pub grant_types: GrantTypes,
    pub scope: ClientScope,
    /// A disabled client's tokens stop working, and it gets no new ones.
    pub is_active: bool,
    /// The hash of a confidential client's secret; `None` for a public client.
    pub secret_hash: Option<ClientSecretHash>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An administrator's change to a client, already validated. `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct ClientChanges {
    pub name: Option<ClientName>,
    pub redirect_uris: Option<Vec<RedirectUri>>,
    pub post_logout_redirect_uris: Option<Vec<RedirectUri>>,
    pub grant_types: Option<GrantTypes>,
    pub scope: Option<ClientScope>,
    pub is_active: Option<bool>,
}

/// URIs separated by spaces (the stored form: a valid [`RedirectUri`] holds no space).
pub fn join_uris(uris: &[RedirectUri]) -> String {
    uris.iter()
        .map(RedirectUri::as_str)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Reads URIs stored by [`join_uris`] back.
///
/// # Errors
/// A message when a stored URI is not valid (corrupt data).
pub fn split_uris(stored: &str) -> Result<Vec<RedirectUri>, String> {
    stored
        .split_whitespace()
        .map(|uri| RedirectUri::parse("stored", uri).map_err(|e| e.message))
        .collect()
}

#[cfg(test)]
mod tests;
