//! Registration, the current user, password change and the protected demo endpoint.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn registration_returns_the_user_and_its_location_without_any_secret() {
    let app = spawn_app().await;
    let response = app
        .post_json(
            "/users",
            &json!({"username": "alice", "password": PASSWORD, "email": "alice@example.com", "full_name": "Alice Liddell"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let text = response.text().await.unwrap();
    assert!(
        !text.contains(PASSWORD) && !text.contains("argon2"),
        "{text}"
    );
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(location, format!("/users/{}", body["id"].as_str().unwrap()));
    let id = uuid::Uuid::parse_str(body["id"].as_str().unwrap()).unwrap();
    assert_eq!(id.get_version_num(), 7);
    assert_eq!(body["username"], "alice");
    assert_eq!(body["email"], "alice@example.com");
    assert_eq!(body["full_name"], "Alice Liddell");
    assert_eq!(body["roles"], json!(["user"]));
    assert_eq!(body["is_active"], true);
    let created =
        chrono::DateTime::parse_from_rfc3339(body["created_at"].as_str().unwrap()).unwrap();
    assert_eq!(created.offset().local_minus_utc(), 0);
    assert!(body["updated_at"].is_string());
    assert_eq!(body["email_verified"], false);
    assert_eq!(
        body["mfa"],
        json!({"totp": false, "passkeys": 0, "recovery_codes_left": 0})
    );
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 10, "exactly the contract's fields: {keys:?}");
}

#[tokio::test]
async fn usernames_and_emails_are_taken_regardless_of_case() {
    let app = spawn_app().await;
    app.post_json(
        "/users",
        &json!({"username": "alice", "password": PASSWORD, "email": "a@example.com"}),
    )
    .await;
    let response = app.register("ALICE", PASSWORD).await;
    assert_problem(response, StatusCode::CONFLICT, "username_taken").await;
    let response = app
        .post_json(
            "/users",
            &json!({"username": "alice2", "password": PASSWORD, "email": "A@EXAMPLE.COM"}),
        )
        .await;
    assert_problem(response, StatusCode::CONFLICT, "email_taken").await;
}

#[tokio::test]
async fn invalid_fields_are_all_reported_in_one_422() {
    let app = spawn_app().await;
    let response = app
        .post_json(
            "/users",
            &json!({"username": "a b", "password": "short", "email": "nope", "full_name": "x".repeat(101)}),
        )
        .await;
    let body = assert_validation_failed(response).await;
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert!(e["message"].is_string());
            e["field"].as_str().unwrap()
        })
        .collect();
    assert_eq!(fields, ["username", "password", "email", "full_name"]);
}

#[tokio::test]
async fn password_length_counts_characters_and_is_never_truncated() {
    let app = spawn_app().await;
    // Eight characters, sixteen bytes: long enough.
    assert_eq!(
        app.register("cyril", "пароль12").await.status(),
        StatusCode::CREATED
    );
    assert_eq!(
        app.login("cyril", "пароль12").await.status(),
        StatusCode::OK
    );
    // 129 characters is refused, not cut to 128.
    let body = assert_validation_failed(app.register("long", &"p".repeat(129)).await).await;
    assert_eq!(body["errors"][0]["code"], "too_long");
    // 128 characters is fine, and the 128th counts.
    let max = format!("{}a", "p".repeat(127));
    assert_eq!(
        app.register("longest", &max).await.status(),
        StatusCode::CREATED
    );
    let almost = format!("{}b", "p".repeat(127));
    assert_eq!(
        app.login("longest", &almost).await.status(),
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn missing_and_mistyped_fields_are_422_and_broken_json_is_400() {
    let app = spawn_app().await;
    let body = assert_validation_failed(app.post_json("/users", &json!({})).await).await;
    assert_eq!(body["errors"].as_array().unwrap().len(), 2);
    let body = assert_validation_failed(
        app.post_json("/users", &json!({"username": 42, "password": PASSWORD}))
            .await,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "username");
    let broken = app
        .client
        .post(app.url("/users"))
        .header("content-type", "application/json")
        .body("{\"username\": ")
        .send()
        .await
        .unwrap();
    assert_problem(broken, StatusCode::BAD_REQUEST, "malformed_json").await;
}

#[tokio::test]
async fn a_body_that_is_not_json_is_415_and_an_oversized_one_413() {
    let app = spawn_app().await;
    let response = app.post_form("/users", "username=alice&password=x").await;
    assert_problem(
        response,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    let huge =
        json!({"username": "alice", "password": PASSWORD, "full_name": "x".repeat(70 * 1024)});
    let response = app.post_json("/users", &huge).await;
    assert_problem(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
}

#[tokio::test]
async fn me_returns_the_caller_and_needs_a_token() {
    let app = spawn_app().await;
    let tokens = app.user_with_tokens("alice").await;
    let response = app.get("/users/me", Some(&tokens.access)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let me: Value = response.json().await.unwrap();
    assert_eq!(me["username"], "alice");
    let response = app.get("/users/me", None).await;
    assert_missing_token(response).await;
    assert_invalid_token(app.get("/users/me", Some("not.a.jwt")).await).await;
}

#[tokio::test]
async fn the_protected_endpoint_greets_the_caller() {
    let app = spawn_app().await;
    let tokens = app.user_with_tokens("alice").await;
    let body = app.get_json("/protected", &tokens.access).await;
    assert_eq!(body["message"], "Hello, alice!");
    assert_eq!(body["username"], "alice");
    let (_, claims) = jwt_parts(&tokens.access);
    assert_eq!(body["user_id"], claims["sub"]);
    assert_missing_token(app.get("/protected", None).await).await;
}

#[tokio::test]
async fn changing_the_password_revokes_every_other_session() {
    let app = spawn_app().await;
    let mine = app.user_with_tokens("alice").await;
    let other = app.tokens("alice", PASSWORD).await;
    let response = app
        .change_password(&mine.access, PASSWORD, "a brand new passphrase")
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    app.assert_signed_in(&mine.access).await;
    app.assert_session_ended(&other).await;
    assert_eq!(
        app.login("alice", PASSWORD).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.login("alice", "a brand new passphrase").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_wrong_current_password_is_400_and_a_weak_new_one_422() {
    let app = spawn_app().await;
    let tokens = app.user_with_tokens("alice").await;
    let response = app
        .change_password(&tokens.access, "not my password", "a brand new passphrase")
        .await;
    assert_problem(response, StatusCode::BAD_REQUEST, "wrong_password").await;
    let response = app.change_password(&tokens.access, PASSWORD, "short").await;
    let body = assert_validation_failed(response).await;
    assert_eq!(body["errors"][0]["field"], "new_password");
    let response = app
        .put_password_body(Some(&tokens.access), &json!({"current_password": PASSWORD}))
        .await;
    assert_validation_failed(response).await;
    let response = app
        .put_password_body(
            None,
            &json!({"current_password": PASSWORD, "new_password": "a brand new passphrase"}),
        )
        .await;
    assert_missing_token(response).await;
    // Nothing changed.
    assert_eq!(app.login("alice", PASSWORD).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_json_array_is_never_read_as_an_object() {
    let app = spawn_app().await;
    let tokens = app.user_with_tokens("alice").await;
    let positional = json!(["bob", PASSWORD, null, null]);
    let body = assert_validation_failed(app.post_json("/users", &positional).await).await;
    assert_eq!(body["errors"][0]["code"], "not_an_object");
    assert!(!app.user_stored("bob").await, "nothing was created");
    let response = app
        .put_password_body(
            Some(&tokens.access),
            &json!([PASSWORD, "a brand new passphrase"]),
        )
        .await;
    assert_validation_failed(response).await;
    let response = app
        .post_json("/auth/refresh", &json!([tokens.refresh]))
        .await;
    assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
    assert_eq!(app.login("alice", PASSWORD).await.status(), StatusCode::OK);
}
