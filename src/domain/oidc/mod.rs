//! OpenID Connect and the authorization code flow: what a client asked for (`scope.rs`), the
//! one-time codes and their PKCE binding (`code.rs`), the browser sign-in behind the hosted
//! login page (`signin.rs`), and the claims of an ID token (`id_token.rs`).

mod code;
mod id_token;
mod scope;
mod signin;

pub use code::{
    AuthorizationCode, CodeChallenge, CodeGrant, CodeHash, CodeVerifier, Redemption,
    CODE_LIFETIME_SECONDS,
};
pub use id_token::{at_hash, IdClaims, ProfileClaims};
pub use scope::{OidcScope, OidcScopes, Scope};
pub use signin::{SigninHash, SigninToken};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// 256 random bits from the operating system, base64url without padding: the text of codes and
/// sign-in cookies.
fn random_256() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The lowercase hex SHA-256 under which an opaque value is stored. A plain hash suffices for
/// values of 256 random bits: they cannot be guessed from it.
fn sha256_hex(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// 256 random bits, base64url (for the other one-time tokens of the sign-in, e.g. a pending
/// second step).
pub(crate) fn random_token() -> String {
    random_256()
}

/// The SHA-256 hex a one-time token of 256 random bits is stored under.
pub(crate) fn token_hash(value: &str) -> String {
    sha256_hex(value)
}

#[cfg(test)]
mod tests;
