//! The one place where use-case errors become HTTP responses: RFC 9457 problem documents for
//! the API, RFC 6749 §5.2 error JSON for the OAuth2 endpoints, `WWW-Authenticate` on 401.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::application::AppError;
use crate::domain::ports::TokenError;
use crate::domain::validation::FieldError;

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
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
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

    fn invalid_token(error: &TokenError) -> Self {
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
    fn insufficient_scope() -> Self {
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

    fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }
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
            AppError::UserNotFound => {
                Self::new(S::NOT_FOUND, "user_not_found", "No user has this id.")
            }
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
            AppError::Busy { retry_after_secs } => Self::new(
                S::SERVICE_UNAVAILABLE,
                "service_busy",
                "Too many password operations in progress; retry shortly.",
            )
            .retry_after(retry_after_secs),
            AppError::Unavailable(detail) => {
                tracing::warn!(%detail, "dependency unavailable");
                Self::new(
                    S::SERVICE_UNAVAILABLE,
                    "service_unavailable",
                    "The service is temporarily unavailable; retry shortly.",
                )
                .retry_after(1)
            }
            AppError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                Self::new(
                    S::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "An unexpected error occurred.",
                )
            }
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = ProblemBody {
            r#type: "about:blank".into(),
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.status.as_u16(),
            detail: self.detail,
            code: self.code.to_owned(),
            errors: self.errors.map(|errors| {
                errors
                    .into_iter()
                    .map(|e| FieldErrorBody {
                        field: e.field,
                        code: e.code.to_owned(),
                        message: e.message,
                    })
                    .collect()
            }),
        };
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

/// An RFC 6749 §5.2 error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct OAuthErrorBody {
    /// `invalid_request`, `invalid_grant`, `unsupported_grant_type`, `invalid_scope`,
    /// `temporarily_unavailable` or `server_error`.
    #[schema(example = "invalid_grant")]
    pub error: String,
    #[schema(example = "Invalid username or password.")]
    pub error_description: String,
}

/// An error of the OAuth2 endpoints.
#[derive(Debug)]
pub struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
    retry_after: Option<u64>,
}

impl OAuthError {
    /// A 400 `invalid_request` (missing, repeated or malformed parameter).
    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    /// Any RFC 6749 error with its status.
    pub fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            error,
            description: description.into(),
            retry_after: None,
        }
    }
}

impl From<AppError> for OAuthError {
    fn from(error: AppError) -> Self {
        use StatusCode as S;
        match error {
            AppError::InvalidCredentials
            | AppError::InvalidRefreshToken
            | AppError::RefreshTokenReused => {
                Self::new(S::BAD_REQUEST, "invalid_grant", error.to_string())
            }
            AppError::InvalidScope(detail) => Self::new(S::BAD_REQUEST, "invalid_scope", detail),
            AppError::AccountLocked { retry_after_secs } => Self {
                status: S::TOO_MANY_REQUESTS,
                error: "invalid_grant",
                description: error.to_string(),
                retry_after: Some(retry_after_secs),
            },
            other => {
                // Everything else has the same meaning as on the API; only the body differs.
                let problem = Problem::from(other);
                let error = match problem.status {
                    S::SERVICE_UNAVAILABLE => "temporarily_unavailable",
                    S::INTERNAL_SERVER_ERROR => "server_error",
                    S::UNAUTHORIZED => "invalid_token",
                    _ => "invalid_request",
                };
                Self {
                    status: problem.status,
                    error,
                    description: problem.detail,
                    retry_after: problem.retry_after,
                }
            }
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = OAuthErrorBody {
            error: self.error.to_owned(),
            error_description: self.description,
        };
        let mut response = (self.status, super::no_store(), axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
