//! The forms of the OpenID Connect endpoints, as the OpenAPI document describes them (the
//! handlers parse them by hand, strictly).

use serde::Deserialize;
use utoipa::ToSchema;

/// `POST /auth/authorize` form: the login page's fields and the authorization request it
/// carries (see `GET /auth/authorize` for those parameters).
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({
    "csrf": "Q2hhbmdlZCBldmVyeSB0aW1l", "username": "alice", "password": "correct horse battery",
    "response_type": "code", "client_id": "0193a1c2-7d4e-7a10-9b2c-5d6e7f8a9b0c",
    "redirect_uri": "https://app.example/callback", "scope": "openid profile", "state": "af0ifjsldkj",
    "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "code_challenge_method": "S256"
}))]
#[allow(dead_code)] // documents the form; the handler parses it strictly by hand
pub struct LoginForm {
    /// The value of the page's CSRF cookie (double submit).
    pub csrf: String,
    pub username: String,
    pub password: String,
    pub response_type: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    /// The second step (a user with a second factor): the pending sign-in token the second
    /// step's page carries, instead of `username` and `password`.
    pub pending: Option<String>,
    /// The second step: a TOTP code or a recovery code.
    pub otp: Option<String>,
}

/// `POST /auth/logout/browser` form: the confirmation of an end-session request.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({
    "csrf": "Q2hhbmdlZCBldmVyeSB0aW1l", "client_id": "0193a1c2-7d4e-7a10-9b2c-5d6e7f8a9b0c",
    "post_logout_redirect_uri": "https://app.example/bye", "state": "xyz"
}))]
#[allow(dead_code)] // documents the form; the handler parses it strictly by hand
pub struct LogoutForm {
    /// The value of the page's CSRF cookie (double submit).
    pub csrf: String,
    pub client_id: Option<String>,
    pub post_logout_redirect_uri: Option<String>,
    pub state: Option<String>,
}

/// `POST /auth/introspect` form parameters (RFC 7662), with the client's credentials in the
/// `Authorization: Basic` header or as `client_id` and `client_secret`.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"token": "eyJhbGciOiJIUzI1NiIsInR5cCI6ImF0K2p3dCJ9...", "token_type_hint": "access_token"}))]
#[allow(dead_code)] // documents the form; the handler parses it strictly by hand
pub struct IntrospectionRequest {
    /// An access token or a refresh token.
    #[schema(min_length = 1)]
    pub token: String,
    /// `access_token` or `refresh_token`; a hint only.
    pub token_type_hint: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}
