//! Signing and verification keys for access tokens: HS256 secrets and Ed25519, P-256 and RSA
//! key pairs from PKCS#8 PEM (as `openssl genpkey` writes them), with RFC 7638 thumbprints as
//! `kid` and RFC 7517 JWKs for publication.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// A key that cannot be used, with the reason.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(pub String);

/// The algorithm access tokens are signed with (`JWT_ALGORITHM`), parsed once by the
/// configuration: HS256 with a shared secret, or EdDSA, ES256 and RS256 with a key pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JwtAlgorithm {
    #[default]
    Hs256,
    EdDsa,
    Es256,
    Rs256,
}

impl JwtAlgorithm {
    /// Every algorithm, in the order the documentation lists them.
    pub const ALL: [JwtAlgorithm; 4] = [Self::Hs256, Self::EdDsa, Self::Es256, Self::Rs256];

    /// The JOSE name, as in `JWT_ALGORITHM` and the `alg` header.
    pub fn name(self) -> &'static str {
        algorithm_name(self.jose())
    }

    /// The algorithm of a JOSE name (exact case), if the service signs with it.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The `jsonwebtoken` algorithm.
    pub fn jose(self) -> Algorithm {
        match self {
            Self::Hs256 => Algorithm::HS256,
            Self::EdDsa => Algorithm::EdDSA,
            Self::Es256 => Algorithm::ES256,
            Self::Rs256 => Algorithm::RS256,
        }
    }

    /// Whether tokens are signed with a key pair (whose public half is published).
    pub fn is_asymmetric(self) -> bool {
        self != Self::Hs256
    }
}

/// One key: what it verifies with, and (for the active key) what it signs with.
pub struct Key {
    pub algorithm: Algorithm,
    pub kid: String,
    pub decoding: DecodingKey,
    /// Present only on the signing key.
    pub encoding: Option<EncodingKey>,
    /// The public JWK; `None` for a shared secret, which is never published.
    pub jwk: Option<Value>,
    /// An RSA signing key's PKCS#8 DER (for the ID-token signer, which signs with ring).
    pub rsa_pkcs8_der: Option<Vec<u8>>,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// RFC 7638: the SHA-256 of the required members in lexicographic order, no whitespace.
fn thumbprint(required: &Value) -> String {
    // serde_json's map is ordered by key (no `preserve_order` feature), so this is canonical.
    b64(&Sha256::digest(required.to_string().as_bytes()))
}

/// The public parts of a key pair.
enum Public {
    Ed25519([u8; 32]),
    P256 { x: Vec<u8>, y: Vec<u8> },
    Rsa { n: Vec<u8>, e: Vec<u8> },
}

impl Public {
    fn algorithm(&self) -> Algorithm {
        match self {
            Public::Ed25519(_) => Algorithm::EdDSA,
            Public::P256 { .. } => Algorithm::ES256,
            Public::Rsa { .. } => Algorithm::RS256,
        }
    }

    /// The required JWK members (RFC 7638) and the matching decoding key.
    fn required_members(&self) -> Result<(Value, DecodingKey), KeyError> {
        let invalid =
            |e: jsonwebtoken::errors::Error| KeyError(format!("unusable public key: {e}"));
        Ok(match self {
            Public::Ed25519(x) => (
                json!({"crv": "Ed25519", "kty": "OKP", "x": b64(x)}),
                DecodingKey::from_ed_components(&b64(x)).map_err(invalid)?,
            ),
            Public::P256 { x, y } => (
                json!({"crv": "P-256", "kty": "EC", "x": b64(x), "y": b64(y)}),
                DecodingKey::from_ec_components(&b64(x), &b64(y)).map_err(invalid)?,
            ),
            Public::Rsa { n, e } => (
                json!({"e": b64(e), "kty": "RSA", "n": b64(n)}),
                DecodingKey::from_rsa_components(&b64(n), &b64(e)).map_err(invalid)?,
            ),
        })
    }

    fn into_key(self, encoding: Option<EncodingKey>) -> Result<Key, KeyError> {
        let algorithm = self.algorithm();
        let (required, decoding) = self.required_members()?;
        let kid = thumbprint(&required);
        let mut jwk = required;
        jwk["kid"] = json!(kid);
        jwk["alg"] = json!(algorithm_name(algorithm));
        jwk["use"] = json!("sig");
        Ok(Key {
            algorithm,
            kid,
            decoding,
            encoding,
            jwk: Some(jwk),
            rsa_pkcs8_der: None,
        })
    }
}

/// The JOSE name of an algorithm.
pub fn algorithm_name(algorithm: Algorithm) -> &'static str {
    match algorithm {
        Algorithm::EdDSA => "EdDSA",
        Algorithm::ES256 => "ES256",
        Algorithm::RS256 => "RS256",
        _ => "HS256",
    }
}

/// An HS256 key. Its `kid` is derived from the secret's hash, so it names the key without
/// revealing it and changes when the secret does.
pub fn hs256(secret: &[u8]) -> Key {
    let digest = Sha256::digest([b"kid:".as_slice(), secret].concat());
    Key {
        algorithm: Algorithm::HS256,
        kid: b64(&digest[..12]),
        decoding: DecodingKey::from_secret(secret),
        encoding: Some(EncodingKey::from_secret(secret)),
        jwk: None,
        rsa_pkcs8_der: None,
    }
}

/// A signing key from a PKCS#8 PEM private key, which must be of `algorithm`'s kind.
///
/// # Errors
/// [`KeyError`] when the PEM is not a PKCS#8 key of that kind.
pub fn from_private_pem(algorithm: Algorithm, pem: &str) -> Result<Key, KeyError> {
    use pkcs8_traits::DecodePrivateKey;
    let wrong = |e: &dyn std::fmt::Display| {
        KeyError(format!(
            "not a PKCS#8 {} private key: {e}",
            algorithm_name(algorithm)
        ))
    };
    let mut rsa_pkcs8_der = None;
    let (public, encoding) = match algorithm {
        Algorithm::EdDSA => {
            let key = ed25519_dalek::SigningKey::from_pkcs8_pem(pem).map_err(|e| wrong(&e))?;
            let encoding = EncodingKey::from_ed_pem(pem.as_bytes()).map_err(|e| wrong(&e))?;
            (Public::Ed25519(key.verifying_key().to_bytes()), encoding)
        }
        Algorithm::ES256 => {
            let key = p256::SecretKey::from_pkcs8_pem(pem).map_err(|e| wrong(&e))?;
            let point = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(
                &key.public_key(),
                false,
            );
            let (Some(x), Some(y)) = (point.x(), point.y()) else {
                return Err(KeyError("P-256 public key has no coordinates".into()));
            };
            let encoding = EncodingKey::from_ec_pem(pem.as_bytes()).map_err(|e| wrong(&e))?;
            (
                Public::P256 {
                    x: x.to_vec(),
                    y: y.to_vec(),
                },
                encoding,
            )
        }
        Algorithm::RS256 => {
            use rsa::traits::PublicKeyParts;
            let key = rsa::RsaPrivateKey::from_pkcs8_pem(pem).map_err(|e| wrong(&e))?;
            if key.size() < 256 {
                return Err(KeyError(format!(
                    "the RSA key has {} bits; at least 2048 are required",
                    key.n().bits()
                )));
            }
            let encoding = EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| wrong(&e))?;
            rsa_pkcs8_der = Some(
                pkcs8_traits::EncodePrivateKey::to_pkcs8_der(&key)
                    .map_err(|e| wrong(&e))?
                    .as_bytes()
                    .to_vec(),
            );
            let public = Public::Rsa {
                n: key.n().to_bytes_be(),
                e: key.e().to_bytes_be(),
            };
            (public, encoding)
        }
        other => return Err(KeyError(format!("{other:?} has no key pair"))),
    };
    let mut key = public.into_key(Some(encoding))?;
    key.rsa_pkcs8_der = rsa_pkcs8_der;
    Ok(key)
}

/// A verification-only key from a PEM public key (SPKI, `-----BEGIN PUBLIC KEY-----`) or a
/// PKCS#8 private key (only its public half is kept). The algorithm follows from the key type.
///
/// # Errors
/// [`KeyError`] when the PEM is none of Ed25519, P-256 or RSA.
pub fn from_verification_pem(pem: &str) -> Result<Key, KeyError> {
    use pkcs8_traits::DecodePublicKey;
    if pem.contains("PRIVATE KEY") {
        for algorithm in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256] {
            if let Ok(mut key) = from_private_pem(algorithm, pem) {
                key.encoding = None;
                key.rsa_pkcs8_der = None;
                return Ok(key);
            }
        }
        return Err(KeyError(
            "not an Ed25519, P-256 or RSA PKCS#8 private key".into(),
        ));
    }
    let public = if let Ok(key) = ed25519_dalek::VerifyingKey::from_public_key_pem(pem) {
        Public::Ed25519(key.to_bytes())
    } else if let Ok(key) = p256::PublicKey::from_public_key_pem(pem) {
        let point = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&key, false);
        let (Some(x), Some(y)) = (point.x(), point.y()) else {
            return Err(KeyError("P-256 public key has no coordinates".into()));
        };
        Public::P256 {
            x: x.to_vec(),
            y: y.to_vec(),
        }
    } else if let Ok(key) = rsa::RsaPublicKey::from_public_key_pem(pem) {
        use rsa::traits::PublicKeyParts;
        Public::Rsa {
            n: key.n().to_bytes_be(),
            e: key.e().to_bytes_be(),
        }
    } else {
        return Err(KeyError(
            "not an Ed25519, P-256 or RSA public key (SPKI PEM)".into(),
        ));
    };
    public.into_key(None)
}

/// A fresh PKCS#8 PEM private key for `algorithm` (development only).
///
/// # Errors
/// [`KeyError`] when generation or encoding fails.
pub fn generate_private_pem(algorithm: Algorithm) -> Result<String, KeyError> {
    use pkcs8_traits::{EncodePrivateKey, LineEnding};
    let mut rng = rand::rngs::OsRng;
    let failed = |e: &dyn std::fmt::Display| KeyError(format!("key generation failed: {e}"));
    let pem = match algorithm {
        Algorithm::EdDSA => ed25519_dalek::SigningKey::generate(&mut rng)
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| failed(&e))?,
        Algorithm::ES256 => p256::SecretKey::random(&mut rng)
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| failed(&e))?,
        Algorithm::RS256 => rsa::RsaPrivateKey::new(&mut rng, 2048)
            .map_err(|e| failed(&e))?
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| failed(&e))?,
        other => return Err(KeyError(format!("{other:?} has no key pair"))),
    };
    Ok(pem.to_string())
}

// The PKCS#8 traits, as re-exported by the key crates (one version for all three).
mod pkcs8_traits {
    pub use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
    pub use ed25519_dalek::pkcs8::spki::DecodePublicKey;
    pub use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
}

/// Where the signing key comes from.
pub struct KeySources<'a> {
    /// `JWT_ALGORITHM`.
    pub algorithm: JwtAlgorithm,
    /// The HS256 secret.
    pub secret: &'a [u8],
    /// `JWT_PRIVATE_KEY_FILE`.
    pub private_key_file: Option<&'a std::path::Path>,
    /// `JWT_VERIFY_KEY_FILES`.
    pub verify_key_files: &'a [std::path::PathBuf],
    /// Outside production: where to keep a generated key when no file is configured.
    pub dev_key_dir: Option<&'a std::path::Path>,
}

pub(crate) fn read(path: &std::path::Path) -> Result<String, KeyError> {
    std::fs::read_to_string(path)
        .map_err(|e| KeyError(format!("cannot read {}: {e}", path.display())))
}

/// The signing key and the still-accepted verification keys. In development, an asymmetric
/// algorithm without a key file uses `{dev_key_dir}/{alg}.pem`, generating it on first start, so
/// restarts do not log everybody out.
///
/// # Errors
/// [`KeyError`] naming the file or variable at fault.
pub fn load(sources: &KeySources<'_>) -> Result<(Key, Vec<Key>), KeyError> {
    let algorithm = sources.algorithm.jose();
    let signing = if !sources.algorithm.is_asymmetric() {
        hs256(sources.secret)
    } else {
        let path = match (sources.private_key_file, sources.dev_key_dir) {
            (Some(path), _) => path.to_owned(),
            (None, Some(dir)) => development_key(algorithm, dir)?,
            (None, None) => {
                return Err(KeyError(format!(
                    "JWT_PRIVATE_KEY_FILE is required for {}",
                    sources.algorithm.name()
                )))
            }
        };
        from_private_pem(algorithm, &read(&path)?)
            .map_err(|e| KeyError(format!("JWT_PRIVATE_KEY_FILE {}: {e}", path.display())))?
    };
    let previous = sources
        .verify_key_files
        .iter()
        .map(|path| {
            from_verification_pem(&read(path)?)
                .map_err(|e| KeyError(format!("JWT_VERIFY_KEY_FILES {}: {e}", path.display())))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((signing, previous))
}

/// `{dir}/{alg}.pem`, generated (mode 0600) if missing. Safe when several starts race for it,
/// in this process or others: one generates while the others of the process wait, and the key
/// is written under a temporary name then linked into place, so the file is never seen
/// half-written and the first link wins (a loser uses the winner's key).
pub(crate) fn development_key(
    algorithm: Algorithm,
    dir: &std::path::Path,
) -> Result<std::path::PathBuf, KeyError> {
    static GENERATING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let name = format!("{}.pem", algorithm_name(algorithm).to_lowercase());
    let path = dir.join(&name);
    if path.exists() {
        return Ok(path);
    }
    let _generating = GENERATING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if path.exists() {
        return Ok(path);
    }
    let io = |e: std::io::Error| KeyError(format!("cannot write {}: {e}", path.display()));
    std::fs::create_dir_all(dir).map_err(io)?;
    let pem = generate_private_pem(algorithm)?;
    let temporary = dir.join(format!(
        ".{name}.{}.{:016x}.tmp",
        std::process::id(),
        rand::random::<u64>()
    ));
    write_private(&temporary, &pem).map_err(io)?;
    let linked = std::fs::hard_link(&temporary, &path);
    let _ = std::fs::remove_file(&temporary);
    match linked {
        Ok(()) => {
            tracing::warn!(path = %path.display(), "generated a development signing key; configure a key file in production");
        }
        // Another process wrote it first: its key is the one.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io(e)),
    }
    Ok(path)
}

#[cfg(unix)]
pub(crate) fn write_private(path: &std::path::Path, pem: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(pem.as_bytes())
}

#[cfg(not(unix))]
pub(crate) fn write_private(path: &std::path::Path, pem: &str) -> std::io::Result<()> {
    std::fs::write(path, pem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_load_back_with_an_rfc_7638_thumbprint_as_kid() {
        for algorithm in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256] {
            let pem = generate_private_pem(algorithm).unwrap();
            let key = from_private_pem(algorithm, &pem).unwrap();
            assert_eq!(key.algorithm, algorithm);
            assert!(key.encoding.is_some());
            let jwk = key.jwk.as_ref().unwrap();
            assert_eq!(jwk["kid"], key.kid.as_str());
            assert_eq!(jwk["use"], "sig");
            assert_eq!(key.kid.len(), 43, "base64url of a SHA-256");
            let public = from_verification_pem(&pem).unwrap();
            assert_eq!(public.kid, key.kid);
            assert!(public.encoding.is_none());
        }
    }

    #[test]
    fn the_rfc_7638_example_thumbprint_is_reproduced() {
        // RFC 7638 §3.1.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let required = json!({"e": "AQAB", "kty": "RSA", "n": n});
        assert_eq!(
            thumbprint(&required),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn algorithm_names_round_trip_and_nothing_else_parses() {
        for algorithm in JwtAlgorithm::ALL {
            assert_eq!(JwtAlgorithm::from_name(algorithm.name()), Some(algorithm));
        }
        assert_eq!(JwtAlgorithm::from_name("HS512"), None);
        assert_eq!(
            JwtAlgorithm::from_name("eddsa"),
            None,
            "names are case-sensitive"
        );
    }

    #[test]
    fn concurrent_starts_share_one_generated_development_key() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        let paths: Vec<_> = std::thread::scope(|scope| {
            let starts: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| development_key(Algorithm::EdDSA, &keys).unwrap()))
                .collect();
            starts.into_iter().map(|s| s.join().unwrap()).collect()
        });
        let path = keys.join("eddsa.pem");
        assert!(paths.iter().all(|p| *p == path));
        let files: Vec<_> = std::fs::read_dir(&keys).unwrap().collect();
        assert_eq!(files.len(), 1, "one key, no temporary file left");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let pem = std::fs::read_to_string(&path).unwrap();
        assert!(from_private_pem(Algorithm::EdDSA, &pem).is_ok());
        // Kept: asked again, the same file with the same key.
        assert_eq!(development_key(Algorithm::EdDSA, &keys).unwrap(), path);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), pem);
    }

    #[test]
    fn a_key_of_the_wrong_kind_is_refused() {
        let ed = generate_private_pem(Algorithm::EdDSA).unwrap();
        assert!(from_private_pem(Algorithm::RS256, &ed).is_err());
        assert!(from_verification_pem(
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
        )
        .is_err());
    }
}
