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

/// Gives every error response an example of its own status, in the format it is served in
/// (RFC 9457 problem documents, or RFC 6749 error JSON on the OAuth2 endpoints), instead of the
/// schema's generic example.
struct ErrorExamples;

fn problem_example(status: u16) -> Option<serde_json::Value> {
    let (title, code, detail) = match status {
        400 => (
            "Bad Request",
            "malformed_json",
            "The body is not valid JSON: unexpected end at line 1 column 13.",
        ),
        401 => (
            "Unauthorized",
            "invalid_token",
            "The access token is invalid or has been revoked.",
        ),
        403 => (
            "Forbidden",
            "insufficient_scope",
            "This operation needs the admin role.",
        ),
        404 => ("Not Found", "user_not_found", "No user has this id."),
        409 => (
            "Conflict",
            "username_taken",
            "This username is already taken.",
        ),
        413 => (
            "Payload Too Large",
            "payload_too_large",
            "The request body is larger than the configured limit.",
        ),
        415 => (
            "Unsupported Media Type",
            "unsupported_media_type",
            "Send the body as JSON with Content-Type: application/json.",
        ),
        429 => (
            "Too Many Requests",
            "rate_limited",
            "Too many requests from this client; retry in 1 s.",
        ),
        503 => (
            "Service Unavailable",
            "service_unavailable",
            "The service is temporarily unavailable; retry shortly.",
        ),
        422 => {
            return Some(serde_json::json!({
                "type": "about:blank", "title": "Unprocessable Entity", "status": 422,
                "detail": "The request has invalid fields.", "code": "validation_failed",
                "errors": [{"field": "password", "code": "password_too_common",
                            "message": "is one of the most common passwords; choose another"}]
            }))
        }
        _ => return None,
    };
    Some(
        serde_json::json!({"type": "about:blank", "title": title, "status": status, "detail": detail, "code": code}),
    )
}

fn oauth_example(status: u16) -> Option<serde_json::Value> {
    let (error, description) = match status {
        400 => ("invalid_grant", "invalid username or password"),
        413 => (
            "invalid_request",
            "The request body is larger than the configured limit.",
        ),
        429 => (
            "invalid_grant",
            "too many failed logins; try again in 300 seconds",
        ),
        503 => (
            "temporarily_unavailable",
            "The service is temporarily unavailable; retry shortly.",
        ),
        _ => return None,
    };
    Some(serde_json::json!({"error": error, "error_description": description}))
}

impl Modify for ErrorExamples {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ];
            for operation in operations.into_iter().flatten() {
                for (status, response) in operation.responses.responses.iter_mut() {
                    let (Ok(status), utoipa::openapi::RefOr::T(response)) =
                        (status.parse::<u16>(), response)
                    else {
                        continue;
                    };
                    for (media_type, content) in response.content.iter_mut() {
                        let example = match media_type.as_str() {
                            "application/problem+json" => problem_example(status),
                            "application/json" if status >= 400 => oauth_example(status),
                            _ => None,
                        };
                        if example.is_some() {
                            content.example = example;
                        }
                    }
                }
            }
        }
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

/// The router and its finished OpenAPI document (error examples need the merged paths).
pub fn split() -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut api) = api_router().split_for_parts();
    ErrorExamples.modify(&mut api);
    (router, api)
}
