//! The OpenAPI 3.1 document, built from the same route declarations as the router.

use utoipa::openapi::security::{Flow, OAuth2, Password as PasswordFlow, Scopes, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use super::routes;
use super::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "auth-service",
        description = "OAuth2 password-grant authentication: JWT access tokens (RFC 9068), rotating refresh tokens with reuse detection, argon2id passwords.\n\nUse **Authorize** with a username and password to try the protected operations.",
    ),
    modifiers(&SecurityAddon),
    // Referenced only from a query parameter's `value_type`, so not collected automatically.
    components(schemas(super::dto::AuditEventName)),
    tags(
        (name = "oauth2", description = "RFC 6749 / RFC 7009 endpoints (form-encoded, RFC 6749 error JSON)"),
        (name = "auth", description = "Session management for an authenticated caller"),
        (name = "users", description = "Registration and the current user"),
        (name = "admin", description = "User administration and the audit log (admin role)"),
        (name = "demo", description = "A protected example resource"),
        (name = "health", description = "Liveness and readiness"),
        (name = "discovery", description = "Public keys (JWKS) and server metadata (RFC 8414)"),
    )
)]
struct ApiDoc;

struct SecurityAddon;

impl Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let scopes = Scopes::from_iter([
            ("user", "Act as a regular user"),
            ("admin", "Administer users and read the audit log"),
        ]);
        components.add_security_scheme(
            "oauth2",
            SecurityScheme::OAuth2(OAuth2::with_description(
                [Flow::Password(PasswordFlow::new("/auth/token", scopes))],
                "OAuth2 password grant; the access token is sent as `Authorization: Bearer`.",
            )),
        );
    }
}

/// Every API route with its OpenAPI operation.
pub fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(routes::auth::router())
        .merge(routes::users::router())
        .merge(routes::admin::router())
        .merge(routes::well_known::router())
        .merge(routes::metrics::router())
        .merge(routes::health::router())
}
