//! Second factors: the key that seals TOTP secrets at rest (`MFA_ENCRYPTION_KEY`) and the
//! issuer label authenticator apps show (`MFA_TOTP_ISSUER`).

use std::fmt;

use base64::Engine;

use super::table::{Fallback::*, Group, Value, Var};
use super::{AppEnv, ConfigError};

/// 32 secret bytes. `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct MfaKey([u8; 32]);

impl MfaKey {
    /// Wraps 32 bytes.
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw key.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    /// Reads 64 hex digits, or base64 (standard or URL-safe, padded or not) of 32 bytes.
    ///
    /// # Errors
    /// A sentence saying what is wrong (never the value).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let bytes = if raw.len() == 64 && raw.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(raw).map_err(|_| "is not valid hex".to_owned())?
        } else {
            let unpadded = raw.trim_end_matches('=');
            base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(unpadded)
                .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(unpadded))
                .map_err(|_| "is neither 64 hex digits nor base64".to_owned())?
        };
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| format!("holds {} bytes, not 32", b.len()))?;
        Ok(Self(bytes))
    }

    /// Whether the bytes look random: fewer than 16 distinct values in 32 bytes (a repeated
    /// or counting pattern) happens to a random key with a probability below 10^-20.
    pub fn looks_weak(&self) -> bool {
        let mut seen = [false; 256];
        for &b in &self.0 {
            seen[usize::from(b)] = true;
        }
        seen.iter().filter(|s| **s).count() < 16
    }
}

impl fmt::Debug for MfaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MfaKey([REDACTED])")
    }
}

/// The settings of the second factors.
#[derive(Debug, Clone, Default)]
pub struct MfaSettings {
    /// `None` outside production when unset: a key generated and kept in `JWT_DEV_KEY_DIR`.
    /// The bootstrap resolves it (`bootstrap::mfa_encryption_key`), the raw 32 bytes.
    pub encryption_key: Option<MfaKey>,
    /// The issuer label of the `otpauth://` URI; `None`: the host of `JWT_ISSUER`.
    pub totp_issuer: Option<String>,
}

const HINT: &str =
    "set MFA_ENCRYPTION_KEY to 32 random bytes, e.g. the output of `openssl rand -base64 32`";

fn encryption_key(_: &MfaSettings, value: &Value<'_>) -> Result<Option<MfaKey>, ConfigError> {
    let production = value.context.app_env == AppEnv::Production;
    let Some(raw) = value.raw else {
        return if production {
            Err(ConfigError(format!(
                "MFA_ENCRYPTION_KEY is not set; production requires it: {HINT}"
            )))
        } else {
            Ok(None)
        };
    };
    let key = MfaKey::parse(raw)
        .map_err(|why| ConfigError(format!("MFA_ENCRYPTION_KEY {why}: {HINT}")))?;
    if production && key.looks_weak() {
        return Err(ConfigError(format!(
            "MFA_ENCRYPTION_KEY does not look random (too few distinct bytes): {HINT}"
        )));
    }
    Ok(Some(key))
}

impl Group for MfaSettings {
    const VARS: &'static [Var<Self>] = &[
        Var {
            name: "MFA_ENCRYPTION_KEY",
            default: Computed(
                "generated and kept in JWT_DEV_KEY_DIR outside production; required in production",
            ),
            read: |s, v| {
                s.encryption_key = encryption_key(s, v)?;
                Ok(())
            },
            show: |s| match &s.encryption_key {
                Some(_) => "******** (32 bytes)".to_owned(),
                None => "(development key in JWT_DEV_KEY_DIR)".to_owned(),
            },
        },
        Var {
            name: "MFA_TOTP_ISSUER",
            default: Computed("the host of JWT_ISSUER"),
            read: |s, v| {
                s.totp_issuer = v.text().map(|t| t.trim().to_owned());
                Ok(())
            },
            show: |s| {
                s.totp_issuer
                    .clone()
                    .unwrap_or_else(|| "(host of JWT_ISSUER)".into())
            },
        },
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_read_as_hex_or_base64_of_32_bytes() {
        let hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        assert_eq!(MfaKey::parse(hex).unwrap().expose()[1], 0x11);
        let b64 = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        assert_eq!(MfaKey::parse(&b64).unwrap().expose(), &[7u8; 32]);
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xfbu8; 32]);
        assert_eq!(MfaKey::parse(&url).unwrap().expose(), &[0xfbu8; 32]);
        assert!(MfaKey::parse("too short").is_err());
        let long = base64::engine::general_purpose::STANDARD.encode([1u8; 48]);
        assert!(MfaKey::parse(&long).unwrap_err().contains("48 bytes"));
        assert!(MfaKey::new([0; 32]).looks_weak());
        let counting: Vec<u8> = (0..32).collect();
        assert!(!MfaKey::new(counting.try_into().unwrap()).looks_weak());
        assert_eq!(format!("{:?}", MfaKey::new([9; 32])), "MfaKey([REDACTED])");
    }
}
