//! `/metrics`, as Prometheus scrapes it. The recorder is process-wide, so the tests compare
//! counts before and after rather than absolute values.

use reqwest::StatusCode;

use crate::helpers::*;

async fn scrape(app: &TestApp) -> String {
    let response = app.get("/metrics", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(header_text(&response, "content-type").starts_with("text/plain; version=0.0.4"));
    response.text().await.unwrap()
}

/// The value of the series whose line starts with `series` (name and labels), or 0.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|line| line.starts_with(series) && line[series.len()..].starts_with(' '))
        .and_then(|line| line.rsplit(' ').next())
        .map_or(0.0, |v| v.parse().unwrap())
}

#[tokio::test]
async fn metrics_expose_every_family_after_a_login_a_refresh_and_a_reuse() {
    let app = spawn_app().await;
    let before = scrape(&app).await;
    let tokens = app.user_with_tokens("alice").await;
    tokens_of(app.refresh_grant(&tokens.refresh).await).await;
    app.refresh_grant(&tokens.refresh).await; // reuse
    for _ in 0..5 {
        app.login("alice", "wrong password").await;
    }
    app.get("/users/me", Some("garbage")).await;
    let after = scrape(&app).await;

    let increased = |series: &str| value(&after, series) > value(&before, series);
    assert!(
        increased(r#"auth_logins_total{outcome="success"}"#),
        "{after}"
    );
    assert!(increased(r#"auth_logins_total{outcome="wrong_password"}"#));
    assert!(increased("auth_refreshes_total"));
    assert!(increased("auth_refresh_token_reuse_total"));
    assert!(increased("auth_lockouts_total"));
    assert!(increased(
        r#"http_requests_total{method="POST",route="/auth/token",status="200"}"#
    ));
    assert!(increased(
        r#"http_requests_total{method="GET",route="/users/me",status="401"}"#
    ));
    assert!(increased(
        r#"http_request_duration_seconds_count{method="POST",route="/users",status="201"}"#
    ));
    assert!(increased("password_hash_queue_wait_seconds_count"));
    for family in [
        "# TYPE http_request_duration_seconds histogram",
        "# TYPE password_hashes_in_flight gauge",
        r#"db_pool_connections{state="size"}"#,
        r#"db_pool_connections{state="idle"}"#,
    ] {
        assert!(after.contains(family), "{family} missing");
    }
    assert!(value(&after, r#"db_pool_connections{state="size"}"#) >= 1.0);
}

#[tokio::test]
async fn route_labels_are_templates_not_raw_paths() {
    let app = spawn_app().await;
    let admin = app.admin_with_tokens("root").await;
    for _ in 0..3 {
        let id = uuid::Uuid::now_v7();
        app.get(&format!("/users/{id}"), Some(&admin.access)).await;
    }
    let text = scrape(&app).await;
    assert!(text.contains(r#"route="/users/{id}""#));
    assert!(
        !text.lines().any(|l| l.contains("route=\"/users/0")),
        "no ids in labels"
    );
}
