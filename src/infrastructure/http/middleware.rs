//! Request logging with a request id, contract-shaped bodies for errors the framework answers
//! itself (404, 405, 408, 413, ...), security headers, CORS and the per-IP rate limit.

use std::time::Instant;

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tracing::Instrument;
use uuid::Uuid;

use super::error::{OAuthError, Problem};
use super::extract::client_ip;
use super::RateLimit;

const REQUEST_ID: &str = "x-request-id";

/// Logs one line per request (method, path without query, status, latency, request id) and
/// returns the request id in `X-Request-Id`. A sane incoming id is kept, for tracing across
/// services; otherwise a UUID v7 is made.
pub async fn request_log(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        })
        .map_or_else(|| Uuid::now_v7().to_string(), str::to_owned);
    let method = request.method().clone();
    // The path only: a query string could carry a secret.
    let path = request.uri().path().to_owned();
    let span = tracing::info_span!("request", %request_id, %method, %path);
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let elapsed = started.elapsed().as_secs_f64();
    let route = response
        .extensions()
        .get::<RouteLabel>()
        .map_or("unmatched", |label| label.0.as_str());
    let labels = [
        ("method", method.to_string()),
        ("route", route.to_owned()),
        ("status", status.to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels).record(elapsed);
    let latency_ms = elapsed * 1000.0;
    span.in_scope(|| {
        tracing::info!(status, latency_ms = format!("{latency_ms:.2}"), "request");
    });
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// The OAuth2 endpoints, whose errors are RFC 6749 JSON rather than problem documents.
const OAUTH_PATHS: [&str; 3] = ["/auth/token", "/auth/refresh", "/auth/revoke"];

/// The route template a response came from (`/users/{id}`, not the id): bounded label values.
#[derive(Clone)]
struct RouteLabel(MatchedPath);

/// Tags each routed response with its route template, for the request metrics. Runs inside the
/// router, where the matched path is known; the request log outside reads the tag.
pub async fn tag_route(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().cloned();
    let mut response = next.run(request).await;
    if let Some(route) = route {
        response.extensions_mut().insert(RouteLabel(route));
    }
    response
}

/// Turns an error response that is not JSON (the framework's own 404/405/408/413/...) into a
/// problem document, or RFC 6749 error JSON on the OAuth2 endpoints, keeping status and headers.
pub async fn problem_for_bare_errors(request: Request, next: Next) -> Response {
    let oauth = OAUTH_PATHS.contains(&request.uri().path());
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (code, detail) = match status {
        StatusCode::NOT_FOUND => ("not_found", "No such resource."),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "This method is not allowed on this resource; see the Allow header.",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "payload_too_large",
            "The request body is larger than the configured limit.",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            "The request body has an unsupported content type.",
        ),
        StatusCode::REQUEST_TIMEOUT => ("request_timeout", "The request took too long."),
        s if s.is_server_error() => ("internal_error", "An unexpected error occurred."),
        _ => ("bad_request", "The request could not be understood."),
    };
    let (mut parts, _) = response.into_parts();
    let replacement = if oauth {
        let error = if status.is_server_error() {
            "server_error"
        } else {
            "invalid_request"
        };
        OAuthError::new(status, error, detail).into_response()
    } else {
        Problem::new(status, code, detail).into_response()
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    let (replacement_parts, body) = replacement.into_parts();
    parts.headers.extend(replacement_parts.headers);
    Response::from_parts(parts, Body::new(body))
}

/// The Content-Security-Policy of every response. Swagger UI at `/docs` loads only its own
/// files (scripts, styles with inline style attributes, data: images), so `'self'` suffices.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Security headers on every response; no `Server` banner.
pub async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert("content-security-policy", HeaderValue::from_static(CSP));
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    headers.remove(header::SERVER);
    response
}

/// CORS for the configured origins only; `None` (no CORS headers at all) when there are none.
pub fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
            .expose_headers([
                header::LOCATION,
                header::RETRY_AFTER,
                HeaderName::from_static(REQUEST_ID),
            ])
            .max_age(Duration::from_secs(600)),
    )
}

/// A per-client-IP token bucket for the endpoints that cost a password hash or mint tokens.
pub struct Limiter {
    buckets: DefaultKeyedRateLimiter<IpAddr>,
    trust_proxy_headers: bool,
}

impl Limiter {
    /// A limiter of `limit.per_second` requests a second with bursts of `limit.burst`.
    pub fn new(limit: RateLimit, trust_proxy_headers: bool) -> Self {
        let per_second = NonZeroU32::new(limit.per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(limit.burst).unwrap_or(NonZeroU32::MIN);
        Self {
            buckets: RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)),
            trust_proxy_headers,
        }
    }
}

const LIMITED: [(Method, &str); 3] = [
    (Method::POST, "/auth/token"),
    (Method::POST, "/auth/refresh"),
    (Method::POST, "/users"),
];

/// Answers 429 with `Retry-After` when a client IP exceeds its rate on a limited endpoint.
pub async fn rate_limit(
    State(limiter): State<Option<Arc<Limiter>>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(limiter) = limiter else {
        return next.run(request).await;
    };
    let limited = LIMITED
        .iter()
        .any(|(method, path)| request.method() == method && request.uri().path() == *path);
    if !limited {
        return next.run(request).await;
    }
    let ip = client_ip(
        request.extensions(),
        request.headers(),
        limiter.trust_proxy_headers,
    );
    let Some(ip) = ip else {
        return next.run(request).await;
    };
    if limiter.buckets.len() > 100_000 {
        limiter.buckets.retain_recent();
    }
    match limiter.buckets.check_key(&ip) {
        Ok(()) => next.run(request).await,
        Err(not_until) => {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let seconds = wait.as_secs() + 1;
            tracing::warn!(%ip, path = request.uri().path(), "rate limit exceeded");
            let detail = format!("Too many requests from this client; retry in {seconds} s.");
            let mut response = if OAUTH_PATHS.contains(&request.uri().path()) {
                OAuthError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "temporarily_unavailable",
                    detail,
                )
                .into_response()
            } else {
                Problem::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", detail).into_response()
            };
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            response
        }
    }
}
