//! `POST /auth/token` with the password grant.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn a_login_returns_a_bearer_token_response_that_is_never_cached() {
    let app = spawn_app().await;
    app.register("alice", PASSWORD).await;
    let response = app.login("alice", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["pragma"], "no-cache");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["refresh_expires_in"], 1_209_600);
    assert_eq!(body["scope"], "user");
    let refresh = body["refresh_token"].as_str().unwrap();
    assert!(refresh.len() >= 43, "at least 256 bits in base64url");
    assert!(refresh
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
}

#[tokio::test]
async fn the_access_token_is_an_rfc_9068_jwt_with_every_contract_claim() {
    let app = spawn_app().await;
    let tokens = app.user_with_tokens("alice").await;
    let (header, claims) = jwt_parts(&tokens.access);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "HS256");
    assert!(header["kid"].is_string());
    for claim in [
        "iss", "aud", "sub", "exp", "iat", "nbf", "jti", "sid", "username", "roles", "scope",
    ] {
        assert!(!claims[claim].is_null(), "claim {claim} missing: {claims}");
    }
    assert_eq!(claims["iss"], "http://auth.test");
    assert_eq!(claims["aud"], "auth-service");
    assert_eq!(claims["username"], "alice");
    assert_eq!(claims["roles"], serde_json::json!(["user"]));
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );
    let me = app.get_json("/users/me", &tokens.access).await;
    assert_eq!(claims["sub"], me["id"]);
}

#[tokio::test]
async fn the_username_matches_regardless_of_case() {
    let app = spawn_app().await;
    app.register("Alice", PASSWORD).await;
    assert_eq!(app.login("aLICE", PASSWORD).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn unknown_users_and_wrong_passwords_get_the_same_invalid_grant() {
    let app = spawn_app().await;
    app.register("alice", PASSWORD).await;
    let wrong = assert_oauth_error(
        app.login("alice", "not the password").await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    let unknown = assert_oauth_error(
        app.login("nobody", PASSWORD).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    assert_eq!(wrong, unknown);
}

#[tokio::test]
async fn a_disabled_user_cannot_log_in() {
    let app = spawn_app().await;
    let tokens = app.user_with_tokens("alice").await;
    let me = app.get_json("/users/me", &tokens.access).await;
    disable_user(&app, me["id"].as_str().unwrap()).await;
    assert_oauth_error(
        app.login("alice", PASSWORD).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    // ... and its live tokens stop working on the next request.
    assert_invalid_token(app.get("/users/me", Some(&tokens.access)).await).await;
}

/// Disables a user through the admin API.
async fn disable_user(app: &TestApp, id: &str) {
    let admin = app.admin_with_tokens("root").await;
    let response = app
        .client
        .patch(app.url(&format!("/users/{id}")))
        .bearer_auth(&admin.access)
        .json(&serde_json::json!({"is_active": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_missing_grant_type_is_read_as_password() {
    let app = spawn_app().await;
    app.register("alice", PASSWORD).await;
    let response = app
        .post_form(
            "/auth/token",
            &form(&[("username", "alice"), ("password", PASSWORD)]),
        )
        .await;
    tokens_of(response).await;
}

#[tokio::test]
async fn missing_or_repeated_parameters_are_invalid_requests() {
    let app = spawn_app().await;
    app.register("alice", PASSWORD).await;
    for body in [
        form(&[("grant_type", "password"), ("password", PASSWORD)]),
        form(&[("grant_type", "password"), ("username", "alice")]),
        form(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", ""),
        ]),
        form(&[("grant_type", "refresh_token")]),
        format!("username=alice&password={PASSWORD}&username=bob"),
        format!("grant_type=password&grant_type=password&username=alice&password={PASSWORD}"),
    ] {
        let description = assert_oauth_error(
            app.post_form("/auth/token", &body).await,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        )
        .await;
        assert!(
            !description.contains(PASSWORD),
            "no secret echoed: {description}"
        );
    }
}

#[tokio::test]
async fn an_unknown_grant_type_is_unsupported() {
    let app = spawn_app().await;
    let response = app
        .post_form(
            "/auth/token",
            &form(&[("grant_type", "urn:ietf:params:oauth:grant-type:device_code")]),
        )
        .await;
    assert_oauth_error(response, StatusCode::BAD_REQUEST, "unsupported_grant_type").await;
}

#[tokio::test]
async fn a_body_that_is_not_form_encoded_is_an_invalid_request() {
    let app = spawn_app().await;
    let response = app
        .post_json(
            "/auth/token",
            &serde_json::json!({"username": "a", "password": "b"}),
        )
        .await;
    assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
    let response = app
        .client
        .post(app.url("/auth/token"))
        .body("username=a&password=b")
        .send()
        .await
        .unwrap();
    assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
}

#[tokio::test]
async fn an_oversized_token_request_is_413() {
    let app = spawn_app().await;
    let body = format!("username=alice&password={}", "x".repeat(70 * 1024));
    let response = app.post_form("/auth/token", &body).await;
    assert_oauth_error(response, StatusCode::PAYLOAD_TOO_LARGE, "invalid_request").await;
}

#[tokio::test]
async fn a_scope_narrows_the_token_to_a_subset_of_the_users_roles() {
    let app = spawn_app().await;
    let all = app.admin_with_tokens("root").await;
    assert_eq!(all.body["scope"], "user admin");
    let (_, claims) = jwt_parts(&all.access);
    assert_eq!(claims["roles"], serde_json::json!(["user", "admin"]));

    let narrowed = tokens_of(app.login_with_scope("root", PASSWORD, "user").await).await;
    assert_eq!(narrowed.body["scope"], "user");
    let (_, claims) = jwt_parts(&narrowed.access);
    assert_eq!(claims["scope"], "user");
}

#[tokio::test]
async fn a_role_the_user_lacks_is_left_out_and_an_unknown_scope_is_refused() {
    let app = spawn_app().await;
    app.register("alice", PASSWORD).await;
    let tokens = tokens_of(app.login_with_scope("alice", PASSWORD, "user admin").await).await;
    assert_eq!(tokens.body["scope"], "user");
    let description = assert_oauth_error(
        app.login_with_scope("alice", PASSWORD, "superuser").await,
        StatusCode::BAD_REQUEST,
        "invalid_scope",
    )
    .await;
    assert!(description.contains("superuser"), "{description}");
}

#[tokio::test]
async fn a_saturated_hash_pool_answers_503_with_retry_after() {
    // One hashing slot, expensive hashes and almost no queueing: simultaneous logins overflow.
    let app = spawn_app_with(&[
        ("ARGON2_MEMORY_KIB", "32768"),
        ("ARGON2_ITERATIONS", "3"),
        ("HASH_CONCURRENCY", "1"),
        ("HASH_QUEUE_TIMEOUT_MS", "1"),
    ])
    .await;
    app.register("alice", PASSWORD).await;
    let logins = (0..6).map(|_| app.login("alice", PASSWORD));
    let responses = futures::future::join_all(logins).await;
    let mut busy = 0;
    for response in responses {
        match response.status() {
            StatusCode::OK => {}
            StatusCode::SERVICE_UNAVAILABLE => {
                busy += 1;
                assert!(response.headers().contains_key("retry-after"));
                let body: Value = response.json().await.unwrap();
                assert_eq!(body["error"], "temporarily_unavailable");
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(busy >= 1, "at least one login must find the pool full");
}

#[tokio::test]
async fn unknown_parameters_are_ignored_even_when_repeated() {
    let app = spawn_app().await;
    app.register("alice", PASSWORD).await;
    let body = format!("username=alice&password={PASSWORD}&client_id=x&foo=1&foo=2&=junk&=junk");
    tokens_of(app.post_form("/auth/token", &body).await).await;
}
