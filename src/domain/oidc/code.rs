//! Authorization codes (RFC 6749 §4.1.2) and their PKCE binding (RFC 7636, `S256` only).
//!
//! A code is 256 random bits, handed to the browser once and stored only as its SHA-256. It
//! lives [`CODE_LIFETIME_SECONDS`], is bound to the client, the redirect URI and the challenge
//! it was issued for, and is redeemed at most once: a second redemption is refused and revokes
//! the session the first one started.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::scope::Scope;
use crate::domain::client::ClientId;
use crate::domain::session::SessionId;
use crate::domain::user::UserId;

/// How long a code may be redeemed (RFC 6749 §4.1.2 recommends at most 10 minutes; OAuth 2.1
/// and the well-known servers use a minute or less).
pub const CODE_LIFETIME_SECONDS: i64 = 60;

/// An authorization code as the client holds it. Its `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthorizationCode(String);

impl AuthorizationCode {
    /// A fresh code.
    pub fn generate() -> Self {
        Self(super::random_256())
    }

    /// Wraps a code a client presented (unchecked: an unknown code matches nothing).
    pub fn from_presented(raw: &str) -> Self {
        Self(raw.to_owned())
    }

    /// The code to put in the redirect.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The hash it is stored under.
    pub fn hash(&self) -> CodeHash {
        CodeHash(super::sha256_hex(&self.0))
    }
}

impl fmt::Debug for AuthorizationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthorizationCode([REDACTED])")
    }
}

/// The lowercase hex SHA-256 of a code.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CodeHash(String);

impl CodeHash {
    /// Wraps a hash read from storage.
    pub fn from_hex(hex: String) -> Self {
        Self(hex)
    }

    /// The hex string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether `raw` is 43 to 128 characters of RFC 7636's unreserved set
/// (`A-Z a-z 0-9 - . _ ~`), the form of both a verifier and an S256 challenge's alphabet.
fn is_pkce_text(raw: &str) -> bool {
    (43..=128).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// An S256 code challenge: the base64url SHA-256 of the verifier, 43 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeChallenge(String);

impl CodeChallenge {
    /// Parses a challenge sent with `code_challenge_method=S256`.
    ///
    /// # Errors
    /// A message when it is not 43 base64url characters (the length of a SHA-256 in base64url).
    pub fn parse_s256(raw: &str) -> Result<Self, &'static str> {
        let decodes = URL_SAFE_NO_PAD
            .decode(raw)
            .is_ok_and(|bytes| bytes.len() == 32);
        if raw.len() == 43 && decodes {
            Ok(Self(raw.to_owned()))
        } else {
            Err("code_challenge must be the base64url SHA-256 of the verifier (43 characters)")
        }
    }

    /// The challenge of `verifier`.
    pub fn of(verifier: &CodeVerifier) -> Self {
        Self(URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.0.as_bytes())))
    }

    /// Whether `verifier` hashes to this challenge (compared in constant time).
    pub fn matches(&self, verifier: &CodeVerifier) -> bool {
        Self::of(verifier)
            .0
            .as_bytes()
            .ct_eq(self.0.as_bytes())
            .into()
    }

    /// Wraps a challenge read from storage.
    pub fn from_stored(stored: String) -> Self {
        Self(stored)
    }

    /// The challenge text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A PKCE code verifier (RFC 7636 §4.1): 43 to 128 unreserved characters.
#[derive(Clone, PartialEq, Eq)]
pub struct CodeVerifier(String);

impl CodeVerifier {
    /// # Errors
    /// A message when it is not 43-128 unreserved characters.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        if is_pkce_text(raw) {
            Ok(Self(raw.to_owned()))
        } else {
            Err("code_verifier must be 43-128 characters of A-Z a-z 0-9 - . _ ~")
        }
    }
}

impl fmt::Debug for CodeVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CodeVerifier([REDACTED])")
    }
}

/// What a code was issued for, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeGrant {
    pub hash: CodeHash,
    pub client_id: ClientId,
    pub user_id: UserId,
    /// The browser sign-in the code was issued under (the ID token's `sid`, and the parent of
    /// the session the code starts: ending the sign-in ends it).
    pub signin_id: SessionId,
    /// The redirect URI exactly as the authorization request sent it.
    pub redirect_uri: String,
    /// `None` only for a confidential client that sent no challenge.
    pub challenge: Option<CodeChallenge>,
    /// What was granted: the request's scope within the client's and the user's.
    pub scope: Scope,
    pub nonce: Option<String>,
    /// When the user last entered their credentials (the ID token's `auth_time`).
    pub auth_time: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// What redeeming a code found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redemption {
    /// The code was live; it is now used, by the session to be started under the id given to
    /// the redemption.
    Fresh(Box<CodeGrant>),
    /// The code had been redeemed before, by the session named here (revoke it: the code
    /// leaked); this second redemption is recorded so the first can learn of it.
    Replayed { session_id: SessionId },
    /// No such code, or it expired unused.
    Unknown,
}
