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

use crate::infrastructure::http::AppState;

/// What `/.well-known/*` serves, built once at start.
pub struct Discovery {
    jwks: Value,
    metadata: Value,
}

impl Discovery {
    /// The documents for `issuer` (the externally visible base URL), its public keys and its
    /// signing algorithm.
    pub fn new(issuer: &str, jwks: Value, algorithm: &str) -> Self {
        let base = issuer.trim_end_matches('/');
        let metadata = json!({
            "issuer": issuer,
            "token_endpoint": format!("{base}/auth/token"),
            "revocation_endpoint": format!("{base}/auth/revoke"),
            "jwks_uri": format!("{base}/.well-known/jwks.json"),
            "grant_types_supported": ["password", "refresh_token"],
            "response_types_supported": [],
            "scopes_supported": ["user", "admin"],
            "token_endpoint_auth_methods_supported": ["none"],
            "revocation_endpoint_auth_methods_supported": ["none"],
            "access_token_signing_alg_values_supported": [algorithm],
            "service_documentation": format!("{base}/docs"),
        });
        Self { jwks, metadata }
    }
}

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(jwks))
        .routes(routes!(metadata))
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

/// RFC 8414 authorization-server metadata.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the served JSON
pub struct ServerMetadata {
    #[schema(example = "https://auth.example.com")]
    pub issuer: String,
    pub token_endpoint: String,
    pub revocation_endpoint: String,
    pub jwks_uri: String,
    #[schema(example = json!(["password", "refresh_token"]))]
    pub grant_types_supported: Vec<String>,
    /// Empty: there is no authorization endpoint.
    pub response_types_supported: Vec<String>,
    pub scopes_supported: Vec<String>,
    /// `none`: public clients.
    pub token_endpoint_auth_methods_supported: Vec<String>,
    pub revocation_endpoint_auth_methods_supported: Vec<String>,
    /// The algorithm access tokens are signed with.
    #[schema(example = json!(["EdDSA"]))]
    pub access_token_signing_alg_values_supported: Vec<String>,
    pub service_documentation: String,
}

/// Public signing keys (JWKS)
///
/// The keys that verify our access tokens: the active signing key and any still-accepted
/// earlier keys, each with its RFC 7638 thumbprint as `kid`. Cacheable for five minutes, so a
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
/// The issuer, the token, revocation and JWKS endpoints, the grant types, client
/// authentication methods and signing algorithm.
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
