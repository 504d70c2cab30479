//! The per-client-IP rate limit of the endpoints that cost a password hash or mint tokens.
//!
//! On SQLite (one process) the buckets are this process's (`governor`). On PostgreSQL, or in
//! Redis when `REDIS_URL` is set, every replica draws from one shared budget per client
//! ([`RateBudget`], GCRA), leasing up to `lease` tokens per round trip and serving them from
//! a local lease (see docs/configuration.md, "Rate limit", for the accuracy this costs). When
//! the shared store does not answer (within [`SHARED_TIMEOUT`]), the request is judged by this
//! process's buckets, with a warning: the limit degrades to one budget per replica, never to
//! none and never to an error.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::OAUTH_PATHS;
use crate::domain::ports::{Grant, RateBudget, RateQuota};
use crate::infrastructure::http::error::{OAuthError, Problem};
use crate::infrastructure::http::extract::client_ip;
use crate::infrastructure::http::{pages, RateLimit};

/// The longest a request waits for the shared store before it is judged locally.
const SHARED_TIMEOUT: Duration = Duration::from_millis(500);

/// Leases kept before the spent and expired ones are dropped.
const PRUNE_ABOVE: usize = 100_000;

/// Seconds between two warnings that the shared store did not answer.
const WARN_EVERY_SECS: i64 = 10;

/// A per-client-IP token bucket for the endpoints that cost a password hash or mint tokens.
pub struct Limiter {
    /// This process's buckets: the limit on SQLite, the fallback of a shared one.
    buckets: DefaultKeyedRateLimiter<IpAddr>,
    shared: Option<Shared>,
    trust_proxy_headers: bool,
}

/// The budget shared by every replica, and the tokens this replica leased from it.
struct Shared {
    budget: Arc<dyn RateBudget>,
    quota: RateQuota,
    /// Tokens asked for per round trip.
    lease: u32,
    /// How long leased tokens stay usable: the time the shared budget takes to earn them back.
    lease_ttl: Duration,
    leases: Mutex<HashMap<IpAddr, Lease>>,
    /// When the last warning was logged (seconds since the epoch).
    warned_at: AtomicI64,
}

/// Tokens taken from the shared budget and not used yet.
struct Lease {
    left: u32,
    until: Instant,
}

impl Limiter {
    /// A limiter of `limit.per_second` requests a second with bursts of `limit.burst`, held in
    /// this process.
    pub fn new(limit: RateLimit, trust_proxy_headers: bool) -> Self {
        let per_second = NonZeroU32::new(limit.per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(limit.burst).unwrap_or(NonZeroU32::MIN);
        Self {
            buckets: RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)),
            shared: None,
            trust_proxy_headers,
        }
    }

    /// The same limit drawn from `budget`, shared by every replica, leasing
    /// [`RateLimit::effective_lease`] tokens per round trip.
    pub fn shared(
        limit: RateLimit,
        trust_proxy_headers: bool,
        budget: Arc<dyn RateBudget>,
    ) -> Self {
        let quota = RateQuota {
            per_second: limit.per_second.max(1),
            burst: limit.burst.max(1),
        };
        let lease = limit.effective_lease();
        let interval = u64::try_from(quota.interval_micros()).unwrap_or(1);
        Self {
            shared: Some(Shared {
                budget,
                quota,
                lease,
                lease_ttl: Duration::from_micros(interval * u64::from(lease - 1)),
                leases: Mutex::new(HashMap::new()),
                warned_at: AtomicI64::new(0),
            }),
            ..Self::new(limit, trust_proxy_headers)
        }
    }

    /// This process's buckets: `Err(wait)` when `ip` is over its rate.
    fn check_local(&self, ip: IpAddr) -> Result<(), Duration> {
        if self.buckets.len() > PRUNE_ABOVE {
            self.buckets.retain_recent();
        }
        self.buckets
            .check_key(&ip)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// Whether `ip` may make one more request: `Err(wait)` when it is over its rate.
    async fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        let Some(shared) = &self.shared else {
            return self.check_local(ip);
        };
        if shared.lease > 1 {
            let mut leases = shared.leases.lock().unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            if let Some(lease) = leases.get_mut(&ip) {
                if lease.left > 0 && lease.until > now {
                    lease.left -= 1;
                    return Ok(());
                }
                leases.remove(&ip);
            }
            if leases.len() > PRUNE_ABOVE {
                leases.retain(|_, lease| lease.left > 0 && lease.until > now);
            }
        }
        let key = ip.to_string();
        let take = shared
            .budget
            .take(&key, shared.quota, shared.lease, chrono::Utc::now());
        let failure = match tokio::time::timeout(SHARED_TIMEOUT, take).await {
            Ok(Ok(Grant::Granted(granted))) => {
                if granted > 1 {
                    let lease = Lease {
                        left: granted - 1,
                        until: Instant::now() + shared.lease_ttl,
                    };
                    let mut leases = shared.leases.lock().unwrap_or_else(PoisonError::into_inner);
                    leases.insert(ip, lease);
                }
                return Ok(());
            }
            Ok(Ok(Grant::Refused { retry_after_micros })) => {
                return Err(Duration::from_micros(
                    u64::try_from(retry_after_micros).unwrap_or(1),
                ));
            }
            Ok(Err(error)) => error.to_string(),
            Err(_) => format!("no answer within {} ms", SHARED_TIMEOUT.as_millis()),
        };
        let now = chrono::Utc::now().timestamp();
        let last = shared.warned_at.load(Ordering::Relaxed);
        if now - last >= WARN_EVERY_SECS
            && shared
                .warned_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                error = %failure,
                "shared rate-limit store unavailable; limiting per replica meanwhile"
            );
        }
        crate::infrastructure::metrics::record_rate_limit_fallback();
        self.check_local(ip)
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
    match limiter.check(ip).await {
        Ok(()) => next.run(request).await,
        Err(wait) => {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ports::StoreError;
    use crate::infrastructure::db::local_rates::LocalBudget;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 7));

    /// A shared store that is down.
    struct Down;

    #[async_trait::async_trait]
    impl RateBudget for Down {
        async fn take(
            &self,
            _key: &str,
            _quota: RateQuota,
            _want: u32,
            _now: chrono::DateTime<chrono::Utc>,
        ) -> Result<Grant, StoreError> {
            Err(StoreError::Unavailable("connection refused".into()))
        }
    }

    fn limit(burst: u32, lease: u32) -> RateLimit {
        RateLimit {
            per_second: 1,
            burst,
            lease,
        }
    }

    #[tokio::test]
    async fn a_shared_store_that_is_down_leaves_the_replicas_own_buckets() {
        let limiter = Limiter::shared(limit(3, 8), false, Arc::new(Down));
        for _ in 0..3 {
            assert_eq!(limiter.check(IP).await, Ok(()));
        }
        assert!(limiter.check(IP).await.is_err());
    }

    #[tokio::test]
    async fn replicas_leasing_from_one_budget_serve_it_within_the_stated_bound() {
        let budget: Arc<dyn RateBudget> = Arc::new(LocalBudget::default());
        let (burst, replicas) = (32, 3);
        let limiters: Vec<_> = (0..replicas)
            .map(|_| Limiter::shared(limit(burst, 8), false, budget.clone()))
            .collect();
        let k = limit(burst, 8).effective_lease();
        assert_eq!(k, 4, "an eighth of the burst");
        let mut passed = 0;
        while limiters[passed % replicas].check(IP).await.is_ok() {
            passed += 1;
            assert!(passed < 100, "never refused");
        }
        let (k, burst, replicas) = (k as usize, burst as usize, replicas);
        assert!(passed <= burst + (k - 1) + 1, "{passed} passed"); // + 1: the refill meanwhile
        assert!(
            passed >= burst - (replicas - 1) * (k - 1),
            "{passed} passed"
        );
    }
}
