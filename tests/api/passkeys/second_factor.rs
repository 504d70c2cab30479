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
