//! RFC 6749 §5.2 error JSON, the error format of the OAuth2 endpoints.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::{rate_limited_detail, Problem, Rejection};
use crate::application::AppError;

/// An RFC 6749 §5.2 error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct OAuthErrorBody {
    /// `invalid_request`, `invalid_client`, `invalid_grant`, `unauthorized_client`,
    /// `unsupported_grant_type`, `invalid_scope`, `temporarily_unavailable` or `server_error`.
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
    /// RFC 6749 §5.2: a 401 `invalid_client` names the authentication scheme to use.
    www_authenticate: Option<&'static str>,
}

impl OAuthError {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            error,
            description: description.into(),
            retry_after: None,
            www_authenticate: None,
        }
    }

    /// A 400 `unsupported_grant_type` for a `grant_type` other than the two served.
    pub fn unsupported_grant_type(grant_type: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            format!("grant_type '{grant_type}' is not supported; use authorization_code, refresh_token, client_credentials or password"),
        )
    }

    /// A 429 `temporarily_unavailable` for a client over its request rate.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Self {
            retry_after: Some(retry_after_secs),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "temporarily_unavailable",
                rate_limited_detail(retry_after_secs),
            )
        }
    }

    /// A 503 `temporarily_unavailable` for a dependency that is down.
    pub(crate) fn unavailable() -> Self {
        Self::from_problem(Problem::unavailable(), "temporarily_unavailable")
    }

    /// The body served.
    pub(crate) fn body(&self) -> OAuthErrorBody {
        OAuthErrorBody {
            error: self.error.to_owned(),
            error_description: self.description.clone(),
        }
    }

    /// The OAuth2 form of an error the framework answered itself with a bare `status`.
    pub fn bare(status: StatusCode) -> Self {
        let error = if status.is_server_error() {
            "server_error"
        } else {
            "invalid_request"
        };
        Self::from_problem(Problem::bare(status), error)
    }

    /// `problem`'s status, sentence and `Retry-After` under the RFC 6749 `error` code.
    fn from_problem(problem: Problem, error: &'static str) -> Self {
        Self {
            status: problem.status,
            error,
            description: problem.detail,
            retry_after: problem.retry_after,
            www_authenticate: None,
        }
    }
}

impl From<Rejection> for OAuthError {
    /// Every rejection is `invalid_request`: 413 for a body over the limit, 400 otherwise.
    fn from(rejection: Rejection) -> Self {
        let status = match rejection {
            Rejection::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        };
        Self::new(status, "invalid_request", rejection.sentence())
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
            AppError::MfaRequired => Self::new(S::BAD_REQUEST, "mfa_required", error.to_string()),
            AppError::InvalidClient => Self {
                www_authenticate: Some("Basic realm=\"auth-service\", charset=\"UTF-8\""),
                ..Self::new(
                    S::UNAUTHORIZED,
                    "invalid_client",
                    "Client authentication failed: unknown or disabled client, or wrong credentials.",
                )
            },
            AppError::UnauthorizedClient(detail) => {
                Self::new(S::BAD_REQUEST, "unauthorized_client", detail)
            }
            AppError::InvalidGrant(detail) => Self::new(S::BAD_REQUEST, "invalid_grant", detail),
            AppError::InvalidRequest(detail) => {
                Self::new(S::BAD_REQUEST, "invalid_request", detail)
            }
            AppError::AccountLocked { retry_after_secs } => Self {
                retry_after: Some(retry_after_secs),
                ..Self::new(S::TOO_MANY_REQUESTS, "invalid_grant", error.to_string())
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
                Self::from_problem(problem, error)
            }
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = self.body();
        let mut response = (
            self.status,
            crate::infrastructure::http::no_store(),
            axum::Json(body),
        )
            .into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(challenge) = self.www_authenticate {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}
