//! The key that derives a refresh token's successor from it, so that a client retrying a
//! refresh whose response it lost can be handed the same successor again although only hashes
//! are stored.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::domain::session::RefreshToken;

type HmacSha256 = Hmac<Sha256>;

/// The label the key is derived under, so that it is never the secret it comes from.
const LABEL: &[u8] = b"auth-service refresh-token successor v1";

/// `next = base64url(HMAC-SHA256(K, presented))`: as unpredictable as a random token to anyone
/// without K (a PRF of a 256-bit secret), and reproducible by every replica that shares K.
/// K must come from configuration, the same on every replica: a per-process key would turn
/// every retry that lands on another replica into a reuse. Its `Debug` is redacted.
#[derive(Clone, Copy)]
pub struct RefreshSuccessorKey([u8; 32]);

impl RefreshSuccessorKey {
    /// The key derived from a 32-byte server secret: HMAC-SHA256 of a fixed label under it.
    pub fn derive_from(secret: &[u8; 32]) -> Self {
        let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
        mac.update(LABEL);
        Self(mac.finalize().into_bytes().into())
    }

    /// The successor of `presented`.
    pub fn successor(&self, presented: &RefreshToken) -> RefreshToken {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(presented.expose().as_bytes());
        RefreshToken::from_presented(&URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }
}

impl fmt::Debug for RefreshSuccessorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshSuccessorKey([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_successor_is_a_keyed_function_of_the_presented_token() {
        let key = RefreshSuccessorKey::derive_from(&[7; 32]);
        let token = RefreshToken::generate();
        let next = key.successor(&token);
        assert_eq!(next, key.successor(&token), "reproducible");
        assert_ne!(next, token);
        assert_eq!(URL_SAFE_NO_PAD.decode(next.expose()).unwrap().len(), 32);
        let other = RefreshSuccessorKey::derive_from(&[8; 32]);
        assert_ne!(
            next,
            other.successor(&token),
            "another key, another successor"
        );
        assert_ne!(next, key.successor(&RefreshToken::generate()));
        assert!(!format!("{key:?}").contains('7'));
    }
}
