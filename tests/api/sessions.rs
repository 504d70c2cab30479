//! Logout, logout-all, revocation, new sessions, and access-token validation.

use chrono::Duration;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn logout_revokes_the_session_on_the_very_next_request() {
    let app = spawn_app().await;
    let tokens = app.user_with_tokens("alice").await;
    let other = app.tokens("alice", PASSWORD).await;
    let response = app.post_bearer("/auth/logout", &tokens.access).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    app.assert_session_ended(&tokens).await;
    app.assert_signed_in(&other.access).await;
}

#[tokio::test]
async fn logout_all_revokes_every_session_of_the_caller_only() {
    let app = spawn_app().await;
    let a = app.user_with_tokens("alice").await;
    let b = app.tokens("alice", PASSWORD).await;
    let bob = app.user_with_tokens("bob").await;
    assert_eq!(
        app.post_bearer("/auth/logout-all", &a.access)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_invalid_token(app.get("/users/me", Some(&a.access)).await).await;
    app.assert_session_ended(&b).await;
    app.assert_signed_in(&bob.access).await;
}

#[tokio::test]
async fn session_endpoints_need_a_bearer_token() {
    let app = spawn_app().await;
    for path in ["/auth/logout", "/auth/logout-all", "/auth/refresh-token"] {
        let response = app.client.post(app.url(path)).send().await.unwrap();
        assert_missing_token(response).await;
        assert_invalid_token(app.post_bearer(path, "garbage").await).await;
    }
}

/// `POST /auth/revoke` with a token and a hint of its kind.
async fn revoke(app: &TestApp, token: &str, hint: &str) -> reqwest::Response {
    let form = form(&[("token", token), ("token_type_hint", hint)]);
    app.post_form("/auth/revoke", &form).await
}

#[tokio::test]
async fn revoking_a_refresh_token_ends_its_session() {
    let app = spawn_app().await;
    let tokens = app.user_with_tokens("alice").await;
    let response = revoke(&app, &tokens.refresh, "refresh_token").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.bytes().await.unwrap().is_empty());
    app.assert_session_ended(&tokens).await;
}

#[tokio::test]
async fn revoking_an_access_token_ends_its_session_even_with_a_wrong_hint() {
    let app = spawn_app().await;
    let tokens = app.user_with_tokens("alice").await;
    let response = revoke(&app, &tokens.access, "refresh_token").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_invalid_token(app.get("/users/me", Some(&tokens.access)).await).await;
}

#[tokio::test]
async fn revoking_an_unknown_token_is_ok_and_a_missing_token_is_not() {
    let app = spawn_app().await;
    let response = app
        .post_form("/auth/revoke", &form(&[("token", "no-such-token")]))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = app
        .post_form(
            "/auth/revoke",
            &form(&[("token_type_hint", "access_token")]),
        )
        .await;
    assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
    let response = app.post_form("/auth/revoke", "token=a&token=b").await;
    assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
    let response = app
        .post_json("/auth/revoke", &serde_json::json!({"token": "a"}))
        .await;
    assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
}

#[tokio::test]
async fn a_bearer_can_open_a_new_session_with_its_own_refresh_token() {
    let app = spawn_app().await;
    let tokens = app.user_with_tokens("alice").await;
    let response = app.post_bearer("/auth/refresh-token", &tokens.access).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["refresh_expires_in"], 1_209_600);
    let (_, claims) = jwt_parts(&tokens.access);
    assert_ne!(body["session_id"], claims["sid"]);
    let refreshed = tokens_of(
        app.refresh_grant(body["refresh_token"].as_str().unwrap())
            .await,
    )
    .await;
    let (_, new_claims) = jwt_parts(&refreshed.access);
    assert_eq!(new_claims["sid"], body["session_id"]);
    // The new session is the first one's: a logout of the first ends it too, so a stolen
    // access token cannot mint a session that outlives its victim's logout.
    app.assert_signed_in(&refreshed.access).await;
    app.post_bearer("/auth/logout", &tokens.access).await;
    assert_eq!(
        app.get("/users/me", Some(&refreshed.access)).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn an_expired_access_token_is_refused_after_the_leeway() {
    let app = spawn_app().await;
    let tokens = app.user_with_tokens("alice").await;
    app.clock.advance(Duration::seconds(900 + 20));
    app.assert_signed_in(&tokens.access).await;
    app.clock.advance(Duration::seconds(15));
    assert_invalid_token(app.get("/users/me", Some(&tokens.access)).await).await;
}

#[tokio::test]
async fn a_tampered_or_foreign_token_is_refused() {
    let app = spawn_app().await;
    let tokens = app.user_with_tokens("alice").await;
    let mut parts: Vec<String> = tokens.access.split('.').map(String::from).collect();
    // Claim to be someone else, keeping the signature.
    let (_, mut claims) = jwt_parts(&tokens.access);
    claims["username"] = "mallory".into();
    use base64::Engine;
    parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string());
    assert_invalid_token(app.get("/users/me", Some(&parts.join("."))).await).await;

    let other = spawn_app_with(&[("JWT_SECRET", "another-secret-another-secret-another")]).await;
    let foreign = other.user_with_tokens("alice").await;
    assert_invalid_token(app.get("/users/me", Some(&foreign.access)).await).await;
}

#[tokio::test]
async fn access_tokens_in_the_query_string_are_ignored() {
    let app = spawn_app().await;
    let tokens = app.user_with_tokens("alice").await;
    let response = app
        .get(&format!("/users/me?access_token={}", tokens.access), None)
        .await;
    assert_missing_token(response).await;
}

#[tokio::test]
async fn in_flight_requests_finish_during_a_graceful_shutdown() {
    // Expensive hashes so that the login is still running when the shutdown starts.
    let mut app =
        spawn_app_with(&[("ARGON2_MEMORY_KIB", "32768"), ("ARGON2_ITERATIONS", "3")]).await;
    app.register("alice", PASSWORD).await;
    let request = app
        .client
        .post(app.url("/auth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("username", "alice"), ("password", PASSWORD)]));
    let login = tokio::spawn(request.send());
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    app.shutdown();
    let response = login.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    app.server.take().unwrap().await.unwrap().unwrap();
    // Once shut down, no new connection is accepted.
    assert!(app
        .client
        .get(app.url("/health/live"))
        .send()
        .await
        .is_err());
}
