//! The axum HTTP adapter: state, router, middleware, error mapping and the OpenAPI document.

pub mod dto;
pub mod error;
pub mod extract;
mod middleware;
mod openapi;
pub mod routes;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::Router;
use utoipa_swagger_ui::SwaggerUi;

use crate::application::{AuthService, UserService};
use crate::domain::ports::HealthProbe;
use error::Problem;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub auth: AuthService,
    pub users: UserService,
    pub health: Arc<dyn HealthProbe>,
    /// Take the client address from `X-Forwarded-For` (only behind a proxy that sets it).
    pub trust_proxy_headers: bool,
}

/// `Cache-Control: no-store` and `Pragma: no-cache`, for every response that carries a token.
pub fn no_store() -> [(HeaderName, HeaderValue); 2] {
    [
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (header::PRAGMA, HeaderValue::from_static("no-cache")),
    ]
}

/// The whole application: API routes, `/openapi.json`, Swagger UI at `/docs`, and the
/// middleware (request log, body limit, problem documents for framework errors).
pub fn router(state: AppState, body_limit_bytes: usize) -> Router {
    let (api_router, api) = openapi::api_router().split_for_parts();
    api_router
        .merge(SwaggerUi::new("/docs").url("/openapi.json", api))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(body_limit_bytes))
        .layer(axum::middleware::map_response(
            middleware::problem_for_bare_errors,
        ))
        .layer(axum::middleware::from_fn(middleware::request_log))
        .with_state(state)
}

async fn not_found() -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "not_found", "No such resource.")
}

/// The OpenAPI document, as served at `/openapi.json`.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    openapi::api_router().into_openapi()
}
