//! The bodies of the second-factor operations.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The account password, confirming a change of the second factors.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"password": "correct horse battery"}))]
pub struct MfaPasswordRequest {
    #[schema(value_type = String, format = Password)]
    pub password: secrecy::SecretString,
}

/// A started TOTP enrolment: the secret for the authenticator app, not yet active.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"secret": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", "otpauth_uri": "otpauth://totp/auth.example:alice?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=auth.example"}))]
pub struct TotpEnrolmentBody {
    /// RFC 4648 base32 without padding (160 bits).
    pub secret: String,
    /// The key URI for a QR code (`otpauth://totp/ISSUER:USERNAME?secret=...&issuer=ISSUER`).
    pub otpauth_uri: String,
}

/// The first code of the authenticator, confirming an enrolment.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"code": "492039"}))]
pub struct TotpConfirmRequest {
    /// Six digits.
    #[schema(value_type = String)]
    pub code: secrecy::SecretString,
}

/// Ten single-use recovery codes, shown once.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"recovery_codes": ["k3jd-82mf-qq4x-zt7a", "…"]}))]
pub struct RecoveryCodesBody {
    /// `xxxx-xxxx-xxxx-xxxx`; accepted as `otp` with or without dashes, in any case.
    pub recovery_codes: Vec<String>,
}
