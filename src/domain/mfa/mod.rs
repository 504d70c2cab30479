//! Second factors: TOTP authenticators (RFC 6238, `totp.rs`), single-use recovery codes
//! (`recovery.rs`), the pending sign-in between the hosted login page's password step and its
//! second step (`pending.rs`), and the ports that store them and seal the TOTP secrets
//! (`ports.rs`).

mod pending;
mod ports;
mod recovery;
mod totp;

pub use pending::{PendingSignin, PendingSigninHash, PendingSigninToken, PENDING_SIGNIN_SECONDS};
pub use ports::{MfaRepository, SealError, SecretSealer, TotpCredential};
pub use recovery::{RecoveryCode, RecoveryCodeHash, RECOVERY_CODE_COUNT};
pub use totp::{SealedSecret, TotpSecret, TotpStep, TOTP_PERIOD_SECONDS};

/// What a user typed as a second factor, told apart by its shape: six digits are a TOTP code,
/// anything that reads as a recovery code is one, the rest matches nothing.
#[derive(Clone, PartialEq, Eq)]
pub enum OtpInput {
    Totp(String),
    Recovery(RecoveryCode),
    Malformed,
}

impl OtpInput {
    /// Reads `raw` (bounded: a long value is malformed before anything looks at it).
    pub fn parse(raw: &str) -> Self {
        if raw.len() > 64 {
            return Self::Malformed;
        }
        let trimmed = raw.trim();
        if trimmed.len() == 6 && trimmed.bytes().all(|b| b.is_ascii_digit()) {
            return Self::Totp(trimmed.to_owned());
        }
        RecoveryCode::parse(trimmed).map_or(Self::Malformed, Self::Recovery)
    }
}

impl std::fmt::Debug for OtpInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Totp(_) => "Totp([REDACTED])",
            Self::Recovery(_) => "Recovery([REDACTED])",
            Self::Malformed => "Malformed",
        })
    }
}

#[cfg(test)]
mod tests;
