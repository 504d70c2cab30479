//! Passkeys over HTTP with a software authenticator: registration, the list, deletion, and
//! sign-in on the hosted login page, on the backend of the run (`TEST_API_BACKEND`).

mod authenticator;
mod registration;
mod second_factor;
mod sign_in;

use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

pub use authenticator::SoftAuthenticator;

use crate::asserts::*;
use crate::helpers::*;

/// An authenticator for the app's relying party, used from its origin.
pub fn authenticator(app: &TestApp) -> SoftAuthenticator {
    let rp = app
        .settings
        .webauthn
        .relying_party(&app.settings.tokens.issuer)
        .unwrap()
        .expect("passkeys are on in the tests");
    SoftAuthenticator::new(&rp.id, rp.origin.as_str().trim_end_matches('/'))
}

/// `POST /users/me/passkeys/register/start` as `token`.
pub async fn start_registration(app: &TestApp, token: &str) -> Response {
    app.client
        .post(app.url("/users/me/passkeys/register/start"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// `POST /users/me/passkeys/register/finish` as `token` with `body`.
pub async fn finish_registration(app: &TestApp, token: &str, body: &Value) -> Response {
    app.client
        .post(app.url("/users/me/passkeys/register/finish"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// The start's JSON, checked.
pub async fn ceremony(response: Response) -> Value {
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header_text(&response, "cache-control"), "no-store");
    let body: Value = response.json().await.unwrap();
    assert!(body["ceremony_id"].is_string(), "{body}");
    assert!(body["publicKey"]["challenge"].is_string(), "{body}");
    body
}

/// Registers `key` for the user of `token` under `name`; returns the response.
pub async fn register_with(
    app: &TestApp,
    token: &str,
    key: &mut SoftAuthenticator,
    name: Option<&str>,
) -> Response {
    let started = ceremony(start_registration(app, token).await).await;
    let credential = key.register(&started);
    let mut body = json!({"ceremony_id": started["ceremony_id"], "credential": credential});
    if let Some(name) = name {
        body["name"] = json!(name);
    }
    finish_registration(app, token, &body).await
}

/// Registers `key` for the user of `token` and returns the stored passkey.
pub async fn register_passkey(app: &TestApp, token: &str, key: &mut SoftAuthenticator) -> Value {
    let response = register_with(app, token, key, Some("Laptop")).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.unwrap()
}

/// The user's passkeys.
pub async fn list(app: &TestApp, token: &str) -> Vec<Value> {
    app.get_json("/users/me/passkeys", token).await["items"]
        .as_array()
        .unwrap()
        .clone()
}

/// How many audit events of `kind` are stored.
pub async fn audit_count(app: &TestApp, admin: &str, kind: &str) -> usize {
    app.get_json(
        &format!("/admin/audit-events?event={kind}&limit=100"),
        admin,
    )
    .await["items"]
        .as_array()
        .unwrap()
        .len()
}
