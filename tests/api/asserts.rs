//! The assertions the HTTP tests share: token responses, RFC 6749 errors, RFC 9457 problems
//! and the `WWW-Authenticate` challenges that go with them.

use reqwest::{Response, StatusCode};
use serde_json::Value;

use crate::helpers::Tokens;

/// Expects a 200 token response and returns its tokens.
pub async fn tokens_of(response: Response) -> Tokens {
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "expected a token response"
    );
    let body: Value = response.json().await.unwrap();
    Tokens {
        access: body["access_token"].as_str().unwrap().to_owned(),
        refresh: body["refresh_token"].as_str().unwrap().to_owned(),
        body,
    }
}

/// Asserts an RFC 6749 error response and returns its description.
pub async fn assert_oauth_error(response: Response, status: StatusCode, error: &str) -> String {
    assert_eq!(response.status(), status);
    assert!(
        header_text(&response, "content-type").starts_with("application/json"),
        "OAuth2 errors are application/json"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], error, "{body}");
    body["error_description"].as_str().unwrap().to_owned()
}

/// Asserts an RFC 9457 problem response with `code` and returns its body.
pub async fn assert_problem(response: Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status.as_u16());
    assert!(body["title"].is_string() && body["detail"].is_string() && body["type"].is_string());
    body
}

/// The text of header `name` of a response, which must be there.
pub fn header_text<'a>(response: &'a Response, name: &str) -> &'a str {
    response.headers()[name].to_str().unwrap()
}

/// The `WWW-Authenticate` challenge of a response.
fn challenge(response: &Response) -> String {
    header_text(response, "www-authenticate").to_owned()
}

/// Asserts a 401 with `WWW-Authenticate: Bearer error="invalid_token"`.
pub async fn assert_invalid_token(response: Response) {
    let challenge = challenge(&response);
    assert!(
        challenge.starts_with("Bearer error=\"invalid_token\""),
        "{challenge}"
    );
    assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
}

/// Asserts a 422 `validation_failed` problem and returns its body (with its `errors`).
pub async fn assert_validation_failed(response: Response) -> Value {
    assert_problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await
}

/// Asserts a 401 `missing_token` problem with the bare `WWW-Authenticate: Bearer` challenge.
pub async fn assert_missing_token(response: Response) {
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    assert_problem(response, StatusCode::UNAUTHORIZED, "missing_token").await;
}

/// Asserts a 403 `insufficient_scope` problem with its `WWW-Authenticate` challenge.
pub async fn assert_forbidden(response: Response) {
    let challenge = challenge(&response);
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert_problem(response, StatusCode::FORBIDDEN, "insufficient_scope").await;
}
