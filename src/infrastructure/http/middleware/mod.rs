//! The middleware: the edge layer (request id, log line and metrics, contract-shaped bodies for
//! errors the framework answers itself, security headers, cache policy), CORS, and the per-IP
//! rate limit.

mod edge;
mod headers;
mod rate_limit;
mod request_log;

use axum::http::HeaderName;

pub use edge::EdgeLayer;
pub use headers::cors;
pub use rate_limit::{rate_limit, Limiter};

/// The request id header, kept from the client when sane, made otherwise.
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The OAuth2 endpoints, whose errors are RFC 6749 JSON rather than problem documents.
const OAUTH_PATHS: [&str; 4] = [
    "/auth/token",
    "/auth/refresh",
    "/auth/revoke",
    "/auth/introspect",
];
