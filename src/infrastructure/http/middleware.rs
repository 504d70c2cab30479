//! Request logging with a request id, and problem documents for errors the framework answers
//! itself (404, 405, 413, ...).

use std::time::Instant;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;
use uuid::Uuid;

use super::error::Problem;

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
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| {
        tracing::info!(status, latency_ms = format!("{latency_ms:.2}"), "request");
    });
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// Turns an error response that is not JSON (the framework's own 404/405/413/...) into a problem
/// document with the same status and headers.
pub async fn problem_for_bare_errors(response: Response) -> Response {
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
    let problem = Problem::new(status, code, detail).into_response();
    parts.headers.remove(header::CONTENT_LENGTH);
    let (problem_parts, body) = problem.into_parts();
    parts.headers.extend(problem_parts.headers);
    Response::from_parts(parts, Body::new(body))
}
