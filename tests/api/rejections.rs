//! Refused input is answered in words of ours, naming the field, whatever axum's and serde's
//! own messages say: missing, wrongly typed, unknown and repeated fields, malformed JSON, for
//! JSON bodies, query strings, the OAuth2 form and path ids.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

/// The one field error of a 422 problem, as (field, code, message).
async fn field_error(response: reqwest::Response) -> (String, String, String) {
    let body = assert_problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let errors = body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{body}");
    let text = |key: &str| errors[0][key].as_str().unwrap().to_owned();
    (text("field"), text("code"), text("message"))
}

fn expect(field: &str, code: &str, message: &str) -> (String, String, String) {
    (field.to_owned(), code.to_owned(), message.to_owned())
}

async fn put_password(app: &TestApp, token: &str, body: &str) -> reqwest::Response {
    app.client
        .put(app.url("/users/me/password"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn json_bodies_name_the_field_and_the_problem() {
    let app = spawn_app().await;
    let alice = app.user_with_tokens("alice").await;
    let cases = [
        (
            r#"{"new_password": "a new passphrase"}"#,
            expect("current_password", "invalid_value", "is required"),
        ),
        (
            r#"{"current_password": 5, "new_password": "x"}"#,
            expect(
                "current_password",
                "invalid_value",
                "has the wrong type (got a number)",
            ),
        ),
        (
            r#"{"current_password": "a", "current_password": "b"}"#,
            expect(
                "current_password",
                "invalid_value",
                "is given more than once",
            ),
        ),
    ];
    for (body, expected) in cases {
        assert_eq!(
            field_error(put_password(&app, &alice.access, body).await).await,
            expected,
            "{body}"
        );
    }
    // Registration reports its own missing fields, all at once.
    let body = assert_problem(
        app.post_json("/users", &json!({})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(
        body["errors"],
        json!([
            {"field": "username", "code": "required", "message": "is required"},
            {"field": "password", "code": "required", "message": "is required"},
        ])
    );
}

#[tokio::test]
async fn unknown_fields_of_a_patch_are_refused_by_name() {
    let app = spawn_app().await;
    let admin = app.admin_with_tokens("root").await;
    let me: Value = app
        .get("/users/me", Some(&admin.access))
        .await
        .json()
        .await
        .unwrap();
    let id = me["id"].as_str().unwrap();
    let cases = [
        (
            json!({"bogus": true}),
            expect("bogus", "invalid_value", "is not a known field"),
        ),
        (
            json!({"is_active": "yes"}),
            expect(
                "is_active",
                "invalid_value",
                "has the wrong type (got a string)",
            ),
        ),
        (
            json!({"roles": ["user", 1]}),
            expect(
                "roles[1]",
                "invalid_value",
                "has the wrong type (got a number)",
            ),
        ),
    ];
    for (body, expected) in cases {
        assert_eq!(
            field_error(app.patch_user(&admin.access, id, &body).await).await,
            expected,
            "{body}"
        );
    }
}

#[tokio::test]
async fn malformed_json_says_where() {
    let app = spawn_app().await;
    let alice = app.user_with_tokens("alice").await;
    let body = assert_problem(
        put_password(&app, &alice.access, r#"{"current_password": "#).await,
        StatusCode::BAD_REQUEST,
        "malformed_json",
    )
    .await;
    assert_eq!(
        body["detail"],
        "The body is not valid JSON: unexpected end at line 1 column 21."
    );
    let body = assert_problem(
        put_password(&app, &alice.access, "[1]").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(
        body["errors"],
        json!([{"field": "body", "code": "not_an_object", "message": "must be a JSON object"}])
    );
}

#[tokio::test]
async fn the_json_oauth_endpoint_answers_the_same_words_as_oauth_errors() {
    let app = spawn_app().await;
    let cases = [
        ("{}", "refresh_token is required"),
        (
            r#"{"refresh_token": 5}"#,
            "refresh_token has the wrong type (got a number)",
        ),
        (
            r#"{"refresh_token": "#,
            "The body is not valid JSON: unexpected end at line 1 column 18.",
        ),
        ("[]", "The body must be a JSON object."),
    ];
    for (body, expected) in cases {
        let response = app
            .client
            .post(app.url("/auth/refresh"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let description =
            assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
        assert_eq!(description, expected, "{body}");
    }
    let response = app
        .client
        .post(app.url("/auth/refresh"))
        .body("{}")
        .send()
        .await
        .unwrap();
    let description =
        assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
    assert_eq!(
        description,
        "Send the body as JSON with Content-Type: application/json."
    );
}

#[tokio::test]
async fn the_oauth_form_names_missing_and_repeated_parameters() {
    let app = spawn_app().await;
    let cases = [
        ("grant_type=password&password=x", "username is required"),
        (
            "grant_type=password&username=&password=x",
            "username is required",
        ),
        ("grant_type=refresh_token", "refresh_token is required"),
        (
            "username=a&username=b&password=x",
            "username is given more than once",
        ),
    ];
    for (form, expected) in cases {
        let description = assert_oauth_error(
            app.post_form("/auth/token", form).await,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        )
        .await;
        assert_eq!(description, expected, "{form}");
    }
    let description = assert_oauth_error(
        app.post_form("/auth/revoke", "").await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    assert_eq!(description, "token is required");
    let response = app
        .client
        .post(app.url("/auth/token"))
        .json(&json!({"username": "a"}))
        .send()
        .await
        .unwrap();
    let description =
        assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
    assert_eq!(
        description,
        "Send the body form-encoded (Content-Type: application/x-www-form-urlencoded)."
    );
}

#[tokio::test]
async fn query_parameters_are_named_with_what_they_must_be() {
    let app = spawn_app().await;
    let admin = app.admin_with_tokens("root").await;
    let cases = [
        (
            "/users?limit=abc",
            expect(
                "limit",
                "invalid_value",
                "must be a whole number from 0 to 4294967295",
            ),
        ),
        (
            "/users?limit=1&limit=2",
            expect("limit", "invalid_value", "is given more than once"),
        ),
        (
            "/admin/audit-events?user_id=nope",
            expect("user_id", "invalid_value", "has an invalid value"),
        ),
    ];
    for (path, expected) in cases {
        assert_eq!(
            field_error(app.get(path, Some(&admin.access)).await).await,
            expected,
            "{path}"
        );
    }
}

#[tokio::test]
async fn a_path_id_that_is_not_a_uuid_is_answered_like_an_unknown_id() {
    let app = spawn_app().await;
    let admin = app.admin_with_tokens("root").await;
    let unknown = assert_problem(
        app.get(
            "/users/00000000-0000-0000-0000-000000000000",
            Some(&admin.access),
        )
        .await,
        StatusCode::NOT_FOUND,
        "user_not_found",
    )
    .await;
    let malformed = assert_problem(
        app.get("/users/not-a-uuid", Some(&admin.access)).await,
        StatusCode::NOT_FOUND,
        "user_not_found",
    )
    .await;
    assert_eq!(malformed, unknown);
    let patched = assert_problem(
        app.patch_user(&admin.access, "not-a-uuid", &json!({}))
            .await,
        StatusCode::NOT_FOUND,
        "user_not_found",
    )
    .await;
    assert_eq!(patched, unknown);
    // The body is read before the id is looked at: a malformed body is reported first.
    let response = app
        .client
        .patch(app.url("/users/not-a-uuid"))
        .bearer_auth(&admin.access)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_problem(response, StatusCode::BAD_REQUEST, "malformed_json").await;
    // A segment that is not UTF-8 once decoded is a bad request, before any body.
    assert_problem(
        app.get("/users/%FF", Some(&admin.access)).await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;
    // Another user's id, upper-case, names the same user.
    let me: Value = app
        .get("/users/me", Some(&admin.access))
        .await
        .json()
        .await
        .unwrap();
    let upper = me["id"].as_str().unwrap().to_uppercase();
    assert_eq!(
        app.get(&format!("/users/{upper}"), Some(&admin.access))
            .await
            .status(),
        StatusCode::OK
    );
}
