//! TOTP (RFC 6238 over RFC 4226): SHA-1, 6 digits, 30-second steps, one step of clock skew
//! either way, each step accepted once (the store keeps the last accepted step).

use std::fmt;

use rand::RngCore;
use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, TOTP};

/// The length of a step in seconds.
pub const TOTP_PERIOD_SECONDS: i64 = 30;
const DIGITS: usize = 6;
/// 160 bits, the HMAC-SHA-1 block the RFC 4226 §4 recommends.
const SECRET_BYTES: usize = 20;

/// A TOTP step number: seconds since the epoch divided by 30.
pub type TotpStep = i64;

/// A TOTP shared secret in the clear. Its `Debug` is redacted; it is stored only sealed.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(Vec<u8>);

impl TotpSecret {
    /// A fresh secret of 160 random bits.
    pub fn generate() -> Self {
        let mut bytes = vec![0u8; SECRET_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// Wraps bytes opened from storage.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The raw bytes (to seal).
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The secret as authenticator apps take it: RFC 4648 base32 without padding.
    pub fn base32(&self) -> String {
        base32_encode(&self.0)
    }

    fn totp(&self, issuer: Option<&str>, account: &str) -> Option<TOTP> {
        TOTP::new(
            Algorithm::SHA1,
            DIGITS,
            1,
            TOTP_PERIOD_SECONDS as u64,
            self.0.clone(),
            issuer.map(str::to_owned),
            account.to_owned(),
        )
        .ok()
    }

    /// The `otpauth://totp/...` URI of Google Authenticator's key-URI format, labelled
    /// `issuer:account` (a `:` in either is replaced, as the format forbids it there).
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> String {
        let issuer = issuer.replace(':', "-");
        let account = account.replace(':', "-");
        self.totp(Some(&issuer), &account)
            .map(|totp| totp.get_url())
            .unwrap_or_default()
    }

    /// The code of step `step`.
    pub fn code_at(&self, step: TotpStep) -> String {
        let time = u64::try_from(step.max(0)).unwrap_or(0) * TOTP_PERIOD_SECONDS as u64;
        self.totp(None, "user")
            .map(|totp| totp.generate(time))
            .unwrap_or_default()
    }

    /// The step within one of `now_step` whose code is `code`, compared in constant time;
    /// the earliest such step when several match.
    pub fn matching_step(&self, code: &str, now_step: TotpStep) -> Option<TotpStep> {
        let mut found = None;
        for step in [now_step - 1, now_step, now_step + 1] {
            let expected = self.code_at(step);
            let equal: bool = expected.as_bytes().ct_eq(code.as_bytes()).into();
            if equal && found.is_none() && !expected.is_empty() {
                found = Some(step);
            }
        }
        found
    }

    /// The step of a time in seconds since the epoch.
    pub fn step_of(unix_seconds: i64) -> TotpStep {
        unix_seconds.div_euclid(TOTP_PERIOD_SECONDS)
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret([REDACTED])")
    }
}

/// A TOTP secret as stored: sealed by a [`super::SecretSealer`] for one user.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSecret(Vec<u8>);

impl SealedSecret {
    /// Wraps bytes read from storage or made by a sealer.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The bytes to store.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealedSecret({} bytes)", self.0.len())
    }
}

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32, upper case, without padding.
pub(super) fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(BASE32[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}
