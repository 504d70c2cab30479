//! Refresh-token rotation and reuse detection, on both refresh endpoints.

use chrono::Duration;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn the_refresh_grant_rotates_the_refresh_token() {
    let app = spawn_app().await;
    let first = app.user_with_tokens("alice").await;
    let second = tokens_of(app.refresh_grant(&first.refresh).await).await;
    assert_ne!(second.refresh, first.refresh);
    assert_ne!(second.access, first.access);
    let (_, a) = jwt_parts(&first.access);
    let (_, b) = jwt_parts(&second.access);
    assert_eq!(a["sid"], b["sid"], "a refreshed token stays in its session");
    app.assert_signed_in(&second.access).await;
    tokens_of(app.refresh_grant(&second.refresh).await).await;
}

#[tokio::test]
async fn the_json_refresh_endpoint_rotates_too_and_keeps_the_session_scope() {
    let app = spawn_app().await;
    app.register("alice", PASSWORD).await;
    let login = form(&[
        ("username", "alice"),
        ("password", PASSWORD),
        ("scope", "user"),
    ]);
    let first = tokens_of(app.post_form("/auth/token", &login).await).await;
    let response = app
        .post_json("/auth/refresh", &json!({"refresh_token": first.refresh}))
        .await;
    assert_eq!(response.headers()["cache-control"], "no-store");
    let second = tokens_of(response).await;
    assert_eq!(second.body["scope"], "user");
    assert_eq!(second.body["token_type"], "Bearer");
    assert_ne!(second.refresh, first.refresh);
}

#[tokio::test]
async fn reusing_a_rotated_refresh_token_revokes_the_whole_session() {
    let app = spawn_app().await;
    let first = app.user_with_tokens("alice").await;
    let other_session = app.tokens("alice", PASSWORD).await;
    let second = tokens_of(app.refresh_grant(&first.refresh).await).await;

    app.assert_refresh_refused(&first.refresh).await;
    // Every token descended from that login is dead...
    app.assert_refresh_refused(&second.refresh).await;
    assert_invalid_token(app.get("/users/me", Some(&second.access)).await).await;
    assert_invalid_token(app.get("/users/me", Some(&first.access)).await).await;
    // ... and the user's other sessions are not.
    app.assert_signed_in(&other_session.access).await;
}

#[tokio::test]
async fn twenty_concurrent_refreshes_of_one_token_give_exactly_one_success() {
    let app = spawn_app().await;
    let tokens = app.user_with_tokens("alice").await;
    let attempts = (0..20).map(|i| {
        let app = &app;
        let token = tokens.refresh.clone();
        async move {
            if i % 2 == 0 {
                app.refresh_grant(&token).await
            } else {
                app.post_json("/auth/refresh", &json!({"refresh_token": token}))
                    .await
            }
        }
    });
    let responses = futures::future::join_all(attempts).await;
    let mut winners = Vec::new();
    for response in responses {
        match response.status() {
            StatusCode::OK => winners.push(response.json::<Value>().await.unwrap()),
            StatusCode::BAD_REQUEST => {
                let body: Value = response.json().await.unwrap();
                assert_eq!(body["error"], "invalid_grant");
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one refresh wins the race");
    // The losers presented a rotated token: reuse, so the winner's session is revoked too.
    let winner = winners[0]["access_token"].as_str().unwrap();
    assert_invalid_token(app.get("/users/me", Some(winner)).await).await;
}

#[tokio::test]
async fn unknown_and_expired_refresh_tokens_are_invalid_grants() {
    let app = spawn_app().await;
    let tokens = app.user_with_tokens("alice").await;
    app.assert_refresh_refused("not-a-real-token").await;
    app.clock.advance(Duration::days(14) + Duration::seconds(1));
    app.assert_refresh_refused(&tokens.refresh).await;
}

#[tokio::test]
async fn a_refresh_within_the_lifetime_extends_the_session() {
    let app = spawn_app().await;
    let first = app.user_with_tokens("alice").await;
    app.clock.advance(Duration::days(10));
    let second = tokens_of(app.refresh_grant(&first.refresh).await).await;
    app.clock.advance(Duration::days(10));
    tokens_of(app.refresh_grant(&second.refresh).await).await;
}

#[tokio::test]
async fn malformed_refresh_requests_are_invalid_requests() {
    let app = spawn_app().await;
    let cases = [
        app.post_json("/auth/refresh", &json!({})).await,
        app.post_json("/auth/refresh", &json!({"refresh_token": 5}))
            .await,
        app.client
            .post(app.url("/auth/refresh"))
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap(),
        app.post_form("/auth/refresh", "refresh_token=abc").await,
    ];
    for response in cases {
        assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
    }
}

#[tokio::test]
async fn a_refresh_token_is_not_an_access_token() {
    let app = spawn_app().await;
    let tokens = app.user_with_tokens("alice").await;
    assert_invalid_token(app.get("/users/me", Some(&tokens.refresh)).await).await;
}
