//! The audit log, read as an administrator; retention through the clock port.

use chrono::Duration;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

async fn events(app: &TestApp, token: &str, query: &str) -> Vec<Value> {
    let response = app
        .get(&format!("/admin/audit-events{query}"), Some(token))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    body["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn every_contract_event_is_recorded_with_who_when_and_from_where() {
    let app = spawn_app().await;
    let admin = app.admin_with_tokens("root").await;
    let alice = app
        .client
        .post(app.url("/users"))
        .header("user-agent", "audit-test/1.0")
        .json(&serde_json::json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(alice.status(), StatusCode::CREATED);
    let alice_id = alice.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..5 {
        app.login("alice", "wrong password").await;
    }
    app.clock.advance(Duration::seconds(301));
    let first = app.tokens("alice", PASSWORD).await;
    let second = tokens_of(app.refresh_grant(&first.refresh).await).await;
    app.refresh_grant(&first.refresh).await; // reuse
    let third = app.tokens("alice", PASSWORD).await;
    let response = app
        .change_password(&third.access, PASSWORD, "a fresh passphrase")
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    app.post_bearer("/auth/logout", &third.access).await;
    let fourth = app.tokens("alice", "a fresh passphrase").await;
    app.post_bearer("/auth/logout-all", &fourth.access).await;
    app.client
        .patch(app.url(&format!("/users/{alice_id}")))
        .bearer_auth(&admin.access)
        .json(&serde_json::json!({"full_name": "Alice"}))
        .send()
        .await
        .unwrap();
    let _ = second;

    let all = events(
        &app,
        &admin.access,
        &format!("?user_id={alice_id}&limit=200"),
    )
    .await;
    let kinds: Vec<&str> = all.iter().map(|e| e["event"].as_str().unwrap()).collect();
    for kind in [
        "user_created",
        "login_succeeded",
        "login_failed",
        "token_refreshed",
        "refresh_token_reused",
        "logout",
        "logout_all",
        "password_changed",
        "user_updated",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    let times: Vec<&str> = all.iter().map(|e| e["at"].as_str().unwrap()).collect();
    let mut sorted = times.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted, "newest first");
    let created = all.iter().find(|e| e["event"] == "user_created").unwrap();
    assert_eq!(created["ip"], "127.0.0.1");
    assert_eq!(created["user_agent"], "audit-test/1.0");
    assert_eq!(created["username"], "alice");
    assert_eq!(created["success"], true);
    let failed = all.iter().find(|e| e["event"] == "login_failed").unwrap();
    assert_eq!(failed["success"], false);
    assert_eq!(failed["detail"], "wrong password");
    let reused = all
        .iter()
        .find(|e| e["event"] == "refresh_token_reused")
        .unwrap();
    assert_eq!(reused["success"], false);

    // The lock is recorded under the attempted username (the lock is per username).
    let locked = events(&app, &admin.access, "?event=account_locked").await;
    assert_eq!(locked.len(), 1);
    assert_eq!(locked[0]["username"], "alice");
    let text = serde_json::to_string(&all).unwrap();
    for secret in [PASSWORD, "a fresh passphrase", first.refresh.as_str()] {
        assert!(!text.contains(secret), "no secret in the audit log");
    }
}

#[tokio::test]
async fn failed_logins_of_unknown_users_keep_the_attempted_name() {
    let app = spawn_app().await;
    let admin = app.admin_with_tokens("root").await;
    app.login("mallory", "guess").await;
    let failed = events(&app, &admin.access, "?event=login_failed").await;
    assert_eq!(failed[0]["username"], "mallory");
    assert!(failed[0]["user_id"].is_null());
    assert_eq!(failed[0]["detail"], "unknown user");
}

#[tokio::test]
async fn filters_limit_and_before_page_through_the_log() {
    let app = spawn_app().await;
    let admin = app.admin_with_tokens("root").await;
    for name in ["amy", "ann", "ava"] {
        app.register(name, PASSWORD).await;
        app.clock.advance(Duration::seconds(1));
    }
    let page = events(&app, &admin.access, "?event=user_created&limit=2").await;
    assert_eq!(page.len(), 2);
    assert_eq!(page[0]["username"], "ava");
    let before = page[1]["at"].as_str().unwrap();
    let rest = events(
        &app,
        &admin.access,
        &format!("?event=user_created&before={}", before.replace('+', "%2B")),
    )
    .await;
    let names: Vec<&str> = rest
        .iter()
        .map(|e| e["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["amy", "root"]);
    for query in [
        "?event=nonsense",
        "?user_id=nope",
        "?before=yesterday",
        "?limit=0",
        "?limit=201",
    ] {
        let response = app
            .get(&format!("/admin/audit-events{query}"), Some(&admin.access))
            .await;
        assert_validation_failed(response).await;
    }
}

#[tokio::test]
async fn the_purge_removes_expired_sessions_and_events_past_retention() {
    // Sessions may live 90 days here, so root's outlives the 31 days below.
    let app = spawn_app_with(&[
        ("AUDIT_RETENTION_DAYS", "30"),
        ("SESSION_MAX_LIFETIME_SECONDS", "7776000"),
    ])
    .await;
    let admin = app.admin_with_tokens("root").await;
    let old = app.user_with_tokens("alice").await;
    // root keeps its session alive by refreshing every 10 days; alice's expires after 14.
    let mut admin = admin;
    for days in [10, 10, 11] {
        app.clock.advance(Duration::days(days));
        admin = tokens_of(app.refresh_grant(&admin.refresh).await).await;
    }
    // Now alice's events are 31 days old, past the 30-day retention.
    let removed = app.services.maintenance.purge_once().await.unwrap();
    assert!(removed >= 3, "{removed}");
    app.assert_refresh_refused(&old.refresh).await;
    let left = events(&app, &admin.access, "?limit=200").await;
    assert!(left.iter().all(|e| e["username"] != "alice"), "{left:?}");
    assert!(left.iter().any(|e| e["event"] == "token_refreshed"));
    app.assert_signed_in(&admin.access).await;
}
