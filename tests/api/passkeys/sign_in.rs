//! Passkey sign-in on the hosted login page, driven as its script does: the start endpoint with
//! the page's hidden fields, the authenticator, then the finish form.

use reqwest::{Response, StatusCode};
use serde_json::Value;

use super::*;
use crate::oidc::{
    auth_query, exchange_public, hidden_inputs, redirected_with_code, world, Browser, World,
};

/// The login page of a fresh authorization request for the public client, and its hidden
/// fields (the CSRF token and the request).
async fn login_page(browser: &mut Browser<'_>, w: &World) -> Vec<(String, String)> {
    let page = browser
        .get(&format!(
            "/auth/authorize?{}",
            auth_query(&w.public.id, &[])
        ))
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("Sign in with a passkey"), "{html}");
    assert!(
        !html.contains("role=\"alert\""),
        "no alert before a failure"
    );
    hidden_inputs(&html)
}

fn encode(pairs: &[(String, String)]) -> String {
    let pairs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    form(&pairs)
}

async fn start(browser: &mut Browser<'_>, fields: &[(String, String)]) -> Response {
    browser
        .post_form("/auth/passkey/start", &encode(fields))
        .await
}

async fn finish(
    browser: &mut Browser<'_>,
    fields: &[(String, String)],
    ceremony_id: &str,
    credential: &Value,
) -> Response {
    let mut pairs = fields.to_vec();
    pairs.push(("ceremony_id".into(), ceremony_id.into()));
    pairs.push(("credential".into(), credential.to_string()));
    browser
        .post_form("/auth/passkey/finish", &encode(&pairs))
        .await
}

/// The whole sign-in: page, start, authenticator, finish.
async fn sign_in(
    browser: &mut Browser<'_>,
    w: &World,
    key: &mut SoftAuthenticator,
) -> (Response, Vec<(String, String)>, String, Value) {
    let fields = login_page(browser, w).await;
    let started = ceremony(start(browser, &fields).await).await;
    let ceremony_id = started["ceremony_id"].as_str().unwrap().to_owned();
    let assertion = key.assert(&started);
    let response = finish(browser, &fields, &ceremony_id, &assertion).await;
    (response, fields, ceremony_id, assertion)
}

/// The login page shown again with `message` in its alert, and no sign-in cookie; returns the
/// new page's hidden fields (its fresh CSRF token among them).
async fn refused_with(response: Response, message: &str) -> Vec<(String, String)> {
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response
        .headers()
        .get_all("set-cookie")
        .iter()
        .all(|c| !c.to_str().unwrap().starts_with("auth_signin=")));
    let html = response.text().await.unwrap();
    assert!(html.contains("role=\"alert\" id=\"form-error\""), "{html}");
    assert!(html.contains(message), "expected '{message}' in {html}");
    hidden_inputs(&html)
}

async fn alice_token(w: &World) -> String {
    w.app.tokens("alice", PASSWORD).await.access
}

#[tokio::test]
async fn a_passkey_signs_in_on_the_login_page_and_the_code_is_accepted() {
    let w = world().await;
    let mut key = authenticator(&w.app);
    // Taken before the passkey exists: with one, the password grant needs a second factor.
    let alice = alice_token(&w).await;
    let passkey = register_passkey(&w.app, &alice, &mut key).await;

    let mut browser = Browser::new(&w.app);
    let (response, _, _, _) = sign_in(&mut browser, &w, &mut key).await;
    assert!(response
        .headers()
        .get_all("set-cookie")
        .iter()
        .any(|c| c.to_str().unwrap().starts_with("auth_signin=")));
    let (code, params) = redirected_with_code(response);
    assert_eq!(params["state"], "st&te");
    assert_eq!(params["iss"], "http://auth.test");
    let tokens = exchange_public(&w, &code).await;
    assert_eq!(tokens.status(), StatusCode::OK);
    let tokens: Value = tokens.json().await.unwrap();
    let me = w
        .app
        .get_json("/users/me", tokens["access_token"].as_str().unwrap())
        .await;
    assert_eq!(me["username"], "alice");

    // The counter and the last use were recorded; the sign-in cookie skips the form next time.
    let listed = list(&w.app, &alice).await;
    assert_eq!(listed[0]["id"], passkey["id"]);
    assert!(listed[0]["last_used_at"].is_string());
    let again = browser
        .get(&format!(
            "/auth/authorize?{}",
            auth_query(&w.public.id, &[])
        ))
        .await;
    redirected_with_code(again);
    assert_eq!(audit_count(&w.app, &w.admin, "passkey_verified").await, 1);
    let logins = w
        .app
        .get_json(
            "/admin/audit-events?event=login_succeeded&limit=100",
            &w.admin,
        )
        .await;
    assert!(logins["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("with passkey")));
}

#[tokio::test]
async fn a_replayed_assertion_is_refused() {
    let w = world().await;
    let mut key = authenticator(&w.app);
    register_passkey(&w.app, &alice_token(&w).await, &mut key).await;
    let mut browser = Browser::new(&w.app);
    let (first, fields, ceremony_id, assertion) = sign_in(&mut browser, &w, &mut key).await;
    redirected_with_code(first);

    // The same answer to the same ceremony: the ceremony is gone.
    let mut attacker = Browser::new(&w.app);
    let attacker_fields = login_page(&mut attacker, &w).await;
    let replay = finish(&mut attacker, &attacker_fields, &ceremony_id, &assertion).await;
    let attacker_fields = refused_with(replay, "took too long or was already used").await;
    // The same answer to a new ceremony: its challenge does not match.
    let started = ceremony(start(&mut attacker, &attacker_fields).await).await;
    let replay = finish(
        &mut attacker,
        &attacker_fields,
        started["ceremony_id"].as_str().unwrap(),
        &assertion,
    )
    .await;
    refused_with(replay, "did not verify").await;
    // A cloned authenticator (its counter behind the stored one) is refused too.
    key.counter -= 1;
    let started = ceremony(start(&mut browser, &fields).await).await;
    let cloned = key.assert(&started);
    let response = finish(
        &mut browser,
        &fields,
        started["ceremony_id"].as_str().unwrap(),
        &cloned,
    )
    .await;
    refused_with(response, "could not sign you in").await;
    assert!(audit_count(&w.app, &w.admin, "passkey_failed").await >= 2);
}

#[tokio::test]
async fn a_tampered_signature_or_a_foreign_origin_is_refused() {
    let w = world().await;
    let mut key = authenticator(&w.app);
    register_passkey(&w.app, &alice_token(&w).await, &mut key).await;
    let mut browser = Browser::new(&w.app);
    let fields = login_page(&mut browser, &w).await;

    let started = ceremony(start(&mut browser, &fields).await).await;
    let mut assertion = key.assert(&started);
    let signature = assertion["response"]["signature"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut bytes = base64::Engine::decode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        &signature,
    )
    .unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    assertion["response"]["signature"] = Value::String(base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        &bytes,
    ));
    let response = finish(
        &mut browser,
        &fields,
        started["ceremony_id"].as_str().unwrap(),
        &assertion,
    )
    .await;
    let fields = refused_with(response, "did not verify").await;

    key.origin = "https://evil.example".into();
    let started = ceremony(start(&mut browser, &fields).await).await;
    let assertion = key.assert(&started);
    let response = finish(
        &mut browser,
        &fields,
        started["ceremony_id"].as_str().unwrap(),
        &assertion,
    )
    .await;
    let fields = refused_with(response, "did not verify").await;

    let mut garbage = browser_fields_with(&fields, "ceremony_id", "nope");
    garbage.push(("credential".into(), "{not json".into()));
    let response = browser
        .post_form("/auth/passkey/finish", &encode(&garbage))
        .await;
    let fields = refused_with(response, "took too long or was already used").await;
    let started = ceremony(start(&mut browser, &fields).await).await;
    let response = finish(
        &mut browser,
        &fields,
        started["ceremony_id"].as_str().unwrap(),
        &Value::String("{not json".into()),
    )
    .await;
    refused_with(response, "malformed").await;

    // The control: an honest answer from the right origin signs in.
    key.origin = authenticator(&w.app).origin;
    let (response, _, _, _) = sign_in(&mut browser, &w, &mut key).await;
    redirected_with_code(response);
}

fn browser_fields_with(
    fields: &[(String, String)],
    name: &str,
    value: &str,
) -> Vec<(String, String)> {
    let mut pairs = fields.to_vec();
    pairs.push((name.into(), value.into()));
    pairs
}

#[tokio::test]
async fn a_deleted_passkey_or_a_disabled_user_no_longer_signs_in() {
    let w = world().await;
    let token = alice_token(&w).await;
    let mut key = authenticator(&w.app);
    let passkey = register_passkey(&w.app, &token, &mut key).await;
    let mut browser = Browser::new(&w.app);

    let alice_id = w.app.get_json("/users/me", &token).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let disabled = w
        .app
        .patch_user(
            &w.admin,
            &alice_id,
            &serde_json::json!({"is_active": false}),
        )
        .await;
    assert_eq!(disabled.status(), StatusCode::OK);
    let (response, _, _, _) = sign_in(&mut browser, &w, &mut key).await;
    refused_with(response, "this account cannot sign in").await;
    let enabled = w
        .app
        .patch_user(&w.admin, &alice_id, &serde_json::json!({"is_active": true}))
        .await;
    assert_eq!(enabled.status(), StatusCode::OK);

    // Disabling ended her sessions, and with a passkey the password grant needs a second
    // factor: a new token through the login page, with the passkey.
    let mut other = Browser::new(&w.app);
    let (response, _, _, _) = sign_in(&mut other, &w, &mut key).await;
    let (code, _) = redirected_with_code(response);
    let tokens: Value = exchange_public(&w, &code).await.json().await.unwrap();
    let token = tokens["access_token"].as_str().unwrap().to_owned();
    let deleted = w
        .app
        .client
        .delete(w.app.url(&format!(
            "/users/me/passkeys/{}",
            passkey["id"].as_str().unwrap()
        )))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let (response, _, _, _) = sign_in(&mut browser, &w, &mut key).await;
    refused_with(response, "not registered").await;
}

#[tokio::test]
async fn the_start_needs_the_pages_csrf_token_and_a_valid_request() {
    let w = world().await;
    let mut browser = Browser::new(&w.app);
    let fields = login_page(&mut browser, &w).await;

    let without_csrf: Vec<(String, String)> = fields
        .iter()
        .filter(|(k, _)| k != "csrf")
        .cloned()
        .collect();
    let response = start(&mut browser, &without_csrf).await;
    assert_problem(response, StatusCode::FORBIDDEN, "csrf_failed").await;
    let mut stranger = Browser::new(&w.app);
    let response = start(&mut stranger, &fields).await;
    assert_problem(response, StatusCode::FORBIDDEN, "csrf_failed").await;

    let bad_client: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| {
            if k == "client_id" {
                (k.clone(), "0193a1c2-7d4e-7a10-9b2c-5d6e7f8a9b0c".to_owned())
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect();
    let response = start(&mut browser, &bad_client).await;
    assert_problem(
        response,
        StatusCode::BAD_REQUEST,
        "invalid_authorization_request",
    )
    .await;
    let json = w
        .app
        .client
        .post(w.app.url("/auth/passkey/start"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // The finish without the CSRF cookie shows the form again; nothing is signed in.
    let mut key = authenticator(&w.app);
    register_passkey(&w.app, &alice_token(&w).await, &mut key).await;
    let started = ceremony(start(&mut browser, &fields).await).await;
    let assertion = key.assert(&started);
    let response = finish(
        &mut stranger,
        &fields,
        started["ceremony_id"].as_str().unwrap(),
        &assertion,
    )
    .await;
    refused_with(response, "This sign-in form expired").await;
}

#[tokio::test]
async fn the_script_is_served_from_this_origin_with_a_long_cache() {
    let app = spawn_app().await;
    let response = app.get("/auth/assets/passkey.js", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        header_text(&response, "content-type"),
        "text/javascript; charset=utf-8"
    );
    assert!(header_text(&response, "cache-control").contains("max-age=86400"));
    let script = response.text().await.unwrap();
    assert!(script.contains("/auth/passkey/start") && script.contains("navigator.credentials.get"));
    assert!(
        !script.contains("http://") && !script.contains("https://"),
        "no external request"
    );
}

#[tokio::test]
async fn a_usernameless_answer_without_its_user_handle_is_refused() {
    let w = world().await;
    let mut key = authenticator(&w.app);
    register_passkey(&w.app, &alice_token(&w).await, &mut key).await;
    key.user_handle = None;
    let mut browser = Browser::new(&w.app);
    let (response, _, _, _) = sign_in(&mut browser, &w, &mut key).await;
    refused_with(response, "not registered").await;
}
