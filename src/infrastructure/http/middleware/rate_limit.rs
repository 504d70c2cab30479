//! The per-client-IP rate limit of the endpoints that cost a password hash or mint tokens.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::OAUTH_PATHS;
use crate::infrastructure::http::error::{OAuthError, Problem};
use crate::infrastructure::http::extract::client_ip;
use crate::infrastructure::http::{pages, RateLimit};

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
const LIMITED: [(Method, &str); 15] = [
    (Method::POST, "/auth/token"),
    // Mail and recovery: each may send a mail or hash a password.
    (Method::POST, "/users/me/email/verify"),
    (Method::POST, "/auth/email/verify"),
    (Method::POST, "/auth/email/verify/form"),
    (Method::POST, "/auth/password-reset"),
    (Method::POST, "/auth/password-reset/confirm"),
    (Method::POST, "/auth/password-reset/form"),
    (Method::POST, "/auth/authorize"),
    (Method::POST, "/auth/refresh"),
    (Method::POST, "/users"),
    (Method::PUT, "/users/me/password"),
    (Method::POST, "/auth/refresh-token"),
    // Issue 14: a self-service deletion checks the password.
    (Method::DELETE, "/users/me"),
    // Passkey sign-in: each start stores a ceremony, each finish may start a session.
    (Method::POST, "/auth/passkey/start"),
    (Method::POST, "/auth/passkey/finish"),
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
            } else if request.uri().path().ends_with("/form") {
                // A hosted page's form: a page for the person at the browser.
                pages::error(
                    axum::http::StatusCode::TOO_MANY_REQUESTS,
                    "Too many attempts",
                    &format!(
                        "Too many requests from your network; try again in {seconds} seconds."
                    ),
                    "Wait a moment, then open the link from the mail again.",
                )
                .with_header(
                    axum::http::header::RETRY_AFTER,
                    axum::http::HeaderValue::from(seconds),
                )
                .into_response()
            } else if matches!(
                request.uri().path(),
                "/auth/authorize" | "/auth/passkey/finish"
            ) {
                // The login form: a page for the person at the browser.
                pages::error(
                    axum::http::StatusCode::TOO_MANY_REQUESTS,
                    "Too many attempts",
                    &format!("Too many sign-in attempts from your network; try again in {seconds} seconds."),
                    "Wait a moment, then go back and sign in again.",
                )
                .with_header(
                    axum::http::header::RETRY_AFTER,
                    axum::http::HeaderValue::from(seconds),
                )
                .into_response()
            } else {
                Problem::rate_limited(seconds).into_response()
            }
        }
    }
}
