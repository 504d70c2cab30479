//! The edge layer: every request passes it first and every response last.

use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use super::headers::security_headers;
use super::request_log::{record_request, Bounded, LOGGED_METHOD_BYTES, LOGGED_PATH_BYTES};
use super::{OAUTH_PATHS, REQUEST_ID};
use crate::infrastructure::http::error::{OAuthError, Problem};

/// The edge of every request, in one layer, written as a plain service (a `from_fn` layer
/// clones the inner service and boxes a future per request, which showed on `GET /users/me`):
///
/// - a request whose `Content-Length` exceeds the body limit is answered 413 at once, before
///   its body arrives (the extractors would otherwise wait for the body, up to the request
///   timeout, to find out);
/// - a request id: a sane incoming `X-Request-Id` is kept, for tracing across services;
///   otherwise a UUID v7 is made; either way it is returned in `X-Request-Id`;
/// - errors the framework answers itself (404, 405, 408, 413, ...) become problem documents, or
///   RFC 6749 error JSON on the OAuth2 endpoints, keeping status and headers;
/// - the security headers, and no `Server` banner;
/// - `Cache-Control: no-store` on every response that sets no cache policy of its own: user
///   objects, user lists, audit events, greetings and errors are personal data, and a forgotten
///   header must not make one cacheable. Only responses that choose caching opt in, by setting
///   `Cache-Control` themselves (the `/.well-known/*` documents do); the Swagger UI files and
///   `/openapi.json` set none and are not cached, which costs a docs page little;
/// - the request metrics (labels from closed sets: see [`record_request`]) and one log line
///   (method and path bounded in length, status, latency, id).
#[derive(Clone, Copy)]
pub struct EdgeLayer {
    body_limit: u64,
}

impl EdgeLayer {
    /// The edge, refusing declared bodies over `body_limit` bytes.
    pub fn new(body_limit: usize) -> Self {
        Self {
            body_limit: u64::try_from(body_limit).unwrap_or(u64::MAX),
        }
    }
}

impl<S> tower::Layer<S> for EdgeLayer {
    type Service = Edge<S>;
    fn layer(&self, inner: S) -> Edge<S> {
        Edge {
            inner,
            body_limit: self.body_limit,
        }
    }
}

/// See [`EdgeLayer`].
#[derive(Clone)]
pub struct Edge<S> {
    inner: S,
    body_limit: u64,
}

/// Whether `request` declares a body longer than `limit` bytes.
fn declares_too_large_body(request: &Request, limit: u64) -> bool {
    request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|length| length > limit)
}

impl<S> tower::Service<Request> for Edge<S>
where
    S: tower::Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = EdgeFuture<S::Future>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let started = Instant::now();
        let incoming_id = request
            .headers()
            .get(&REQUEST_ID)
            .filter(|v| {
                let v = v.as_bytes();
                !v.is_empty()
                    && v.len() <= 64
                    && v.iter()
                        .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))
            })
            .cloned();
        let request_id = incoming_id.unwrap_or_else(|| {
            let mut buffer = Uuid::encode_buffer();
            let id = Uuid::now_v7().as_hyphenated().encode_lower(&mut buffer);
            HeaderValue::from_str(id).expect("a UUID is a valid header value")
        });
        let method = request.method().clone();
        let too_large = declares_too_large_body(&request, self.body_limit);
        // `Router::layer` wraps every route after routing, so the route template (`/users/{id}`,
        // not the id: bounded label values) is known here; the fallback has none.
        let route = request.extensions().get::<MatchedPath>().cloned();
        let oauth = OAUTH_PATHS.contains(&request.uri().path());
        // The span's fields are built only when the log would show them. The path only: a
        // query string could carry a secret.
        let span = if tracing::enabled!(tracing::Level::INFO) {
            let id = request_id.to_str().unwrap_or_default();
            tracing::info_span!(
                "request",
                request_id = %id,
                method = %Bounded(method.as_str(), LOGGED_METHOD_BYTES),
                path = %Bounded(request.uri().path(), LOGGED_PATH_BYTES)
            )
        } else {
            tracing::Span::none()
        };
        let (inner, early) = if too_large {
            let mut response = StatusCode::PAYLOAD_TOO_LARGE.into_response();
            // The body is not read: the connection cannot be reused.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            (None, Some(response))
        } else {
            let _entered = span.enter();
            (Some(self.inner.call(request)), None)
        };
        EdgeFuture {
            inner,
            early,
            span,
            started,
            method,
            route,
            oauth,
            request_id: Some(request_id),
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`Edge`].
    pub struct EdgeFuture<F> {
        #[pin]
        inner: Option<F>,
        // A response given without calling the inner service.
        early: Option<Response>,
        span: tracing::Span,
        started: Instant,
        method: Method,
        route: Option<MatchedPath>,
        oauth: bool,
        request_id: Option<HeaderValue>,
    }
}

impl<F, E> std::future::Future for EdgeFuture<F>
where
    F: std::future::Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let this = self.project();
        let response = match this.early.take() {
            Some(response) => response,
            None => {
                let inner = this
                    .inner
                    .as_pin_mut()
                    .expect("EdgeFuture polled after completion");
                let _entered = this.span.enter();
                std::task::ready!(inner.poll(cx))?
            }
        };
        let mut response = problem_for_bare_error(response, *this.oauth);
        let status = response.status();
        let elapsed = this.started.elapsed();
        record_request(
            this.method,
            this.route.as_ref(),
            status,
            elapsed.as_secs_f64(),
        );
        this.span.in_scope(|| {
            let latency_ms = elapsed.as_secs_f64() * 1000.0;
            tracing::info!(
                status = status.as_u16(),
                latency_ms = format!("{latency_ms:.2}"),
                "request"
            );
        });
        let headers = response.headers_mut();
        security_headers(headers);
        if !headers.contains_key(header::CACHE_CONTROL) {
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        if let Some(request_id) = this.request_id.take() {
            headers.insert(REQUEST_ID, request_id);
        }
        std::task::Poll::Ready(Ok(response))
    }
}

/// Turns an error response that is not JSON (the framework's own 404/405/408/413/...) into a
/// problem document, or RFC 6749 error JSON on the OAuth2 endpoints, keeping status and headers.
/// The error pages of the browser flows (HTML) stay as they are.
fn problem_for_bare_error(response: Response, oauth: bool) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json") || v.starts_with("text/html"));
    if is_json {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    let replacement = if oauth {
        OAuthError::bare(status).into_response()
    } else {
        Problem::bare(status).into_response()
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    let (replacement_parts, body) = replacement.into_parts();
    parts.headers.extend(replacement_parts.headers);
    Response::from_parts(parts, Body::new(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_declared_length_over_the_limit_is_recognised() {
        let request = |length: &str| {
            Request::builder()
                .header(header::CONTENT_LENGTH, length)
                .body(Body::empty())
                .unwrap()
        };
        assert!(declares_too_large_body(&request("10000000"), 65536));
        assert!(!declares_too_large_body(&request("65536"), 65536));
        assert!(!declares_too_large_body(
            &Request::new(Body::empty()),
            65536
        ));
    }
}
