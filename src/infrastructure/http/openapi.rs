//! The OpenAPI 3.1 document, built from the same route declarations as the router.

use utoipa::openapi::security::{Flow, OAuth2, Password as PasswordFlow, Scopes, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use std::sync::Arc;

use super::error::{OAuthError, Problem, Rejection};
use super::routes;
use super::AppState;
use crate::application::AppError;
use crate::domain::ports::TokenError;
use crate::domain::user::{Password, PasswordBlocklist, PasswordPolicy};

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
        (name = "oauth2", description = "RFC 6749 / RFC 7009 / RFC 7662 endpoints (form-encoded, RFC 6749 error JSON)"),
        (name = "oidc", description = "OpenID Connect: the authorization endpoint and its login page, UserInfo, end session"),
        (name = "auth", description = "Session management for an authenticated caller"),
        (name = "users", description = "Registration and the current user"),
        (name = "passkeys", description = "The current user's passkeys (WebAuthn)"),
        (name = "admin", description = "User administration and the audit log (admin role)"),
        (name = "clients", description = "Registered OAuth clients (admin role)"),
        (name = "demo", description = "A protected example resource"),
        (name = "health", description = "Liveness and readiness"),
        (name = "discovery", description = "Public keys (JWKS), server metadata (RFC 8414) and OpenID Connect discovery"),
    )
)]
struct ApiDoc;

struct SecurityAddon;

impl Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let scopes = Scopes::from_iter([
            ("user", "Act as a regular user"),
            (
                "admin",
                "Administer users and clients and read the audit log",
            ),
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
/// schema's generic example. The examples are the answers the service gives, built by the same
/// constructors, so their texts cannot drift.
struct ErrorExamples;

fn problem_example(status: u16) -> Option<serde_json::Value> {
    let problem = match status {
        400 => Problem::from(Rejection::MalformedJson {
            what: "unexpected end",
            line: 1,
            column: 13,
        }),
        401 => Problem::invalid_token(&TokenError::Invalid("example")),
        403 => Problem::insufficient_scope(),
        404 => Problem::user_not_found(),
        409 => Problem::from(AppError::UsernameTaken),
        413 => Problem::from(Rejection::TooLarge),
        415 => Problem::from(Rejection::NotJson),
        429 => Problem::rate_limited(1),
        503 => Problem::unavailable(),
        422 => {
            let policy = PasswordPolicy {
                blocklist: Some(Arc::new(Everything)),
                ..PasswordPolicy::default()
            };
            let error = Password::parse("correct horse battery", &policy).err()?;
            Problem::validation(vec![error])
        }
        _ => return None,
    };
    serde_json::to_value(problem.body()).ok()
}

/// A blocklist holding every password, for the example of a refused one.
struct Everything;

impl PasswordBlocklist for Everything {
    fn contains(&self, _lowercase: &str) -> bool {
        true
    }
}

fn oauth_example(status: u16) -> Option<serde_json::Value> {
    let error = match status {
        400 => OAuthError::from(AppError::InvalidCredentials),
        401 => OAuthError::from(AppError::InvalidClient),
        413 => OAuthError::from(Rejection::TooLarge),
        429 => OAuthError::from(AppError::AccountLocked {
            retry_after_secs: 300,
        }),
        503 => OAuthError::unavailable(),
        _ => return None,
    };
    serde_json::to_value(error.body()).ok()
}

impl Modify for ErrorExamples {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
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
                            "application/problem+json"
                                if path.starts_with("/admin/clients")
                                    && matches!(status, 404 | 409) =>
                            {
                                let problem = if status == 404 {
                                    Problem::client_not_found()
                                } else {
                                    Problem::public_client()
                                };
                                serde_json::to_value(problem.body()).ok()
                            }
                            "application/problem+json"
                                if path.starts_with("/users/me/passkeys") && status == 404 =>
                            {
                                serde_json::to_value(Problem::passkey_not_found().body()).ok()
                            }
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
        .merge(routes::authorize::router())
        .merge(routes::oidc::router())
        .merge(routes::users::router())
        .merge(routes::passkeys::router())
        .merge(routes::passkey_login::router())
        .merge(routes::recovery::router())
        .merge(routes::admin::router())
        .merge(routes::account::router())
        .merge(routes::clients::router())
        .merge(routes::well_known::router())
        .merge(routes::metrics::router())
        .merge(routes::health::router())
        .merge(routes::mfa::router())
}

/// The router and its finished OpenAPI document (error examples need the merged paths).
pub fn split() -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut api) = api_router().split_for_parts();
    ErrorExamples.modify(&mut api);
    (router, api)
}
