//! [`SecretSealer`] with XChaCha20-Poly1305 (RustCrypto `chacha20poly1305`): a random 192-bit
//! nonce per sealing (no nonce bookkeeping, no collision risk at any realistic count), and the
//! user id as associated data, so a sealed secret copied to another user's row fails to open.
//! Stored form: a version byte (1), the nonce, then the ciphertext with its tag.

use std::path::{Path, PathBuf};

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;

use crate::domain::mfa::{SealError, SealedSecret, SecretSealer};
use crate::domain::user::UserId;
use crate::infrastructure::config::MfaKey;

const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;

/// Seals with one key from configuration.
pub struct ChaChaSealer {
    cipher: XChaCha20Poly1305,
}

impl ChaChaSealer {
    /// A sealer with `key`.
    pub fn new(key: &MfaKey) -> Self {
        Self {
            cipher: XChaCha20Poly1305::new(key.expose().into()),
        }
    }
}

fn associated_data(user: UserId) -> Vec<u8> {
    let mut aad = b"auth-service/totp/v1/".to_vec();
    aad.extend_from_slice(user.as_uuid().as_bytes());
    aad
}

impl SecretSealer for ChaChaSealer {
    fn seal(&self, user: UserId, plaintext: &[u8]) -> Result<SealedSecret, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = associated_data(user);
        let sealed = self
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError("encryption failed"))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(SealedSecret::from_bytes(out))
    }

    fn open(&self, user: UserId, sealed: &SealedSecret) -> Result<Vec<u8>, SealError> {
        let bytes = sealed.as_bytes();
        if bytes.len() < 1 + NONCE_LEN + 16 || bytes[0] != VERSION {
            return Err(SealError("not a sealed secret of this version"));
        }
        let (nonce, ciphertext) = bytes[1..].split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce
            .try_into()
            .map_err(|_| SealError("not a sealed secret of this version"))?;
        let aad = associated_data(user);
        self.cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError("the secret does not open with this key for this user"))
    }
}

/// `{dir}/mfa-encryption.key` (base64, mode 0600), generated if missing, for development and
/// testing. Race-free like the development signing keys: written under a temporary name and
/// linked into place, so concurrent starts (in this process or others) all end with the first
/// link's key.
///
/// # Errors
/// A message naming the file when it cannot be read, written or parsed.
pub fn development_key(dir: &Path) -> Result<MfaKey, String> {
    static GENERATING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let path = dir.join("mfa-encryption.key");
    if let Some(key) = read_key(&path)? {
        return Ok(key);
    }
    let _generating = GENERATING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(key) = read_key(&path)? {
        return Ok(key);
    }
    let io = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let text = base64::engine::general_purpose::STANDARD.encode(bytes);
    let temporary: PathBuf = dir.join(format!(
        ".mfa-encryption.key.{}.{:016x}.tmp",
        std::process::id(),
        rand::random::<u64>()
    ));
    super::keys::write_private(&temporary, &text).map_err(io)?;
    let linked = std::fs::hard_link(&temporary, &path);
    let _ = std::fs::remove_file(&temporary);
    match linked {
        Ok(()) => {
            tracing::warn!(path = %path.display(), "generated a development MFA encryption key; set MFA_ENCRYPTION_KEY in production");
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io(e)),
    }
    read_key(&path)?.ok_or_else(|| format!("{} vanished", path.display()))
}

fn read_key(path: &Path) -> Result<Option<MfaKey>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => MfaKey::parse(&text)
            .map(Some)
            .map_err(|why| format!("{}: the key {why}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_for_its_user_and_key() {
        let sealer = ChaChaSealer::new(&MfaKey::new([3; 32]));
        let (alice, bob) = (UserId::new(), UserId::new());
        let sealed = sealer.seal(alice, b"twenty bytes secret!").unwrap();
        assert_eq!(
            sealer.open(alice, &sealed).unwrap(),
            b"twenty bytes secret!"
        );
        assert!(sealer.open(bob, &sealed).is_err(), "bound to the user");
        let other = ChaChaSealer::new(&MfaKey::new([4; 32]));
        assert!(other.open(alice, &sealed).is_err(), "bound to the key");
        let mut tampered = sealed.as_bytes().to_vec();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(sealer
            .open(alice, &SealedSecret::from_bytes(tampered))
            .is_err());
        assert!(sealer
            .open(alice, &SealedSecret::from_bytes(vec![1, 2]))
            .is_err());
        let again = sealer.seal(alice, b"twenty bytes secret!").unwrap();
        assert_ne!(again, sealed, "a fresh nonce every time");
    }

    #[test]
    fn concurrent_starts_share_one_development_key() {
        let dir = tempfile::TempDir::new().unwrap();
        let keys: Vec<MfaKey> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| development_key(dir.path()).unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(keys.windows(2).all(|w| w[0] == w[1]));
        assert_eq!(development_key(dir.path()).unwrap(), keys[0]);
    }
}
