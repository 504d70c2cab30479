//! Hostile access tokens. Each is crafted from a real, live token's claims with exactly one
//! property wrong, and `GET /users/me` must refuse it with 401 `invalid_token`. A control test
//! re-signs the untouched claims and expects 200, so the crafting itself is known to be right.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::Utc;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::*;

/// Signs `claims` under `header` with the HMAC secret `key`.
fn sign(header: &Header, claims: &Value, key: &[u8]) -> String {
    encode(header, claims, &EncodingKey::from_secret(key)).expect("a signable token")
}

/// One base64url (unpadded) JSON segment, for the tokens `jsonwebtoken` refuses to make.
fn segment(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

/// `claims` with `key` set to `value`.
fn with(claims: &Value, key: &str, value: Value) -> Value {
    let mut claims = claims.clone();
    claims[key] = value;
    claims
}

/// `claims` without `key`.
fn without(claims: &Value, key: &str) -> Value {
    let mut claims = claims.clone();
    claims.as_object_mut().unwrap().remove(key);
    claims
}

/// A running app with a logged-in user, and that user's access token taken apart.
struct Live {
    app: TestApp,
    tokens: Tokens,
    header: Header,
    claims: Value,
    key: Vec<u8>,
}

async fn live() -> Live {
    let app = spawn_app().await;
    let tokens = app.user_with_tokens("alice").await;
    let (header, claims) = jwt_parts(&tokens.access);
    let header: Header = serde_json::from_value(header).unwrap();
    assert_eq!(header.alg, Algorithm::HS256);
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(claims["iss"], app.settings.tokens.issuer.as_str());
    assert_eq!(claims["aud"], app.settings.tokens.audience.as_str());
    let key = app
        .settings
        .tokens
        .secret
        .expose_secret()
        .as_bytes()
        .to_vec();
    Live {
        app,
        tokens,
        header,
        claims,
        key,
    }
}

impl Live {
    /// The real header with another algorithm.
    fn header_with_alg(&self, alg: Algorithm) -> Header {
        Header {
            alg,
            ..self.header.clone()
        }
    }

    /// Signs `claims` the way the service does: real header, real key.
    fn sign(&self, claims: &Value) -> String {
        sign(&self.header, claims, &self.key)
    }

    async fn assert_accepted(&self, token: &str) {
        let response = self.app.get("/users/me", Some(token)).await;
        assert_eq!(response.status(), StatusCode::OK, "{token}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["username"], "alice", "{body}");
    }

    async fn assert_rejected(&self, token: &str) {
        assert_invalid_token(self.app.get("/users/me", Some(token)).await).await;
    }
}

#[tokio::test]
async fn a_real_token_re_signed_with_the_right_key_hs256_and_at_jwt_is_accepted() {
    let live = live().await;
    live.assert_accepted(&live.tokens.access).await;
    let resigned = live.sign(&live.claims);
    live.assert_accepted(&resigned).await;
}

#[tokio::test]
async fn a_token_signed_with_another_key_is_rejected() {
    let live = live().await;
    let other = b"another-secret-another-secret-another-secret";
    live.assert_rejected(&sign(&live.header, &live.claims, other))
        .await;
}

#[tokio::test]
async fn a_token_with_alg_none_is_rejected_with_an_empty_or_the_original_signature() {
    let live = live().await;
    let mut header = serde_json::to_value(&live.header).unwrap();
    header["alg"] = json!("none");
    let parts: Vec<&str> = live.tokens.access.split('.').collect();
    let unsigned = format!("{}.{}.", segment(&header), parts[1]);
    live.assert_rejected(&unsigned).await;
    let resigned = format!("{}.{}.{}", segment(&header), parts[1], parts[2]);
    live.assert_rejected(&resigned).await;
}

#[tokio::test]
async fn a_token_signed_with_hs384_or_hs512_and_the_same_secret_is_rejected() {
    let live = live().await;
    for alg in [Algorithm::HS384, Algorithm::HS512] {
        let token = sign(&live.header_with_alg(alg), &live.claims, &live.key);
        live.assert_rejected(&token).await;
    }
}

#[tokio::test]
async fn a_token_typed_jwt_or_without_a_typ_is_rejected() {
    let live = live().await;
    for typ in [Some("JWT".to_owned()), None] {
        let header = Header {
            typ,
            ..live.header.clone()
        };
        live.assert_rejected(&sign(&header, &live.claims, &live.key))
            .await;
    }
}

#[tokio::test]
async fn a_token_from_another_issuer_is_rejected() {
    let live = live().await;
    let claims = with(&live.claims, "iss", json!("http://evil.test"));
    live.assert_rejected(&live.sign(&claims)).await;
}

#[tokio::test]
async fn a_token_for_another_audience_is_rejected() {
    let live = live().await;
    for aud in [json!("another-service"), json!(["another-service"])] {
        let claims = with(&live.claims, "aud", aud);
        live.assert_rejected(&live.sign(&claims)).await;
    }
}

#[tokio::test]
async fn a_token_without_exp_is_rejected() {
    let live = live().await;
    live.assert_rejected(&live.sign(&without(&live.claims, "exp")))
        .await;
}

#[tokio::test]
async fn a_token_without_iss_is_rejected() {
    let live = live().await;
    live.assert_rejected(&live.sign(&without(&live.claims, "iss")))
        .await;
}

#[tokio::test]
async fn a_token_without_aud_is_rejected() {
    let live = live().await;
    live.assert_rejected(&live.sign(&without(&live.claims, "aud")))
        .await;
}

#[tokio::test]
async fn a_token_expired_beyond_the_leeway_is_rejected_but_one_within_it_is_accepted() {
    let live = live().await;
    // The whole 15-minute window moves back, so only `exp` being past matters.
    let issued_until = |exp: i64| {
        let claims = with(&live.claims, "exp", json!(exp));
        let claims = with(&claims, "nbf", json!(exp - 900));
        with(&claims, "iat", json!(exp - 900))
    };
    let now = Utc::now().timestamp();
    live.assert_rejected(&live.sign(&issued_until(now - 60)))
        .await;
    live.assert_accepted(&live.sign(&issued_until(now - 10)))
        .await;
}

#[tokio::test]
async fn a_token_not_valid_until_beyond_the_leeway_is_rejected() {
    let live = live().await;
    let nbf = Utc::now().timestamp() + 120;
    let claims = with(&live.claims, "nbf", json!(nbf));
    live.assert_rejected(&live.sign(&claims)).await;
}

#[tokio::test]
async fn a_refresh_token_presented_as_a_bearer_token_is_rejected() {
    let live = live().await;
    live.assert_rejected(&live.tokens.refresh).await;
}

#[tokio::test]
async fn a_validly_signed_token_naming_another_session_or_user_is_rejected() {
    let live = live().await;
    let bob = live.app.user_with_tokens("bob").await;
    let (_, bob_claims) = jwt_parts(&bob.access);
    let random = Uuid::new_v4().to_string();
    let forged = [
        with(&live.claims, "sid", bob_claims["sid"].clone()),
        with(&live.claims, "sid", json!(random)),
        with(&live.claims, "sub", bob_claims["sub"].clone()),
        with(&live.claims, "sub", json!(random)),
    ];
    for claims in &forged {
        live.assert_rejected(&live.sign(claims)).await;
    }
    // Both sessions are still live: only the mismatch was refused.
    live.assert_accepted(&live.tokens.access).await;
    let response = live.app.get("/users/me", Some(&bob.access)).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_token_with_a_flipped_bit_or_only_two_segments_is_rejected() {
    let live = live().await;
    let parts: Vec<&str> = live.tokens.access.split('.').collect();
    let mut signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    signature[0] ^= 1;
    let flipped = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        URL_SAFE_NO_PAD.encode(&signature)
    );
    live.assert_rejected(&flipped).await;
    let tampered = with(&live.claims, "username", json!("mallory"));
    let payload_swapped = format!("{}.{}.{}", parts[0], segment(&tampered), parts[2]);
    live.assert_rejected(&payload_swapped).await;
    live.assert_rejected(&format!("{}.{}", parts[0], parts[1]))
        .await;
}
