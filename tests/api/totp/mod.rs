//! TOTP and the second factor over HTTP: enrolment, confirmation, the password grant's `otp`,
//! recovery codes, the lockout, disabling, the admin reset (`api.rs`), and the hosted login
//! page's second step (`page.rs`). Codes are computed from the returned secret with `totp-rs`
//! at the steps of the app's test clock.

mod api;
mod page;

use chrono::Duration;
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

/// The secret an enrolment returned, and what a test needs of it.
pub struct Authenticator {
    pub secret: String,
}

impl Authenticator {
    /// The code of the app clock's current step plus `offset` steps.
    pub fn code(&self, app: &TestApp, offset: i64) -> String {
        let bytes = totp_rs::Secret::Encoded(self.secret.clone())
            .to_bytes()
            .unwrap();
        let totp = totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, 30, bytes, None, "t".into())
            .unwrap();
        let time = app.clock_now().timestamp() + offset * 30;
        totp.generate(u64::try_from(time).unwrap())
    }
}

impl TestApp {
    fn clock_now(&self) -> chrono::DateTime<chrono::Utc> {
        use auth_service::domain::ports::Clock;
        self.clock.now()
    }

    /// Moves the app clock to the next TOTP step (a code of the current one was used).
    pub fn next_step(&self) {
        self.clock.advance(Duration::seconds(30));
    }

    pub async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: &Value,
    ) -> Response {
        self.client
            .request(method, self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// `POST /users/me/mfa/totp` with `password`.
    pub async fn enrol(&self, token: &str, password: &str) -> Response {
        let body = json!({"password": password});
        self.send_json(reqwest::Method::POST, "/users/me/mfa/totp", token, &body)
            .await
    }

    /// A started enrolment's authenticator.
    pub async fn enrolled(&self, token: &str) -> Authenticator {
        let response = self.enrol(token, PASSWORD).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(header_text(&response, "cache-control"), "no-store");
        let body: Value = response.json().await.unwrap();
        Authenticator {
            secret: body["secret"].as_str().unwrap().to_owned(),
        }
    }

    /// `POST /users/me/mfa/totp/confirm` with `code`.
    pub async fn confirm(&self, token: &str, code: &str) -> Response {
        let body = json!({"code": code});
        self.send_json(
            reqwest::Method::POST,
            "/users/me/mfa/totp/confirm",
            token,
            &body,
        )
        .await
    }

    /// `DELETE /users/me/mfa/totp` with `password`.
    pub async fn disable(&self, token: &str, password: &str) -> Response {
        let body = json!({"password": password});
        self.send_json(reqwest::Method::DELETE, "/users/me/mfa/totp", token, &body)
            .await
    }

    /// A password grant with `otp`.
    pub async fn login_otp(&self, username: &str, password: &str, otp: &str) -> Response {
        let form = form(&[
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
            ("otp", otp),
        ]);
        self.post_form("/auth/token", &form).await
    }

    /// Registers `username`, turns TOTP on (confirmed with the current step's code) and moves
    /// to the next step; its tokens, authenticator and recovery codes.
    pub async fn user_with_totp(&self, username: &str) -> (Tokens, Authenticator, Vec<String>) {
        let tokens = self.user_with_tokens(username).await;
        let authenticator = self.enrolled(&tokens.access).await;
        let response = self
            .confirm(&tokens.access, &authenticator.code(self, 0))
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        let codes = body["recovery_codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect();
        self.next_step();
        (tokens, authenticator, codes)
    }

    /// A password grant with `otp` that must succeed.
    pub async fn tokens_with_otp(&self, username: &str, otp: &str) -> Tokens {
        tokens_of(self.login_otp(username, PASSWORD, otp).await).await
    }

    /// The caller's `mfa` object.
    pub async fn mfa_of(&self, token: &str) -> Value {
        self.get_json("/users/me", token).await["mfa"].clone()
    }
}
