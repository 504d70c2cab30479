//! Several stateless replicas on one PostgreSQL database, and a database outage.
//!
//! These run the real server binary, so they need `TEST_POSTGRES_URL`; without it each test says
//! it is skipped.

use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use tempfile::TempDir;

mod support;

use support::process::ServerProcess;
use support::PgDatabase;

const PASSWORD: &str = "correct horse battery";

/// Three replicas (started at once, so they race to migrate) on one fresh database.
async fn replicas(
    count: usize,
    extra: &[(&str, &str)],
) -> Option<(PgDatabase, TempDir, Vec<ServerProcess>)> {
    let admin = support::postgres_admin_url()?;
    let database = PgDatabase::create(&admin).await;
    let dir = TempDir::new().unwrap();
    let mut vars = vec![
        ("DATABASE_URL", database.url.as_str()),
        ("JWT_SECRET", "replica-secret-replica-secret-replica-secret"),
        ("JWT_ISSUER", "http://auth.test"),
        ("ARGON2_MEMORY_KIB", "256"),
        ("ARGON2_ITERATIONS", "1"),
        ("RATE_LIMIT_ENABLED", "false"),
        ("RUST_LOG", "info"),
    ];
    vars.extend_from_slice(extra);
    let path = dir.path().to_owned();
    let starts: Vec<_> = (0..count)
        .map(|_| {
            let vars: Vec<(String, String)> = vars
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect();
            let path = path.clone();
            std::thread::spawn(move || {
                let vars: Vec<(&str, &str)> =
                    vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                ServerProcess::start(&path, &vars)
            })
        })
        .collect();
    let servers = starts.into_iter().map(|s| s.join().unwrap()).collect();
    Some((database, dir, servers))
}

async fn login(
    client: &Client,
    server: &ServerProcess,
    username: &str,
    password: &str,
) -> reqwest::Response {
    client
        .post(server.url("/auth/token"))
        .form(&[("username", username), ("password", password)])
        .send()
        .await
        .unwrap()
}

async fn tokens(response: reqwest::Response) -> (String, String) {
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    (
        body["access_token"].as_str().unwrap().to_owned(),
        body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

async fn me(client: &Client, server: &ServerProcess, access: &str) -> StatusCode {
    client
        .get(server.url("/users/me"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .status()
}

async fn refresh(client: &Client, server: &ServerProcess, token: &str) -> reqwest::Response {
    client
        .post(server.url("/auth/refresh"))
        .json(&json!({"refresh_token": token}))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_sessions_and_revocation_are_shared_by_every_replica() {
    let Some((_db, _dir, servers)) = replicas(3, &[]).await else {
        return support::skip("tokens_sessions_and_revocation_are_shared_by_every_replica");
    };
    let client = Client::new();
    let (a, b, c) = (&servers[0], &servers[1], &servers[2]);
    let created = client
        .post(a.url("/users"))
        .json(&json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);

    // Log in on B, use the token on C, refresh on A, use the new token on B.
    let (access, refresh_token) = tokens(login(&client, b, "alice", PASSWORD).await).await;
    assert_eq!(me(&client, c, &access).await, StatusCode::OK);
    let (access, _) = tokens(refresh(&client, a, &refresh_token).await).await;
    assert_eq!(me(&client, b, &access).await, StatusCode::OK);

    // A logout on B is seen by A and C on the next request.
    let logout = client
        .post(b.url("/auth/logout"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    for server in [a, c] {
        assert_eq!(me(&client, server, &access).await, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_refreshes_across_replicas_have_one_winner_and_the_reuse_revokes_everywhere(
) {
    let Some((_db, _dir, servers)) = replicas(3, &[]).await else {
        return support::skip("twenty_concurrent_refreshes_across_replicas");
    };
    let client = Client::new();
    client
        .post(servers[0].url("/users"))
        .json(&json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let (_, token) = tokens(login(&client, &servers[0], "alice", PASSWORD).await).await;
    let attempts = (0..20).map(|i| refresh(&client, &servers[i % 3], &token));
    let responses = futures::future::join_all(attempts).await;
    let mut winners = Vec::new();
    for response in responses {
        match response.status() {
            StatusCode::OK => winners.push(tokens(response).await),
            StatusCode::BAD_REQUEST => {
                let body: Value = response.json().await.unwrap();
                assert_eq!(body["error"], "invalid_grant");
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one refresh wins across replicas");
    let (winner_access, winner_refresh) = &winners[0];
    for server in &servers {
        assert_eq!(
            me(&client, server, winner_access).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            refresh(&client, server, winner_refresh).await.status(),
            StatusCode::BAD_REQUEST
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_are_counted_across_replicas() {
    let Some((_db, _dir, servers)) = replicas(3, &[]).await else {
        return support::skip("failed_logins_are_counted_across_replicas");
    };
    let client = Client::new();
    client
        .post(servers[1].url("/users"))
        .json(&json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    for i in 0..5 {
        let response = login(&client, &servers[i % 3], "alice", "wrong password").await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }
    for server in &servers {
        let response = login(&client, server, "alice", PASSWORD).await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(response.headers().contains_key("retry-after"));
    }
}

/// Polls `/health` until it answers `status` (bounded), returning how many polls it took.
async fn wait_for_health(client: &Client, server: &ServerProcess, status: StatusCode) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut polls = 0;
    loop {
        polls += 1;
        let response = client.get(server.url("/health")).send().await.unwrap();
        if response.status() == status {
            return polls;
        }
        assert!(Instant::now() < deadline, "/health never answered {status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_gives_quick_503s_and_the_service_recovers_without_losing_acknowledged_writes(
) {
    let extra = [
        ("DATABASE_ACQUIRE_TIMEOUT_MS", "1000"),
        ("DATABASE_STATEMENT_TIMEOUT_MS", "2000"),
    ];
    let Some((db, _dir, servers)) = replicas(1, &extra).await else {
        return support::skip("a_database_outage_gives_quick_503s");
    };
    let server = &servers[0];
    // Every request must be answered well before this: an outage never hangs a request.
    let client = Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    let register = |name: String| {
        let client = client.clone();
        let url = server.url("/users");
        async move {
            client
                .post(url)
                .json(&json!({"username": name, "password": PASSWORD}))
                .send()
                .await
                .unwrap()
        }
    };
    let mut acknowledged = Vec::new();
    for i in 0..5 {
        let name = format!("before{i}");
        assert_eq!(register(name.clone()).await.status(), StatusCode::CREATED);
        acknowledged.push(name);
    }
    let (access, _) = tokens(login(&client, server, "before0", PASSWORD).await).await;

    // The outage: no new connections, and every open one is cut.
    db.admin("ALTER DATABASE \"{db}\" ALLOW_CONNECTIONS false")
        .await;
    db.admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'")
        .await;

    wait_for_health(&client, server, StatusCode::SERVICE_UNAVAILABLE).await;
    let health: Value = client
        .get(server.url("/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "unavailable");
    assert_eq!(health["checks"]["database"], "unavailable");
    let during = register("during".into()).await;
    assert_eq!(during.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(during.headers().contains_key("retry-after"));
    assert_eq!(during.headers()["content-type"], "application/problem+json");
    let response = login(&client, server, "before1", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    let response = client
        .get(server.url("/users/me"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "not a 401: the token may be fine"
    );
    // The process itself is alive.
    assert_eq!(
        client
            .get(server.url("/health/live"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    // The database comes back: the same process recovers by itself.
    db.admin("ALTER DATABASE \"{db}\" ALLOW_CONNECTIONS true")
        .await;
    wait_for_health(&client, server, StatusCode::OK).await;
    assert_eq!(me(&client, server, &access).await, StatusCode::OK);
    for name in &acknowledged {
        let response = login(&client, server, name, PASSWORD).await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{name} was acknowledged, so it must be there"
        );
    }
    assert_eq!(
        login(&client, server, "during", PASSWORD).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(register("after".into()).await.status(), StatusCode::CREATED);
}

// Issue 15, part C: the rate limit and the lockout are shared by every replica.

/// The rate limit of these tests: a burst of 16 at one request a second, so that the refill
/// during a test adds at most a few tokens.
const BURST: usize = 16;

/// Replicas with the rate limit on (and `extra`), or `None` without `TEST_POSTGRES_URL`.
async fn limited_replicas(
    count: usize,
    extra: &[(&str, &str)],
) -> Option<(PgDatabase, TempDir, Vec<ServerProcess>)> {
    let burst = BURST.to_string();
    let mut vars = vec![
        ("RATE_LIMIT_ENABLED", "true"),
        ("RATE_LIMIT_PER_SECOND", "1"),
        ("RATE_LIMIT_BURST", burst.as_str()),
    ];
    vars.extend_from_slice(extra);
    replicas(count, &vars).await
}

/// One client alternating between the replicas on a limited endpoint (a refresh with an
/// unknown token: cheap, refused with 400 invalid_grant, but counted): how many requests passed before the
/// first 429, whose answer is checked to be the usual OAuth error with `Retry-After`.
async fn passed_before_the_first_429(servers: &[ServerProcess]) -> usize {
    let client = Client::new();
    for i in 0..BURST * 3 {
        let response = refresh(&client, &servers[i % servers.len()], "not-a-token").await;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            let retry_after: u64 = response.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(retry_after, 1, "the next token comes within a second");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"], "temporarily_unavailable", "{body}");
            return i;
        }
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "invalid_grant");
    }
    panic!("no 429 in {} requests", BURST * 3);
}

/// At most one burst and a quarter, and not refused before three quarters of it.
fn assert_one_budget(passed: usize) {
    eprintln!("{passed} requests passed before the first 429 (burst {BURST})");
    assert!(
        passed <= BURST + BURST / 4,
        "{passed} requests passed: more than one burst of {BURST} + 25 %"
    );
    assert!(
        passed >= BURST * 3 / 4,
        "{passed} requests passed: refused too early (burst {BURST})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_alternating_between_replicas_gets_one_rate_limit_budget() {
    let Some((_db, _dir, servers)) = limited_replicas(2, &[]).await else {
        return support::skip("one_client_alternating_between_replicas_gets_one_rate_limit_budget");
    };
    assert_one_budget(passed_before_the_first_429(&servers).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_one_client_alternating_between_replicas_gets_one_rate_limit_budget() {
    let Some(redis) = support::redis_url() else {
        return support::skip_redis("with_redis_one_client_alternating_between_replicas");
    };
    let prefix = format!("replicas-{}:", uuid::Uuid::new_v4());
    let vars = [
        ("REDIS_URL", redis.as_str()),
        ("RATE_LIMIT_KEY_PREFIX", prefix.as_str()),
    ];
    let Some((_db, _dir, servers)) = limited_replicas(2, &vars).await else {
        return support::skip("with_redis_one_client_alternating_between_replicas");
    };
    assert_one_budget(passed_before_the_first_429(&servers).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_failed_logins_over_two_replicas_check_at_most_max_failures_passwords() {
    let vars = [("LOGIN_MAX_FAILURES", "3")];
    let Some((_db, _dir, servers)) = limited_replicas(2, &vars).await else {
        return support::skip("concurrent_failed_logins_over_two_replicas");
    };
    let client = Client::new();
    let created = client
        .post(servers[0].url("/users"))
        .json(&json!({"username": "mallory", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let guesses = (0..10).map(|i| {
        let (client, server) = (client.clone(), &servers[i % 2]);
        async move {
            login(&client, server, "mallory", "wrong password")
                .await
                .status()
        }
    });
    let statuses = futures::future::join_all(guesses).await;
    let checked = statuses
        .iter()
        .filter(|s| **s == StatusCode::BAD_REQUEST)
        .count();
    assert!(
        statuses
            .iter()
            .all(|s| matches!(*s, StatusCode::BAD_REQUEST | StatusCode::TOO_MANY_REQUESTS)),
        "{statuses:?}"
    );
    assert!(
        checked <= 3,
        "{checked} passwords checked over two replicas; the lockout allows 3 in total"
    );
    for server in &servers {
        let response = login(&client, server, "mallory", PASSWORD).await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(response.headers().contains_key("retry-after"));
        let body: Value = response.json().await.unwrap();
        // The lockout's answer (the rate limit's would be temporarily_unavailable).
        assert_eq!(body["error"], "invalid_grant", "{body}");
    }
}

/// A TCP proxy on loopback to `target`, and a way to cut it: the listener and every connection
/// through it are closed (as when Redis goes away).
async fn tcp_proxy(target: String) -> (u16, impl FnOnce()) {
    use std::sync::{Arc, Mutex};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let tasks: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
    let accepting = tokio::spawn({
        let tasks = tasks.clone();
        async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tasks.lock().unwrap().push(task.abort_handle());
            }
        }
    });
    let cut = move || {
        accepting.abort();
        for task in tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    };
    (port, cut)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_redis_goes_away_the_rate_limit_falls_back_to_the_replicas_own_buckets() {
    let Some(redis) = support::redis_url() else {
        return support::skip_redis("when_redis_goes_away_the_rate_limit_falls_back");
    };
    let target = url::Url::parse(&redis).unwrap();
    let target = format!(
        "{}:{}",
        target.host_str().unwrap(),
        target.port().unwrap_or(6379)
    );
    let (port, cut) = tcp_proxy(target).await;
    let through_proxy = format!("redis://127.0.0.1:{port}");
    let prefix = format!("fallback-{}:", uuid::Uuid::new_v4());
    let vars = [
        ("REDIS_URL", through_proxy.as_str()),
        ("RATE_LIMIT_KEY_PREFIX", prefix.as_str()),
    ];
    let Some((_db, _dir, servers)) = limited_replicas(1, &vars).await else {
        return support::skip("when_redis_goes_away_the_rate_limit_falls_back");
    };
    let client = Client::new();
    for _ in 0..4 {
        let response = refresh(&client, &servers[0], "not-a-token").await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }
    cut();
    // Never a 500 or a 503: the replica's own (fresh) buckets judge, so a burst passes, then 429.
    let mut passed = 0;
    loop {
        let response = refresh(&client, &servers[0], "not-a-token").await;
        match response.status() {
            StatusCode::BAD_REQUEST => passed += 1,
            StatusCode::TOO_MANY_REQUESTS => break,
            other => panic!("{other} while Redis is away"),
        }
        assert!(passed <= BURST * 2, "no 429 while Redis is away");
    }
    assert!(
        passed >= BURST - 1,
        "{passed} passed on the replica's own buckets"
    );
}
