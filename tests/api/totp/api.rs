//! The TOTP endpoints, the password grant's `otp`, and the admin reset.

use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn enrolment_needs_the_password_and_stays_pending_until_confirmed() {
    let app = spawn_app().await;
    let alice = app.user_with_tokens("alice").await;
    let wrong = app.enrol(&alice.access, "not the password").await;
    assert_problem(wrong, StatusCode::BAD_REQUEST, "wrong_password").await;
    let response = app.enrol(&alice.access, PASSWORD).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    let secret = body["secret"].as_str().unwrap();
    assert_eq!(secret.len(), 32, "160 bits of base32");
    assert_eq!(
        body["otpauth_uri"],
        format!("otpauth://totp/auth.test:alice?secret={secret}&issuer=auth.test")
    );
    assert_eq!(
        app.mfa_of(&alice.access).await,
        json!({"totp": false, "passkeys": 0, "recovery_codes_left": 0})
    );
    // Pending is not on: the password alone still logs in.
    tokens_of(app.login("alice", PASSWORD).await).await;
    let missing = app
        .send_json(
            Method::POST,
            "/users/me/mfa/totp",
            &alice.access,
            &json!({}),
        )
        .await;
    assert_eq!(missing.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let anonymous = app
        .post_json("/users/me/mfa/totp", &json!({"password": PASSWORD}))
        .await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn confirmation_needs_a_right_code_and_hands_out_ten_recovery_codes() {
    let app = spawn_app().await;
    let alice = app.user_with_tokens("alice").await;
    let early = app.confirm(&alice.access, "123456").await;
    assert_problem(early, StatusCode::CONFLICT, "totp_not_pending").await;
    let authenticator = app.enrolled(&alice.access).await;
    for wrong in ["000000", "12345", "", "１２３４５６", &"9".repeat(10_000)] {
        let wrong = if wrong == authenticator.code(&app, 0) {
            "000001"
        } else {
            wrong
        };
        let response = app.confirm(&alice.access, wrong).await;
        assert_problem(response, StatusCode::BAD_REQUEST, "wrong_otp").await;
    }
    let response = app
        .confirm(&alice.access, &authenticator.code(&app, 0))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header_text(&response, "cache-control"), "no-store");
    let body: Value = response.json().await.unwrap();
    let codes = body["recovery_codes"].as_array().unwrap();
    assert_eq!(codes.len(), 10);
    for code in codes {
        let code = code.as_str().unwrap();
        assert_eq!(code.len(), 19, "{code}");
        assert!(code.split('-').all(|g| g.len() == 4), "{code}");
    }
    assert_eq!(
        app.mfa_of(&alice.access).await,
        json!({"totp": true, "passkeys": 0, "recovery_codes_left": 10})
    );
    let again = app.enrol(&alice.access, PASSWORD).await;
    assert_problem(again, StatusCode::CONFLICT, "totp_already_enabled").await;
    let reconfirm = app
        .confirm(&alice.access, &authenticator.code(&app, 1))
        .await;
    assert_problem(reconfirm, StatusCode::CONFLICT, "totp_already_enabled").await;
}

#[tokio::test]
async fn enrolling_again_while_pending_replaces_the_secret() {
    let app = spawn_app().await;
    let alice = app.user_with_tokens("alice").await;
    let first = app.enrolled(&alice.access).await;
    let second = app.enrolled(&alice.access).await;
    assert_ne!(first.secret, second.secret);
    let stale = app.confirm(&alice.access, &first.code(&app, 0)).await;
    if first.code(&app, 0) != second.code(&app, 0) {
        assert_problem(stale, StatusCode::BAD_REQUEST, "wrong_otp").await;
    }
    let response = app.confirm(&alice.access, &second.code(&app, 0)).await;
    assert!(matches!(
        response.status(),
        StatusCode::OK | StatusCode::CONFLICT
    ));
    assert_eq!(app.mfa_of(&alice.access).await["totp"], true);
}

#[tokio::test]
async fn the_password_grant_asks_for_the_second_factor_only_after_a_right_password() {
    let app = spawn_app().await;
    let (_, authenticator, _) = app.user_with_totp("alice").await;
    let code = authenticator.code(&app, 0);
    let wrong = app.login("alice", "not the password").await;
    assert_oauth_error(wrong, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let wrong = app.login_otp("alice", "not the password", &code).await;
    let described = assert_oauth_error(wrong, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert!(
        !described.contains("otp") && !described.contains("second"),
        "{described}"
    );
    let required = app.login("alice", PASSWORD).await;
    assert_eq!(header_text(&required, "cache-control"), "no-store");
    let described = assert_oauth_error(required, StatusCode::BAD_REQUEST, "mfa_required").await;
    assert!(described.contains("otp"), "{described}");
    tokens_of(app.login_otp("alice", PASSWORD, &code).await).await;
    // Unknown users never get mfa_required.
    let unknown = app.login("nobody", PASSWORD).await;
    assert_oauth_error(unknown, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn a_totp_code_is_accepted_once_and_only_later_steps_after_it() {
    let app = spawn_app().await;
    let (_, authenticator, _) = app.user_with_totp("alice").await;
    let now = authenticator.code(&app, 0);
    tokens_of(app.login_otp("alice", PASSWORD, &now).await).await;
    let replay = app.login_otp("alice", PASSWORD, &now).await;
    assert_oauth_error(replay, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let earlier = authenticator.code(&app, -1);
    if earlier != now {
        let response = app.login_otp("alice", PASSWORD, &earlier).await;
        assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
    }
    tokens_of(
        app.login_otp("alice", PASSWORD, &authenticator.code(&app, 1))
            .await,
    )
    .await;
}

#[tokio::test]
async fn one_step_of_clock_skew_is_accepted_and_two_are_refused() {
    let app = spawn_app().await;
    let (_, authenticator, _) = app.user_with_totp("alice").await;
    // Away from the confirming step, so that the step before now is still unused.
    app.next_step();
    app.next_step();
    let near: Vec<String> = (-1..=1).map(|o| authenticator.code(&app, o)).collect();
    for offset in [-2, 2] {
        let code = authenticator.code(&app, offset);
        if near.contains(&code) {
            continue; // a one-in-a-million collision with an accepted step
        }
        let response = app.login_otp("alice", PASSWORD, &code).await;
        assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
    }
    for offset in [-1, 0, 1] {
        let code = authenticator.code(&app, offset);
        tokens_of(app.login_otp("alice", PASSWORD, &code).await).await;
    }
}

#[tokio::test]
async fn two_concurrent_logins_with_one_code_have_exactly_one_winner() {
    let app = spawn_app().await;
    let (_, authenticator, codes) = app.user_with_totp("alice").await;
    let code = authenticator.code(&app, 0);
    let responses = join_all((0..2).map(|_| app.login_otp("alice", PASSWORD, &code))).await;
    let won = responses
        .iter()
        .filter(|r| r.status() == StatusCode::OK)
        .count();
    assert_eq!(won, 1);
    // And one recovery code, presented four times at once.
    let responses = join_all((0..4).map(|_| app.login_otp("alice", PASSWORD, &codes[0]))).await;
    let won = responses
        .iter()
        .filter(|r| r.status() == StatusCode::OK)
        .count();
    assert_eq!(won, 1);
}

#[tokio::test]
async fn recovery_codes_are_single_use_typed_any_way_and_counted_on_the_user() {
    let app = spawn_app().await;
    let (alice, _, codes) = app.user_with_totp("alice").await;
    tokens_of(app.login_otp("alice", PASSWORD, &codes[0]).await).await;
    let again = app.login_otp("alice", PASSWORD, &codes[0]).await;
    assert_oauth_error(again, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let shouted = codes[1].replace('-', "").to_uppercase();
    tokens_of(app.login_otp("alice", PASSWORD, &shouted).await).await;
    let spaced = format!(" {} ", codes[2].replace('-', " "));
    tokens_of(app.login_otp("alice", PASSWORD, &spaced).await).await;
    assert_eq!(app.mfa_of(&alice.access).await["recovery_codes_left"], 7);
    // Another user's code is nothing to alice.
    let (_, _, bobs) = app.user_with_totp("bob").await;
    let theirs = app.login_otp("alice", PASSWORD, &bobs[0]).await;
    assert_oauth_error(theirs, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn a_wrong_otp_counts_toward_the_lockout_and_mfa_required_clears_nothing() {
    let app = spawn_app().await;
    let (_, authenticator, _) = app.user_with_totp("alice").await;
    for _ in 0..4 {
        let response = app.login_otp("alice", PASSWORD, "000000").await;
        assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
    }
    // A right password alone neither fails nor clears the failures.
    let required = app.login("alice", PASSWORD).await;
    assert_oauth_error(required, StatusCode::BAD_REQUEST, "mfa_required").await;
    let response = app.login_otp("alice", PASSWORD, "000001").await;
    assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let locked = app
        .login_otp("alice", PASSWORD, &authenticator.code(&app, 0))
        .await;
    assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(header_text(&locked, "retry-after").parse::<u64>().unwrap() > 0);
    // A wrong password and wrong codes share one count.
    app.clock.advance(chrono::Duration::seconds(301));
    for _ in 0..2 {
        app.login("alice", "not the password").await;
        app.login_otp("alice", PASSWORD, "000002").await;
    }
    app.login("alice", "not the password").await;
    let locked = app
        .login_otp("alice", PASSWORD, &authenticator.code(&app, 0))
        .await;
    assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn disabling_needs_the_password_and_removes_totp_and_the_recovery_codes() {
    let app = spawn_app().await;
    let (alice, _, _) = app.user_with_totp("alice").await;
    let wrong = app.disable(&alice.access, "not the password").await;
    assert_problem(wrong, StatusCode::BAD_REQUEST, "wrong_password").await;
    assert_eq!(app.mfa_of(&alice.access).await["totp"], true);
    let response = app.disable(&alice.access, PASSWORD).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.mfa_of(&alice.access).await,
        json!({"totp": false, "passkeys": 0, "recovery_codes_left": 0})
    );
    tokens_of(app.login("alice", PASSWORD).await).await;
    let twice = app.disable(&alice.access, PASSWORD).await;
    assert_eq!(twice.status(), StatusCode::NO_CONTENT, "idempotent");
    // And TOTP can be set up again.
    app.enrolled(&alice.access).await;
}

#[tokio::test]
async fn an_admin_resets_a_users_second_factors_and_it_is_audited() {
    let app = spawn_app().await;
    let admin = app.admin_with_tokens("root").await;
    let (alice, _, _) = app.user_with_totp("alice").await;
    let id = app.user_id(&alice).await;
    let shown = app.get_json(&format!("/users/{id}"), &admin.access).await;
    assert_eq!(shown["mfa"]["totp"], true);
    let path = format!("/users/{id}/mfa");
    let forbidden = app
        .client
        .delete(app.url(&path))
        .bearer_auth(&alice.access)
        .send()
        .await
        .unwrap();
    assert_forbidden(forbidden).await;
    let unknown = app
        .client
        .delete(app.url(&format!("/users/{}/mfa", uuid::Uuid::now_v7())))
        .bearer_auth(&admin.access)
        .send()
        .await
        .unwrap();
    assert_problem(unknown, StatusCode::NOT_FOUND, "user_not_found").await;
    let reset = app
        .client
        .delete(app.url(&path))
        .bearer_auth(&admin.access)
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    let shown = app.get_json(&format!("/users/{id}"), &admin.access).await;
    assert_eq!(
        shown["mfa"],
        json!({"totp": false, "passkeys": 0, "recovery_codes_left": 0})
    );
    tokens_of(app.login("alice", PASSWORD).await).await;
    let events = app
        .get_json(
            &format!("/admin/audit-events?event=mfa_reset&user_id={id}"),
            &admin.access,
        )
        .await;
    assert_eq!(events["items"].as_array().unwrap().len(), 1, "{events}");
}

#[tokio::test]
async fn every_step_is_audited_and_no_secret_or_code_reaches_the_audit_log() {
    let app = spawn_app().await;
    let admin = app.admin_with_tokens("root").await;
    let (_, authenticator, codes) = app.user_with_totp("alice").await;
    app.login("alice", PASSWORD).await;
    app.login_otp("alice", PASSWORD, "000000").await;
    app.login_otp("alice", PASSWORD, &authenticator.code(&app, 0))
        .await;
    app.login_otp("alice", PASSWORD, &codes[0]).await;
    let events = app
        .get_json("/admin/audit-events?limit=200", &admin.access)
        .await;
    let names: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    for expected in [
        "totp_enrollment_started",
        "totp_enrolled",
        "second_factor_required",
        "second_factor_failed",
        "second_factor_succeeded",
        "recovery_code_used",
    ] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
    let text = events.to_string();
    assert!(!text.contains(&authenticator.secret));
    assert!(!text.contains(&codes[0]) && !text.contains(&codes[0].replace('-', "").to_uppercase()));
}

#[tokio::test]
async fn one_code_sent_to_two_replicas_at_once_signs_in_once() {
    let app = spawn_app().await;
    let replica = app.sibling(&[]).await;
    let (_, authenticator, _) = app.user_with_totp("alice").await;
    replica.clock.advance(chrono::Duration::seconds(30));
    let code = authenticator.code(&app, 0);
    let (first, second) = tokio::join!(
        app.login_otp("alice", PASSWORD, &code),
        replica.login_otp("alice", PASSWORD, &code)
    );
    let won = [first.status(), second.status()]
        .iter()
        .filter(|s| **s == StatusCode::OK)
        .count();
    assert_eq!(won, 1);
}

#[tokio::test]
async fn odd_otp_values_are_wrong_codes_never_errors() {
    let app = spawn_app().await;
    app.user_with_totp("alice").await;
    let huge = "7".repeat(60_000);
    for otp in [
        "１２３４５６",
        "12 34 56",
        "ＡＢＣＤ-efgh-ijkl-mnop",
        "\u{0}\u{202e}",
        huge.as_str(),
    ] {
        let response = app.login_otp("alice", PASSWORD, otp).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{otp:.20}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_grant", "{otp:.20}");
        app.clock.advance(chrono::Duration::seconds(301)); // keep clear of the lockout
    }
}
