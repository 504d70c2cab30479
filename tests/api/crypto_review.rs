//! Token and hash checks an attacker probed: critical JWT headers, future `iat`, imported
//! bcrypt hashes, database file permissions.

use std::sync::Arc;
use std::time::Duration;

use auth_service::application::{AppError, AuthService, ImportedUser, Ports, RequestContext};
use auth_service::domain::ports::Clock;
use auth_service::domain::user::PasswordHash;
use auth_service::infrastructure::bootstrap::{
    build_codec, build_services, db_options, http_options, serve,
};
use auth_service::infrastructure::clock::SystemClock;
use auth_service::infrastructure::crypto::argon2::{Argon2Config, Argon2Hasher, HashingWork};
use auth_service::infrastructure::db;
use auth_service::infrastructure::http::{self, AppState};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey};
use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use crate::helpers::*;

/// `header` and `claims` as a compact JWS, signed HS256 with `key`. Written by hand so that any
/// header member goes through exactly as given.
fn signed(header: &Value, claims: &Value, key: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(header).unwrap()),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap())
    );
    let signature = jsonwebtoken::crypto::sign(
        input.as_bytes(),
        &EncodingKey::from_secret(key),
        Algorithm::HS256,
    )
    .unwrap();
    format!("{input}.{signature}")
}

/// A running app, a logged-in user's real access token taken apart, and the signing key.
async fn live_token() -> (TestApp, Value, Value, Vec<u8>) {
    let app = spawn_app().await;
    let tokens = app.user_with_tokens("alice").await;
    let (header, claims) = jwt_parts(&tokens.access);
    assert_eq!(header["alg"], "HS256");
    let key = app
        .settings
        .tokens
        .secret
        .expose_secret()
        .as_bytes()
        .to_vec();
    (app, header, claims, key)
}

async fn assert_me(app: &TestApp, token: &str, status: StatusCode) {
    let response = app.get("/users/me", Some(token)).await;
    if status == StatusCode::UNAUTHORIZED {
        assert_invalid_token(response).await;
    } else {
        assert_eq!(response.status(), status, "{token}");
    }
}

#[tokio::test]
async fn a_token_whose_header_has_crit_is_rejected() {
    let (app, header, claims, key) = live_token().await;
    // Control: the same header and claims, re-signed, are accepted.
    assert_me(&app, &signed(&header, &claims, &key), StatusCode::OK).await;
    for (crit, extension) in [(json!(["exp"]), None), (json!(["urn:x"]), Some("urn:x"))] {
        let mut with_crit = header.clone();
        with_crit["crit"] = crit;
        if let Some(name) = extension {
            with_crit[name] = json!("must be understood");
        }
        assert_me(
            &app,
            &signed(&with_crit, &claims, &key),
            StatusCode::UNAUTHORIZED,
        )
        .await;
    }
}

#[tokio::test]
async fn a_token_issued_in_the_future_beyond_the_leeway_is_rejected() {
    let (app, header, claims, key) = live_token().await;
    let leeway = i64::try_from(app.settings.tokens.leeway_seconds).unwrap();
    let now = app.clock.now().timestamp();
    let future = 10 * 60;
    assert!(future > leeway, "the probe must be beyond the leeway");
    let mut issued_later = claims.clone();
    issued_later["iat"] = json!(now + future);
    assert_me(
        &app,
        &signed(&header, &issued_later, &key),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let mut issued_now = claims.clone();
    issued_now["iat"] = json!(now);
    assert_me(&app, &signed(&header, &issued_now, &key), StatusCode::OK).await;
}

/// A bcrypt hash of `password` at cost 4 (cheap in tests), as passlib writes it.
fn bcrypt4(password: &str) -> String {
    bcrypt::hash(password, 4).unwrap()
}

fn imported(username: &str, hash: &str) -> ImportedUser {
    ImportedUser {
        username: username.into(),
        password_hash: PasswordHash::new(hash.into()),
        email: None,
        full_name: None,
        roles: None,
    }
}

#[tokio::test]
async fn malformed_imported_hashes_are_a_validation_error_and_never_stored() {
    let app = spawn_app().await;
    let good = bcrypt4("legacy passphrase");
    let bad = [
        ("short", good[..59].to_owned()),
        ("long", format!("{good}A")),
        ("costzero", format!("$2b$00{}", &good[6..])),
        ("costhigh", format!("$2b$32{}", &good[6..])),
        ("costsign", format!("$2b$+4{}", &good[6..])),
        ("alphabet", format!("{}+{}", &good[..20], &good[21..])),
        (
            "argonsalt",
            "$argon2id$v=19$m=256,t=1,p=1$c2FsdA$aGFzaGhhc2hoYXNoaGFzaA".to_owned(),
        ),
        (
            "argonmem",
            "$argon2id$v=19$m=4294967295,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$6qCqEZ7N1VPZ6z6iGfCSK5hJcVY6ZN/5x0zOebxCPDU".to_owned(),
        ),
    ];
    for (username, hash) in bad {
        let outcome = app
            .services
            .users
            .import_user(imported(username, &hash), &RequestContext::default())
            .await;
        match outcome {
            Err(AppError::Validation(errors)) => {
                assert!(
                    errors.iter().any(|e| e.field == "password_hash"),
                    "{username}: {errors:?}"
                );
            }
            other => panic!("{username}: expected a validation error, got {other:?}"),
        }
        assert!(!app.user_stored(username).await, "{username} was stored");
    }
    // The good one is imported and logs in.
    app.services
        .users
        .import_user(imported("legacy", &good), &RequestContext::default())
        .await
        .unwrap();
    tokens_of(app.login("legacy", "legacy passphrase").await).await;
}

/// Overwrites a user's stored hash behind the service's back (a corrupt row).
async fn corrupt_stored_hash(app: &TestApp, username: &str, hash: &str) {
    let sql = "UPDATE users SET password_hash = $1 WHERE username = $2";
    let updated = app.execute_sql(sql, &[hash, username]).await;
    assert_eq!(updated, 1);
}

#[tokio::test]
async fn a_login_against_a_corrupt_stored_hash_is_a_wrong_password_not_a_500() {
    let app = spawn_app().await;
    let good = bcrypt4("legacy passphrase");
    for (username, corrupt) in [
        ("truncated", good[..59].to_owned()),
        ("badcost", format!("$2b$03{}", &good[6..])),
        ("badsalt", format!("{}!{}", &good[..10], &good[11..])),
        (
            "badargon",
            "$argon2id$v=19$m=256,t=1,p=1$c2FsdA$aGFzaGhhc2hoYXNoaGFzaA".to_owned(),
        ),
    ] {
        assert_eq!(
            app.register(username, PASSWORD).await.status(),
            StatusCode::CREATED
        );
        corrupt_stored_hash(&app, username, &corrupt).await;
        for password in [PASSWORD, "legacy passphrase"] {
            assert_oauth_error(
                app.login(username, password).await,
                StatusCode::BAD_REQUEST,
                "invalid_grant",
            )
            .await;
        }
    }
}

/// The app with its login use case on a hasher whose work the test can read (the production
/// wiring otherwise: same database, configuration and router).
struct CountedApp {
    app: TestApp,
    hasher: Arc<Argon2Hasher>,
    address: String,
    _server: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn counted_app() -> CountedApp {
    let app = spawn_app().await;
    let settings = &app.settings;
    let url = settings.database.url.expose_secret().to_owned();
    let repos = db::connect(&url, &db_options(settings)).await.unwrap();
    // The production default legacy bcrypt cost (12), as `build_services` builds it.
    let hasher = Arc::new(
        Argon2Hasher::new(
            Argon2Config {
                memory_kib: settings.hashing.argon2_memory_kib,
                iterations: settings.hashing.argon2_iterations,
                parallelism: settings.hashing.argon2_parallelism,
            },
            1,
            Duration::from_secs(30),
        )
        .unwrap(),
    );
    let ports = Ports {
        users: repos.users,
        tokens: repos.tokens,
        throttle: repos.throttle,
        audit: repos.audit,
        hasher: hasher.clone(),
        codec: Arc::new(build_codec(settings).unwrap()),
        clock: Arc::new(SystemClock),
    };
    let mut parts = app.services.state.services();
    parts.auth = AuthService::new(ports, app.services.auth.settings());
    let router = http::router(AppState::new(parts), &http_options(settings));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(serve(listener, router, std::future::pending()));
    CountedApp {
        app,
        hasher,
        address,
        _server: server,
    }
}

impl CountedApp {
    /// The hashing work of one wrong-password login of `username`, made over HTTP.
    async fn work_of_failed_login(&self, username: &str) -> HashingWork {
        let before = self.hasher.work_done();
        let response = self
            .app
            .client
            .post(format!("{}/auth/token", self.address))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[
                ("grant_type", "password"),
                ("username", username),
                ("password", "not the password at all"),
            ]))
            .send()
            .await
            .unwrap();
        assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
        self.hasher.work_done().since(&before)
    }
}

#[tokio::test]
async fn a_wrong_password_for_a_bcrypt_imported_user_does_the_same_hashing_work_as_for_anyone() {
    let counted = counted_app().await;
    let app = &counted.app;
    assert_eq!(
        app.register("native", PASSWORD).await.status(),
        StatusCode::CREATED
    );
    // passlib's default cost (the README's example hash of "correct horse battery"), and a
    // cheaper one.
    for (username, hash) in [
        (
            "passlib",
            "$2b$12$ISsl0HZ8E3fc3w1iQuC.0ujEmxC4LQVkWA.u0HNlmGSgUMScQ9yUe".to_owned(),
        ),
        ("cheaper", bcrypt4("legacy passphrase")),
    ] {
        app.services
            .users
            .import_user(imported(username, &hash), &RequestContext::default())
            .await
            .unwrap();
    }
    let native = counted.work_of_failed_login("native").await;
    assert_eq!(
        native,
        HashingWork {
            argon2_configured: 1,
            argon2_other: 0,
            bcrypt_rounds: 1 << 12,
        },
        "one argon2 verification and the legacy bcrypt cost's rounds"
    );
    for username in ["passlib", "cheaper", "nobody"] {
        assert_eq!(
            counted.work_of_failed_login(username).await,
            native,
            "{username}"
        );
    }
}

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// Starts the service on the SQLite file `dir/auth.db`, writes to it, and returns the modes of
/// the database, its WAL and its shared-memory file while the service runs.
#[cfg(unix)]
async fn modes_after_a_write(dir: &std::path::Path) -> [u32; 3] {
    let url = format!("sqlite://{}/auth.db", dir.display());
    let settings = test_settings(&url, &[]);
    let services = build_services(&settings, Arc::new(SystemClock))
        .await
        .unwrap();
    services
        .users
        .import_user(
            imported("writer", &bcrypt4("legacy passphrase")),
            &RequestContext::default(),
        )
        .await
        .unwrap();
    ["auth.db", "auth.db-wal", "auth.db-shm"].map(|name| mode(&dir.join(name)))
}

#[cfg(unix)]
#[tokio::test]
async fn the_sqlite_database_and_its_wal_and_shm_files_are_readable_by_the_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(modes_after_a_write(dir.path()).await, [0o600; 3]);
}

#[cfg(unix)]
#[tokio::test]
async fn an_existing_world_readable_database_is_tightened_at_start() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    // A database made by an earlier version (0644, with its WAL left behind).
    let first = dir.path().join("auth.db");
    for name in ["auth.db", "auth.db-wal"] {
        let path = dir.path().join(name);
        std::fs::write(&path, b"").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    assert_eq!(mode(&first), 0o644);
    assert_eq!(modes_after_a_write(dir.path()).await, [0o600; 3]);
}
