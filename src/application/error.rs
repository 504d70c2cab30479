//! The errors a caller of a use case can act on. `http::error` maps them to responses.

use crate::domain::ports::{HashError, StoreError, TokenError};
use crate::domain::validation::FieldError;

/// Every way a use case can fail.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Unknown user, wrong password or inactive user: deliberately indistinguishable.
    #[error("invalid username or password")]
    InvalidCredentials,
    /// Unknown, expired or revoked refresh token.
    #[error("invalid or expired refresh token")]
    InvalidRefreshToken,
    /// An already-rotated refresh token was presented; its session has been revoked.
    #[error("refresh token was already used; the session has been revoked")]
    RefreshTokenReused,
    /// A requested scope value is not a known role; the text says which.
    #[error("invalid scope: {0}")]
    InvalidScope(String),
    /// A missing, malformed, expired or revoked access token.
    #[error("invalid access token: {0}")]
    InvalidToken(TokenError),
    /// Input that breaks a rule; every broken rule is listed.
    #[error("invalid input")]
    Validation(Vec<FieldError>),
    #[error("username is already taken")]
    UsernameTaken,
    #[error("e-mail address is already taken")]
    EmailTaken,
    /// The current password given to a password change is wrong.
    #[error("current password is wrong")]
    WrongPassword,
    /// Too many consecutive failed logins: the account is locked for this long.
    #[error("too many failed logins; try again in {retry_after_secs} seconds")]
    AccountLocked { retry_after_secs: u64 },
    /// The operation needs an authenticated caller and none was given.
    #[error("this operation needs an access token")]
    AuthenticationRequired,
    /// A valid caller without the role the operation needs.
    #[error("this operation needs the admin role")]
    Forbidden,
    /// No user has the given id.
    #[error("no such user")]
    UserNotFound,
    /// No OAuth client has the given id.
    #[error("no such client")]
    ClientNotFound,
    /// The operation needs a confidential client (a secret rotation) and this one is public.
    #[error("a public client has no secret")]
    PublicClient,
    /// Client authentication failed: unknown or disabled client, wrong or missing secret, or a
    /// secret sent by a public client (RFC 6749 §5.2 `invalid_client`, 401).
    #[error("client authentication failed")]
    InvalidClient,
    /// The authenticated client may not use this grant (`unauthorized_client`); the text says
    /// which.
    #[error("unauthorized client: {0}")]
    UnauthorizedClient(&'static str),
    /// An authorization code that is unknown, expired, already used, issued to another client
    /// or redirect URI, or whose PKCE check failed (`invalid_grant`); the text says which.
    #[error("invalid grant: {0}")]
    InvalidGrant(&'static str),
    /// A request that breaks the protocol in a way the client can fix (`invalid_request`).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A valid token whose scope does not cover the operation (`insufficient_scope`); the text
    /// names the scope needed.
    #[error("insufficient scope: {0}")]
    InsufficientScope(&'static str),
    /// E-mail verification of a user who has no e-mail address.
    #[error("the user has no e-mail address")]
    NoEmailAddress,
    /// E-mail verification of an address that is verified already.
    #[error("the e-mail address is already verified")]
    EmailAlreadyVerified,
    /// The address got as many mails this hour as it may.
    #[error("too many mails to this address; try again later")]
    MailRateLimited,
    /// A verification token that is unknown, used or expired.
    #[error("invalid or expired verification token")]
    InvalidVerificationToken,
    /// A verification token for an address the user no longer has (it is used up).
    #[error("the e-mail address changed since the token was sent")]
    EmailChanged,
    /// A password-reset token that is unknown, used or expired.
    #[error("invalid or expired reset token")]
    InvalidResetToken,
    /// Too many password hashes in flight; retry later.
    #[error("the service is busy")]
    Busy { retry_after_secs: u64 },
    /// The database cannot be reached.
    #[error("a dependency is unavailable: {0}")]
    Unavailable(String),
    // Issue 14, sessions and the account.
    /// No live session of the caller has the given id (another user's included).
    #[error("no such session")]
    SessionNotFound,
    /// The operation would delete the last active admin.
    #[error("the last active admin cannot be deleted")]
    LastAdmin,
    // Passkeys (issue 14, part P).
    /// The caller has no passkey with this id.
    #[error("no such passkey")]
    PasskeyNotFound,
    /// The passkey is registered already (to this user or another).
    #[error("this passkey is registered already")]
    PasskeyAlreadyRegistered,
    /// The user has the most passkeys allowed.
    #[error("at most {max} passkeys per user")]
    PasskeyLimitReached { max: u32 },
    /// The WebAuthn ceremony is unknown, expired, already finished, or not the caller's.
    #[error("unknown, expired or already used passkey ceremony")]
    CeremonyInvalid,
    /// The browser's WebAuthn answer was malformed or did not verify; the text says what, in
    /// terms that reveal nothing of the account.
    #[error("passkey refused: {0}")]
    PasskeyRejected(&'static str),
    /// Passkeys are off on this server: its issuer is an IP address and no WebAuthn relying
    /// party is configured.
    #[error("passkeys are not configured on this server")]
    PasskeysOff,
    /// A right password for a user with a second factor, and no `otp` (`mfa_required`).
    #[error("this account needs a second factor: send otp (a TOTP or recovery code)")]
    MfaRequired,
    /// The second factor (`otp`) an operation needs is missing or wrong (an enrolment's
    /// confirmation, an account deletion).
    #[error("the one-time code is missing or wrong")]
    WrongOtp,
    /// A TOTP enrolment while one is confirmed.
    #[error("TOTP is already enabled")]
    TotpAlreadyEnabled,
    /// A confirmation without a pending enrolment (or one replaced meanwhile).
    #[error("no TOTP enrolment is pending")]
    TotpNotPending,
    /// The hosted login page's pending second step is unknown, expired or used, or its user
    /// changed meanwhile.
    #[error("this sign-in expired; sign in again")]
    SignInExpired,
    /// A bug or corrupt data; logged, answered as an opaque 500.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for AppError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::UsernameTaken => AppError::UsernameTaken,
            StoreError::EmailTaken => AppError::EmailTaken,
            StoreError::Unavailable(detail) => AppError::Unavailable(detail),
            StoreError::Other(detail) => AppError::Internal(detail),
        }
    }
}

impl From<HashError> for AppError {
    fn from(error: HashError) -> Self {
        match error {
            HashError::Busy { retry_after_secs } => AppError::Busy { retry_after_secs },
            HashError::Failed(detail) => AppError::Internal(detail),
        }
    }
}

impl From<TokenError> for AppError {
    fn from(error: TokenError) -> Self {
        match error {
            TokenError::Signing(detail) => AppError::Internal(detail),
            other => AppError::InvalidToken(other),
        }
    }
}
