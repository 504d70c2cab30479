//! Operational hygiene seen from outside: the per-client rate limit, security headers, CORS, the
//! request timeout, the common-password blocklist, closed registration, rehashing on login and
//! where access tokens are (not) read from.

use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

/// The rate limit of the tests: a burst of three, then one a second.
const RATE_LIMITED: [(&str, &str); 3] = [
    ("RATE_LIMIT_ENABLED", "true"),
    ("RATE_LIMIT_PER_SECOND", "1"),
    ("RATE_LIMIT_BURST", "3"),
];

fn rate_limited_with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    RATE_LIMITED.iter().chain(extra).copied().collect()
}

/// A password-grant attempt for an unknown user (a fresh name each time, so that the account
/// lockout never gets involved), optionally through a proxy that reports `forwarded_for`.
async fn failed_login(app: &TestApp, n: usize, forwarded_for: Option<&str>) -> Response {
    let body = form(&[
        ("grant_type", "password"),
        ("username", &format!("nobody{n}")),
        ("password", "not the password"),
    ]);
    let mut request = app
        .client
        .post(app.url("/auth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some(ip) = forwarded_for {
        request = request.header("x-forwarded-for", ip);
    }
    request.send().await.unwrap()
}

/// The `Retry-After` of a 429, which must be a whole number of seconds, at least one.
fn retry_after(response: &Response) -> u64 {
    let value = response
        .headers()
        .get("retry-after")
        .expect("a 429 carries Retry-After")
        .to_str()
        .unwrap();
    let seconds: u64 = value
        .parse()
        .unwrap_or_else(|_| panic!("Retry-After is an integer: {value}"));
    assert!(seconds >= 1, "Retry-After: {seconds}");
    seconds
}

/// Spends the burst of the client reported as `forwarded_for` (or of the socket peer) and checks
/// that the next attempt is refused.
/// Expects the token endpoint's rate-limit answer: 429 `temporarily_unavailable` with a
/// usable `Retry-After`.
async fn assert_token_rate_limited(response: Response) {
    retry_after(&response);
    assert_oauth_error(
        response,
        StatusCode::TOO_MANY_REQUESTS,
        "temporarily_unavailable",
    )
    .await;
}

async fn exhaust(app: &TestApp, forwarded_for: Option<&str>) {
    for n in 0..3 {
        assert_oauth_error(
            failed_login(app, n, forwarded_for).await,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        )
        .await;
    }
    let response = failed_login(app, 3, forwarded_for).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn the_token_endpoint_answers_a_burst_then_429_with_retry_after() {
    let app = spawn_app_with(&RATE_LIMITED).await;
    for n in 0..3 {
        let response = failed_login(&app, n, None).await;
        assert_ne!(response.status(), StatusCode::TOO_MANY_REQUESTS, "#{n}");
        assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
    }
    assert_token_rate_limited(failed_login(&app, 3, None).await).await;
}

#[tokio::test]
async fn registration_beyond_the_burst_is_a_429_problem_but_health_is_never_limited() {
    let app = spawn_app_with(&RATE_LIMITED).await;
    for n in 0..3 {
        let response = app.register(&format!("user{n}"), PASSWORD).await;
        assert_eq!(response.status(), StatusCode::CREATED, "#{n}");
    }
    let response = app.register("user3", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    retry_after(&response);
    assert_problem(response, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // The refused registration did not happen.
    assert_eq!(count_users(&app, "user3").await, 0);
    assert_eq!(count_users(&app, "user2").await, 1);
    // The health checks are never limited.
    for _ in 0..10 {
        assert_eq!(app.get("/health", None).await.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_bucket() {
    let app = spawn_app_with(&rate_limited_with(&[("TRUST_PROXY_HEADERS", "true")])).await;
    exhaust(&app, Some("203.0.113.7")).await;
    // Another client behind the same proxy is not limited ...
    assert_oauth_error(
        failed_login(&app, 10, Some("203.0.113.8")).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    // ... nor is a client whose own (untrusted) entry precedes the proxy's.
    assert_oauth_error(
        failed_login(&app, 11, Some("203.0.113.7, 198.51.100.9")).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    // The first one still is.
    assert_eq!(
        failed_login(&app, 12, Some("203.0.113.7")).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn without_a_trusted_proxy_a_spoofed_forwarded_for_does_not_escape_the_limit() {
    let app = spawn_app_with(&rate_limited_with(&[("TRUST_PROXY_HEADERS", "false")])).await;
    exhaust(&app, Some("203.0.113.7")).await;
    for (n, spoofed) in ["203.0.113.8", "198.51.100.1", "2001:db8::1"]
        .into_iter()
        .enumerate()
    {
        let response = failed_login(&app, 20 + n, Some(spoofed)).await;
        assert_eq!(
            response.status(),
            StatusCode::TOO_MANY_REQUESTS,
            "{spoofed}"
        );
        assert_token_rate_limited(response).await;
    }
    assert_eq!(
        failed_login(&app, 30, None).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

fn assert_security_headers(response: &Response) {
    let headers = response.headers();
    let path = response.url().path();
    assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
    assert!(headers.contains_key("referrer-policy"), "{path}");
    let frame = headers["x-frame-options"].to_str().unwrap().to_uppercase();
    assert!(frame == "DENY" || frame == "SAMEORIGIN", "{path}: {frame}");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'self'"), "{path}: {csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
    assert!(!headers.contains_key("server"), "{path}: {headers:?}");
}

#[tokio::test]
async fn api_responses_errors_and_the_docs_carry_security_headers_and_no_server_banner() {
    let app = spawn_app().await;
    let health = app.get("/health", None).await;
    assert_eq!(health.status(), StatusCode::OK);
    assert_security_headers(&health);
    let tokens = app.user_with_tokens("alice").await;
    let me = app.get("/users/me", Some(&tokens.access)).await;
    assert_eq!(me.status(), StatusCode::OK);
    assert_security_headers(&me);
    let missing = app.get("/no/such/path", None).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_security_headers(&missing);
    let docs = app.get("/docs/", None).await;
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(header_text(&docs, "content-type").starts_with("text/html"));
    assert_security_headers(&docs);
}

async fn preflight(app: &TestApp, origin: &str) -> Response {
    app.client
        .request(reqwest::Method::OPTIONS, app.url("/auth/token"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap()
}

async fn get_with_origin(app: &TestApp, path: &str, origin: &str) -> Response {
    app.client
        .get(app.url(path))
        .header("origin", origin)
        .send()
        .await
        .unwrap()
}

/// Expects no CORS permission in `response` to a request from `origin`.
fn assert_no_cors(response: &Response, origin: &str) {
    assert!(
        !response
            .headers()
            .contains_key("access-control-allow-origin"),
        "{origin}: {:?}",
        response.headers()
    );
}

/// Expects `origin` to get no CORS permission, from a preflight (which must not fail) or on a
/// plain `GET /health` (which answers as usual).
async fn assert_origin_refused(app: &TestApp, origin: &str) {
    let response = preflight(app, origin).await;
    assert!(!response.status().is_server_error());
    assert_no_cors(&response, origin);
    let response = get_with_origin(app, "/health", origin).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_no_cors(&response, origin);
}

#[tokio::test]
async fn cors_is_off_by_default() {
    let app = spawn_app().await;
    assert_origin_refused(&app, "https://app.example.com").await;
}

#[tokio::test]
async fn cors_allows_only_the_configured_origins() {
    let app = spawn_app_with(&[("CORS_ALLOWED_ORIGINS", "https://app.example.com")]).await;
    let response = preflight(&app, "https://app.example.com").await;
    assert!(response.status().is_success(), "{}", response.status());
    let headers = response.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://app.example.com"
    );
    let allowed_headers = headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(
        allowed_headers.contains("authorization"),
        "{allowed_headers}"
    );
    let allowed_methods = headers["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .to_uppercase();
    assert!(allowed_methods.contains("POST"), "{allowed_methods}");
    // An actual request from the allowed origin is allowed too.
    let response = get_with_origin(&app, "/health", "https://app.example.com").await;
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    // Any other origin gets nothing it could use.
    for evil in [
        "https://evil.example",
        "https://app.example.com.evil.example",
    ] {
        assert_origin_refused(&app, evil).await;
    }
}

#[tokio::test]
async fn a_request_that_outlives_the_timeout_is_a_408_problem() {
    // In this (debug) build one hash with these parameters takes about 4 s, well over the 1 s
    // limit; the queue timeout is long so the request waits for its hash rather than giving up.
    let app = spawn_app_with(&[
        ("REQUEST_TIMEOUT_SECONDS", "1"),
        ("ARGON2_MEMORY_KIB", "131072"),
        ("ARGON2_ITERATIONS", "2"),
        ("HASH_QUEUE_TIMEOUT_MS", "600000"),
    ])
    .await;
    let response = app.register("alice", PASSWORD).await;
    assert_problem(response, StatusCode::REQUEST_TIMEOUT, "request_timeout").await;
    // Cheap requests are unaffected.
    assert_eq!(app.get("/health/live", None).await.status(), StatusCode::OK);
}

/// Expects a 422 whose `errors` hold `{field, code: "password_too_common"}`.
async fn assert_too_common(response: Response, field: &str) {
    let body = assert_validation_failed(response).await;
    let errors = body["errors"].as_array().unwrap();
    assert!(
        errors
            .iter()
            .any(|e| e["field"] == field && e["code"] == "password_too_common"),
        "{body}"
    );
}

#[tokio::test]
async fn common_passwords_are_refused_in_any_case_at_registration_and_on_change() {
    let app = spawn_app().await;
    for common in ["password1", "PassWord1", "BASEBALL1", "iloveyou"] {
        assert_too_common(app.register("alice", common).await, "password").await;
    }
    // Nothing was created.
    assert_eq!(
        app.login("alice", "password1").await.status(),
        StatusCode::BAD_REQUEST
    );
    let tokens = app.user_with_tokens("alice").await;
    for common in ["baseball1", "Football1"] {
        assert_too_common(
            app.change_password(&tokens.access, PASSWORD, common).await,
            "new_password",
        )
        .await;
    }
    assert_eq!(app.login("alice", PASSWORD).await.status(), StatusCode::OK);
    // An uncommon passphrase passes, at registration and on change.
    assert_eq!(
        app.register("bob", "violet kettle under the stairs")
            .await
            .status(),
        StatusCode::CREATED
    );
    assert_eq!(
        app.change_password(&tokens.access, PASSWORD, "seven quiet otters swim")
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.login("alice", "seven quiet otters swim").await.status(),
        StatusCode::OK
    );
}

async fn register_as(app: &TestApp, username: &str, token: Option<&str>) -> Response {
    let mut request = app
        .client
        .post(app.url("/users"))
        .json(&json!({"username": username, "password": PASSWORD}));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn closed_registration_admits_only_admins_and_makes_plain_users() {
    let app = spawn_app_with(&[("REGISTRATION_OPEN", "false")]).await;
    let response = register_as(&app, "mallory", None).await;
    assert_missing_token(response).await;

    let admin = app.admin_with_tokens("root").await;
    let response = register_as(&app, "bob", Some(&admin.access)).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let bob: Value = response.json().await.unwrap();
    assert_eq!(bob["roles"], json!(["user"]));
    let stored: Value = app
        .get(
            &format!("/users/{}", bob["id"].as_str().unwrap()),
            Some(&admin.access),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(stored["roles"], json!(["user"]));

    // Bob, a plain user, may not register anybody.
    let bob_tokens = app.tokens("bob", PASSWORD).await;
    let (_, claims) = jwt_parts(&bob_tokens.access);
    assert_eq!(claims["roles"], json!(["user"]));
    let response = register_as(&app, "carol", Some(&bob_tokens.access)).await;
    assert_forbidden(response).await;
    assert_eq!(
        app.login("carol", PASSWORD).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.login("mallory", PASSWORD).await.status(),
        StatusCode::BAD_REQUEST
    );
}

async fn count_users(app: &TestApp, username: &str) -> i64 {
    i64::from(app.user_stored(username).await)
}

async fn stored_hash(app: &TestApp, id: &str) -> String {
    app.stored_password_hash(id).await
}

#[tokio::test]
async fn a_login_under_stronger_parameters_upgrades_the_stored_hash() {
    use auth_service::application::RequestContext;
    use auth_service::domain::user::Password;
    use auth_service::infrastructure::bootstrap::build_services;

    let app = spawn_app().await;
    let response = app.register("alice", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let alice: Value = response.json().await.unwrap();
    let id = alice["id"].as_str().unwrap();
    let before = stored_hash(&app, id).await;
    assert!(before.contains("m=256,"), "{before}");

    // The operator raises the cost: the same database, a second set of services.
    let stronger = build_services(
        &app.settings_with(&[("ARGON2_MEMORY_KIB", "512")]),
        app.clock.clone(),
    )
    .await
    .unwrap();
    stronger
        .auth
        .login(
            "alice",
            &Password::candidate(PASSWORD),
            None,
            &RequestContext::default(),
        )
        .await
        .unwrap();
    let after = stored_hash(&app, id).await;
    assert_ne!(after, before);
    assert!(after.contains("m=512,"), "{after}");
    assert!(!after.contains(PASSWORD));

    // The upgraded hash still verifies under the old parameters.
    assert_eq!(app.login("alice", PASSWORD).await.status(), StatusCode::OK);
    assert_eq!(
        app.login("alice", "not the password").await.status(),
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn access_tokens_outside_the_authorization_header_are_ignored() {
    let app = spawn_app().await;
    let tokens = app.user_with_tokens("alice").await;
    let in_query = app
        .get(&format!("/protected?access_token={}", tokens.access), None)
        .await;
    assert_missing_token(in_query).await;
    // Nor in a body, JSON or form-encoded (RFC 6750 §2.2).
    let in_json = app
        .client
        .get(app.url("/protected"))
        .json(&json!({"access_token": tokens.access}))
        .send()
        .await
        .unwrap();
    assert_missing_token(in_json).await;
    let in_form = app
        .client
        .get(app.url("/protected"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("access_token", &tokens.access)]))
        .send()
        .await
        .unwrap();
    assert_missing_token(in_form).await;
    // The header still works.
    assert_eq!(
        app.get("/protected", Some(&tokens.access)).await.status(),
        StatusCode::OK
    );
}
