//! Passkey sign-in on the hosted login page. The page's script (`/auth/assets/passkey.js`)
//! asks `POST /auth/passkey/start` for a usernameless WebAuthn challenge (with the page's CSRF
//! token and authorization request), calls `navigator.credentials.get`, and submits the
//! assertion as a form to `POST /auth/passkey/finish`, which ends like the password form: the
//! sign-in cookie and a redirect to the client with a code, or the login page with a message.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::authorize::{
    authorize_error, failed_sign_in, login_page, not_a_form, parse_request, second_factor_page,
    signed_in_redirect, LoginFields,
};
use super::passkeys::ceremony_response;
use crate::application::oidc::AuthorizeError;
use crate::application::{AppError, BrowserSignIn, RequestContext};
use crate::domain::mfa::PendingSigninToken;
use crate::infrastructure::http::dto::{CeremonyBody, PasskeyFinishForm, PasskeyStartForm};
use crate::infrastructure::http::error::{Problem, ProblemBody, Rejection};
use crate::infrastructure::http::extract::{is_form, Client};
use crate::infrastructure::http::pages;
use crate::infrastructure::http::AppState;

/// The routes of this module, and the login page's script.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start))
        .routes(routes!(finish))
        .route("/auth/assets/passkey.js", axum::routing::get(script))
}

async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        pages::PASSKEY_SCRIPT,
    )
}

/// Start a passkey sign-in
///
/// For the login page's script: a usernameless WebAuthn challenge (any passkey of this
/// service, user verification required) and its ceremony id, for the authorization request the
/// page serves. Needs the page's CSRF token (`csrf`, double submit with its cookie).
#[utoipa::path(
    post, path = "/auth/passkey/start", tag = "oidc",
    request_body(content = PasskeyStartForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The request options and the ceremony id", body = CeremonyBody),
        (status = 400, description = "invalid_authorization_request: the page's authorization request does not hold", body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "csrf_failed: the page expired (reload it)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "Body over the configured limit", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "Not sent as a form", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests from this client (Retry-After)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
async fn start(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    if !is_form(&headers) {
        return Err(Problem::from(Rejection::NotForm));
    }
    let (request, fields) = parse_request(form_urlencoded::parse(&body));
    match state.oidc.validate_request(&request).await {
        Ok(_) => {}
        Err(AuthorizeError::Page(why)) => return Err(Problem::authorization_request_invalid(why)),
        Err(AuthorizeError::Redirect { description, .. }) => {
            return Err(Problem::authorization_request_invalid(description))
        }
        Err(AuthorizeError::Failed(error)) => return Err(error.into()),
    }
    if !state.browser.csrf_ok(&headers, fields.csrf.as_deref()) {
        return Err(Problem::sign_in_form_expired());
    }
    let started = match fields.pending.as_deref() {
        // The second step of a password sign-in: a challenge for that user's passkeys.
        Some(pending) => {
            let token = PendingSigninToken::from_presented(pending);
            let user = state.auth.pending_user(&token).await?;
            state.passkeys.start_second_factor(&user).await?
        }
        None => state.passkeys.start_sign_in().await?,
    };
    ceremony_response(started)
}

/// Finish a passkey sign-in
///
/// The login page's script submits the browser's assertion here as a form, with the ceremony
/// id, the CSRF token and the authorization request. A passkey that verifies (user verification
/// included) and belongs to an active user signs in on its own: the sign-in cookie is set and
/// the browser redirected (303) to the client with `code`, `state` and `iss`. Otherwise the
/// login page again, with the reason.
#[utoipa::path(
    post, path = "/auth/passkey/finish", tag = "oidc",
    request_body(content = PasskeyFinishForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The login page again, with the reason: the passkey was refused, the ceremony expired or was used, or the form expired (CSRF)", content_type = "text/html", body = String, example = json!("<!doctype html><html lang=\"en\">…</html>")),
        (status = 303, description = "Signed in: back to the client with `code`, `state`, `iss`"),
        (status = 400, description = "The error page of a bad authorization request (unknown client, unregistered redirect URI)", content_type = "text/html", body = String, example = json!("<!doctype html><html lang=\"en\">…</html>")),
        (status = 413, description = "Body over the configured limit", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "Error page: the form was not sent as application/x-www-form-urlencoded", content_type = "text/html", body = String, example = json!("<!doctype html><html lang=\"en\">…</html>")),
        (status = 429, description = "Error page: too many attempts from this address (Retry-After)", content_type = "text/html", body = String, example = json!("<!doctype html><html lang=\"en\">…</html>")),
        (status = 503, description = "The login page: the service is busy or its database unavailable (Retry-After)", content_type = "text/html", body = String, example = json!("<!doctype html><html lang=\"en\">…</html>")),
    )
)]
async fn finish(
    State(state): State<AppState>,
    Client(ctx): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !is_form(&headers) {
        return not_a_form();
    }
    let (request, fields) = parse_request(form_urlencoded::parse(&body));
    let valid = match state.oidc.validate_request(&request).await {
        Ok(valid) => valid,
        Err(error) => return authorize_error(&state, error),
    };
    let again =
        |message: &str| login_page(&state, &request, &valid, StatusCode::OK, Some(message), "");
    if !state.browser.csrf_ok(&headers, fields.csrf.as_deref()) {
        return again("This sign-in form expired. Please sign in again.");
    }
    let client_id = valid.client.id.to_string();
    if let Some(pending) = fields.pending.as_deref() {
        let token = PendingSigninToken::from_presented(pending);
        let signed_in = second_factor(&state, &token, &fields, &client_id, &ctx).await;
        return match signed_in {
            Ok(signin) => signed_in_redirect(&state, &valid, &signin).await,
            Err(AppError::SignInExpired) => again("This sign-in expired. Please sign in again."),
            Err(AppError::CeremonyInvalid) => {
                let message = "The passkey check took too long or was already used. Try again.";
                second_factor_page(
                    &state,
                    &request,
                    &valid,
                    StatusCode::OK,
                    Some(message),
                    &token,
                )
                .await
            }
            Err(error @ (AppError::PasskeyRejected(_) | AppError::PasskeyNotFound)) => {
                let why = match error {
                    AppError::PasskeyRejected(why) => why,
                    _ => "this account has no passkey",
                };
                let message = format!("Your passkey could not be verified: {why}.");
                second_factor_page(
                    &state,
                    &request,
                    &valid,
                    StatusCode::OK,
                    Some(&message),
                    &token,
                )
                .await
            }
            Err(error) => failed_sign_in(&state, &request, &valid, "", error),
        };
    }
    let signed_in = state
        .passkeys
        .finish_sign_in(
            fields.ceremony_id.as_deref().unwrap_or_default(),
            fields.credential.as_deref().unwrap_or_default(),
            Some(&client_id),
            &ctx,
        )
        .await;
    let signin = match signed_in {
        Ok(signin) => signin,
        Err(AppError::CeremonyInvalid) => {
            return again(
                "The passkey sign-in took too long or was already used. Please try again.",
            )
        }
        Err(AppError::PasskeyRejected(why)) => {
            return again(&format!("Your passkey could not sign you in: {why}."))
        }
        Err(error) => return failed_sign_in(&state, &request, &valid, "", error),
    };
    signed_in_redirect(&state, &valid, &signin).await
}

/// The passkey as the second step of a password sign-in: the pending sign-in's user, one of
/// their passkeys verified under the ceremony the start made for them, then the sign-in.
async fn second_factor(
    state: &AppState,
    token: &PendingSigninToken,
    fields: &LoginFields,
    client_id: &str,
    ctx: &RequestContext,
) -> Result<BrowserSignIn, AppError> {
    let user = state.auth.pending_user(token).await?;
    state
        .passkeys
        .verify_second_factor(
            &user,
            fields.ceremony_id.as_deref().unwrap_or_default(),
            fields.credential.as_deref().unwrap_or_default(),
            ctx,
        )
        .await?;
    state
        .auth
        .finish_pending_sign_in(token, user, Some(client_id), ctx)
        .await
}
