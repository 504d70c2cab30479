//! The outside security review's attacks on accounts and sessions, driven over HTTP as the
//! reviewer drove them. Races run many rounds on a multi-threaded runtime; the whole file also
//! runs on PostgreSQL (`TEST_API_BACKEND=postgres`).

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    assert_oauth_error, assert_problem, assert_validation_failed, jwt_parts, spawn_app_with,
    tokens_of, TestApp, PASSWORD,
};

const OTHER_PASSWORD: &str = "another horse battery";

/// Rounds of each race: enough to have lost most of them before the fixes (the reviewer saw
/// 5 of 5 on SQLite, 3 of 5 on PostgreSQL), few enough to stay quick.
const ROUNDS: usize = 8;

async fn audit_events(app: &TestApp, admin: &str, event: &str) -> Vec<Value> {
    let body: Value = app
        .get(
            &format!("/admin/audit-events?event={event}&limit=100"),
            Some(admin),
        )
        .await
        .json()
        .await
        .unwrap();
    body["items"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_login_racing_a_password_change_survives_it() {
    // Hashing slow enough (tens of milliseconds) for logins to overlap the change's steps:
    // the change verifies, hashes, then stores the hash and revokes; a login that read the old
    // hash just before the store and starts its session just after the revocation is the one
    // the reviewer saw survive. The logins start staggered across the change, so some land
    // in that window in every round.
    let app = spawn_app_with(&[
        ("LOGIN_MAX_FAILURES", "1000"),
        ("ARGON2_MEMORY_KIB", "4096"),
        ("HASH_CONCURRENCY", "8"),
    ])
    .await;
    let owner = app.user_with_tokens("victim").await;
    let mut current = PASSWORD;
    for round in 0..ROUNDS {
        let next = if current == PASSWORD {
            OTHER_PASSWORD
        } else {
            PASSWORD
        };
        let logins = (0..12u64).map(|i| {
            let app = &app;
            async move {
                tokio::time::sleep(std::time::Duration::from_millis(8 * i)).await;
                app.login("victim", current).await
            }
        });
        let (responses, changed) = tokio::join!(
            futures::future::join_all(logins),
            app.change_password(&owner.access, current, next)
        );
        assert_eq!(changed.status(), StatusCode::NO_CONTENT, "round {round}");
        for response in responses {
            match response.status() {
                StatusCode::OK => {}
                // The hashing queue may be full on a loaded machine: no session either.
                StatusCode::SERVICE_UNAVAILABLE => continue,
                _ => {
                    assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
                    continue;
                }
            }
            let tokens = tokens_of(response).await;
            let me = app.get("/users/me", Some(&tokens.access)).await;
            assert_eq!(
                me.status(),
                StatusCode::UNAUTHORIZED,
                "round {round}: a session started with the old password works after the change"
            );
            app.assert_refresh_refused(&tokens.refresh).await;
        }
        current = next;
    }
    // The owner's own session stays, and the new password works.
    app.assert_signed_in(&owner.access).await;
    app.tokens("victim", current).await;
}

/// Sends 30 logins for `target` at once, the right password as number `right` if any; the
/// responses.
async fn burst(app: &TestApp, right: Option<usize>) -> Vec<reqwest::Response> {
    let guesses = (0..30).map(|i| async move {
        let password = if Some(i) == right {
            PASSWORD.to_owned()
        } else {
            format!("wrong guess {i}")
        };
        app.login("target", &password).await
    });
    futures::future::join_all(guesses).await
}

/// How many wrong passwords were checked, by the audit log.
async fn wrong_passwords_checked(app: &TestApp, admin: &str) -> usize {
    audit_events(app, admin, "login_failed")
        .await
        .iter()
        .filter(|e| e["detail"] == "wrong password")
        .count()
}

fn retry_after(responses: &[reqwest::Response]) -> Vec<u64> {
    responses
        .iter()
        .filter(|r| r.status() == StatusCode::TOO_MANY_REQUESTS)
        .map(|r| {
            r.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_guesses_checks_at_most_the_limit_and_locks_once() {
    // Production defaults: 5 failures, 300 s.
    let app = spawn_app_with(&[
        ("LOGIN_MAX_FAILURES", "5"),
        ("LOGIN_LOCKOUT_SECONDS", "300"),
    ])
    .await;
    let admin = app.admin_with_tokens("root").await;
    app.user_with_tokens("target").await;
    // Three bursts: each checks five guesses and locks once, for 300, 600, then 1,200 s.
    for round in 0..3 {
        let responses = burst(&app, None).await;
        let checked = wrong_passwords_checked(&app, &admin.access).await;
        assert_eq!(checked, 5 * (round + 1), "round {round}: guesses checked");
        let locks = audit_events(&app, &admin.access, "account_locked").await;
        assert_eq!(locks.len(), round + 1, "round {round}: one lock per burst");
        let waits = retry_after(&responses);
        assert_eq!(waits.len(), 25, "round {round}");
        // One burst gives one lock of the base length (doubling only from burst to burst).
        let longest: i64 = 300 << round;
        assert!(
            waits
                .iter()
                .all(|s| i64::try_from(*s).unwrap() <= longest + 1),
            "{waits:?}"
        );
        // The lock holds for the right password too.
        let response = app.login("target", PASSWORD).await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        app.clock.advance(chrono::Duration::seconds(longest + 1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_right_password_in_a_burst_never_gets_tokens_after_a_lock() {
    let app = spawn_app_with(&[
        ("LOGIN_MAX_FAILURES", "5"),
        ("LOGIN_LOCKOUT_SECONDS", "300"),
    ])
    .await;
    let admin = app.admin_with_tokens("root").await;
    app.user_with_tokens("target").await;
    let responses = burst(&app, Some(17)).await;
    let succeeded = responses
        .iter()
        .filter(|r| r.status() == StatusCode::OK)
        .count();
    let locks = audit_events(&app, &admin.access, "account_locked").await;
    let checked = wrong_passwords_checked(&app, &admin.access).await;
    assert!(locks.len() <= 1, "one burst, at most one lock: {locks:?}");
    if succeeded == 1 {
        // A success ends the window: at most one window of guesses before it, one after.
        assert!(checked <= 10, "{checked} wrong passwords were checked");
        let success = &audit_events(&app, &admin.access, "login_succeeded").await[0];
        // The test clock stands still, so every event has the same `at`; the ids (UUID v7 from
        // the real clock, monotonic within the process) give the order. The success's session
        // id is made right after its password check reset the window; a lock after it needs
        // five more password checks, so its event id comes later.
        let session = success["detail"]
            .as_str()
            .unwrap()
            .trim_start_matches("session ");
        assert!(
            locks
                .iter()
                .all(|lock| lock["id"].as_str().unwrap() > session),
            "the right password got tokens after a lock: {locks:?} {success}"
        );
    } else {
        assert!(checked <= 5, "{checked} wrong passwords were checked");
        assert_eq!(locks.len(), 1);
    }
}

#[tokio::test]
async fn a_lock_holds_for_every_spelling_and_unicode_look_alikes_are_not_usernames() {
    let app = spawn_app_with(&[("LOGIN_MAX_FAILURES", "3")]).await;
    assert_eq!(
        app.register("mike.in", PASSWORD).await.status(),
        StatusCode::CREATED
    );
    for _ in 0..3 {
        app.login("mike.in", "wrong password!").await;
    }
    for spelling in ["mike.in", "MIKE.IN", "Mike.In"] {
        let response = app.login(spelling, PASSWORD).await;
        assert_eq!(
            response.status(),
            StatusCode::TOO_MANY_REQUESTS,
            "{spelling}"
        );
    }
    // U+0130 (İ), U+212A (Kelvin sign), fullwidth letters: PostgreSQL's lower() folds some of
    // them onto ASCII, Rust's to_lowercase others. None is a username, so none is looked up.
    for look_alike in ["m\u{130}ke.in", "mi\u{212A}e.in", "\u{FF4D}ike.in"] {
        let text = assert_oauth_error(
            app.login(look_alike, PASSWORD).await,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        )
        .await;
        let wrong = assert_oauth_error(
            app.login("nobody", "wrong password!").await,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        )
        .await;
        assert_eq!(text, wrong, "the same text as a wrong password");
        let registered = app.register(look_alike, PASSWORD).await;
        assert_validation_failed(registered).await;
    }
}

#[tokio::test]
async fn names_that_can_never_be_usernames_are_refused_before_any_lookup() {
    let app = spawn_app_with(&[("LOGIN_MAX_FAILURES", "3")]).await;
    let admin = app.admin_with_tokens("root").await;
    let wrong = assert_oauth_error(
        app.login("nobody", "wrong password!").await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    let huge = "a".repeat(60_000);
    let nul = "ali\u{0}ce";
    let long_multibyte = "é".repeat(2_000);
    for name in [huge.as_str(), nul, long_multibyte.as_str(), "x\ny", ""] {
        let response = app.login(name, "wrong password!").await;
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
        let body: Value = serde_json::from_str(&text).unwrap();
        if name.is_empty() {
            // A missing username is a malformed request, as before.
            assert_eq!(body["error"], "invalid_request");
            continue;
        }
        assert_eq!(body["error"], "invalid_grant");
        assert_eq!(body["error_description"], wrong, "the wrong-password text");
    }
    // Nothing of those names was stored: the audit trail keeps no attempted name for them.
    let failures = audit_events(&app, &admin.access, "login_failed").await;
    for event in failures {
        let username = event["username"].as_str().unwrap_or_default();
        assert!(username.len() <= 32, "{username:.40}");
        assert!(!username.contains('\0') && !username.contains('\n'));
    }
}

#[tokio::test]
async fn wrong_current_passwords_count_toward_the_lockout() {
    let app = spawn_app_with(&[("LOGIN_MAX_FAILURES", "5")]).await;
    let owner = app.user_with_tokens("owner").await;
    let mut statuses = Vec::new();
    for i in 0..8 {
        statuses.push(
            app.change_password(&owner.access, &format!("guess number {i}"), OTHER_PASSWORD)
                .await
                .status(),
        );
    }
    assert_eq!(statuses[..5], [StatusCode::BAD_REQUEST; 5], "{statuses:?}");
    assert!(
        statuses[5..]
            .iter()
            .all(|s| *s == StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    // The right password now gets nothing either, there or at the token endpoint.
    let response = app
        .change_password(&owner.access, PASSWORD, OTHER_PASSWORD)
        .await;
    assert!(response.headers().contains_key("retry-after"));
    assert_problem(response, StatusCode::TOO_MANY_REQUESTS, "account_locked").await;
    assert_eq!(
        app.login("owner", PASSWORD).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_demoted_admin_cannot_undo_its_demotion_by_racing_it() {
    let app = spawn_app_with(&[]).await;
    let good = app.admin_with_tokens("good").await;
    for round in 0..ROUNDS {
        let name = format!("rogue{round}");
        let rogue = app.admin_with_tokens(&name).await;
        let id = jwt_parts(&rogue.access).1["sub"]
            .as_str()
            .unwrap()
            .to_owned();
        let loop_renames = async {
            for i in 0..10 {
                let status = app
                    .patch_user(
                        &rogue.access,
                        &id,
                        &json!({"full_name": format!("Rogue {i}")}),
                    )
                    .await
                    .status();
                if status != StatusCode::OK {
                    break; // disabled: the rogue's token died
                }
            }
        };
        let demotion = json!({"roles": ["user"], "is_active": false});
        let demote = app.patch_user(&good.access, &id, &demotion);
        let ((), demoted) = tokio::join!(loop_renames, demote);
        assert_eq!(demoted.status(), StatusCode::OK);
        let user = app.get_json(&format!("/users/{id}"), &good.access).await;
        assert_eq!(user["roles"], json!(["user"]), "round {round}: {user}");
        assert_eq!(user["is_active"], false, "round {round}: {user}");
    }
}

/// Starts a session from the caller's with `POST /auth/refresh-token`; its refresh token.
async fn mint(app: &TestApp, access: &str) -> String {
    let response = app.post_bearer("/auth/refresh-token", access).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    body["refresh_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn minted_sessions_are_capped_and_end_with_the_session_that_minted_them() {
    let app = spawn_app_with(&[("MAX_SESSIONS_PER_USER", "4")]).await;
    let login = app.user_with_tokens("minter").await;
    let mut minted = Vec::new();
    for _ in 0..3 {
        minted.push(mint(&app, &login.access).await);
    }
    assert_eq!(
        app.get("/users/me", Some(&login.access)).await.status(),
        StatusCode::OK,
        "four sessions: within the cap"
    );
    minted.push(mint(&app, &login.access).await);
    // The fifth session revoked the oldest: the login itself.
    assert_eq!(
        app.get("/users/me", Some(&login.access)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    app.assert_refresh_refused(&login.refresh).await;
    let first = tokens_of(app.refresh_grant(&minted[0]).await).await;

    // A new login revokes the oldest minted session; a session minted from the new login dies
    // with it at logout, while an unrelated one stays.
    let fresh = app.tokens("minter", PASSWORD).await;
    app.assert_refresh_refused(&first.refresh).await;
    let child = mint(&app, &fresh.access).await;
    let response = app.post_bearer("/auth/logout", &fresh.access).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    app.assert_refresh_refused(&child).await;
    tokens_of(app.refresh_grant(&minted[3]).await).await;
}

#[tokio::test]
async fn a_refresh_after_a_demotion_no_longer_claims_admin() {
    let app = spawn_app_with(&[]).await;
    let good = app.admin_with_tokens("good").await;
    let demoted = app.admin_with_tokens("demoted").await;
    assert_eq!(demoted.body["scope"], "user admin");
    let id = jwt_parts(&demoted.access).1["sub"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        app.patch_user(&good.access, &id, &json!({"roles": ["user"]}))
            .await
            .status(),
        StatusCode::OK
    );
    let refreshed = tokens_of(app.refresh_grant(&demoted.refresh).await).await;
    assert_eq!(refreshed.body["scope"], "user");
    let claims = jwt_parts(&refreshed.access).1;
    assert_eq!(claims["scope"], "user");
    assert_eq!(claims["roles"], json!(["user"]));
}

#[tokio::test]
async fn rotation_never_extends_a_session_past_its_absolute_lifetime() {
    let app = spawn_app_with(&[
        ("SESSION_MAX_LIFETIME_SECONDS", "7200"),
        ("REFRESH_TOKEN_TTL_SECONDS", "3600"),
        ("ACCESS_TOKEN_TTL_SECONDS", "600"),
    ])
    .await;
    let mut tokens = app.user_with_tokens("longlived").await;
    assert_eq!(tokens.body["refresh_expires_in"], 3600);
    for step in 1..=3 {
        app.clock.advance(chrono::Duration::seconds(3000));
        let response = app.refresh_grant(&tokens.refresh).await;
        if step == 3 {
            // 9,000 s after the login: past the absolute end at 7,200 s.
            assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
            break;
        }
        tokens = tokens_of(response).await;
        let left = 7200 - 3000 * step;
        assert!(
            tokens.body["refresh_expires_in"].as_i64().unwrap() <= left,
            "step {step}: {}",
            tokens.body
        );
    }
}

#[tokio::test]
async fn a_refresh_is_recorded_with_its_rotation() {
    let app = spawn_app_with(&[]).await;
    let admin = app.admin_with_tokens("root").await;
    let user = app.user_with_tokens("rotator").await;
    tokens_of(app.refresh_grant(&user.refresh).await).await;
    let reused = app.refresh_grant(&user.refresh).await;
    assert_oauth_error(reused, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert_eq!(
        audit_events(&app, &admin.access, "token_refreshed")
            .await
            .len(),
        1
    );
    assert_eq!(
        audit_events(&app, &admin.access, "refresh_token_reused")
            .await
            .len(),
        1
    );
}
