//! The authorization endpoint and its hosted login page (RFC 6749 §4.1, RFC 7636, OpenID
//! Connect Core §3.1.2, RFC 9207): `GET /auth/authorize` decides from the browser's sign-in
//! cookie; `POST /auth/authorize` is the login form, which signs in and goes on with the same
//! request.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::application::auth::SignInStep;
use crate::application::oidc::{
    AuthorizationRequest, AuthorizeError, AuthorizeOutcome, ValidRequest,
};
use crate::application::{AppError, BrowserSignIn};
use crate::domain::mfa::PendingSigninToken;
use crate::domain::oidc::SigninToken;
use crate::domain::user::Password;
use crate::infrastructure::http::browser::{csp_origin, redirect};
use crate::infrastructure::http::dto::LoginForm;
use crate::infrastructure::http::extract::Client;
use crate::infrastructure::http::pages::{self, LoginPage, SecondFactorPage};
use crate::infrastructure::http::AppState;

/// The routes of this module, and the pages' stylesheet.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(authorize, sign_in))
        .route("/auth/assets/pages.css", axum::routing::get(stylesheet))
}

async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        pages::STYLESHEET,
    )
}

/// The parameters of an authorization request, in the order the login form carries them.
const REQUEST_PARAMETERS: [&str; 10] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "prompt",
    "max_age",
];

/// The authorization request in `pairs`, plus the login form's own fields.
pub(super) fn parse_request<'a>(
    pairs: impl Iterator<Item = (std::borrow::Cow<'a, str>, std::borrow::Cow<'a, str>)>,
) -> (AuthorizationRequest, LoginFields) {
    let mut request = AuthorizationRequest::default();
    let mut fields = LoginFields::default();
    for (name, value) in pairs {
        let value = value.into_owned();
        let slot = match name.as_ref() {
            "response_type" => &mut request.response_type,
            "client_id" => &mut request.client_id,
            "redirect_uri" => &mut request.redirect_uri,
            "scope" => &mut request.scope,
            "state" => &mut request.state,
            "nonce" => &mut request.nonce,
            "code_challenge" => &mut request.code_challenge,
            "code_challenge_method" => &mut request.code_challenge_method,
            "prompt" => &mut request.prompt,
            "max_age" => &mut request.max_age,
            "username" => &mut fields.username,
            "password" => &mut fields.password,
            "csrf" => &mut fields.csrf,
            // The passkey sign-in's form (routes/passkey_login.rs).
            "ceremony_id" => &mut fields.ceremony_id,
            "credential" => &mut fields.credential,
            "pending" => &mut fields.pending,
            "otp" => &mut fields.otp,
            // Unknown parameters are ignored (RFC 6749 §3.1).
            _ => continue,
        };
        if value.is_empty() {
            // An empty parameter counts as absent (RFC 6749 §3.1).
            continue;
        }
        if slot.replace(value).is_some() && !request.repeated.iter().any(|r| r == &name) {
            request.repeated.push(name.into_owned());
        }
    }
    (request, fields)
}

#[derive(Default)]
pub(super) struct LoginFields {
    pub username: Option<String>,
    pub password: Option<String>,
    pub csrf: Option<String>,
    pub ceremony_id: Option<String>,
    pub credential: Option<String>,
    /// The second step's pending sign-in token.
    pub pending: Option<String>,
    /// The second step's TOTP or recovery code.
    pub otp: Option<String>,
}

/// The request's parameters as the login form carries them (the sign-in decides `prompt` and
/// `max_age`, so those are not carried).
fn hidden_fields(request: &AuthorizationRequest) -> Vec<(&'static str, String)> {
    let values = [
        &request.response_type,
        &request.client_id,
        &request.redirect_uri,
        &request.scope,
        &request.state,
        &request.nonce,
        &request.code_challenge,
        &request.code_challenge_method,
    ];
    REQUEST_PARAMETERS
        .iter()
        .zip(values)
        .filter_map(|(name, value)| value.clone().map(|v| (*name, v)))
        .collect()
}

/// Start an authorization (OAuth 2.0 / OpenID Connect)
///
/// With a live sign-in at this service (its cookie), redirects (303) to the client's
/// `redirect_uri` with `code`, `state` and `iss`; otherwise shows the login page (or, with
/// `prompt=none`, redirects with `error=login_required`). A request naming an unknown client or
/// an unregistered redirect URI gets an error page, never a redirect; every other error is
/// redirected with `error`, `error_description`, `state` and `iss`.
#[utoipa::path(
    get, path = "/auth/authorize", tag = "oidc",
    params(
        ("response_type" = String, Query, description = "`code`"),
        ("client_id" = String, Query, description = "A registered client"),
        ("redirect_uri" = String, Query, description = "Exactly a registered redirect URI (a loopback one may use any port)"),
        ("scope" = Option<String>, Query, description = "Space-separated: openid, profile, email, offline_access and role names"),
        ("state" = Option<String>, Query, description = "Returned unchanged (at most 2,048 bytes)"),
        ("nonce" = Option<String>, Query, description = "Put into the ID token (at most 512 bytes)"),
        ("code_challenge" = Option<String>, Query, description = "PKCE S256 challenge; required for public clients"),
        ("code_challenge_method" = Option<String>, Query, description = "`S256` (plain is refused)"),
        ("prompt" = Option<String>, Query, description = "`login` (always ask) or `none` (never ask)"),
        ("max_age" = Option<i64>, Query, description = "Seconds since the last sign-in beyond which the user must sign in again"),
    ),
    responses(
        (status = 200, description = "The login page", content_type = "text/html", body = String, example = json!("<!doctype html><html lang=\"en\">…</html>")),
        (status = 303, description = "Back to the client with `code`, `state`, `iss` (or `error`, `error_description`, `state`, `iss`)"),
        (status = 400, description = "Error page: unknown or disabled client, missing or unregistered redirect URI", content_type = "text/html", body = String, example = json!("<!doctype html><html lang=\"en\">…</html>")),
        (status = 503, description = "Error page: database unavailable", content_type = "text/html", body = String, example = json!("<!doctype html><html lang=\"en\">…</html>")),
    )
)]
async fn authorize(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let query = query.unwrap_or_default();
    let (request, _) = parse_request(form_urlencoded::parse(query.as_bytes()));
    let valid = match state.oidc.validate_request(&request).await {
        Ok(valid) => valid,
        Err(error) => return authorize_error(&state, error),
    };
    let signin = match state.browser.signin_cookie(&headers) {
        Some(value) => match state
            .auth
            .find_sign_in(&SigninToken::from_presented(value))
            .await
        {
            Ok(found) => found,
            Err(error) => return authorize_error(&state, error.into()),
        },
        None => None,
    };
    match state.oidc.decide(valid, signin).await {
        Ok(AuthorizeOutcome::Code(code)) => {
            let mut params = vec![("code", code.code.expose())];
            if let Some(s) = code.state.as_deref() {
                params.push(("state", s));
            }
            params.push(("iss", &state.browser.issuer));
            redirect(&code.redirect_uri, &params, Vec::new())
        }
        Ok(AuthorizeOutcome::Login(valid)) => {
            login_page(&state, &request, &valid, StatusCode::OK, None, "")
        }
        Err(error) => authorize_error(&state, error),
    }
}

/// Sign in on the login page
///
/// The login form of `GET /auth/authorize`: `username`, `password` and the `csrf` token with
/// the authorization request's parameters. A good password sets the sign-in cookie
/// (`HttpOnly`, `SameSite=Lax`, `Secure` on https) and redirects (303) to the client as
/// `GET /auth/authorize` would; a wrong one shows the form again with a message, under the same
/// lockout and rate limit as the token endpoint. For a user with a second factor, a good
/// password shows the second step instead: a form posting `pending` (the pending sign-in, valid
/// five minutes) and `otp` (a TOTP or recovery code) back here; only a right code signs in. A
/// wrong code shows the second step again and counts toward the lockout.
#[utoipa::path(
    post, path = "/auth/authorize", tag = "oidc",
    request_body(content = LoginForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The login page again, with the reason: wrong credentials, or an expired form (CSRF); or the second step (TOTP or recovery code), first or again after a wrong code", content_type = "text/html", body = String, example = json!("<!doctype html><html lang=\"en\">…</html>")),
        (status = 303, description = "Signed in: back to the client with `code`, `state`, `iss`"),
        (status = 400, description = "The error page of a bad authorization request (unknown client, unregistered redirect URI)", content_type = "text/html", body = String, example = json!("<!doctype html><html lang=\"en\">…</html>")),
        (status = 415, description = "Error page: the form was not sent as application/x-www-form-urlencoded", content_type = "text/html", body = String, example = json!("<!doctype html><html lang=\"en\">…</html>")),
        (status = 429, description = "The login page: the account is locked, or too many attempts from this address (Retry-After)", content_type = "text/html", body = String, example = json!("<!doctype html><html lang=\"en\">…</html>")),
        (status = 503, description = "The login page: the service is busy or its database unavailable (Retry-After)", content_type = "text/html", body = String, example = json!("<!doctype html><html lang=\"en\">…</html>")),
    )
)]
async fn sign_in(
    State(state): State<AppState>,
    Client(ctx): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !crate::infrastructure::http::extract::is_form(&headers) {
        return not_a_form();
    }
    let (request, fields) = parse_request(form_urlencoded::parse(&body));
    let valid = match state.oidc.validate_request(&request).await {
        Ok(valid) => valid,
        Err(error) => return authorize_error(&state, error),
    };
    if let Some(pending) = fields.pending.as_deref() {
        return second_step(&state, &ctx, &headers, &request, &valid, pending, &fields).await;
    }
    let username = fields.username.clone().unwrap_or_default();
    if !state.browser.csrf_ok(&headers, fields.csrf.as_deref()) {
        let message = "This sign-in form expired. Please sign in again.";
        return login_page(
            &state,
            &request,
            &valid,
            StatusCode::OK,
            Some(message),
            &username,
        );
    }
    let password = Password::candidate(fields.password.as_deref().unwrap_or_default());
    let client_id = valid.client.id.to_string();
    let signed_in = state
        .auth
        .sign_in_first_step(&username, &password, Some(&client_id), &ctx)
        .await;
    match signed_in {
        Ok(SignInStep::Done(signin)) => signed_in_redirect(&state, &valid, &signin).await,
        Ok(SignInStep::SecondFactor(token)) => {
            second_factor_page(&state, &request, &valid, StatusCode::OK, None, &token).await
        }
        Err(error) => failed_sign_in(&state, &request, &valid, &username, error),
    }
}

/// The page for a sign-in form that was not sent as a form (415).
pub(super) fn not_a_form() -> Response {
    pages::error(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "Cannot sign in",
        "The sign-in form was not sent as a form.",
        "Go back to the application and start again.",
    )
    .into_response()
}

/// The second step: the pending sign-in and the code; a right one signs in.
async fn second_step(
    state: &AppState,
    ctx: &crate::application::RequestContext,
    headers: &HeaderMap,
    request: &AuthorizationRequest,
    valid: &ValidRequest,
    pending: &str,
    fields: &LoginFields,
) -> Response {
    let token = PendingSigninToken::from_presented(pending);
    if !state.browser.csrf_ok(headers, fields.csrf.as_deref()) {
        let message = "This form expired. Please enter the code again.";
        return second_factor_page(state, request, valid, StatusCode::OK, Some(message), &token)
            .await;
    }
    let client_id = valid.client.id.to_string();
    let otp = fields.otp.as_deref().unwrap_or_default();
    match state
        .auth
        .sign_in_second_step(&token, otp, Some(&client_id), ctx)
        .await
    {
        Ok(signin) => signed_in_redirect(state, valid, &signin).await,
        Err(AppError::InvalidCredentials) => {
            let message = "Wrong code. Try again, or use a recovery code.";
            second_factor_page(state, request, valid, StatusCode::OK, Some(message), &token).await
        }
        Err(AppError::SignInExpired) => {
            let message = "This sign-in expired. Please sign in again.";
            login_page(state, request, valid, StatusCode::OK, Some(message), "")
        }
        Err(error) => failed_sign_in(state, request, valid, "", error),
    }
}

/// The second step's page for a valid request, with a fresh CSRF token; it offers a passkey
/// when the pending sign-in's user has one.
pub(super) async fn second_factor_page(
    state: &AppState,
    request: &AuthorizationRequest,
    valid: &ValidRequest,
    status: StatusCode,
    error: Option<&str>,
    token: &PendingSigninToken,
) -> Response {
    let passkey = state
        .auth
        .pending_user(token)
        .await
        .is_ok_and(|user| user.mfa.passkeys > 0);
    let (csrf, cookie) = state.browser.new_csrf();
    let hidden = hidden_fields(request);
    let origin = csp_origin(&valid.redirect_uri);
    let page = SecondFactorPage {
        client_name: valid.client.name.as_str(),
        error,
        csrf: &csrf,
        pending: token.expose(),
        hidden: &hidden,
        redirect_origin: origin.as_deref(),
        passkey,
    };
    pages::second_factor(status, &page)
        .with_header(cookie.0, cookie.1)
        .into_response()
}

/// A finished sign-in: the code issued, the sign-in cookie set, back to the client.
pub(super) async fn signed_in_redirect(
    state: &AppState,
    valid: &ValidRequest,
    signin: &BrowserSignIn,
) -> Response {
    let code = match state
        .oidc
        .issue_code(valid, &signin.session, &signin.user)
        .await
    {
        Ok(code) => code,
        Err(error) => return authorize_error(state, error),
    };
    let lifetime = signin.session.expires_at - signin.session.created_at;
    let cookie = state
        .browser
        .set_signin(signin.token.expose(), lifetime.num_seconds());
    let mut params = vec![("code", code.code.expose())];
    if let Some(s) = code.state.as_deref() {
        params.push(("state", s));
    }
    params.push(("iss", &state.browser.issuer));
    redirect(&code.redirect_uri, &params, vec![cookie])
}

/// The login page again after a failed attempt, with what went wrong.
pub(super) fn failed_sign_in(
    state: &AppState,
    request: &AuthorizationRequest,
    valid: &ValidRequest,
    username: &str,
    error: AppError,
) -> Response {
    let (status, message, retry_after) = match &error {
        // The form again, with the message: a page like any other (as the well-known servers
        // answer it), so the browser has no failed load to report.
        AppError::InvalidCredentials => (
            StatusCode::OK,
            "Wrong username or password.".to_owned(),
            None,
        ),
        AppError::AccountLocked { retry_after_secs } => (
            StatusCode::TOO_MANY_REQUESTS,
            format!("Too many failed sign-ins. Try again in {retry_after_secs} seconds."),
            Some(*retry_after_secs),
        ),
        AppError::Busy { retry_after_secs } => (
            StatusCode::SERVICE_UNAVAILABLE,
            "The service is busy. Try again in a moment.".to_owned(),
            Some(*retry_after_secs),
        ),
        _ => return authorize_error(state, AuthorizeError::Failed(error)),
    };
    let mut response = login_page(state, request, valid, status, Some(&message), username);
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// The login page for a valid request, with a fresh CSRF token.
pub(super) fn login_page(
    state: &AppState,
    request: &AuthorizationRequest,
    valid: &ValidRequest,
    status: StatusCode,
    error: Option<&str>,
    username: &str,
) -> Response {
    let (csrf, cookie) = state.browser.new_csrf();
    let hidden = hidden_fields(request);
    let origin = csp_origin(&valid.redirect_uri);
    let page = LoginPage {
        client_name: valid.client.name.as_str(),
        error,
        csrf: &csrf,
        username,
        hidden: &hidden,
        redirect_origin: origin.as_deref(),
    };
    pages::login(status, &page)
        .with_header(cookie.0, cookie.1)
        .into_response()
}

/// An authorization error: a page, or a redirect with `error`, `state` and `iss`.
pub(super) fn authorize_error(state: &AppState, error: AuthorizeError) -> Response {
    match error {
        AuthorizeError::Page(message) => pages::error(
            StatusCode::BAD_REQUEST,
            "Cannot sign in",
            message,
            "The application that sent you here is misconfigured. Go back and tell its owner.",
        )
        .into_response(),
        AuthorizeError::Redirect {
            redirect_uri,
            error,
            description,
            state: client_state,
        } => {
            let mut params = vec![
                ("error", error),
                ("error_description", description.as_str()),
            ];
            if let Some(s) = client_state.as_deref() {
                params.push(("state", s));
            }
            params.push(("iss", &state.browser.issuer));
            redirect(&redirect_uri, &params, Vec::new())
        }
        AuthorizeError::Failed(error) => failure_page(error),
    }
}

/// The page of a failure of the service itself (logged here, never shown).
pub(crate) fn failure_page(error: AppError) -> Response {
    let (status, retry_after) = match &error {
        AppError::Unavailable(detail) => {
            tracing::warn!(%detail, "dependency unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, Some(1))
        }
        AppError::Busy { retry_after_secs } => {
            (StatusCode::SERVICE_UNAVAILABLE, Some(*retry_after_secs))
        }
        other => {
            tracing::error!(error = %other, "browser flow failed");
            (StatusCode::INTERNAL_SERVER_ERROR, None)
        }
    };
    let page = pages::error(
        status,
        "Something went wrong",
        "The service could not complete your sign-in.",
        "Try again in a moment.",
    );
    match retry_after {
        Some(seconds) => page
            .with_header(header::RETRY_AFTER, HeaderValue::from(seconds))
            .into_response(),
        None => page.into_response(),
    }
}
