//! The OpenID Connect endpoints a client or resource server calls with a token: UserInfo,
//! introspection (RFC 7662), and the browser's end of session (RP-Initiated Logout).

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::authorize::failure_page;
use crate::application::oidc::{EndSession, TokenKind};
use crate::application::{AppError, TokenTypeHint};
use crate::domain::oidc::SigninToken;
use crate::infrastructure::http::browser::{csp_origin, redirect};
use crate::infrastructure::http::dto::{IntrospectionRequest, LogoutForm};
use crate::infrastructure::http::error::{OAuthError, OAuthErrorBody, Problem, ProblemBody};
use crate::infrastructure::http::extract::{client_credentials, Client, CurrentUser, OAuthForm};
use crate::infrastructure::http::pages;
use crate::infrastructure::http::routes::responses::{DatabaseDown, Unauthenticated};
use crate::infrastructure::http::{no_store, AppState};

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(userinfo, userinfo_post))
        .routes(routes!(introspect))
        .routes(routes!(end_session, end_session_confirmed))
}

/// OpenID Connect UserInfo claims.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserInfoBody {
    /// The user id.
    pub sub: String,
    /// With `profile`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    /// With `profile`, when the user has a full name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// With `email`, when the user has an address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// With `email`: whether the address was verified (not yet: `false`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
}

fn userinfo_response(
    state: &AppState,
    principal: &crate::application::Principal,
) -> Result<Response, Problem> {
    let info = state.oidc.userinfo(principal)?;
    let body = UserInfoBody {
        sub: info.subject.to_string(),
        preferred_username: info.profile.preferred_username,
        name: info.profile.name,
        email: info.profile.email,
        email_verified: info.profile.email_verified,
    };
    Ok((no_store(), Json(body)).into_response())
}

/// The signed-in user's claims (OpenID Connect UserInfo)
///
/// `sub` and the claims of the scopes the access token was granted (`profile`, `email`). The
/// token must have been granted `openid`.
#[utoipa::path(
    get, path = "/auth/userinfo", tag = "oidc",
    security(("oauth2" = [])),
    responses(
        (status = 200, description = "The claims", body = UserInfoBody),
        Unauthenticated,
        (status = 403, description = "The token was not granted `openid` (insufficient_scope)", body = ProblemBody, content_type = "application/problem+json"),
        DatabaseDown,
    )
)]
async fn userinfo(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
) -> Result<Response, Problem> {
    userinfo_response(&state, &principal)
}

/// The signed-in user's claims (OpenID Connect UserInfo, POST)
///
/// As `GET /auth/userinfo`; the token is read from the `Authorization` header only.
#[utoipa::path(
    post, path = "/auth/userinfo", tag = "oidc",
    security(("oauth2" = [])),
    responses(
        (status = 200, description = "The claims", body = UserInfoBody),
        Unauthenticated,
        (status = 403, description = "The token was not granted `openid` (insufficient_scope)", body = ProblemBody, content_type = "application/problem+json"),
        DatabaseDown,
    )
)]
async fn userinfo_post(
    State(state): State<AppState>,
    CurrentUser(principal): CurrentUser,
) -> Result<Response, Problem> {
    userinfo_response(&state, &principal)
}

/// An RFC 7662 introspection response.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the served JSON
pub struct IntrospectionBody {
    /// Whether the token is live; when false, nothing else is said.
    pub active: bool,
    pub scope: Option<String>,
    pub client_id: Option<String>,
    pub username: Option<String>,
    /// `access_token` or `refresh_token`.
    pub token_type: Option<String>,
    pub exp: Option<i64>,
    pub iat: Option<i64>,
    pub sub: Option<String>,
    pub aud: Option<String>,
    pub iss: Option<String>,
    pub sid: Option<String>,
}

fn token_type_hint(form: &OAuthForm) -> Option<TokenTypeHint> {
    match form.get("token_type_hint") {
        Some("access_token") => Some(TokenTypeHint::AccessToken),
        Some("refresh_token") => Some(TokenTypeHint::RefreshToken),
        _ => None,
    }
}

/// Introspect a token (RFC 7662)
///
/// For confidential clients (`client_secret_basic` or `client_secret_post`): whether an access
/// or refresh token is live. A token whose session was revoked, whose user is disabled or
/// deleted, or whose client is disabled or deleted is `{"active": false}`.
#[utoipa::path(
    post, path = "/auth/introspect", tag = "oauth2",
    request_body(content = IntrospectionRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The token's state", body = IntrospectionBody,
         headers(("Cache-Control" = String, description = "no-store"))),
        (status = 400, description = "invalid_request (token missing, parameter repeated, not form-encoded) or unauthorized_client (a public client)", body = OAuthErrorBody),
        (status = 401, description = "invalid_client: missing or wrong client credentials", body = OAuthErrorBody),
        (status = 413, description = "Body over the configured limit", body = OAuthErrorBody),
        (status = 503, description = "Database unavailable", body = OAuthErrorBody),
    )
)]
async fn introspect(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: OAuthForm,
) -> Result<Response, OAuthError> {
    let credentials = client_credentials(&headers, &form)?.ok_or(AppError::InvalidClient)?;
    let caller = state.oidc.authenticate_client(&credentials).await?;
    let token = form.require("token")?;
    let found = state
        .oidc
        .introspect(&caller, token, token_type_hint(&form))
        .await?;
    let body: Value = match found {
        None => json!({"active": false}),
        Some(seen) => json!({
            "active": true,
            "scope": seen.scope,
            "client_id": seen.client_id.map(|c| c.to_string()),
            "username": seen.username,
            "token_type": match seen.kind {
                TokenKind::AccessToken => "access_token",
                TokenKind::RefreshToken => "refresh_token",
            },
            "exp": seen.expires_at.timestamp(),
            "iat": seen.issued_at.timestamp(),
            "sub": seen.subject,
            "aud": state.discovery.audience(),
            "iss": state.browser.issuer,
            "sid": seen.session_id.map(|s| s.to_string()),
        }),
    };
    let body = strip_nulls(body);
    Ok((no_store(), Json(body)).into_response())
}

fn strip_nulls(mut value: Value) -> Value {
    if let Value::Object(map) = &mut value {
        map.retain(|_, v| !v.is_null());
    }
    value
}

/// The end-session parameters of a query or form.
#[derive(Default)]
struct EndSessionParams {
    id_token_hint: Option<String>,
    client_id: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
    csrf: Option<String>,
    repeated: bool,
}

fn parse_end_session(raw: &[u8]) -> EndSessionParams {
    let mut params = EndSessionParams::default();
    for (name, value) in form_urlencoded::parse(raw) {
        let slot = match name.as_ref() {
            "id_token_hint" => &mut params.id_token_hint,
            "client_id" => &mut params.client_id,
            "post_logout_redirect_uri" => &mut params.post_logout_redirect_uri,
            "state" => &mut params.state,
            "csrf" => &mut params.csrf,
            _ => continue,
        };
        if !value.is_empty() && slot.replace(value.into_owned()).is_some() {
            params.repeated = true;
        }
    }
    params
}

async fn check(state: &AppState, params: &EndSessionParams) -> Result<EndSession, Response> {
    if params.repeated {
        return Err(logout_error(
            "A parameter of the sign-out request is repeated.",
        ));
    }
    match state
        .oidc
        .check_end_session(
            params.id_token_hint.as_deref(),
            params.client_id.as_deref(),
            params.post_logout_redirect_uri.as_deref(),
            params.state.as_deref(),
        )
        .await
    {
        Ok(request) => Ok(request),
        Err(AppError::InvalidRequest(reason)) => Err(logout_error(&reason)),
        Err(other) => Err(failure_page(other)),
    }
}

fn logout_error(reason: &str) -> Response {
    pages::error(
        StatusCode::BAD_REQUEST,
        "Cannot sign out",
        &format!("The sign-out request is not valid: {reason}."),
        "Close this window, or go back to the application.",
    )
    .into_response()
}

/// Ends the session(s), clears the cookie, and goes back to the client (or shows a page).
async fn finish(
    state: &AppState,
    headers: &HeaderMap,
    ctx: &crate::application::RequestContext,
    request: &EndSession,
    confirmed: bool,
) -> Response {
    let browser = match state.browser.signin_cookie(headers) {
        Some(value) => match state
            .auth
            .find_sign_in(&SigninToken::from_presented(value))
            .await
        {
            Ok(found) => found,
            Err(error) => return failure_page(error),
        },
        None => None,
    };
    if let Err(error) = state
        .oidc
        .end_session(request, browser, confirmed, ctx)
        .await
    {
        return failure_page(error);
    }
    let clear = state.browser.clear_signin();
    match &request.redirect_uri {
        Some(uri) => {
            let params: Vec<(&str, &str)> = request
                .state
                .as_deref()
                .map(|s| ("state", s))
                .into_iter()
                .collect();
            redirect(uri, &params, vec![clear])
        }
        None => pages::signed_out()
            .with_header(clear.0, clear.1)
            .into_response(),
    }
}

/// End the browser sign-in (OpenID Connect RP-Initiated Logout)
///
/// With a valid `id_token_hint`, ends that sign-in (and the browser's, when it is the same
/// user's) with every session started under it, clears the sign-in cookie and redirects (303)
/// straight to `post_logout_redirect_uri` (registered for the client) with `state`. Without a
/// hint, asks the user to confirm first.
#[utoipa::path(
    get, path = "/auth/logout/browser", tag = "oidc",
    params(
        ("id_token_hint" = Option<String>, Query, description = "An ID token this service issued (expired ones are accepted)"),
        ("post_logout_redirect_uri" = Option<String>, Query, description = "A post-logout redirect URI registered for the client"),
        ("client_id" = Option<String>, Query, description = "The client, when no hint is sent"),
        ("state" = Option<String>, Query, description = "Returned unchanged"),
    ),
    responses(
        (status = 200, description = "The confirmation page (no valid hint)", content_type = "text/html", body = String, example = json!("<!doctype html><html lang=\"en\">…</html>")),
        (status = 303, description = "Signed out: back to `post_logout_redirect_uri` with `state`"),
        (status = 400, description = "Error page: invalid hint, unregistered redirect URI", content_type = "text/html", body = String, example = json!("<!doctype html><html lang=\"en\">…</html>")),
    )
)]
async fn end_session(
    State(state): State<AppState>,
    Client(ctx): Client,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let params = parse_end_session(query.unwrap_or_default().as_bytes());
    let request = match check(&state, &params).await {
        Ok(request) => request,
        Err(page) => return page,
    };
    if request.hint.is_some() {
        return finish(&state, &headers, &ctx, &request, false).await;
    }
    let (csrf, cookie) = state.browser.new_csrf();
    let hidden: Vec<(&'static str, String)> = [
        ("client_id", params.client_id.clone()),
        (
            "post_logout_redirect_uri",
            params.post_logout_redirect_uri.clone(),
        ),
        ("state", params.state.clone()),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.map(|v| (name, v)))
    .collect();
    let origin = request.redirect_uri.as_deref().and_then(csp_origin);
    let client_name = request.client.as_ref().map(|c| c.name.as_str());
    pages::logout(client_name, &csrf, &hidden, origin.as_deref())
        .with_header(cookie.0, cookie.1)
        .into_response()
}

/// Confirm the end of the browser sign-in
///
/// The confirmation form of `GET /auth/logout/browser` (with its `csrf` token): ends the
/// browser's sign-in and every session started under it, then redirects to the registered
/// `post_logout_redirect_uri` with `state`, or shows that the user is signed out.
#[utoipa::path(
    post, path = "/auth/logout/browser", tag = "oidc",
    request_body(content = LogoutForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Signed out (no redirect URI)", content_type = "text/html", body = String, example = json!("<!doctype html><html lang=\"en\">…</html>")),
        (status = 303, description = "Signed out: back to `post_logout_redirect_uri` with `state`"),
        (status = 400, description = "Error page: expired form, unregistered redirect URI", content_type = "text/html", body = String, example = json!("<!doctype html><html lang=\"en\">…</html>")),
    )
)]
async fn end_session_confirmed(
    State(state): State<AppState>,
    Client(ctx): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = parse_end_session(&body);
    if !state.browser.csrf_ok(&headers, params.csrf.as_deref()) {
        return logout_error("the form expired; start the sign-out again");
    }
    let request = match check(&state, &params).await {
        Ok(request) => request,
        Err(page) => return page,
    };
    finish(&state, &headers, &ctx, &request, true).await
}
