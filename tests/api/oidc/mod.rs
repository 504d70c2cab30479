//! The OpenID Connect provider over HTTP, driven as a browser and a client would: a cookie jar,
//! the hosted login page's form, the redirects, the token endpoint and what follows.

mod flow;
mod refusals;

use std::collections::HashMap;

use reqwest::{header, Response, StatusCode};
use serde_json::{json, Value};

use crate::asserts::*;
use crate::helpers::*;

pub const VERIFIER: &str = "a-pkce-verifier-that-is-long-enough-0123456789-abcdefgh";
pub const APP: &str = "https://app.example/callback";
pub const BYE: &str = "https://app.example/bye";

/// The S256 challenge of [`VERIFIER`].
pub fn challenge() -> String {
    use base64::Engine;
    use sha2::Digest;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(VERIFIER))
}

/// A browser: the app's HTTP client with its own cookie jar, following no redirect.
pub struct Browser<'a> {
    pub app: &'a TestApp,
    pub cookies: HashMap<String, String>,
}

impl<'a> Browser<'a> {
    pub fn new(app: &'a TestApp) -> Self {
        Self {
            app,
            cookies: HashMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep_cookies(&mut self, response: &Response) {
        for value in response.headers().get_all(header::SET_COOKIE) {
            let text = value.to_str().unwrap();
            let (pair, attributes) = text.split_once(';').unwrap_or((text, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if attributes.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    pub async fn get(&mut self, path_and_query: &str) -> Response {
        let response = self
            .app
            .client
            .get(self.app.url(path_and_query))
            .header(header::COOKIE, self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep_cookies(&response);
        response
    }

    pub async fn post_form(&mut self, path: &str, body: &str) -> Response {
        let response = self
            .app
            .client
            .post(self.app.url(path))
            .header(header::COOKIE, self.cookie_header())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        self.keep_cookies(&response);
        response
    }

    /// Submits the login form of `page` with these credentials, as a browser would: every
    /// hidden input and the two fields.
    pub async fn submit_login(&mut self, page: &str, username: &str, password: &str) -> Response {
        let mut pairs = hidden_inputs(page);
        pairs.push(("username".into(), username.into()));
        pairs.push(("password".into(), password.into()));
        let pairs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.post_form("/auth/authorize", &form(&pairs)).await
    }

    /// From the authorization request to the code: the login page, then the form.
    pub async fn sign_in_for_code(&mut self, query: &str, username: &str) -> (String, Value) {
        let page = self.get(&format!("/auth/authorize?{query}")).await;
        assert_eq!(page.status(), StatusCode::OK);
        let html = page.text().await.unwrap();
        let back = self.submit_login(&html, username, PASSWORD).await;
        redirected_with_code(back)
    }
}

/// The `<input type="hidden">` fields of a page, decoded.
pub fn hidden_inputs(html: &str) -> Vec<(String, String)> {
    html.split("<input type=\"hidden\" ")
        .skip(1)
        .map(|rest| {
            let name = between(rest, "name=\"", "\"");
            let value = between(rest, "value=\"", "\"");
            (unescape(&name), unescape(&value))
        })
        .collect()
}

fn between(text: &str, start: &str, end: &str) -> String {
    let from = text.find(start).unwrap() + start.len();
    let to = from + text[from..].find(end).unwrap();
    text[from..to].to_owned()
}

fn unescape(text: &str) -> String {
    text.replace("&#34;", "\"")
        .replace("&#38;", "&")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The query parameters of a 303's `Location`, after checking it goes to `expected_base`.
pub fn redirect_params(response: &Response, expected_base: &str) -> HashMap<String, String> {
    assert_eq!(
        response.status(),
        StatusCode::SEE_OTHER,
        "expected a redirect"
    );
    let location = header_text(response, "location");
    let (base, query) = location.split_once('?').unwrap_or((location, ""));
    assert_eq!(base, expected_base, "redirected to {location}");
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

/// The code (and the rest) of a successful redirect to [`APP`].
pub fn redirected_with_code(response: Response) -> (String, Value) {
    let params = redirect_params(&response, APP);
    assert!(!params.contains_key("error"), "{params:?}");
    let value = json!(params);
    (params["code"].clone(), value)
}

/// A registered client's id and (for a confidential one) secret.
pub struct Registered {
    pub id: String,
    pub secret: Option<String>,
}

impl Registered {
    pub fn secret(&self) -> &str {
        self.secret.as_deref().unwrap()
    }
}

/// The world of most tests: an app, an admin, a user `alice` with an e-mail address and full
/// name, a public and a confidential client.
pub struct World {
    pub app: TestApp,
    pub admin: String,
    pub public: Registered,
    pub confidential: Registered,
}

pub async fn world() -> World {
    world_with(&[]).await
}

pub async fn world_with(overrides: &[(&str, &str)]) -> World {
    world_on(spawn_app_with(overrides).await).await
}

/// The world of [`world`] on an app the test spawned itself.
pub async fn world_on(app: TestApp) -> World {
    let admin = app.admin_with_tokens("root").await.access;
    let alice = app
        .post_json(
            "/users",
            &json!({"username": "alice", "password": PASSWORD, "email": "alice@example.com", "full_name": "Alice Liddell"}),
        )
        .await;
    assert_eq!(alice.status(), StatusCode::CREATED);
    let public = register(
        &app,
        &admin,
        "public",
        &["authorization_code", "refresh_token"],
    )
    .await;
    let confidential = register(
        &app,
        &admin,
        "confidential",
        &["authorization_code", "refresh_token", "client_credentials"],
    )
    .await;
    World {
        app,
        admin,
        public,
        confidential,
    }
}

pub async fn register(
    app: &TestApp,
    admin: &str,
    client_type: &str,
    grants: &[&str],
) -> Registered {
    let response = app
        .client
        .post(app.url("/admin/clients"))
        .bearer_auth(admin)
        .json(&json!({
            "client_name": format!("The {client_type} app"),
            "client_type": client_type,
            "redirect_uris": [APP, "http://127.0.0.1/native"],
            "post_logout_redirect_uris": [BYE],
            "grant_types": grants,
            "scope": "openid profile email offline_access user admin",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    Registered {
        id: body["client_id"].as_str().unwrap().to_owned(),
        secret: body["client_secret"].as_str().map(str::to_owned),
    }
}

/// An authorization request's query for `client_id` with PKCE, state and nonce; `extra`
/// replaces (or, with an empty value, removes) parameters.
pub fn auth_query(client_id: &str, extra: &[(&str, &str)]) -> String {
    let challenge = challenge();
    let mut pairs = vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", APP),
        ("scope", "openid profile email"),
        ("state", "st&te"),
        ("nonce", "n-0"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    for (name, value) in extra {
        pairs.retain(|(n, _)| n != name);
        if !value.is_empty() {
            pairs.push((name, value));
        }
    }
    form(&pairs)
}

/// `POST /auth/token` with a form and optional Basic credentials.
pub async fn token_request(
    app: &TestApp,
    pairs: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> Response {
    let mut request = app
        .client
        .post(app.url("/auth/token"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(form(pairs));
    if let Some((id, secret)) = basic {
        request = request.basic_auth(id, Some(secret));
    }
    request.send().await.unwrap()
}

/// Exchanges `code` as the public client with [`VERIFIER`].
pub async fn exchange_public(w: &World, code: &str) -> Response {
    token_request(
        &w.app,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", APP),
            ("code_verifier", VERIFIER),
            ("client_id", &w.public.id),
        ],
        None,
    )
    .await
}

/// Exchanges `code` as the confidential client (`client_secret_basic`) with [`VERIFIER`].
pub async fn exchange_confidential(w: &World, code: &str) -> Response {
    token_request(
        &w.app,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", APP),
            ("code_verifier", VERIFIER),
        ],
        Some((&w.confidential.id, w.confidential.secret())),
    )
    .await
}

/// A form post to `path` with Basic credentials.
pub async fn post_form_basic(
    app: &TestApp,
    path: &str,
    pairs: &[(&str, &str)],
    id: &str,
    secret: &str,
) -> Response {
    app.client
        .post(app.url(path))
        .basic_auth(id, Some(secret))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(form(pairs))
        .send()
        .await
        .unwrap()
}

/// Introspects `token` as the confidential client.
pub async fn introspect(w: &World, token: &str) -> Value {
    let response = post_form_basic(
        &w.app,
        "/auth/introspect",
        &[("token", token)],
        &w.confidential.id,
        w.confidential.secret(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header_text(&response, "cache-control"), "no-store");
    response.json().await.unwrap()
}

/// Expects introspection to call `token` inactive, and say nothing else.
pub async fn assert_inactive(w: &World, token: &str) {
    assert_eq!(introspect(w, token).await, json!({"active": false}));
}
