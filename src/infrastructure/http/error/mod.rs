//! The one place where use-case errors become HTTP responses: RFC 9457 problem documents for
//! the API, RFC 6749 §5.2 error JSON for the OAuth2 endpoints, `WWW-Authenticate` on 401.

mod oauth;
mod rejection;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::application::AppError;
use crate::domain::ports::TokenError;
use crate::domain::validation::FieldError;

pub use oauth::{OAuthError, OAuthErrorBody};
pub use rejection::Rejection;

/// One invalid field of a 422 problem.
#[derive(Debug, Serialize, ToSchema)]
pub struct FieldErrorBody {
    /// The input field.
    #[schema(example = "password")]
    pub field: String,
    /// A snake_case machine code.
    #[schema(example = "too_short")]
    pub code: String,
    /// What is wrong, for a person.
    #[schema(example = "must be at least 8 characters long")]
    pub message: String,
}

/// An RFC 9457 problem document (`application/problem+json`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemBody {
    #[schema(example = "about:blank")]
    pub r#type: String,
    #[schema(example = "Unprocessable Entity")]
    pub title: String,
    #[schema(example = 422)]
    pub status: u16,
    #[schema(example = "The request body has invalid fields.")]
    pub detail: String,
    /// A snake_case machine code.
    #[schema(example = "validation_failed")]
    pub code: String,
    /// Present on 422 only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldErrorBody>>,
}

/// An HTTP error answered as a problem document.
#[derive(Debug)]
pub struct Problem {
    status: StatusCode,
    code: &'static str,
    detail: String,
    errors: Option<Vec<FieldError>>,
    www_authenticate: Option<String>,
    retry_after: Option<u64>,
}

impl Problem {
    /// A problem with a status, a machine code and a detail sentence.
    fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            errors: None,
            www_authenticate: None,
            retry_after: None,
        }
    }

    /// A 422 listing the invalid fields.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let mut problem = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "The request has invalid fields.",
        );
        problem.errors = Some(errors);
        problem
    }

    /// A 422 for one invalid field.
    pub fn invalid_field(field: &str, code: &'static str, message: impl Into<String>) -> Self {
        Self::validation(vec![FieldError::new(field, code, message)])
    }

    /// A 401 for a request that carried no bearer token.
    pub fn missing_token() -> Self {
        let mut problem = Self::new(
            StatusCode::UNAUTHORIZED,
            "missing_token",
            "This endpoint needs an access token in the Authorization header (Bearer).",
        );
        problem.www_authenticate = Some("Bearer".into());
        problem
    }

    /// A 401 for a token that was sent but is not valid (or no longer).
    pub(crate) fn invalid_token(error: &TokenError) -> Self {
        let description = match error {
            TokenError::Expired => "The access token expired",
            _ => "The access token is invalid or has been revoked",
        };
        let mut problem = Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            format!("{description}."),
        );
        problem.www_authenticate = Some(format!(
            "Bearer error=\"invalid_token\", error_description=\"{description}\""
        ));
        problem
    }

    /// A 403 for a valid token without the needed role.
    pub(crate) fn insufficient_scope() -> Self {
        let mut problem = Self::new(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            "This operation needs the admin role.",
        );
        problem.www_authenticate = Some(
            "Bearer error=\"insufficient_scope\", error_description=\"admin role required\", scope=\"admin\"".into(),
        );
        problem
    }

    /// A 403 for a valid token whose scope lacks `scope` (e.g. `openid` for UserInfo).
    pub(crate) fn missing_scope(scope: &'static str) -> Self {
        let mut problem = Self::new(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            format!("This operation needs the {scope} scope."),
        );
        problem.www_authenticate = Some(format!(
            "Bearer error=\"insufficient_scope\", error_description=\"{scope} scope required\", scope=\"{scope}\""
        ));
        problem
    }

    /// A 503 for a dependency that is down (the cause is logged by the caller).
    pub(crate) fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "The service is temporarily unavailable; retry shortly.",
        )
        .retry_after(1)
    }

    /// A 404 for a path that names no route.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "No such resource.")
    }

    /// A 404 for a user id that names no user (a malformed id included).
    pub fn user_not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "user_not_found",
            "No user has this id.",
        )
    }

    /// A 404 for a client id that names no registered client (a malformed id included).
    pub fn client_not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "client_not_found",
            "No client has this id.",
        )
    }

    /// A 409 for a secret rotation of a public client, which has no secret.
    pub fn public_client() -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "public_client",
            "A public client has no secret.",
        )
    }

    /// A 429 for a client over its request rate.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            rate_limited_detail(retry_after_secs),
        )
        .retry_after(retry_after_secs)
    }

    /// The problem of an error the framework answered itself with a bare `status` (no body
    /// of ours): the same status, with a code and a sentence of ours.
    pub fn bare(status: StatusCode) -> Self {
        let (code, detail) = match status {
            StatusCode::NOT_FOUND => return Self::not_found(),
            StatusCode::METHOD_NOT_ALLOWED => (
                "method_not_allowed",
                "This method is not allowed on this resource; see the Allow header.",
            ),
            StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", TOO_LARGE),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => (
                "unsupported_media_type",
                "The request body has an unsupported content type.",
            ),
            StatusCode::REQUEST_TIMEOUT => ("request_timeout", "The request took too long."),
            s if s.is_server_error() => ("internal_error", INTERNAL),
            _ => ("bad_request", "The request could not be understood."),
        };
        Self::new(status, code, detail)
    }

    fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }
}

/// The body limit's sentence.
const TOO_LARGE: &str = "The request body is larger than the configured limit.";
/// The sentence of an unexpected failure (logged, not described).
const INTERNAL: &str = "An unexpected error occurred.";
/// What a JSON body needs.
const NOT_JSON: &str = "Send the body as JSON with Content-Type: application/json.";

fn rate_limited_detail(retry_after_secs: u64) -> String {
    format!("Too many requests from this client; retry in {retry_after_secs} s.")
}

impl From<AppError> for Problem {
    fn from(error: AppError) -> Self {
        use StatusCode as S;
        match error {
            AppError::InvalidCredentials => Self::new(
                S::BAD_REQUEST,
                "invalid_credentials",
                "Invalid username or password.",
            ),
            AppError::InvalidRefreshToken | AppError::RefreshTokenReused => {
                Self::new(S::BAD_REQUEST, "invalid_grant", error.to_string())
            }
            AppError::InvalidScope(detail) => Self::new(S::BAD_REQUEST, "invalid_scope", detail),
            AppError::InvalidToken(reason) => {
                tracing::debug!(%reason, "access token refused");
                Self::invalid_token(&reason)
            }
            AppError::Validation(errors) => Self::validation(errors),
            AppError::AccountLocked { retry_after_secs } => Self::new(
                S::TOO_MANY_REQUESTS,
                "account_locked",
                format!("Too many failed logins; try again in {retry_after_secs} seconds."),
            )
            .retry_after(retry_after_secs),
            AppError::AuthenticationRequired => Self::missing_token(),
            AppError::Forbidden => Self::insufficient_scope(),
            AppError::InsufficientScope(scope) => Self::missing_scope(scope),
            AppError::InvalidClient => Self::new(
                S::UNAUTHORIZED,
                "invalid_client",
                "Client authentication failed.",
            ),
            AppError::UnauthorizedClient(detail) => {
                Self::new(S::BAD_REQUEST, "unauthorized_client", detail)
            }
            AppError::InvalidGrant(detail) => Self::new(S::BAD_REQUEST, "invalid_grant", detail),
            AppError::InvalidRequest(detail) => {
                Self::new(S::BAD_REQUEST, "invalid_request", detail)
            }
            AppError::UserNotFound => Self::user_not_found(),
            AppError::ClientNotFound => Self::client_not_found(),
            AppError::PublicClient => Self::public_client(),
            AppError::UsernameTaken => Self::new(
                S::CONFLICT,
                "username_taken",
                "This username is already taken.",
            ),
            AppError::EmailTaken => Self::new(
                S::CONFLICT,
                "email_taken",
                "This e-mail address is already registered.",
            ),
            AppError::WrongPassword => Self::new(
                S::BAD_REQUEST,
                "wrong_password",
                "The current password is wrong.",
            ),
            AppError::SessionNotFound => Self::new(
                S::NOT_FOUND,
                "session_not_found",
                "You have no live session with this id.",
            ),
            // Second factors (issue 14, TOTP).
            AppError::MfaRequired => Self::new(
                S::BAD_REQUEST,
                "mfa_required",
                "This account needs a second factor: send otp (a TOTP or recovery code).",
            ),
            AppError::WrongOtp => Self::new(
                S::BAD_REQUEST,
                "wrong_otp",
                "The code is missing, wrong or was already used.",
            ),
            AppError::LastAdmin => Self::new(
                S::CONFLICT,
                "last_admin",
                "The last active admin cannot be deleted; make another user admin first.",
            ),
            AppError::TotpAlreadyEnabled => Self::new(
                S::CONFLICT,
                "totp_already_enabled",
                "TOTP is already enabled; disable it before enrolling again.",
            ),
            AppError::TotpNotPending => Self::new(
                S::CONFLICT,
                "totp_not_pending",
                "No TOTP enrolment is pending; start one with POST /users/me/mfa/totp.",
            ),
            AppError::SignInExpired => Self::new(
                S::BAD_REQUEST,
                "signin_expired",
                "This sign-in expired; sign in again.",
            ),
            AppError::NoEmailAddress => Self::new(
                S::CONFLICT,
                "email_missing",
                "The account has no e-mail address to verify.",
            ),
            AppError::EmailAlreadyVerified => Self::new(
                S::CONFLICT,
                "email_already_verified",
                "The e-mail address is already verified.",
            ),
            AppError::MailRateLimited => Self::new(
                S::TOO_MANY_REQUESTS,
                "mail_rate_limited",
                "Too many mails to this address in the last hour; try again later.",
            )
            .retry_after(3600),
            AppError::InvalidVerificationToken => Self::new(
                S::BAD_REQUEST,
                "invalid_verification_token",
                "The verification token is unknown, used or expired.",
            ),
            AppError::EmailChanged => Self::new(
                S::BAD_REQUEST,
                "email_changed",
                "The e-mail address changed since this token was sent; request a new mail.",
            ),
            AppError::InvalidResetToken => Self::new(
                S::BAD_REQUEST,
                "invalid_reset_token",
                "The password-reset token is unknown, used or expired.",
            ),
            AppError::Busy { retry_after_secs } => Self::new(
                S::SERVICE_UNAVAILABLE,
                "service_busy",
                "Too many password operations in progress; retry shortly.",
            )
            .retry_after(retry_after_secs),
            AppError::Unavailable(detail) => {
                tracing::warn!(%detail, "dependency unavailable");
                Self::unavailable()
            }
            // Passkeys (issue 14, part P).
            AppError::PasskeyNotFound => Self::passkey_not_found(),
            AppError::PasskeyAlreadyRegistered => Self::new(
                S::CONFLICT,
                "passkey_already_registered",
                "This passkey is registered already.",
            ),
            AppError::PasskeyLimitReached { max } => Self::new(
                S::CONFLICT,
                "passkey_limit_reached",
                format!("At most {max} passkeys per user: delete one first."),
            ),
            AppError::CeremonyInvalid => Self::new(
                S::BAD_REQUEST,
                "passkey_ceremony_invalid",
                "The passkey ceremony is unknown, expired or already finished: start again.",
            ),
            AppError::PasskeysOff => Self::new(
                S::SERVICE_UNAVAILABLE,
                "passkeys_off",
                "Passkeys are not configured on this server (WEBAUTHN_ORIGIN).",
            ),
            AppError::PasskeyRejected(why) => Self::new(
                S::BAD_REQUEST,
                "passkey_rejected",
                format!("The passkey was refused: {why}."),
            ),
            AppError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                Self::new(S::INTERNAL_SERVER_ERROR, "internal_error", INTERNAL)
            }
        }
    }
}

impl Problem {
    /// 404 `passkey_not_found`: no passkey of the caller has this id.
    pub fn passkey_not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "passkey_not_found",
            "The user has no passkey with this id.",
        )
    }

    /// 403 `csrf_failed`: the login page's CSRF token is missing or stale (passkey sign-in).
    pub fn sign_in_form_expired() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "csrf_failed",
            "This sign-in page expired. Reload it and try again.",
        )
    }

    /// 400 `invalid_authorization_request`: the page's authorization request no longer holds
    /// (passkey sign-in); `detail` says why.
    pub fn authorization_request_invalid(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_authorization_request",
            detail,
        )
    }

    /// The document served.
    pub(crate) fn body(&self) -> ProblemBody {
        ProblemBody {
            r#type: "about:blank".into(),
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            code: self.code.to_owned(),
            errors: self.errors.as_ref().map(|errors| {
                errors
                    .iter()
                    .map(|e| FieldErrorBody {
                        field: e.field.clone(),
                        code: e.code.to_owned(),
                        message: e.message.clone(),
                    })
                    .collect()
            }),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = self.body();
        let mut response = (self.status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(challenge) = self
            .www_authenticate
            .and_then(|v| HeaderValue::from_str(&v).ok())
        {
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
