//! The axum HTTP adapter: state, router, middleware, error mapping and the OpenAPI document.

pub mod browser;
pub mod dto;
pub mod error;
pub mod extract;
mod middleware;
mod openapi;
pub mod pages;
pub mod routes;
mod server;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::Router;
use tower_http::timeout::TimeoutLayer;
use utoipa_swagger_ui::SwaggerUi;

use crate::application::{
    AccountService, AuditService, AuthService, ClientService, MfaService, OidcService,
    PasskeyService, RecoveryService, UserService,
};
use crate::domain::ports::HealthProbe;
use error::Problem;
pub use routes::well_known::Discovery;
pub use server::{effective_max_connections, serve, ConnectionLimits};

/// What every handler can reach: one `Arc`, so the per-extractor clones cost one atomic
/// increment instead of one per service port (seen at 3% of `GET /users/me` in a profile).
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    /// The state over `services`.
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }

    /// A copy of the services, to change one (tests swap in a failing probe).
    pub fn services(&self) -> Services {
        (*self.0).clone()
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;
    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The services behind [`AppState`].
#[derive(Clone)]
pub struct Services {
    pub discovery: Arc<Discovery>,
    pub auth: AuthService,
    pub users: UserService,
    pub account: AccountService,
    /// E-mail verification and password reset.
    pub recovery: RecoveryService,
    pub clients: ClientService,
    pub oidc: OidcService,
    /// Passkeys (WebAuthn).
    pub passkeys: PasskeyService,
    /// Second factors (TOTP).
    pub mfa: MfaService,
    /// How the browser flows answer: the issuer and whether cookies are `Secure`.
    pub browser: Arc<BrowserSettings>,
    pub audit: AuditService,
    pub health: Arc<dyn HealthProbe>,
    pub metrics: Arc<MetricsState>,
    /// Take the client address from `X-Forwarded-For` (only behind a proxy that sets it).
    pub trust_proxy_headers: bool,
    /// Issue 15: the per-client budgets of the rate limit; a shared one (PostgreSQL, Redis)
    /// makes every replica draw from one budget.
    pub rate_budget: Option<Arc<dyn crate::domain::ports::RateBudget>>,
}

/// The settings of the browser flows (authorization, login page, end session).
#[derive(Debug, Clone)]
pub struct BrowserSettings {
    /// The issuer: `iss` of every token and of every authorization response (RFC 9207).
    pub issuer: String,
    /// Cookies get `Secure` and the `__Host-` prefix when the issuer is `https`.
    pub secure_cookies: bool,
}

impl BrowserSettings {
    /// The settings for `issuer`.
    pub fn new(issuer: &str) -> Self {
        Self {
            issuer: issuer.to_owned(),
            secure_cookies: issuer.starts_with("https://"),
        }
    }
}

/// What `/metrics` renders. The HTTP adapter knows no storage adapter: the wiring passes
/// `sample`, which records the gauges read at scrape time (the database pool's size).
pub struct MetricsState {
    pub handle: metrics_exporter_prometheus::PrometheusHandle,
    pub sample: Box<dyn Fn() + Send + Sync>,
}

/// `Cache-Control: no-store` and `Pragma: no-cache`, for every response that carries a token.
pub fn no_store() -> [(HeaderName, HeaderValue); 2] {
    [
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (header::PRAGMA, HeaderValue::from_static("no-cache")),
    ]
}

/// Per-client-IP request rate on the endpoints that hash a password or mint tokens: token,
/// refresh, registration, password change and new session.
#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
    /// Tokens a replica leases from a shared budget per round trip (`RATE_LIMIT_LEASE`).
    pub lease: u32,
}

impl RateLimit {
    /// The tokens leased per round trip: `lease`, but at most an eighth of the burst (at least
    /// 1), so that leases change what a client gets by at most an eighth of its burst.
    pub fn effective_lease(&self) -> u32 {
        self.lease.clamp(1, (self.burst / 8).max(1))
    }
}

/// Transport settings of the router.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub body_limit_bytes: usize,
    pub request_timeout: Duration,
    /// Empty: CORS off.
    pub cors_allowed_origins: Vec<String>,
    /// `None`: no rate limit.
    pub rate_limit: Option<RateLimit>,
    /// Deadlines and cap of client connections, applied by [`serve`].
    pub connections: ConnectionLimits,
}

/// What [`serve`] runs: the router and the connection limits it is served with.
pub struct HttpApp {
    pub router: Router,
    pub connections: ConnectionLimits,
}

impl From<Router> for HttpApp {
    /// `router` with the default connection limits.
    fn from(router: Router) -> Self {
        Self {
            router,
            connections: ConnectionLimits::default(),
        }
    }
}

/// The whole application: API routes, `/openapi.json`, Swagger UI at `/docs`, and the
/// middleware (request log, security headers, CORS, timeout, rate limit, body limit, problem
/// documents for framework errors), with the connection limits to serve it with.
pub fn router(state: AppState, options: &HttpOptions) -> HttpApp {
    let (api_router, api) = openapi::split();
    let limiter = options.rate_limit.map(|limit| {
        let shared = state
            .rate_budget
            .clone()
            .filter(|budget| budget.is_shared());
        Arc::new(match shared {
            Some(budget) => middleware::Limiter::shared(limit, state.trust_proxy_headers, budget),
            None => middleware::Limiter::new(limit, state.trust_proxy_headers),
        })
    });
    let mut router = api_router
        .merge(SwaggerUi::new("/docs").url("/openapi.json", api))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(options.body_limit_bytes))
        .layer(tower::util::option_layer(limiter.map(|limiter| {
            axum::middleware::from_fn_with_state(limiter, middleware::rate_limit)
        })))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            options.request_timeout,
        ));
    if let Some(cors) = middleware::cors(&options.cors_allowed_origins) {
        router = router.layer(cors);
    }
    HttpApp {
        router: router
            .layer(middleware::EdgeLayer::new(options.body_limit_bytes))
            .with_state(state),
        connections: options.connections,
    }
}

async fn not_found() -> Problem {
    Problem::not_found()
}

/// The OpenAPI document, as served at `/openapi.json`.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    openapi::split().1
}
