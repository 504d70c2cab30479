//! `spawn_app()`: the real router on an ephemeral port with a fresh temporary SQLite database,
//! configured from `.env.testing`, with the clock under the test's control.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use auth_service::application::{NewUser, RequestContext};
use auth_service::domain::ports::Clock;
use auth_service::domain::user::Password;
use auth_service::infrastructure::bootstrap::{build_services, http_options, serve, Services};
use auth_service::infrastructure::config::Settings;
use auth_service::infrastructure::http::{self, AppState};
use chrono::{DateTime, Duration, SubsecRound, Utc};
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::sync::oneshot;

pub use crate::asserts::*;

pub const PASSWORD: &str = "correct horse battery";

/// Runs `$body` with `$pool` connected to the SQLite or PostgreSQL database at `$url`, then
/// closes the pool: the two pool types share no trait a plain function could take.
macro_rules! on_either_pool {
    ($url:expr, |$pool:ident| $body:expr) => {
        if $url.starts_with("sqlite:") {
            let $pool = sqlx::SqlitePool::connect($url).await.unwrap();
            let result = $body;
            $pool.close().await;
            result
        } else {
            let $pool = sqlx::PgPool::connect($url).await.unwrap();
            let result = $body;
            $pool.close().await;
            result
        }
    };
}

/// A clock the test moves by hand; starts at the real time.
pub struct TestClock(Mutex<DateTime<Utc>>);

impl TestClock {
    pub fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

/// A running app and a client for it.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub clock: Arc<TestClock>,
    pub services: Services,
    pub settings: Settings,
    shutdown: Option<oneshot::Sender<()>>,
    pub server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    /// Keeps the test's database alive; dropped with the app.
    _database: TestDatabase,
}

/// The database of one test: a temporary SQLite file, or a fresh PostgreSQL database when
/// `TEST_API_BACKEND=postgres` (the whole HTTP suite then runs on PostgreSQL).
#[allow(dead_code)] // held only for its Drop, which removes the database
enum TestDatabase {
    Sqlite(TempDir),
    Postgres(crate::support::PgDatabase),
    /// Another app's database (that app keeps it alive).
    Shared,
}

impl TestDatabase {
    async fn create() -> (Self, String) {
        if std::env::var("TEST_API_BACKEND").as_deref() == Ok("postgres") {
            let admin = crate::support::postgres_admin_url()
                .expect("TEST_API_BACKEND=postgres needs TEST_POSTGRES_URL");
            let db = crate::support::PgDatabase::create(&admin).await;
            let url = db.url.clone();
            (Self::Postgres(db), url)
        } else {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}/test.db", dir.path().display());
            (Self::Sqlite(dir), url)
        }
    }
}

/// The test configuration: `.env.testing`, the test's database, then `overrides`.
pub fn test_settings(database_url: &str, overrides: &[(&str, &str)]) -> Settings {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/.env.testing");
    let mut vars: HashMap<String, String> = dotenvy::from_path_iter(path)
        .expect(".env.testing exists")
        .map(|item| item.expect("valid .env.testing line"))
        .collect();
    vars.insert("DATABASE_URL".into(), database_url.to_owned());
    for (key, value) in overrides {
        vars.insert((*key).into(), (*value).into());
    }
    Settings::from_lookup(|key| vars.get(key).cloned()).expect("valid test settings")
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

pub async fn spawn_app_with(overrides: &[(&str, &str)]) -> TestApp {
    spawn_app_customised(overrides, |_| {}).await
}

/// Like [`spawn_app_with`], behind a TLS terminator as deployed: the issuer (`JWT_ISSUER`) is
/// the terminator's `https://127.0.0.1:PORT` (bound before the settings are read), which
/// forwards each connection to the app, and the test's client goes through it, trusting only
/// its self-signed certificate. A client library that discovers the provider from its issuer
/// (and refuses plain-http endpoints, as `openidconnect` does for revocation) reaches this app
/// and finds the issuer it asked for in the metadata and the tokens.
pub async fn spawn_app_over_tls(overrides: &[(&str, &str)]) -> TestApp {
    let front = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("https://{}", front.local_addr().unwrap());
    let mut overrides = overrides.to_vec();
    overrides.retain(|(key, _)| *key != "JWT_ISSUER");
    overrides.push(("JWT_ISSUER", &issuer));
    let mut app = spawn_app_with(&overrides).await;
    let backend = app.address.trim_start_matches("http://").to_owned();
    let certificate = terminate_tls(front, backend);
    app.address = issuer;
    app.client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .tls_built_in_root_certs(false)
        .add_root_certificate(certificate)
        .build()
        .unwrap();
    app
}

/// Accepts TLS on `front` with a fresh self-signed certificate for 127.0.0.1 and pipes each
/// connection to `backend`; returns the certificate for the client to trust. Runs until the
/// test's runtime ends.
fn terminate_tls(front: tokio::net::TcpListener, backend: String) -> reqwest::Certificate {
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = front.accept().await {
            let acceptor = acceptor.clone();
            let backend = backend.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut app) = tokio::net::TcpStream::connect(&backend).await else {
                    return; // the app has shut down: the client sees the connection close
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut app).await;
            });
        }
    });
    reqwest::Certificate::from_der(cert.der()).unwrap()
}

/// An app on the database at `url` (the test keeps it alive and removes it).
pub async fn spawn_app_on(url: &str, overrides: &[(&str, &str)]) -> TestApp {
    start(TestDatabase::Shared, url, overrides, |_| {}).await
}

/// Like [`spawn_app_with`], letting the test swap parts of the state (e.g. a failing probe).
pub async fn spawn_app_customised(
    overrides: &[(&str, &str)],
    customise: impl FnOnce(&mut http::Services),
) -> TestApp {
    let (database, url) = TestDatabase::create().await;
    start(database, &url, overrides, customise).await
}

async fn start(
    database: TestDatabase,
    url: &str,
    overrides: &[(&str, &str)],
    customise: impl FnOnce(&mut http::Services),
) -> TestApp {
    let settings = test_settings(url, overrides);
    let clock = Arc::new(TestClock(Mutex::new(Utc::now().trunc_subsecs(6))));
    let services = build_services(&settings, clock.clone()).await.unwrap();
    let mut parts = services.state.services();
    customise(&mut parts);
    let router = http::router(AppState::new(parts), &http_options(&settings));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = oneshot::channel();
    let server = tokio::spawn(serve(listener, router, async {
        let _ = rx.await;
    }));
    TestApp {
        address,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        clock,
        services,
        settings,
        shutdown: Some(tx),
        server: Some(server),
        _database: database,
    }
}

/// The tokens of a successful login or refresh.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
    pub body: Value,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// A second app on this app's database with other settings: another replica, or the same
    /// service restarted with a new configuration (a key rotation, say). Keep `self` alive.
    pub async fn sibling(&self, overrides: &[(&str, &str)]) -> TestApp {
        use secrecy::ExposeSecret;
        let url = self.settings.database.url.expose_secret().to_owned();
        start(TestDatabase::Shared, &url, overrides, |_| {}).await
    }

    /// Settings for another service on this app's database (another replica, a config change).
    pub fn settings_with(&self, overrides: &[(&str, &str)]) -> Settings {
        use secrecy::ExposeSecret;
        test_settings(self.settings.database.url.expose_secret(), overrides)
    }

    /// The stored password hash of user `id`, read straight from the database.
    pub async fn stored_password_hash(&self, id: &str) -> String {
        self.stored_text(
            "SELECT password_hash FROM users WHERE CAST(id AS TEXT) = $1",
            id,
        )
        .await
        .expect("no such user")
    }

    /// Whether a user with exactly this username is stored.
    pub async fn user_stored(&self, username: &str) -> bool {
        self.stored_text("SELECT username FROM users WHERE username = $1", username)
            .await
            .is_some()
    }

    /// One text value from the database (`$1` placeholders work on both backends).
    pub async fn stored_text(&self, sql: &str, value: &str) -> Option<String> {
        use secrecy::ExposeSecret;
        let url = self.settings.database.url.expose_secret();
        on_either_pool!(url, |pool| sqlx::query_scalar(sql)
            .bind(value)
            .fetch_optional(&pool)
            .await
            .unwrap())
    }

    /// Runs one statement with text parameters on the database, behind the service's back;
    /// returns the rows it changed.
    pub async fn execute_sql(&self, sql: &str, values: &[&str]) -> u64 {
        use secrecy::ExposeSecret;
        let url = self.settings.database.url.expose_secret();
        on_either_pool!(url, |pool| {
            let mut query = sqlx::query(sql);
            for value in values {
                query = query.bind(*value);
            }
            query.execute(&pool).await.unwrap().rows_affected()
        })
    }

    /// `GET path` as the holder of `token`; expects 200 and returns the JSON body.
    pub async fn get_json(&self, path: &str, token: &str) -> Value {
        let response = self.get(path, Some(token)).await;
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.json().await.unwrap()
    }

    /// The id of the user `tokens` belong to, from `GET /users/me`.
    pub async fn user_id(&self, tokens: &Tokens) -> String {
        let me = self.get_json("/users/me", &tokens.access).await;
        me["id"].as_str().unwrap().to_owned()
    }

    /// Expects `access` to be accepted: `GET /users/me` answers 200.
    pub async fn assert_signed_in(&self, access: &str) {
        let response = self.get("/users/me", Some(access)).await;
        assert_eq!(response.status(), StatusCode::OK);
    }

    /// Expects `refresh` to be refused with 400 `invalid_grant`; returns the description.
    pub async fn assert_refresh_refused(&self, refresh: &str) -> String {
        let response = self.refresh_grant(refresh).await;
        assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await
    }

    /// Expects the session of `tokens` to be over: its access token is a 401 `invalid_token`
    /// and its refresh token `invalid_grant`.
    pub async fn assert_session_ended(&self, tokens: &Tokens) {
        assert_invalid_token(self.get("/users/me", Some(&tokens.access)).await).await;
        self.assert_refresh_refused(&tokens.refresh).await;
    }

    /// Starts a graceful shutdown.
    pub fn shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// `PUT /users/me/password` as the holder of `token`.
    pub async fn change_password(&self, token: &str, current: &str, new: &str) -> Response {
        let body = json!({"current_password": current, "new_password": new});
        self.put_password_body(Some(token), &body).await
    }

    /// `PUT /users/me/password` with any JSON body, with or without a bearer token.
    pub async fn put_password_body(&self, token: Option<&str>, body: &Value) -> Response {
        let mut request = self.client.put(self.url("/users/me/password")).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    /// `PATCH /users/{id}` as the holder of `token`.
    pub async fn patch_user(&self, token: &str, id: &str, body: &Value) -> Response {
        self.client
            .patch(self.url(&format!("/users/{id}")))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn register(&self, username: &str, password: &str) -> Response {
        self.post_json(
            "/users",
            &json!({"username": username, "password": password}),
        )
        .await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// POSTs raw form-encoded text to an OAuth2 endpoint.
    pub async fn post_form(&self, path: &str, form: &str) -> Response {
        self.client
            .post(self.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.to_owned())
            .send()
            .await
            .unwrap()
    }

    pub async fn login(&self, username: &str, password: &str) -> Response {
        let form = form(&[
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
        ]);
        self.post_form("/auth/token", &form).await
    }

    /// A password grant (without `grant_type`, which defaults to it) asking for `scope`.
    pub async fn login_with_scope(&self, username: &str, password: &str, scope: &str) -> Response {
        let form = form(&[
            ("username", username),
            ("password", password),
            ("scope", scope),
        ]);
        self.post_form("/auth/token", &form).await
    }

    /// Registers `username` with [`PASSWORD`] and logs in.
    pub async fn user_with_tokens(&self, username: &str) -> Tokens {
        assert_eq!(
            self.register(username, PASSWORD).await.status(),
            StatusCode::CREATED
        );
        self.tokens(username, PASSWORD).await
    }

    /// Creates `username` with roles `user` and `admin` (directly through the use case, as the
    /// seed command does) and logs in.
    pub async fn admin_with_tokens(&self, username: &str) -> Tokens {
        self.services
            .users
            .create_user(
                NewUser {
                    username: username.into(),
                    password: Password::candidate(PASSWORD),
                    email: None,
                    full_name: None,
                    roles: Some(vec!["user".into(), "admin".into()]),
                },
                &RequestContext::default(),
            )
            .await
            .unwrap();
        self.tokens(username, PASSWORD).await
    }

    /// Logs in and expects success.
    pub async fn tokens(&self, username: &str, password: &str) -> Tokens {
        tokens_of(self.login(username, password).await).await
    }

    pub async fn refresh_grant(&self, refresh_token: &str) -> Response {
        let form = form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ]);
        self.post_form("/auth/token", &form).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        let mut request = self.client.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    pub async fn post_bearer(&self, path: &str, token: &str) -> Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Form-encodes pairs.
pub fn form(pairs: &[(&str, &str)]) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        serializer.append_pair(k, v);
    }
    serializer.finish()
}

/// Decodes a JWT's header and payload (no verification: the test reads what the server wrote).
pub fn jwt_parts(token: &str) -> (Value, Value) {
    use base64::Engine;
    let decode = |part: &str| -> Value {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    };
    let mut parts = token.split('.');
    (decode(parts.next().unwrap()), decode(parts.next().unwrap()))
}
