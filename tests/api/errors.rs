//! Errors the framework answers itself are problem documents too, and secrets stay out of them.

use reqwest::StatusCode;

use crate::helpers::*;

#[tokio::test]
async fn an_unknown_path_is_a_404_problem() {
    let app = spawn_app().await;
    assert_problem(
        app.get("/nowhere", None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn a_wrong_method_is_a_405_problem_with_allow() {
    let app = spawn_app().await;
    let response = app.client.put(app.url("/users/me")).send().await.unwrap();
    assert!(header_text(&response, "allow").contains("GET"));
    assert_problem(
        response,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;
    // The OAuth2 endpoints answer in RFC 6749 error JSON, even for the framework's own errors.
    let response = app.get("/auth/token", None).await;
    assert_oauth_error(response, StatusCode::METHOD_NOT_ALLOWED, "invalid_request").await;
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_a_sane_incoming_one_is_kept() {
    let app = spawn_app().await;
    let response = app.get("/health/live", None).await;
    assert!(!response.headers()["x-request-id"].is_empty());
    let response = app
        .client
        .get(app.url("/health/live"))
        .header("x-request-id", "trace-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-abc-123");
}

#[tokio::test]
async fn garbage_bodies_never_cause_a_server_error() {
    let app = spawn_app().await;
    let bodies: [&[u8]; 5] = [
        b"",
        b"\xff\xfe\x00",
        b"[]",
        b"null",
        b"{\"username\": [1, 2]}",
    ];
    for path in ["/users", "/auth/refresh", "/auth/token", "/auth/revoke"] {
        for body in bodies {
            for content_type in [
                "application/json",
                "application/x-www-form-urlencoded",
                "text/plain",
            ] {
                let response = app
                    .client
                    .post(app.url(path))
                    .header("content-type", content_type)
                    .body(body.to_vec())
                    .send()
                    .await
                    .unwrap();
                let status = response.status();
                assert!(
                    status.is_client_error(),
                    "{path} {content_type} {body:?}: {status}"
                );
            }
        }
    }
}
