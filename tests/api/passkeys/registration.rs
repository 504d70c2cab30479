//! Registering, listing and deleting passkeys.

use reqwest::StatusCode;
use serde_json::json;

use super::*;

#[tokio::test]
async fn a_passkey_is_registered_listed_counted_and_deleted() {
    let app = spawn_app().await;
    let admin = app.admin_with_tokens("root").await.access;
    let alice = app.user_with_tokens("alice").await;
    let mut key = authenticator(&app);

    let started = ceremony(start_registration(&app, &alice.access).await).await;
    let options = &started["publicKey"];
    assert_eq!(options["rp"]["id"], "auth.test");
    assert_eq!(options["user"]["name"], "alice");
    assert_eq!(options["authenticatorSelection"]["residentKey"], "required");
    assert_eq!(
        options["authenticatorSelection"]["userVerification"],
        "required"
    );
    let credential = key.register(&started);
    let response = finish_registration(
        &app,
        &alice.access,
        &json!({"ceremony_id": started["ceremony_id"], "credential": credential, "name": "  Clé 🔑 de Zoë "}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = header_text(&response, "location").to_owned();
    let passkey: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        location,
        format!("/users/me/passkeys/{}", passkey["id"].as_str().unwrap())
    );
    assert_eq!(passkey["name"], "Clé 🔑 de Zoë");
    assert!(passkey["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(passkey["last_used_at"].is_null());
    assert_eq!(
        passkey.as_object().unwrap().len(),
        4,
        "no key material: {passkey}"
    );

    assert_eq!(list(&app, &alice.access).await, vec![passkey.clone()]);
    let me = app.get_json("/users/me", &alice.access).await;
    assert_eq!(me["mfa"]["passkeys"], 1);
    // The next registration excludes it.
    let again = ceremony(start_registration(&app, &alice.access).await).await;
    let excluded = again["publicKey"]["excludeCredentials"].as_array().unwrap();
    assert_eq!(excluded.len(), 1);
    assert_eq!(excluded[0]["id"], credential["rawId"]);

    let id = passkey["id"].as_str().unwrap();
    let deleted = app
        .client
        .delete(app.url(&format!("/users/me/passkeys/{id}")))
        .bearer_auth(&alice.access)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert!(list(&app, &alice.access).await.is_empty());
    let me = app.get_json("/users/me", &alice.access).await;
    assert_eq!(me["mfa"]["passkeys"], 0);
    let twice = app
        .client
        .delete(app.url(&format!("/users/me/passkeys/{id}")))
        .bearer_auth(&alice.access)
        .send()
        .await
        .unwrap();
    assert_problem(twice, StatusCode::NOT_FOUND, "passkey_not_found").await;

    assert_eq!(audit_count(&app, &admin, "passkey_added").await, 1);
    assert_eq!(audit_count(&app, &admin, "passkey_removed").await, 1);
}

#[tokio::test]
async fn the_same_authenticator_cannot_be_registered_twice_by_anyone() {
    let app = spawn_app().await;
    let alice = app.user_with_tokens("alice").await;
    let bob = app.user_with_tokens("bob").await;
    let mut key = authenticator(&app);
    register_passkey(&app, &alice.access, &mut key).await;

    // The software authenticator ignores excludeCredentials, as a careless one might.
    let again = register_with(&app, &alice.access, &mut key, None).await;
    assert_problem(again, StatusCode::CONFLICT, "passkey_already_registered").await;
    let stolen = register_with(&app, &bob.access, &mut key, None).await;
    assert_problem(stolen, StatusCode::CONFLICT, "passkey_already_registered").await;
    assert_eq!(list(&app, &alice.access).await.len(), 1);
    assert!(list(&app, &bob.access).await.is_empty());
    let bob_me = app.get_json("/users/me", &bob.access).await;
    assert_eq!(bob_me["mfa"]["passkeys"], 0);
}

#[tokio::test]
async fn a_credential_for_another_origin_or_rp_id_or_without_user_verification_is_refused() {
    let app = spawn_app().await;
    let alice = app.user_with_tokens("alice").await;

    let mut phished = authenticator(&app);
    phished.origin = "https://auth.test.evil.example".into();
    let response = register_with(&app, &alice.access, &mut phished, None).await;
    let problem = assert_problem(response, StatusCode::BAD_REQUEST, "passkey_rejected").await;
    assert!(problem["detail"]
        .as_str()
        .unwrap()
        .contains("did not verify"));

    let mut other_rp = authenticator(&app);
    other_rp.rp_id = "evil.example".into();
    let response = register_with(&app, &alice.access, &mut other_rp, None).await;
    assert_problem(response, StatusCode::BAD_REQUEST, "passkey_rejected").await;

    let mut unverified = authenticator(&app);
    unverified.user_verified = false;
    let response = register_with(&app, &alice.access, &mut unverified, None).await;
    assert_problem(response, StatusCode::BAD_REQUEST, "passkey_rejected").await;

    // The control: the same steps with an honest authenticator succeed.
    let mut honest = authenticator(&app);
    register_passkey(&app, &alice.access, &mut honest).await;
    assert_eq!(list(&app, &alice.access).await.len(), 1);
}

#[tokio::test]
async fn a_ceremony_is_finished_once_by_its_own_user_and_not_after_it_expired() {
    let app = spawn_app().await;
    let alice = app.user_with_tokens("alice").await;
    let bob = app.user_with_tokens("bob").await;
    let mut key = authenticator(&app);

    let started = ceremony(start_registration(&app, &alice.access).await).await;
    let credential = key.register(&started);
    let body = json!({"ceremony_id": started["ceremony_id"], "credential": credential});
    // Bob cannot finish Alice's ceremony (and his attempt uses it up).
    let response = finish_registration(&app, &bob.access, &body).await;
    assert_problem(
        response,
        StatusCode::BAD_REQUEST,
        "passkey_ceremony_invalid",
    )
    .await;
    let response = finish_registration(&app, &alice.access, &body).await;
    assert_problem(
        response,
        StatusCode::BAD_REQUEST,
        "passkey_ceremony_invalid",
    )
    .await;

    let started = ceremony(start_registration(&app, &alice.access).await).await;
    let body = json!({"ceremony_id": started["ceremony_id"], "credential": key.register(&started)});
    assert_eq!(
        finish_registration(&app, &alice.access, &body)
            .await
            .status(),
        StatusCode::CREATED
    );
    let replay = finish_registration(&app, &alice.access, &body).await;
    assert_problem(replay, StatusCode::BAD_REQUEST, "passkey_ceremony_invalid").await;

    let mut late = authenticator(&app);
    let started = ceremony(start_registration(&app, &alice.access).await).await;
    app.clock.advance(chrono::Duration::seconds(301));
    let body =
        json!({"ceremony_id": started["ceremony_id"], "credential": late.register(&started)});
    let expired = finish_registration(&app, &alice.access, &body).await;
    assert_problem(expired, StatusCode::BAD_REQUEST, "passkey_ceremony_invalid").await;

    let unknown = json!({"ceremony_id": "not-a-uuid", "credential": {}});
    let response = finish_registration(&app, &alice.access, &unknown).await;
    assert_problem(
        response,
        StatusCode::BAD_REQUEST,
        "passkey_ceremony_invalid",
    )
    .await;
}

#[tokio::test]
async fn bad_bodies_and_names_get_clear_errors_never_a_500() {
    let app = spawn_app().await;
    let alice = app.user_with_tokens("alice").await;
    let mut key = authenticator(&app);

    let missing = finish_registration(&app, &alice.access, &json!({"ceremony_id": "x"})).await;
    assert_validation_failed(missing).await;
    for name in ["", "   ", "tab\there", &"é".repeat(65)] {
        let started = ceremony(start_registration(&app, &alice.access).await).await;
        let body = json!({"ceremony_id": started["ceremony_id"], "credential": key.register(&started), "name": name});
        let response = finish_registration(&app, &alice.access, &body).await;
        assert_validation_failed(response).await;
    }
    for credential in [
        json!({}),
        json!("a string"),
        json!({"id": "x", "rawId": "!!", "type": "public-key", "response": {}}),
    ] {
        let started = ceremony(start_registration(&app, &alice.access).await).await;
        let body = json!({"ceremony_id": started["ceremony_id"], "credential": credential});
        let response = finish_registration(&app, &alice.access, &body).await;
        assert_problem(response, StatusCode::BAD_REQUEST, "passkey_rejected").await;
    }
    let name = "🔑".repeat(64);
    let started = ceremony(start_registration(&app, &alice.access).await).await;
    let body = json!({"ceremony_id": started["ceremony_id"], "credential": key.register(&started), "name": name});
    let response = finish_registration(&app, &alice.access, &body).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let unauthenticated = app
        .client
        .post(app.url("/users/me/passkeys/register/start"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn another_users_or_an_unknown_passkey_cannot_be_deleted() {
    let app = spawn_app().await;
    let alice = app.user_with_tokens("alice").await;
    let bob = app.user_with_tokens("bob").await;
    let mut key = authenticator(&app);
    let passkey = register_passkey(&app, &alice.access, &mut key).await;
    let id = passkey["id"].as_str().unwrap();
    for path in [
        format!("/users/me/passkeys/{id}"),
        "/users/me/passkeys/0193a1c2-7d4e-7a10-9b2c-5d6e7f8a9b0c".into(),
        "/users/me/passkeys/not-an-id".into(),
        "/users/me/passkeys/%F0%9F%94%91".into(),
    ] {
        let response = app
            .client
            .delete(app.url(&path))
            .bearer_auth(&bob.access)
            .send()
            .await
            .unwrap();
        assert_problem(response, StatusCode::NOT_FOUND, "passkey_not_found").await;
    }
    assert_eq!(list(&app, &alice.access).await.len(), 1);
    // A segment that is not UTF-8 is a problem document too, never a 500.
    let response = app
        .client
        .delete(app.url("/users/me/passkeys/%FF"))
        .bearer_auth(&bob.access)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_client_error());
    assert_eq!(
        header_text(&response, "content-type"),
        "application/problem+json"
    );
}

#[tokio::test]
async fn a_user_keeps_at_most_ten_passkeys() {
    let app = spawn_app().await;
    let alice = app.user_with_tokens("alice").await;
    // Ceremonies started before the limit was reached cannot exceed it either.
    let mut late = authenticator(&app);
    let pending = ceremony(start_registration(&app, &alice.access).await).await;
    for _ in 0..10 {
        let mut key = authenticator(&app);
        register_passkey(&app, &alice.access, &mut key).await;
    }
    let refused = start_registration(&app, &alice.access).await;
    let problem = assert_problem(refused, StatusCode::CONFLICT, "passkey_limit_reached").await;
    assert!(problem["detail"].as_str().unwrap().contains("10"));
    let body =
        json!({"ceremony_id": pending["ceremony_id"], "credential": late.register(&pending)});
    let response = finish_registration(&app, &alice.access, &body).await;
    assert_problem(response, StatusCode::CONFLICT, "passkey_limit_reached").await;
    let me = app.get_json("/users/me", &alice.access).await;
    assert_eq!(me["mfa"]["passkeys"], 10);
}

#[tokio::test]
async fn a_ceremony_started_on_one_replica_is_finished_on_another() {
    let app = spawn_app().await;
    let other = app.sibling(&[]).await;
    let alice = app.user_with_tokens("alice").await;
    let mut key = authenticator(&app);
    let started = ceremony(start_registration(&app, &alice.access).await).await;
    let body = json!({"ceremony_id": started["ceremony_id"], "credential": key.register(&started)});
    let response = finish_registration(&other, &alice.access, &body).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    // (Two servers on one SQLite file are not a supported deployment: the first one's cache of
    // the user catches up by polling; on PostgreSQL every replica reads the row.)
    let me = other.get_json("/users/me", &alice.access).await;
    assert_eq!(me["mfa"]["passkeys"], 1);
    let replay = finish_registration(&app, &alice.access, &body).await;
    assert_problem(replay, StatusCode::BAD_REQUEST, "passkey_ceremony_invalid").await;
}

#[tokio::test]
async fn the_purge_removes_abandoned_ceremonies() {
    let app = spawn_app().await;
    let alice = app.user_with_tokens("alice").await;
    for _ in 0..3 {
        ceremony(start_registration(&app, &alice.access).await).await;
    }
    let count = "SELECT CAST(count(*) AS TEXT) FROM webauthn_ceremonies WHERE kind <> $1";
    assert_eq!(app.stored_text(count, "none").await.as_deref(), Some("3"));
    app.services.maintenance.purge_once().await.unwrap();
    assert_eq!(
        app.stored_text(count, "none").await.as_deref(),
        Some("3"),
        "still live"
    );
    app.clock.advance(chrono::Duration::seconds(301));
    app.services.maintenance.purge_once().await.unwrap();
    assert_eq!(app.stored_text(count, "none").await.as_deref(), Some("0"));
}

#[tokio::test]
async fn deleting_a_user_row_deletes_their_passkeys_and_ceremonies() {
    let app = spawn_app().await;
    let alice = app.user_with_tokens("alice").await;
    let bob = app.user_with_tokens("bob").await;
    let mut key = authenticator(&app);
    register_passkey(&app, &alice.access, &mut key).await;
    register_passkey(&app, &bob.access, &mut authenticator(&app)).await;
    ceremony(start_registration(&app, &alice.access).await).await;
    let alice_id = app.user_id(&alice).await;
    assert_eq!(
        rows_of(&app, "passkeys", &alice_id).await.as_deref(),
        Some("1")
    );
    assert_eq!(
        rows_of(&app, "webauthn_ceremonies", &alice_id)
            .await
            .as_deref(),
        Some("1")
    );
    // Account deletion removes the user row and relies on the cascade.
    let deleted = app
        .execute_sql(
            "DELETE FROM users WHERE CAST(id AS TEXT) = $1",
            &[&alice_id],
        )
        .await;
    assert_eq!(deleted, 1);
    assert_eq!(
        rows_of(&app, "passkeys", &alice_id).await.as_deref(),
        Some("0")
    );
    assert_eq!(
        rows_of(&app, "webauthn_ceremonies", &alice_id)
            .await
            .as_deref(),
        Some("0")
    );
    assert_eq!(
        list(&app, &bob.access).await.len(),
        1,
        "another user's passkey stays"
    );
}

async fn rows_of(app: &TestApp, table: &str, user_id: &str) -> Option<String> {
    let sql =
        format!("SELECT CAST(count(*) AS TEXT) FROM {table} WHERE CAST(user_id AS TEXT) = $1");
    app.stored_text(&sql, user_id).await
}
