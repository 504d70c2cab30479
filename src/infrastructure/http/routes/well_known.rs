//! Key publication (RFC 7517) and authorization-server metadata (RFC 8414), so resource servers
//! can verify our tokens and clients can find our endpoints without configuration.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::oidc::OidcScope;
use crate::domain::user::Role;
use crate::infrastructure::http::AppState;

/// What `/.well-known/*` serves, built once at start.
pub struct Discovery {
    jwks: Value,
    metadata: Value,
    audience: String,
}

/// The client authentication methods of the token, revocation and introspection endpoints.
const AUTH_METHODS: [&str; 3] = ["client_secret_basic", "client_secret_post", "none"];

impl Discovery {
    /// The documents for `issuer` (the externally visible base URL), the access tokens'
    /// `audience`, the public keys (access-token and ID-token keys) and the access tokens'
    /// signing algorithm. The RFC 8414 and the OpenID Connect documents are the same: every
    /// member either defines is in both.
    pub fn new(issuer: &str, audience: &str, jwks: Value, algorithm: &str) -> Self {
        let base = issuer.trim_end_matches('/');
        let scopes: Vec<&str> = OidcScope::ALL
            .iter()
            .map(|s| s.as_str())
            .chain(Role::ALL.iter().map(|r| r.as_str()))
            .collect();
        let metadata = json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{base}/auth/authorize"),
            "token_endpoint": format!("{base}/auth/token"),
            "userinfo_endpoint": format!("{base}/auth/userinfo"),
            "jwks_uri": format!("{base}/.well-known/jwks.json"),
            "revocation_endpoint": format!("{base}/auth/revoke"),
            "introspection_endpoint": format!("{base}/auth/introspect"),
            "end_session_endpoint": format!("{base}/auth/logout/browser"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials", "password"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": scopes,
            "claims_supported": [
                "sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "sid",
                "preferred_username", "name", "email", "email_verified"
            ],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": AUTH_METHODS,
            "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "prompt_values_supported": ["none", "login", "consent"],
            "claims_parameter_supported": false,
            "request_parameter_supported": false,
            "request_uri_parameter_supported": false,
            "authorization_response_iss_parameter_supported": true,
            "access_token_signing_alg_values_supported": [algorithm],
            "service_documentation": format!("{base}/docs"),
        });
        Self {
            jwks,
            metadata,
            audience: audience.to_owned(),
        }
    }

    /// The `aud` of access tokens.
    pub fn audience(&self) -> &str {
        &self.audience
    }
}

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(jwks))
        .routes(routes!(metadata))
        .routes(routes!(openid_configuration))
}

/// An RFC 7517 JWK set.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the served JSON
pub struct JwkSet {
    /// Public keys: `kty`, `kid` (RFC 7638 thumbprint), `alg`, `use: "sig"` and the key
    /// parameters (`crv`/`x`[/`y`] or `n`/`e`). Empty under HS256.
    #[schema(value_type = Vec<Object>)]
    pub keys: Vec<Value>,
}

/// RFC 8414 authorization-server metadata, which is also the OpenID Connect discovery
/// document.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the served JSON
pub struct ServerMetadata {
    /// Exactly the `iss` of every token and of every authorization response.
    #[schema(example = "https://auth.example.com")]
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub userinfo_endpoint: String,
    pub revocation_endpoint: String,
    pub introspection_endpoint: String,
    pub end_session_endpoint: String,
    pub jwks_uri: String,
    #[schema(example = json!(["authorization_code", "refresh_token", "client_credentials", "password"]))]
    pub grant_types_supported: Vec<String>,
    /// `code`.
    pub response_types_supported: Vec<String>,
    pub response_modes_supported: Vec<String>,
    /// `S256`.
    pub code_challenge_methods_supported: Vec<String>,
    /// `openid`, `profile`, `email`, `offline_access` and the role names.
    pub scopes_supported: Vec<String>,
    pub claims_supported: Vec<String>,
    pub subject_types_supported: Vec<String>,
    /// `RS256`.
    pub id_token_signing_alg_values_supported: Vec<String>,
    /// `client_secret_basic`, `client_secret_post`, `none`.
    pub token_endpoint_auth_methods_supported: Vec<String>,
    pub revocation_endpoint_auth_methods_supported: Vec<String>,
    pub introspection_endpoint_auth_methods_supported: Vec<String>,
    pub prompt_values_supported: Vec<String>,
    pub claims_parameter_supported: bool,
    pub request_parameter_supported: bool,
    pub request_uri_parameter_supported: bool,
    /// RFC 9207: every authorization response carries `iss`.
    pub authorization_response_iss_parameter_supported: bool,
    /// The algorithm access tokens are signed with.
    #[schema(example = json!(["EdDSA"]))]
    pub access_token_signing_alg_values_supported: Vec<String>,
    pub service_documentation: String,
}

/// Public signing keys (JWKS)
///
/// The keys that verify our tokens: the access tokens' active signing key and any
/// still-accepted earlier keys (none under HS256), and the ID tokens' RS256 key, each with its
/// RFC 7638 thumbprint as `kid`. Cacheable for five minutes, so a
/// rotation reaches resource servers quickly.
#[utoipa::path(
    get, path = "/.well-known/jwks.json", tag = "discovery",
    responses((status = 200, description = "The key set", body = JwkSet,
               headers(("Cache-Control" = String, description = "public, max-age=300"))))
)]
async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        Json(state.discovery.jwks.clone()),
    )
}

/// Authorization-server metadata (RFC 8414)
///
/// The issuer, every endpoint (authorization, token, UserInfo, revocation, introspection, end
/// session, JWKS), the grant and response types, PKCE methods, scopes, claims, client
/// authentication methods and signing algorithms.
#[utoipa::path(
    get, path = "/.well-known/oauth-authorization-server", tag = "discovery",
    responses((status = 200, description = "The metadata", body = ServerMetadata,
               headers(("Cache-Control" = String, description = "public, max-age=3600"))))
)]
async fn metadata(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "public, max-age=3600")],
        Json(state.discovery.metadata.clone()),
    )
}

/// OpenID Connect discovery
///
/// The OpenID Provider metadata (OpenID Connect Discovery 1.0): the same document as the RFC
/// 8414 metadata.
#[utoipa::path(
    get, path = "/.well-known/openid-configuration", tag = "discovery",
    responses((status = 200, description = "The metadata", body = ServerMetadata,
               headers(("Cache-Control" = String, description = "public, max-age=3600"))))
)]
async fn openid_configuration(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "public, max-age=3600")],
        Json(state.discovery.metadata.clone()),
    )
}
