//! The HTTP edge under attack: metric labels from made-up methods, slow and idle connections,
//! oversized bodies, caching of personal data, and the rate limit of the password change and of
//! new sessions.

use reqwest::{Method, StatusCode};

use crate::helpers::*;

async fn scrape(app: &TestApp) -> String {
    let response = app.get("/metrics", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.text().await.unwrap()
}

/// The bytes of the request-metric lines whose method label is not a standard method: the
/// only lines made-up methods can add to.
fn unusual_method_bytes(metrics: &str) -> usize {
    const STANDARD: [&str; 9] = [
        "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "CONNECT", "TRACE",
    ];
    metrics
        .lines()
        .filter(|line| line.starts_with("http_request"))
        .filter(|line| {
            let method = line
                .split("method=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or("GET");
            !STANDARD.contains(&method)
        })
        .map(str::len)
        .sum()
}

/// Sends `count` requests with made-up methods (every fifth one 60 KB long) to unmatched paths
/// and to a real route.
async fn made_up_methods(app: &TestApp, round: &str, count: usize) {
    for i in 0..count {
        let mut name = format!("R{i}ZZMADEUP{round}");
        if i % 5 == 0 {
            name.push_str(&"Z".repeat(60 * 1024));
        }
        let method = Method::from_bytes(name.as_bytes()).unwrap();
        let path = if i % 2 == 0 {
            format!("/no/such/path/{round}/{i}")
        } else {
            "/users/me".to_owned()
        };
        let response = app
            .client
            .request(method, app.url(&path))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_client_error(), "{}", response.status());
    }
}

#[tokio::test]
async fn made_up_methods_and_paths_add_no_metric_series() {
    let app = spawn_app().await;
    // A first round creates whatever series such requests may have (method "other").
    made_up_methods(&app, "warmup", 20).await;
    let before = scrape(&app).await;
    made_up_methods(&app, "attack", 300).await;
    let after = scrape(&app).await;

    assert!(!after.contains("MADEUP"), "a made-up method became a label");
    assert!(!after.contains("/no/such/path"), "a path became a label");
    assert!(after.contains(r#"method="other""#), "{after}");
    // Only the counts and sums of the existing series changed. (Other tests share the
    // recorder, hence the generous bound on the whole text: 300 requests with their own series
    // would add over 300 MB.)
    let grown = unusual_method_bytes(&after).saturating_sub(unusual_method_bytes(&before));
    assert!(grown <= 300, "{grown} bytes more of unusual-method series");
    assert!(
        after.len() < before.len() + 256 * 1024,
        "{} -> {} bytes",
        before.len(),
        after.len()
    );
}
