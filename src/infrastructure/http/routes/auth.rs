//! The OAuth2 endpoints and the session endpoints: token, refresh, revoke, logout.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use secrecy::ExposeSecret;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::application::{AppError, TokenTypeHint};
use crate::domain::session::RefreshToken;
use crate::domain::token::TokenPair;
use crate::domain::user::Password;
use crate::infrastructure::http::dto::{
    IssuedRefreshToken, RefreshRequest, RevokeRequest, TokenRequest, TokenResponse,
};
use crate::infrastructure::http::error::{OAuthError, OAuthErrorBody, Problem, ProblemBody};
use crate::infrastructure::http::extract::{
    client_credentials, Client, CurrentUser, OAuthForm, OAuthJson,
};
use crate::infrastructure::http::routes::responses::{DatabaseDown, Unauthenticated};
use crate::infrastructure::http::{no_store, AppState};

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(token))
        .routes(routes!(refresh))
        .routes(routes!(issue_refresh_token))
        .routes(routes!(revoke))
        .routes(routes!(logout))
        .routes(routes!(logout_all))
}

fn token_response(pair: &TokenPair) -> Response {
    (no_store(), Json(TokenResponse::from(pair))).into_response()
}

/// Get tokens (OAuth2 token endpoint)
///
/// Exchanges a username and password (`grant_type=password`, the default), a refresh token
/// (`grant_type=refresh_token`), an authorization code (`grant_type=authorization_code` with
/// `code`, `redirect_uri`, `code_verifier`; the response adds `id_token` when `openid` was
/// granted) or a confidential client's own credentials (`grant_type=client_credentials`: an
/// access token for the client, no refresh token) for tokens. Clients authenticate with
/// `client_secret_basic`, `client_secret_post`, or `client_id` alone when public. Form-encoded,
/// as RFC 6749 requires; a repeated parameter is `invalid_request`. A user with a second factor
/// sends `otp` (a TOTP code or a recovery code) with the password grant; without it, a right
/// password answers `mfa_required`.
#[utoipa::path(
    post, path = "/auth/token", tag = "oauth2",
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Tokens issued", body = TokenResponse,
         headers(("Cache-Control" = String, description = "no-store"), ("Pragma" = String, description = "no-cache"))),
        (status = 400, description = "invalid_request, invalid_grant (also a wrong otp), unsupported_grant_type, unauthorized_client, invalid_scope, or mfa_required (right password, the user has a second factor, no otp sent)", body = OAuthErrorBody),
        (status = 401, description = "invalid_client: unknown or disabled client, or wrong client credentials", body = OAuthErrorBody,
         headers(("WWW-Authenticate" = String, description = "Basic realm=\"auth-service\""))),
        (status = 413, description = "Body over the configured limit", body = OAuthErrorBody),
        (status = 429, description = "The account is locked after repeated failures, or the client exceeded its rate (Retry-After)", body = OAuthErrorBody),
        (status = 503, description = "Password hashing saturated or database unavailable (see Retry-After)", body = OAuthErrorBody),
    )
)]
async fn token(
    State(state): State<AppState>,
    Client(ctx): Client,
    headers: HeaderMap,
    form: OAuthForm,
) -> Result<Response, OAuthError> {
    let grant_type = form.get("grant_type").unwrap_or("password");
    let credentials = match grant_type {
        // The password grant predates registered clients and never asked for them.
        "password" => None,
        _ => client_credentials(&headers, &form)?,
    };
    let client = match &credentials {
        Some(credentials) => Some(state.oidc.authenticate_client(credentials).await?),
        None => None,
    };
    let pair = match grant_type {
        "password" => {
            let username = form.require("username")?;
            let password = Password::candidate(form.require("password")?);
            state
                .auth
                .login_with_otp(
                    username,
                    &password,
                    form.get("otp"),
                    form.get("scope"),
                    &ctx,
                )
                .await?
        }
        "refresh_token" => {
            let presented = RefreshToken::from_presented(form.require("refresh_token")?);
            let pair = state.auth.refresh(&presented, &ctx).await?;
            state
                .oidc
                .check_refresh_client(&pair, client.as_ref(), &ctx)
                .await?;
            pair
        }
        "authorization_code" => {
            let client = client.ok_or(AppError::InvalidClient)?;
            let pair = state
                .oidc
                .exchange_code(
                    &client,
                    form.require("code")?,
                    form.get("redirect_uri"),
                    form.get("code_verifier"),
                    &ctx,
                )
                .await?;
            let mut body = TokenResponse::from(&pair);
            if !state.oidc.hands_out_refresh_token(&client, &pair) {
                body.refresh_token = None;
                body.refresh_expires_in = None;
            }
            return Ok((no_store(), Json(body)).into_response());
        }
        "client_credentials" => {
            let client = client.ok_or(AppError::InvalidClient)?;
            let token = state
                .oidc
                .client_credentials(&client, form.get("scope"), &ctx)
                .await?;
            let body = TokenResponse {
                access_token: token.access_token,
                token_type: "Bearer",
                expires_in: token.expires_in.num_seconds(),
                refresh_token: None,
                refresh_expires_in: None,
                scope: token.scope.to_space_separated(),
                id_token: None,
            };
            return Ok((no_store(), Json(body)).into_response());
        }
        other => return Err(OAuthError::unsupported_grant_type(other)),
    };
    Ok(token_response(&pair))
}

/// Rotate a refresh token (JSON)
///
/// The JSON twin of `grant_type=refresh_token`: the presented refresh token stops working and a
/// new one is returned. Presenting an already-rotated token revokes the whole session.
#[utoipa::path(
    post, path = "/auth/refresh", tag = "oauth2",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "Tokens issued; the refresh token is rotated", body = TokenResponse),
        (status = 400, description = "invalid_request or invalid_grant (unknown, expired, revoked or reused token)", body = OAuthErrorBody),
        (status = 413, description = "Body over the configured limit", body = OAuthErrorBody),
        (status = 429, description = "The client exceeded its rate (Retry-After)", body = OAuthErrorBody),
        (status = 503, description = "Database unavailable", body = OAuthErrorBody),
    )
)]
async fn refresh(
    State(state): State<AppState>,
    Client(ctx): Client,
    OAuthJson(body): OAuthJson<RefreshRequest>,
) -> Result<Response, OAuthError> {
    let presented = RefreshToken::from_presented(body.refresh_token.expose_secret());
    let pair = state.auth.refresh(&presented, &ctx).await?;
    // This twin takes no client authentication: a confidential client's session refreshed here
    // is refused and revoked, as at the token endpoint without its secret.
    state.oidc.check_refresh_client(&pair, None, &ctx).await?;
    Ok(token_response(&pair))
}

/// Get a refresh token for a new session
///
/// Starts a new session for the authenticated caller, with the caller's scope, and returns its
/// first refresh token. The new session ends when the caller's session is revoked and never
/// outlives its absolute end; it counts toward the per-user session cap (the oldest go).
#[utoipa::path(
    post, path = "/auth/refresh-token", tag = "auth",
    security(("oauth2" = [])),
    responses(
        (status = 201, description = "A new session and its refresh token", body = IssuedRefreshToken),
        Unauthenticated,
        (status = 429, description = "Too many requests from this client (Retry-After)", body = ProblemBody, content_type = "application/problem+json"),
        DatabaseDown,
    )
)]
async fn issue_refresh_token(
    State(state): State<AppState>,
    Client(ctx): Client,
    CurrentUser(principal): CurrentUser,
) -> Result<Response, Problem> {
    let (token, lifetime, session_id) = state.auth.issue_refresh_token(&principal, &ctx).await?;
    let body = IssuedRefreshToken {
        refresh_token: token.expose().to_owned(),
        refresh_expires_in: lifetime.num_seconds(),
        session_id: session_id.as_uuid(),
    };
    Ok((StatusCode::CREATED, no_store(), Json(body)).into_response())
}

/// Revoke a token (RFC 7009)
///
/// Revokes the session of a refresh token or an access token: every token of that session
/// stops working at once. Unknown tokens are answered 200 too, as RFC 7009 requires. A token
/// issued to a registered client is revoked only at that client's request (authenticated with
/// its secret when it is confidential); a request for another client's token is answered 200
/// and changes nothing. Client credentials that are sent must be right (401 otherwise).
#[utoipa::path(
    post, path = "/auth/revoke", tag = "oauth2",
    request_body(content = RevokeRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Revoked (or unknown)"),
        (status = 400, description = "invalid_request: token missing, a parameter repeated, or not form-encoded", body = OAuthErrorBody),
        (status = 401, description = "invalid_client: client credentials sent but wrong", body = OAuthErrorBody),
        (status = 413, description = "Body over the configured limit", body = OAuthErrorBody),
        (status = 503, description = "Database unavailable", body = OAuthErrorBody),
    )
)]
async fn revoke(
    State(state): State<AppState>,
    Client(ctx): Client,
    headers: HeaderMap,
    form: OAuthForm,
) -> Result<StatusCode, OAuthError> {
    let caller = match client_credentials(&headers, &form)? {
        Some(credentials) => Some(state.oidc.authenticate_client(&credentials).await?),
        None => None,
    };
    let token = form.require("token")?;
    let hint = match form.get("token_type_hint") {
        Some("access_token") => Some(TokenTypeHint::AccessToken),
        Some("refresh_token") => Some(TokenTypeHint::RefreshToken),
        _ => None,
    };
    state
        .oidc
        .revoke(caller.as_ref(), token, hint, &ctx)
        .await?;
    Ok(StatusCode::OK)
}

/// Log out
///
/// Revokes the caller's session: its access and refresh tokens stop working on the next request.
#[utoipa::path(
    post, path = "/auth/logout", tag = "auth",
    security(("oauth2" = [])),
    responses(
        (status = 204, description = "The session is revoked"),
        Unauthenticated,
        DatabaseDown,
    )
)]
async fn logout(
    State(state): State<AppState>,
    Client(ctx): Client,
    CurrentUser(principal): CurrentUser,
) -> Result<StatusCode, Problem> {
    state.auth.logout(&principal, &ctx).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Log out everywhere
///
/// Revokes every session of the caller, on every device.
#[utoipa::path(
    post, path = "/auth/logout-all", tag = "auth",
    security(("oauth2" = [])),
    responses(
        (status = 204, description = "Every session of the caller is revoked"),
        Unauthenticated,
        DatabaseDown,
    )
)]
async fn logout_all(
    State(state): State<AppState>,
    Client(ctx): Client,
    CurrentUser(principal): CurrentUser,
) -> Result<StatusCode, Problem> {
    state.auth.logout_all(&principal, &ctx).await?;
    Ok(StatusCode::NO_CONTENT)
}
