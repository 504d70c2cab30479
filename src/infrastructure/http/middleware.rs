//! Request logging with a request id, contract-shaped bodies for errors the framework answers
//! itself (404, 405, 408, 413, ...), security headers, CORS and the per-IP rate limit.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tower_http::cors::{AllowOrigin, CorsLayer};
use uuid::Uuid;

use super::error::{OAuthError, Problem};
use super::extract::client_ip;
use super::RateLimit;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

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

/// The longest method and path a log line shows.
const LOGGED_METHOD_BYTES: usize = 32;
const LOGGED_PATH_BYTES: usize = 1024;

/// Text shown in a log line cut to a number of bytes (on a character boundary), the cut marked
/// with the full length. Control characters are escaped by the log formatter.
struct Bounded<'a>(&'a str, usize);

impl std::fmt::Display for Bounded<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self(text, max) = *self;
        if text.len() <= max {
            return f.write_str(text);
        }
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        write!(f, "{}...({} bytes)", &text[..end], text.len())
    }
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

/// The request counter and latency histogram of one (method, route, status), resolved once per
/// worker thread: building the label strings and looking the key up in the registry on every
/// request cost more than recording.
type RequestMetrics = (metrics::Counter, metrics::Histogram);
/// (route template address, method label, status) → the template, kept alive, and its metrics.
type RequestMetricsCache =
    HashMap<(usize, &'static str, u16), (Option<MatchedPath>, RequestMetrics)>;

/// The `method` label: the methods of RFC 9110 and PATCH as themselves, any other (a client
/// may send any token, of any length) as `other`, so the label values are a closed set.
fn method_label(method: &Method) -> &'static str {
    const KNOWN: [(Method, &str); 9] = [
        (Method::GET, "GET"),
        (Method::POST, "POST"),
        (Method::PUT, "PUT"),
        (Method::PATCH, "PATCH"),
        (Method::DELETE, "DELETE"),
        (Method::HEAD, "HEAD"),
        (Method::OPTIONS, "OPTIONS"),
        (Method::CONNECT, "CONNECT"),
        (Method::TRACE, "TRACE"),
    ];
    KNOWN
        .iter()
        .find(|(known, _)| known == method)
        .map_or("other", |(_, label)| label)
}

thread_local! {
    /// Keyed by the route template's address: the cached entry holds the template itself, so
    /// that address cannot be reused by another template while the entry lives.
    static REQUEST_METRICS: std::cell::RefCell<RequestMetricsCache> =
        std::cell::RefCell::new(HashMap::new());
}

/// Counts a request. Every label comes from a closed set, so a client cannot add series (each
/// kept for the life of the process and rendered on every scrape): the method as
/// [`method_label`], the route template matched (`unmatched` for the fallback, never the
/// path), and the status code (the router's own responses).
fn record_request(method: &Method, route: Option<&MatchedPath>, status: StatusCode, seconds: f64) {
    let address = route.map_or(0, |route| route.as_str().as_ptr() as usize);
    let method = method_label(method);
    let key = (address, method, status.as_u16());
    REQUEST_METRICS.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.len() > 4096 {
            cache.clear(); // cannot happen with closed label sets; a guard all the same
        }
        let (_, (counter, histogram)) = cache.entry(key).or_insert_with(|| {
            let labels = [
                ("method", method.to_owned()),
                (
                    "route",
                    route.map_or("unmatched", MatchedPath::as_str).to_owned(),
                ),
                ("status", status.as_u16().to_string()),
            ];
            (
                route.cloned(),
                (
                    metrics::counter!("http_requests_total", &labels),
                    metrics::histogram!("http_request_duration_seconds", &labels),
                ),
            )
        });
        counter.increment(1);
        histogram.record(seconds);
    });
}

/// The OAuth2 endpoints, whose errors are RFC 6749 JSON rather than problem documents.
const OAUTH_PATHS: [&str; 3] = ["/auth/token", "/auth/refresh", "/auth/revoke"];

/// Turns an error response that is not JSON (the framework's own 404/405/408/413/...) into a
/// problem document, or RFC 6749 error JSON on the OAuth2 endpoints, keeping status and headers.
fn problem_for_bare_error(response: Response, oauth: bool) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
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

/// The Content-Security-Policy of every response. Swagger UI at `/docs` loads only its own
/// files (scripts, styles with inline style attributes, data: images), so `'self'` suffices.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Security headers on every response; no `Server` banner. The names are constants: a name
/// given as a string is parsed again on every insert.
fn security_headers(headers: &mut axum::http::HeaderMap) {
    const SECURITY_HEADERS: [(HeaderName, HeaderValue); 5] = [
        (
            HeaderName::from_static("x-content-type-options"),
            HeaderValue::from_static("nosniff"),
        ),
        (
            HeaderName::from_static("referrer-policy"),
            HeaderValue::from_static("no-referrer"),
        ),
        (
            HeaderName::from_static("x-frame-options"),
            HeaderValue::from_static("DENY"),
        ),
        (
            HeaderName::from_static("content-security-policy"),
            HeaderValue::from_static(CSP),
        ),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ),
    ];
    headers.reserve(SECURITY_HEADERS.len() + 1);
    for (name, value) in SECURITY_HEADERS {
        headers.insert(name, value);
    }
    headers.remove(header::SERVER);
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
            .expose_headers([header::LOCATION, header::RETRY_AFTER, REQUEST_ID])
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

/// The endpoints that cost a password hash or mint tokens and sessions, all sharing one bucket
/// per client IP.
const LIMITED: [(Method, &str); 5] = [
    (Method::POST, "/auth/token"),
    (Method::POST, "/auth/refresh"),
    (Method::POST, "/users"),
    (Method::PUT, "/users/me/password"),
    (Method::POST, "/auth/refresh-token"),
];

/// Answers 429 with `Retry-After` when a client IP exceeds its rate on a limited endpoint.
pub async fn rate_limit(
    State(limiter): State<Arc<Limiter>>,
    request: Request,
    next: Next,
) -> Response {
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
            if OAUTH_PATHS.contains(&request.uri().path()) {
                OAuthError::rate_limited(seconds).into_response()
            } else {
                Problem::rate_limited(seconds).into_response()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_up_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        let long = format!("R1{}", "Z".repeat(60 * 1024));
        for made_up in ["BREW", "get", long.as_str()] {
            let method = Method::from_bytes(made_up.as_bytes()).unwrap();
            assert_eq!(method_label(&method), "other", "{made_up}");
        }
    }

    #[test]
    fn logged_text_is_cut_on_a_character_boundary_and_says_how_long_it_was() {
        assert_eq!(Bounded("GET", 32).to_string(), "GET");
        let long = "Z".repeat(60 * 1024);
        let shown = Bounded(&long, 32).to_string();
        assert_eq!(shown, format!("{}...(61440 bytes)", "Z".repeat(32)));
        assert_eq!(Bounded("ééé", 3).to_string(), "é...(6 bytes)");
    }

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
