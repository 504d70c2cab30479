//! Brute-force protection, as an attacker meets it; time moves through the clock port.

use chrono::Duration;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

async fn fail_logins(app: &TestApp, username: &str, times: usize) {
    for _ in 0..times {
        let response = app.login(username, "not the password").await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }
}

fn retry_after(response: &reqwest::Response) -> u64 {
    response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn five_failures_lock_the_account_with_429_and_retry_after_even_for_the_right_password() {
    let app = spawn_app().await;
    app.register("alice", PASSWORD).await;
    fail_logins(&app, "alice", 5).await;
    let response = app.login("alice", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait = retry_after(&response);
    assert!((290..=301).contains(&wait), "{wait}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");

    app.clock.advance(Duration::seconds(301));
    tokens_of(app.login("alice", PASSWORD).await).await;
}

#[tokio::test]
async fn a_success_resets_the_count() {
    let app = spawn_app().await;
    app.register("alice", PASSWORD).await;
    fail_logins(&app, "alice", 4).await;
    tokens_of(app.login("alice", PASSWORD).await).await;
    fail_logins(&app, "alice", 4).await;
    tokens_of(app.login("ALICE", PASSWORD).await).await;
}

#[tokio::test]
async fn repeat_offenders_are_locked_for_longer() {
    let app = spawn_app().await;
    app.register("alice", PASSWORD).await;
    fail_logins(&app, "alice", 5).await;
    app.clock.advance(Duration::seconds(301));
    fail_logins(&app, "alice", 5).await;
    let response = app.login("alice", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait = retry_after(&response);
    assert!(
        (590..=601).contains(&wait),
        "the second lock doubles: {wait}"
    );
}

#[tokio::test]
async fn unknown_usernames_lock_exactly_like_real_ones() {
    let app = spawn_app().await;
    fail_logins(&app, "ghost", 5).await;
    let response = app.login("ghost", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn the_limits_are_configurable() {
    let app = spawn_app_with(&[("LOGIN_MAX_FAILURES", "2"), ("LOGIN_LOCKOUT_SECONDS", "60")]).await;
    app.register("alice", PASSWORD).await;
    fail_logins(&app, "alice", 2).await;
    let response = app.login("alice", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(retry_after(&response) <= 61);
}

#[tokio::test]
async fn a_lock_is_shared_by_every_app_on_the_same_database() {
    let app = spawn_app().await;
    app.register("alice", PASSWORD).await;
    fail_logins(&app, "alice", 5).await;
    // A second service on the same database (another replica) sees the lock.
    let settings = app.settings_with(&[]);
    let other =
        auth_service::infrastructure::bootstrap::build_services(&settings, app.clock.clone())
            .await
            .unwrap();
    let outcome = other
        .auth
        .login(
            "alice",
            &auth_service::domain::user::Password::candidate(PASSWORD),
            None,
            &auth_service::application::RequestContext::default(),
        )
        .await;
    assert!(matches!(
        outcome,
        Err(auth_service::application::AppError::AccountLocked { .. })
    ));
}
