//! The use case that proves a known user holds one of their passkeys (a second factor after
//! the password), driven directly: the HTTP page that offers it is the second-factor step's.

use auth_service::application::{AppError, RequestContext};
use serde_json::Value;

use super::*;

async fn user(app: &TestApp, token: &str) -> std::sync::Arc<auth_service::domain::user::User> {
    app.services.auth.authenticate(token).await.unwrap().user
}

fn options(started: &auth_service::application::StartedCeremony) -> Value {
    serde_json::from_str(&started.options).unwrap()
}

#[tokio::test]
async fn a_known_users_passkey_verifies_once_and_only_for_that_user() {
    let app = spawn_app().await;
    let alice = app.user_with_tokens("alice").await;
    let bob = app.user_with_tokens("bob").await;
    let mut alice_key = authenticator(&app);
    let mut bob_key = authenticator(&app);
    register_passkey(&app, &alice.access, &mut alice_key).await;
    register_passkey(&app, &bob.access, &mut bob_key).await;
    let passkeys = &app.services.state.passkeys;
    let (alice_user, bob_user) = (
        user(&app, &alice.access).await,
        user(&app, &bob.access).await,
    );
    let ctx = RequestContext::default();

    // Only Alice's credential is offered, and it verifies.
    let started = passkeys.start_second_factor(&alice_user).await.unwrap();
    let offered = options(&started);
    let allowed = offered["publicKey"]["allowCredentials"].as_array().unwrap();
    assert_eq!(allowed.len(), 1);
    let assertion = alice_key.assert(&offered).to_string();
    let id = started.id.to_string();
    passkeys
        .verify_second_factor(&alice_user, &id, &assertion, &ctx)
        .await
        .unwrap();
    // Once only.
    let again = passkeys
        .verify_second_factor(&alice_user, &id, &assertion, &ctx)
        .await;
    assert!(matches!(again, Err(AppError::CeremonyInvalid)), "{again:?}");

    // Bob's passkey does not pass for Alice, and Alice's ceremony is not Bob's.
    let started = passkeys.start_second_factor(&alice_user).await.unwrap();
    let wrong_key = bob_key.assert(&options(&started)).to_string();
    let refused = passkeys
        .verify_second_factor(&alice_user, &started.id.to_string(), &wrong_key, &ctx)
        .await;
    assert!(
        matches!(refused, Err(AppError::PasskeyRejected(_))),
        "{refused:?}"
    );
    let started = passkeys.start_second_factor(&alice_user).await.unwrap();
    let assertion = alice_key.assert(&options(&started)).to_string();
    let not_his = passkeys
        .verify_second_factor(&bob_user, &started.id.to_string(), &assertion, &ctx)
        .await;
    assert!(
        matches!(not_his, Err(AppError::CeremonyInvalid)),
        "{not_his:?}"
    );

    // A user without a passkey has nothing to start.
    let carol = app.user_with_tokens("carol").await;
    let carol_user = user(&app, &carol.access).await;
    let none = passkeys.start_second_factor(&carol_user).await;
    assert!(matches!(none, Err(AppError::PasskeyNotFound)), "{none:?}");
}

#[tokio::test]
async fn a_usernameless_ceremony_cannot_stand_in_for_a_second_factor_one() {
    let app = spawn_app().await;
    let alice = app.user_with_tokens("alice").await;
    let mut key = authenticator(&app);
    register_passkey(&app, &alice.access, &mut key).await;
    let passkeys = &app.services.state.passkeys;
    let user = app
        .services
        .auth
        .authenticate(&alice.access)
        .await
        .unwrap()
        .user;
    let started = passkeys.start_sign_in().await.unwrap();
    let assertion = key.assert(&options(&started)).to_string();
    let refused = passkeys
        .verify_second_factor(
            &user,
            &started.id.to_string(),
            &assertion,
            &RequestContext::default(),
        )
        .await;
    assert!(
        matches!(refused, Err(AppError::CeremonyInvalid)),
        "{refused:?}"
    );
}

/// The login page's second step, as its script drives it: after alice's password, the page
/// offers her passkey; the start endpoint with the page's hidden fields (the pending sign-in
/// among them) challenges her credentials only; the finish signs in. Bob's passkey does not
/// pass for her, and the pending sign-in is used once.
#[tokio::test]
async fn a_passkey_is_the_second_step_of_a_password_sign_in_on_the_login_page() {
    use crate::oidc::{auth_query, exchange_public, hidden_inputs, redirected_with_code, world};
    use reqwest::StatusCode;

    let w = world().await;
    let alice = w.app.tokens("alice", PASSWORD).await;
    let bob = w.app.user_with_tokens("bob").await;
    let mut alice_key = authenticator(&w.app);
    let mut bob_key = authenticator(&w.app);
    register_passkey(&w.app, &alice.access, &mut alice_key).await;
    register_passkey(&w.app, &bob.access, &mut bob_key).await;

    let mut browser = crate::oidc::Browser::new(&w.app);
    let query = auth_query(&w.public.id, &[]);
    let html = browser
        .get(&format!("/auth/authorize?{query}"))
        .await
        .text()
        .await
        .unwrap();
    let second = browser.submit_login(&html, "alice", PASSWORD).await;
    assert_eq!(second.status(), StatusCode::OK);
    let csp = second.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let page = second.text().await.unwrap();
    assert!(page.contains("Use a passkey"), "{page}");
    // The code form's fields (the recovery form repeats them); each page sets a new CSRF cookie.
    let fields_of = |page: &str| {
        let mut fields = hidden_inputs(page);
        fields.truncate(fields.len() / 2);
        fields
    };
    let mut fields = fields_of(&page);
    assert!(fields.iter().any(|(name, _)| name == "pending"));
    let encode = |pairs: &[(String, String)]| {
        let pairs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        form(&pairs)
    };
    let mut start_body = encode(&fields);
    let finish = |fields: &[(String, String)], ceremony: &Value, credential: &Value| {
        let mut pairs = fields.to_vec();
        pairs.push((
            "ceremony_id".into(),
            ceremony["ceremony_id"].as_str().unwrap().into(),
        ));
        pairs.push(("credential".into(), credential.to_string()));
        encode(&pairs)
    };

    // Only alice's credential is asked for; bob's answer is refused on the second step's page.
    let started = ceremony(browser.post_form("/auth/passkey/start", &start_body).await).await;
    let allowed = started["publicKey"]["allowCredentials"].as_array().unwrap();
    assert_eq!(allowed.len(), 1, "{started}");
    let wrong = bob_key.assert(&started);
    let refused = browser
        .post_form("/auth/passkey/finish", &finish(&fields, &started, &wrong))
        .await;
    assert_eq!(refused.status(), StatusCode::OK);
    let again = refused.text().await.unwrap();
    assert!(
        again.contains("role=\"alert\"") && again.contains("Use a passkey"),
        "{again}"
    );
    fields = fields_of(&again);
    start_body = encode(&fields);

    // Her own passkey signs in and the code works.
    let started = ceremony(browser.post_form("/auth/passkey/start", &start_body).await).await;
    let assertion = alice_key.assert(&started);
    let body = finish(&fields, &started, &assertion);
    let done = browser.post_form("/auth/passkey/finish", &body).await;
    let (code, _) = redirected_with_code(done);
    assert_eq!(exchange_public(&w, &code).await.status(), StatusCode::OK);

    // The pending sign-in is gone: starting again from the same page is refused.
    let stale = browser.post_form("/auth/passkey/start", &start_body).await;
    assert_eq!(stale.status(), StatusCode::BAD_REQUEST);
    let problem: Value = stale.json().await.unwrap();
    assert_eq!(problem["code"], "signin_expired", "{problem}");
}

/// An admin's MFA reset removes the user's passkeys too: the user is left with no second
/// factor and signs in with the password alone.
#[tokio::test]
async fn an_admin_reset_removes_the_passkeys_too() {
    let app = spawn_app().await;
    let admin = app.admin_with_tokens("root").await;
    let alice = app.user_with_tokens("alice").await;
    let mut key = authenticator(&app);
    register_passkey(&app, &alice.access, &mut key).await;
    assert_eq!(list(&app, &alice.access).await.len(), 1);
    let me: Value = app.get_json("/users/me", &alice.access).await;
    assert_eq!(me["mfa"]["passkeys"], 1);
    let id = me["id"].as_str().unwrap();
    let reset = app
        .client
        .delete(app.url(&format!("/users/{id}/mfa")))
        .bearer_auth(&admin.access)
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), reqwest::StatusCode::NO_CONTENT);
    assert!(list(&app, &alice.access).await.is_empty());
    let me: Value = app.get_json("/users/me", &alice.access).await;
    assert_eq!(me["mfa"]["passkeys"], 0);
    let login = app.login("alice", PASSWORD).await;
    assert_eq!(login.status(), reqwest::StatusCode::OK);
}
