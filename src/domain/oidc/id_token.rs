//! The claims of an ID token (OpenID Connect Core §2, §3.1.3.6 and §5.1).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::domain::client::ClientId;
use crate::domain::session::SessionId;
use crate::domain::user::UserId;

/// The profile claims of the granted scopes (`profile`: `preferred_username`, `name`;
/// `email`: `email`, `email_verified`); `None` when not granted or not known.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProfileClaims {
    pub preferred_username: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    /// Present whenever `email` is; this service does not verify addresses yet, so `false`.
    pub email_verified: Option<bool>,
}

/// What an ID token says. The issuer is the signer's business.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdClaims {
    pub subject: UserId,
    pub audience: ClientId,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub auth_time: DateTime<Utc>,
    pub nonce: Option<String>,
    /// The left half of the access token's SHA-256, base64url (§3.1.3.6, for RS256).
    pub at_hash: Option<String>,
    /// The browser sign-in (OP session) the token was issued under.
    pub session_id: SessionId,
    pub profile: ProfileClaims,
}

/// The `at_hash` of an access token for a SHA-256-based algorithm.
pub fn at_hash(access_token: &str) -> String {
    let digest = Sha256::digest(access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..16])
}
