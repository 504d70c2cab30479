//! E-mail verification and password reset: the JSON endpoints, and the hosted pages the mails
//! link to (no script; each form carries a CSRF token checked against its cookie).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::application::AppError;
use crate::infrastructure::http::dto::{
    EmailVerifyForm, EmailVerifyRequest, PasswordResetConfirm, PasswordResetForm,
    PasswordResetRequest,
};
use crate::infrastructure::http::error::{Problem, ProblemBody};
use crate::infrastructure::http::extract::{ApiJson, Client, CurrentUser};
use crate::infrastructure::http::pages;
use crate::infrastructure::http::routes::authorize::failure_page;
use crate::infrastructure::http::routes::responses::{BodyRefused, Unauthenticated};
use crate::infrastructure::http::AppState;

/// Reset requests looked up in the background at once, per process.
static RESET_LOOKUPS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(256);

/// The longest token a link's page shows (tokens are 43 characters).
const MAX_TOKEN_LEN: usize = 128;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(request_verification))
        .routes(routes!(verify_email, verify_email_page))
        .routes(routes!(verify_email_form))
        .routes(routes!(request_reset, reset_page))
        .routes(routes!(confirm_reset))
        .routes(routes!(reset_form))
}

/// Send a verification mail
///
/// Sends the caller's address a mail with a single-use link (a 256-bit token, stored hashed,
/// valid 24 hours); a new mail replaces the earlier unused tokens.
#[utoipa::path(
    post, path = "/users/me/email/verify", tag = "users",
    security(("oauth2" = [])),
    responses(
        (status = 202, description = "The mail is queued"),
        Unauthenticated,
        (status = 409, description = "email_missing (the account has no address) or email_already_verified", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "mail_rate_limited: too many mails to this address this hour, or rate_limited: too many requests from this client (Retry-After)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
async fn request_verification(
    State(state): State<AppState>,
    Client(ctx): Client,
    CurrentUser(principal): CurrentUser,
) -> Result<StatusCode, Problem> {
    state
        .recovery
        .request_verification(&principal, &ctx)
        .await?;
    Ok(StatusCode::ACCEPTED)
}

/// Verify an e-mail address
///
/// Uses the token of a verification mail: the user's `email_verified` becomes true, if the
/// address is still the one the mail went to.
#[utoipa::path(
    post, path = "/auth/email/verify", tag = "auth",
    request_body = EmailVerifyRequest,
    responses(
        (status = 204, description = "Verified"),
        (status = 400, description = "invalid_verification_token (unknown, used or expired), email_changed (the address changed since; the token is used up), or malformed JSON", body = ProblemBody, content_type = "application/problem+json"),
        BodyRefused,
        (status = 422, description = "No token field", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests from this client (Retry-After)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
async fn verify_email(
    State(state): State<AppState>,
    Client(ctx): Client,
    ApiJson(body): ApiJson<EmailVerifyRequest>,
) -> Result<StatusCode, Problem> {
    state.recovery.verify_email(&body.token, &ctx).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The page of a verification link
///
/// A confirmation button (a link alone verifies nothing: mail scanners open links), posted to
/// `/auth/email/verify/form`.
#[utoipa::path(
    get, path = "/auth/email/verify", tag = "auth",
    params(("token" = String, Query, description = "The token of the mail")),
    responses(
        (status = 200, description = "The confirmation page", content_type = "text/html", body = String, example = json!("<!doctype html><html lang=\"en\">…</html>")),
        (status = 400, description = "Error page: no token (or an overlong one) in the link", content_type = "text/html", body = String, example = json!("<!doctype html><html lang=\"en\">…</html>")),
    )
)]
async fn verify_email_page(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let Some(token) = query_token(query.as_deref()) else {
        return link_broken();
    };
    let (csrf, cookie) = state.browser.new_csrf();
    pages::verify_email(&csrf, &token)
        .with_header(cookie.0, cookie.1)
        .into_response()
}

/// Confirm an address on its page
///
/// The form of `GET /auth/email/verify`: `csrf` and `token`.
#[utoipa::path(
    post, path = "/auth/email/verify/form", tag = "auth",
    request_body(content = EmailVerifyForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Success page", content_type = "text/html", body = String, example = json!("<!doctype html><html lang=\"en\">…</html>")),
        (status = 400, description = "Error page: the link is no longer valid, the address changed, or the form expired (CSRF)", content_type = "text/html", body = String, example = json!("<!doctype html><html lang=\"en\">…</html>")),
        (status = 415, description = "Error page: not sent as a form", content_type = "text/html", body = String, example = json!("<!doctype html><html lang=\"en\">…</html>")),
        (status = 429, description = "Error page: too many requests from this client (Retry-After)", content_type = "text/html", body = String, example = json!("<!doctype html><html lang=\"en\">…</html>")),
        (status = 503, description = "Error page: database unavailable", content_type = "text/html", body = String, example = json!("<!doctype html><html lang=\"en\">…</html>")),
    )
)]
async fn verify_email_form(
    State(state): State<AppState>,
    Client(ctx): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(fields) = form_fields(&headers, &body) else {
        return not_a_form();
    };
    if !state
        .browser
        .csrf_ok(&headers, fields.get("csrf").map(String::as_str))
    {
        return form_expired();
    }
    let token = fields.get("token").map_or("", String::as_str);
    match state.recovery.verify_email(token, &ctx).await {
        Ok(()) => pages::done(
            "E-mail address confirmed",
            "Thank you: your e-mail address is confirmed. You can close this window.",
        )
        .into_response(),
        Err(AppError::EmailChanged) => pages::error(
            StatusCode::BAD_REQUEST,
            "Address changed",
            "The e-mail address of the account changed since this mail was sent.",
            "Ask for a new verification mail from the application.",
        )
        .into_response(),
        Err(AppError::InvalidVerificationToken) => link_invalid(),
        Err(error) => failure_page(error),
    }
}

/// Ask for a password reset
///
/// Always 202, at once and whether or not the account exists: the account is looked up and
/// the mail queued after the answer. An active account with an address gets a mail with a
/// single-use link (a 256-bit token, stored hashed, valid 30 minutes), at most
/// `MAIL_PER_ADDRESS_PER_HOUR` mails an hour per address.
#[utoipa::path(
    post, path = "/auth/password-reset", tag = "auth",
    request_body = PasswordResetRequest,
    responses(
        (status = 202, description = "Accepted (the same answer for every account, existing or not)"),
        (status = 400, description = "Malformed JSON", body = ProblemBody, content_type = "application/problem+json"),
        BodyRefused,
        (status = 422, description = "Neither or both of email and username, or an invalid address", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests from this client (Retry-After)", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
async fn request_reset(
    State(state): State<AppState>,
    Client(ctx): Client,
    ApiJson(body): ApiJson<PasswordResetRequest>,
) -> Result<StatusCode, Problem> {
    let login = state
        .recovery
        .parse_reset_request(body.email.as_deref(), body.username.as_deref())?;
    let recovery = state.recovery.clone();
    // A flood waits here, before the answer, whatever account it names: the wait says nothing
    // about the account, and the background work stays bounded.
    let Ok(permit) = RESET_LOOKUPS.acquire().await else {
        return Err(AppError::Internal("the reset semaphore is closed".into()).into());
    };
    permit.forget();
    // After the answer: its time cannot depend on whether the account exists.
    tokio::spawn(async move {
        if let Err(error) = recovery.request_password_reset(login, &ctx).await {
            tracing::warn!(%error, "password reset request not queued");
        }
        RESET_LOOKUPS.add_permits(1);
    });
    Ok(StatusCode::ACCEPTED)
}

/// The page of a password-reset link
///
/// The new-password form, while the token is usable; an error page otherwise.
#[utoipa::path(
    get, path = "/auth/password-reset", tag = "auth",
    params(("token" = String, Query, description = "The token of the mail")),
    responses(
        (status = 200, description = "The new-password form", content_type = "text/html", body = String, example = json!("<!doctype html><html lang=\"en\">…</html>")),
        (status = 400, description = "Error page: the link is unknown, used or expired", content_type = "text/html", body = String, example = json!("<!doctype html><html lang=\"en\">…</html>")),
        (status = 503, description = "Error page: database unavailable", content_type = "text/html", body = String, example = json!("<!doctype html><html lang=\"en\">…</html>")),
    )
)]
async fn reset_page(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let Some(token) = query_token(query.as_deref()) else {
        return link_broken();
    };
    match state.recovery.check_reset_token(&token).await {
        Ok(()) => reset_form_page(&state, StatusCode::OK, &token, None),
        Err(AppError::InvalidResetToken) => link_invalid(),
        Err(error) => failure_page(error),
    }
}

/// Set a new password with a reset token
///
/// The password rules of registration apply. The credential version is bumped and every
/// session of the user revoked; the token is used (of concurrent confirmations one wins).
#[utoipa::path(
    post, path = "/auth/password-reset/confirm", tag = "auth",
    request_body = PasswordResetConfirm,
    responses(
        (status = 204, description = "The password is set; every session is revoked"),
        (status = 400, description = "invalid_reset_token (unknown, used or expired), or malformed JSON", body = ProblemBody, content_type = "application/problem+json"),
        BodyRefused,
        (status = 422, description = "The new password breaks the rules (too short, too long, password_too_common)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests from this client (Retry-After)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "Password hashing saturated or database unavailable", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
async fn confirm_reset(
    State(state): State<AppState>,
    Client(ctx): Client,
    ApiJson(body): ApiJson<PasswordResetConfirm>,
) -> Result<StatusCode, Problem> {
    state
        .recovery
        .confirm_password_reset(&body.token, body.new_password.expose_secret(), &ctx)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Set a new password on the hosted page
///
/// The form of `GET /auth/password-reset`: `csrf`, `token` and `new_password`.
#[utoipa::path(
    post, path = "/auth/password-reset/form", tag = "auth",
    request_body(content = PasswordResetForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Success page, or the form again with what is wrong with the password", content_type = "text/html", body = String, example = json!("<!doctype html><html lang=\"en\">…</html>")),
        (status = 400, description = "Error page: the link is no longer valid, or the form expired (CSRF)", content_type = "text/html", body = String, example = json!("<!doctype html><html lang=\"en\">…</html>")),
        (status = 415, description = "Error page: not sent as a form", content_type = "text/html", body = String, example = json!("<!doctype html><html lang=\"en\">…</html>")),
        (status = 429, description = "Error page: too many requests from this client (Retry-After)", content_type = "text/html", body = String, example = json!("<!doctype html><html lang=\"en\">…</html>")),
        (status = 503, description = "The form again or an error page: busy or database unavailable", content_type = "text/html", body = String, example = json!("<!doctype html><html lang=\"en\">…</html>")),
    )
)]
async fn reset_form(
    State(state): State<AppState>,
    Client(ctx): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(fields) = form_fields(&headers, &body) else {
        return not_a_form();
    };
    if !state
        .browser
        .csrf_ok(&headers, fields.get("csrf").map(String::as_str))
    {
        return form_expired();
    }
    let token = fields.get("token").map_or("", String::as_str);
    let password = fields.get("new_password").map_or("", String::as_str);
    match state
        .recovery
        .confirm_password_reset(token, password, &ctx)
        .await
    {
        Ok(()) => pages::done(
            "Password changed",
            "Your new password is set, and every session of your account is signed out. Sign in again with the new password.",
        )
        .into_response(),
        Err(AppError::Validation(errors)) => {
            let message: Vec<String> = errors
                .iter()
                .map(|e| format!("The password {}.", e.message))
                .collect();
            // The form again, with the message: a page like any other (as the login page
            // answers a wrong password), so the browser has no failed load to report.
            reset_form_page(&state, StatusCode::OK, token, Some(&message.join(" ")))
        }
        Err(AppError::InvalidResetToken) => link_invalid(),
        Err(AppError::Busy { .. }) => reset_form_page(
            &state,
            StatusCode::SERVICE_UNAVAILABLE,
            token,
            Some("The service is busy. Try again in a moment."),
        ),
        Err(error) => failure_page(error),
    }
}

/// The new-password form with a fresh CSRF token.
fn reset_form_page(
    state: &AppState,
    status: StatusCode,
    token: &str,
    error: Option<&str>,
) -> Response {
    let (csrf, cookie) = state.browser.new_csrf();
    let min = state.recovery.min_password_length();
    pages::reset_password(status, &csrf, token, min, error)
        .with_header(cookie.0, cookie.1)
        .into_response()
}

/// The `token` of a link's query, if it has a non-empty one.
fn query_token(query: Option<&str>) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(name, _)| name == "token")
        .map(|(_, value)| value.into_owned())
        .filter(|token| !token.is_empty() && token.len() <= MAX_TOKEN_LEN)
}

/// The fields of a form body (the first of a repeated name), or `None` when the body was not
/// sent as a form.
fn form_fields(headers: &HeaderMap, body: &[u8]) -> Option<HashMap<String, String>> {
    if !crate::infrastructure::http::extract::is_form(headers) {
        return None;
    }
    let mut fields = HashMap::new();
    for (name, value) in form_urlencoded::parse(body) {
        fields
            .entry(name.into_owned())
            .or_insert_with(|| value.into_owned());
    }
    Some(fields)
}

fn not_a_form() -> Response {
    pages::error(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "Cannot continue",
        "The form was not sent as a form.",
        "Open the link from the mail again.",
    )
    .into_response()
}

fn form_expired() -> Response {
    pages::error(
        StatusCode::BAD_REQUEST,
        "This form expired",
        "The page was open too long, or cookies are blocked for this site.",
        "Open the link from the mail again.",
    )
    .into_response()
}

fn link_broken() -> Response {
    pages::error(
        StatusCode::BAD_REQUEST,
        "Incomplete link",
        "This link has no token.",
        "Copy the whole link from the mail into the address bar.",
    )
    .into_response()
}

fn link_invalid() -> Response {
    pages::error(
        StatusCode::BAD_REQUEST,
        "This link is no longer valid",
        "The link was used already, has expired, or was replaced by a newer mail.",
        "Ask the application for a new mail.",
    )
    .into_response()
}
