//! The HTTP edge under attack: metric labels from made-up methods, slow and idle connections,
//! oversized bodies, caching of personal data, and the rate limit of the password change and of
//! new sessions.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::helpers::*;

/// `host:port` of the app.
fn socket_address(app: &TestApp) -> String {
    app.address.trim_start_matches("http://").to_owned()
}

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

/// Reads one response (head and a `Content-Length` body, or up to the end of the stream)
/// within five seconds; returns the status line and headers (lower-cased) and the body.
async fn read_response(stream: &mut TcpStream) -> (String, String) {
    let mut buffer = Vec::new();
    let read = async {
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(end) = find(&buffer, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buffer[..end]).to_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map(|v| v.trim().parse::<usize>().unwrap());
                if length.is_some_and(|length| buffer.len() >= end + 4 + length) {
                    return;
                }
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        }
    };
    timeout(Duration::from_secs(5), read)
        .await
        .expect("a response within 5 s");
    let text = String::from_utf8_lossy(&buffer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete head");
    (head.to_lowercase(), body.to_owned())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Whether the server closes `stream` within `within` (end of stream or a reset).
async fn closed_by_server(stream: &mut TcpStream, within: Duration) -> bool {
    let mut chunk = [0u8; 1024];
    let wait = async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    timeout(within, wait).await.is_ok()
}

#[tokio::test]
async fn an_oversized_content_length_is_refused_at_once_before_the_body_arrives() {
    let app = spawn_app().await;
    for (path, content_type) in [
        ("/users", "application/json"),
        ("/auth/token", "application/x-www-form-urlencoded"),
    ] {
        let mut stream = TcpStream::connect(socket_address(&app)).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: {content_type}\r\nContent-Length: 10000000\r\n\r\n{{\"user"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        // The body never comes; the answer must not wait for it (nor for the request timeout).
        let (head, body) = read_response(&mut stream).await;
        assert!(head.starts_with("http/1.1 413"), "{path}: {head}");
        let body: Value = serde_json::from_str(&body).unwrap();
        if path == "/auth/token" {
            assert!(head.contains("content-type: application/json"), "{head}");
            assert_eq!(body["error"], "invalid_request", "{body}");
        } else {
            assert!(
                head.contains("content-type: application/problem+json"),
                "{head}"
            );
            assert_eq!(body["code"], "payload_too_large", "{body}");
            assert_eq!(body["status"], 413);
        }
    }
    // A declared length within the limit is still read and handled.
    let response = app.register("within_limit", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::CREATED);
}

/// Opens a connection that sends a request head one byte a second until the server closes it
/// (then counts it in `closed`) or `stop` is set.
async fn trickle(address: String, closed: Arc<AtomicUsize>, stop: Arc<AtomicUsize>) {
    let Ok(mut stream) = TcpStream::connect(&address).await else {
        closed.fetch_add(1, Ordering::SeqCst);
        return;
    };
    let head = format!(
        "GET /health/live HTTP/1.1\r\nHost: test\r\nX-Slow: {}",
        "a".repeat(600)
    );
    let mut chunk = [0u8; 256];
    for byte in head.bytes().cycle() {
        if stop.load(Ordering::SeqCst) > 0 {
            return;
        }
        if stream.write_all(&[byte]).await.is_err() {
            break;
        }
        match timeout(Duration::from_secs(1), stream.read(&mut chunk)).await {
            Err(_) => continue,              // nothing from the server: trickle on
            Ok(Ok(0)) | Ok(Err(_)) => break, // closed
            Ok(Ok(_)) => break,              // an answer (an error page) then a close
        }
    }
    closed.fetch_add(1, Ordering::SeqCst);
}

#[tokio::test]
async fn slow_connections_beyond_the_cap_do_not_starve_health_checks() {
    // The header-read timeout is long here: only the cap can explain what happens.
    let app = spawn_app_with(&[
        ("HTTP_MAX_CONNECTIONS", "20"),
        ("HTTP_HEADER_READ_TIMEOUT_SECONDS", "60"),
    ])
    .await;
    let closed = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..40 {
        tasks.push(tokio::spawn(trickle(
            socket_address(&app),
            closed.clone(),
            stop.clone(),
        )));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A health check on a fresh connection is answered while the slow ones trickle on.
    let client = reqwest::Client::new();
    for _ in 0..3 {
        let response = timeout(
            Duration::from_secs(5),
            client.get(app.url("/health/live")).send(),
        )
        .await
        .expect("/health/live answers within 5 s")
        .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // At most 20 connections stay open: the server shed at least the 20 over the cap.
    let shed = timeout(Duration::from_secs(5), async {
        while closed.load(Ordering::SeqCst) < 20 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let count = closed.load(Ordering::SeqCst);
    stop.store(1, Ordering::SeqCst);
    for task in tasks {
        task.abort();
    }
    assert!(
        shed.is_ok(),
        "only {count} of 40 slow connections were closed"
    );
}

#[tokio::test]
async fn a_connection_that_does_not_finish_its_request_head_is_closed_after_the_header_timeout() {
    let app = spawn_app_with(&[
        ("HTTP_HEADER_READ_TIMEOUT_SECONDS", "1"),
        ("HTTP_IDLE_TIMEOUT_SECONDS", "60"),
    ])
    .await;
    // A partial head, then silence.
    let mut partial = TcpStream::connect(socket_address(&app)).await.unwrap();
    partial
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: test\r\nX-Slow: a")
        .await
        .unwrap();
    // Nothing at all.
    let mut silent = TcpStream::connect(socket_address(&app)).await.unwrap();
    assert!(
        closed_by_server(&mut partial, Duration::from_secs(5)).await,
        "a partial request head kept its connection open"
    );
    assert!(
        closed_by_server(&mut silent, Duration::from_secs(5)).await,
        "a silent connection stayed open"
    );
    // The server itself is fine.
    assert_eq!(app.get("/health/live", None).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let app = spawn_app_with(&[
        ("HTTP_HEADER_READ_TIMEOUT_SECONDS", "60"),
        ("HTTP_IDLE_TIMEOUT_SECONDS", "1"),
    ])
    .await;
    let mut stream = TcpStream::connect(socket_address(&app)).await.unwrap();
    let request = b"GET /health/live HTTP/1.1\r\nHost: test\r\n\r\n";
    // Keep-alive works: two requests on one connection.
    for _ in 0..2 {
        stream.write_all(request).await.unwrap();
        let (head, body) = read_response(&mut stream).await;
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert_eq!(body, r#"{"status":"ok"}"#);
    }
    // Then idle: closed by the server.
    assert!(
        closed_by_server(&mut stream, Duration::from_secs(5)).await,
        "an idle keep-alive connection stayed open"
    );
}

#[tokio::test]
async fn graceful_shutdown_is_not_held_up_by_slow_or_idle_connections() {
    let mut app = spawn_app().await;
    let mut slow = TcpStream::connect(socket_address(&app)).await.unwrap();
    slow.write_all(b"GET /health/live HTTP/1.1\r\nHost: te")
        .await
        .unwrap();
    let mut idle = TcpStream::connect(socket_address(&app)).await.unwrap();
    idle.write_all(b"GET /health/live HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let (head, _) = read_response(&mut idle).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    app.shutdown();
    let server = app.server.take().unwrap();
    timeout(Duration::from_secs(5), server)
        .await
        .expect("the server stops within 5 s")
        .unwrap()
        .unwrap();
    assert!(closed_by_server(&mut slow, Duration::from_secs(1)).await);
    assert!(closed_by_server(&mut idle, Duration::from_secs(1)).await);
}

#[tokio::test]
async fn every_response_with_personal_data_is_marked_no_store() {
    let app = spawn_app().await;
    let admin = app.admin_with_tokens("root").await;
    let alice = app.user_with_tokens("alice").await;
    let created = app
        .client
        .post(app.url("/users"))
        .json(&json!({"username": "bob", "password": PASSWORD, "email": "bob@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(
        created.headers()["cache-control"],
        "no-store",
        "POST /users"
    );
    let bob: Value = created.json().await.unwrap();
    let bob_id = bob["id"].as_str().unwrap();
    let bob_path = format!("/users/{bob_id}");

    let reads = [
        ("/users/me", &alice.access),
        ("/protected", &alice.access),
        ("/users", &admin.access),
        (bob_path.as_str(), &admin.access),
        ("/admin/audit-events", &admin.access),
    ];
    for (path, token) in reads {
        let response = app.get(path, Some(token)).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(response.headers()["cache-control"], "no-store", "{path}");
    }
    let patched = app
        .client
        .patch(app.url(&bob_path))
        .bearer_auth(&admin.access)
        .json(&json!({"full_name": "Bob B."}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), StatusCode::OK);
    assert_eq!(patched.headers()["cache-control"], "no-store", "PATCH");
    // Errors too; a public document keeps its own policy.
    let missing = app.get("/no/such/thing", None).await;
    assert_eq!(missing.headers()["cache-control"], "no-store");
    let jwks = app.get("/.well-known/jwks.json", None).await;
    assert_eq!(jwks.headers()["cache-control"], "public, max-age=300");
}

/// A burst of three, then one a second; lockouts out of the way.
const RATE_LIMITED: [(&str, &str); 4] = [
    ("RATE_LIMIT_ENABLED", "true"),
    ("RATE_LIMIT_PER_SECOND", "1"),
    ("RATE_LIMIT_BURST", "3"),
    ("LOGIN_MAX_FAILURES", "1000"),
];

/// Sends `attempt` ten times at once, as a guessing script would, and returns the first 429.
async fn first_429<F, Fut>(attempt: F) -> reqwest::Response
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = reqwest::Response>,
{
    let responses = futures::future::join_all((0..10).map(|_| attempt())).await;
    let mut limited = None;
    for response in responses {
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            limited.get_or_insert(response);
        } else {
            assert!(
                response.status().is_success() || response.status() == StatusCode::BAD_REQUEST,
                "{}",
                response.status()
            );
        }
    }
    limited.expect("ten requests at once and no 429")
}

async fn assert_rate_limited(response: reqwest::Response) {
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    assert_problem(response, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

#[tokio::test]
async fn password_change_guesses_are_rate_limited_per_client() {
    let app = spawn_app_with(&RATE_LIMITED).await;
    let alice = app.admin_with_tokens("alice").await;
    let response = first_429(|| async {
        app.change_password(&alice.access, "a wrong guess", "another long password")
            .await
    })
    .await;
    assert_rate_limited(response).await;
}

#[tokio::test]
async fn new_sessions_from_a_bearer_token_are_rate_limited_per_client() {
    let app = spawn_app_with(&RATE_LIMITED).await;
    let alice = app.admin_with_tokens("alice").await;
    let response =
        first_429(|| async { app.post_bearer("/auth/refresh-token", &alice.access).await }).await;
    assert_rate_limited(response).await;
}
