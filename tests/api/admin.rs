//! User administration, as an admin and as those who are not.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn admins_list_users_a_page_at_a_time() {
    let app = spawn_app().await;
    let admin = app.admin_with_tokens("root").await;
    for name in ["bob", "carol", "dave"] {
        app.register(name, PASSWORD).await;
    }
    let page = app.get_json("/users?limit=2&offset=1", &admin.access).await;
    assert_eq!(page["total"], 4);
    assert_eq!(
        (page["limit"].as_u64(), page["offset"].as_u64()),
        (Some(2), Some(1))
    );
    let names: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["bob", "carol"]);
    let default = app.get_json("/users", &admin.access).await;
    assert_eq!(default["limit"], 20);
    assert_eq!(default["items"].as_array().unwrap().len(), 4);
    assert!(default["items"][0].get("password_hash").is_none());
}

#[tokio::test]
async fn bad_paging_parameters_are_422() {
    let app = spawn_app().await;
    let admin = app.admin_with_tokens("root").await;
    for query in ["limit=101", "limit=0", "limit=abc", "offset=-1"] {
        let response = app
            .get(&format!("/users?{query}"), Some(&admin.access))
            .await;
        let body = assert_validation_failed(response).await;
        assert!(body["errors"][0]["field"].is_string(), "{query}: {body}");
    }
}

#[tokio::test]
async fn non_admins_get_403_and_anonymous_callers_401() {
    let app = spawn_app().await;
    let user = app.user_with_tokens("bob").await;
    let id = app.user_id(&user).await;
    assert_forbidden(app.get("/users", Some(&user.access)).await).await;
    assert_forbidden(app.get(&format!("/users/{id}"), Some(&user.access)).await).await;
    assert_forbidden(
        app.patch_user(&user.access, &id, &json!({"roles": ["admin"]}))
            .await,
    )
    .await;
    assert_forbidden(app.get("/admin/audit-events", Some(&user.access)).await).await;
    assert_missing_token(app.get("/users", None).await).await;
}

#[tokio::test]
async fn an_admin_token_narrowed_to_user_scope_is_not_an_admin() {
    let app = spawn_app().await;
    app.admin_with_tokens("root").await;
    let narrowed = tokens_of(app.login_with_scope("root", PASSWORD, "user").await).await;
    assert_forbidden(app.get("/users", Some(&narrowed.access)).await).await;
}

#[tokio::test]
async fn a_demoted_admin_loses_access_on_the_next_request() {
    let app = spawn_app().await;
    let root = app.admin_with_tokens("root").await;
    let other = app.admin_with_tokens("other").await;
    let other_id = app.user_id(&other).await;
    assert_eq!(
        app.get("/users", Some(&other.access)).await.status(),
        StatusCode::OK
    );
    let response = app
        .patch_user(&root.access, &other_id, &json!({"roles": ["user"]}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_forbidden(app.get("/users", Some(&other.access)).await).await;
}

#[tokio::test]
async fn get_user_finds_by_id_and_404s_otherwise() {
    let app = spawn_app().await;
    let admin = app.admin_with_tokens("root").await;
    let bob = app.user_with_tokens("bob").await;
    let id = app.user_id(&bob).await;
    let user = app.get_json(&format!("/users/{id}"), &admin.access).await;
    assert_eq!(user["username"], "bob");
    let unknown = uuid::Uuid::now_v7();
    for path in [format!("/users/{unknown}"), "/users/not-a-uuid".to_owned()] {
        let response = app.get(&path, Some(&admin.access)).await;
        assert_problem(response, StatusCode::NOT_FOUND, "user_not_found").await;
    }
    let response = app
        .patch_user(
            &admin.access,
            &unknown.to_string(),
            &json!({"is_active": false}),
        )
        .await;
    assert_problem(response, StatusCode::NOT_FOUND, "user_not_found").await;
}

#[tokio::test]
async fn disabling_a_user_revokes_every_session_at_once_and_enabling_restores_login() {
    let app = spawn_app().await;
    let admin = app.admin_with_tokens("root").await;
    let bob = app.user_with_tokens("bob").await;
    let bob_again = app.tokens("bob", PASSWORD).await;
    let id = app.user_id(&bob).await;
    let response = app
        .patch_user(&admin.access, &id, &json!({"is_active": false}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["is_active"], false);
    assert_invalid_token(app.get("/users/me", Some(&bob.access)).await).await;
    assert_invalid_token(app.get("/users/me", Some(&bob_again.access)).await).await;
    app.assert_refresh_refused(&bob.refresh).await;
    assert_oauth_error(
        app.login("bob", PASSWORD).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;

    app.patch_user(&admin.access, &id, &json!({"is_active": true}))
        .await;
    tokens_of(app.login("bob", PASSWORD).await).await;
}

#[tokio::test]
async fn roles_email_and_full_name_can_be_changed_and_cleared() {
    let app = spawn_app().await;
    let admin = app.admin_with_tokens("root").await;
    let bob = app.user_with_tokens("bob").await;
    let id = app.user_id(&bob).await;
    app.clock.advance(chrono::Duration::seconds(5));
    let body =
        json!({"roles": ["user", "admin"], "email": "bob@example.com", "full_name": "Bob B."});
    let changed: Value = app
        .patch_user(&admin.access, &id, &body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(changed["roles"], json!(["user", "admin"]));
    assert_eq!(changed["email"], "bob@example.com");
    assert_eq!(changed["full_name"], "Bob B.");
    assert_ne!(changed["updated_at"], changed["created_at"]);
    let promoted = app.tokens("bob", PASSWORD).await;
    assert_eq!(promoted.body["scope"], "user admin");

    let cleared: Value = app
        .patch_user(&admin.access, &id, &json!({"email": null}))
        .await
        .json()
        .await
        .unwrap();
    assert!(cleared["email"].is_null());
    assert_eq!(cleared["full_name"], "Bob B.", "absent fields stay");
}

#[tokio::test]
async fn invalid_changes_are_refused_without_touching_the_user() {
    let app = spawn_app().await;
    let admin = app.admin_with_tokens("root").await;
    let admin_id = app.user_id(&admin).await;
    app.post_json(
        "/users",
        &json!({"username": "carol", "password": PASSWORD, "email": "c@example.com"}),
    )
    .await;
    let bob = app.user_with_tokens("bob").await;
    let id = app.user_id(&bob).await;
    let cases = [
        (json!({"email": "not-an-email"}), "email"),
        (json!({"roles": ["root"]}), "roles"),
        (json!({"roles": []}), "roles"),
        (json!({"full_name": "x".repeat(101)}), "full_name"),
        (json!({"username": "renamed"}), "username"),
        (json!({"password": "sneaky password"}), "password"),
    ];
    for (body, field) in cases {
        let response = app.patch_user(&admin.access, &id, &body).await;
        let problem = assert_validation_failed(response).await;
        assert_eq!(problem["errors"][0]["field"], field, "{body}");
    }
    let response = app
        .patch_user(&admin.access, &id, &json!({"email": "C@EXAMPLE.COM"}))
        .await;
    assert_problem(response, StatusCode::CONFLICT, "email_taken").await;
    let response = app
        .patch_user(&admin.access, &admin_id, &json!({"is_active": false}))
        .await;
    let problem = assert_validation_failed(response).await;
    assert_eq!(problem["errors"][0]["code"], "self_lockout");
    let bob_now = app.get_json(&format!("/users/{id}"), &admin.access).await;
    assert!(bob_now["email"].is_null() && bob_now["roles"] == json!(["user"]));
}

#[tokio::test]
async fn a_non_admin_learns_nothing_from_bad_parameters() {
    let app = spawn_app().await;
    let user = app.user_with_tokens("bob").await;
    for path in [
        "/admin/audit-events?event=nonsense",
        "/admin/audit-events?before=yesterday",
        "/users?limit=abc",
    ] {
        assert_forbidden(app.get(path, Some(&user.access)).await).await;
    }
    let id = app.user_id(&user).await;
    assert_forbidden(
        app.patch_user(&user.access, &id, &json!([null, null]))
            .await,
    )
    .await;
}

#[tokio::test]
async fn an_offset_beyond_the_signed_64_bit_range_is_422() {
    let app = spawn_app().await;
    let admin = app.admin_with_tokens("root").await;
    let response = app
        .get("/users?offset=9223372036854775808", Some(&admin.access))
        .await;
    let body = assert_validation_failed(response).await;
    assert_eq!(body["errors"][0]["field"], "offset");
    let response = app
        .get("/users?offset=9223372036854775807", Some(&admin.access))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}
