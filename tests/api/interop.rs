//! Standards and interoperability: tokens verified by an independent JOSE library from our
//! published JWKS, key rotation, no algorithm confusion, discovery, and bcrypt imports.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jwt_simple::prelude::*;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

/// A private key as `openssl genpkey` writes it (PKCS#8 PEM), and its public half (SPKI PEM).
fn openssl_key(dir: &Path, algorithm: &str) -> (PathBuf, PathBuf) {
    let private = dir.join(format!("{algorithm}-{}.pem", uuid::Uuid::new_v4().simple()));
    let args: Vec<&str> = match algorithm {
        "EdDSA" => vec!["-algorithm", "ed25519"],
        "ES256" => vec!["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        _ => vec!["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
    };
    let status = Command::new("openssl")
        .arg("genpkey")
        .args(&args)
        .arg("-out")
        .arg(&private)
        .status()
        .expect("openssl is installed");
    assert!(status.success());
    let public = private.with_extension("pub.pem");
    let status = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&private)
        .arg("-out")
        .arg(&public)
        .status()
        .unwrap();
    assert!(status.success());
    (private, public)
}

#[derive(Debug, Serialize, Deserialize)]
struct OurClaims {
    sid: String,
    username: String,
    roles: Vec<String>,
    scope: String,
}

/// A service signing with `algorithm` and the private key in the PEM file `private`.
async fn signing_with(algorithm: &str, private: &Path) -> TestApp {
    let private = private.to_str().unwrap();
    spawn_app_with(&[
        ("JWT_ALGORITHM", algorithm),
        ("JWT_PRIVATE_KEY_FILE", private),
    ])
    .await
}

async fn jwks(app: &TestApp) -> Vec<Value> {
    let response = app.get("/.well-known/jwks.json", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(header_text(&response, "cache-control").contains("max-age"));
    let body: Value = response.json().await.unwrap();
    body["keys"].as_array().unwrap().clone()
}

fn bytes(jwk: &Value, member: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(jwk[member].as_str().unwrap())
        .unwrap()
}

/// Verifies `token` with jwt-simple, using only the JWK set fetched over HTTP: the key is
/// chosen by the token's `kid`, as a resource server would.
fn verify_independently(token: &str, keys: &[Value]) -> JWTClaims<OurClaims> {
    let metadata = Token::decode_metadata(token).unwrap();
    let kid = metadata.key_id().expect("every token names its key");
    let jwk = keys
        .iter()
        .find(|k| k["kid"] == kid)
        .expect("the kid is published");
    assert_eq!(jwk["use"], "sig");
    assert_eq!(jwk["alg"], metadata.algorithm());
    let options = VerificationOptions {
        allowed_issuers: Some(HashSet::from(["http://auth.test".to_owned()])),
        allowed_audiences: Some(HashSet::from(["auth-service".to_owned()])),
        required_signature_type: Some("at+jwt".to_owned()),
        ..Default::default()
    };
    match metadata.algorithm() {
        "EdDSA" => Ed25519PublicKey::from_bytes(&bytes(jwk, "x"))
            .unwrap()
            .verify_token::<OurClaims>(token, Some(options)),
        "ES256" => {
            let mut point = vec![0x04];
            point.extend(bytes(jwk, "x"));
            point.extend(bytes(jwk, "y"));
            ES256PublicKey::from_bytes(&point)
                .unwrap()
                .verify_token::<OurClaims>(token, Some(options))
        }
        "RS256" => RS256PublicKey::from_components(&bytes(jwk, "n"), &bytes(jwk, "e"))
            .unwrap()
            .verify_token::<OurClaims>(token, Some(options)),
        other => panic!("unexpected algorithm {other}"),
    }
    .expect("the independent verifier accepts our token")
}

#[tokio::test]
async fn an_independent_verifier_accepts_our_tokens_for_each_algorithm_from_the_published_jwks() {
    let dir = tempfile::tempdir().unwrap();
    for algorithm in ["EdDSA", "ES256", "RS256"] {
        let (private, _) = openssl_key(dir.path(), algorithm);
        let app = signing_with(algorithm, &private).await;
        let tokens = app.user_with_tokens("alice").await;
        let (header, _) = jwt_parts(&tokens.access);
        assert_eq!(header["alg"], algorithm);
        assert_eq!(header["typ"], "at+jwt");
        let keys = jwks(&app).await;
        // The access key, and the ID tokens' RS256 key (the same key when access tokens are
        // RS256 too).
        let expected = if algorithm == "RS256" { 1 } else { 2 };
        assert_eq!(
            keys.len(),
            expected,
            "{algorithm}: one active key and the ID-token key"
        );
        for key in &keys {
            for private_member in ["d", "p", "q", "dp", "dq", "qi", "k"] {
                assert!(
                    key.get(private_member).is_none(),
                    "no private parameter is published"
                );
            }
        }
        let claims = verify_independently(&tokens.access, &keys);
        assert_eq!(claims.custom.username, "alice");
        assert_eq!(claims.custom.scope, "user");
        app.assert_signed_in(&tokens.access).await;
    }
}

#[tokio::test]
async fn tokens_signed_before_a_rotation_stay_valid_and_verifiable() {
    let dir = tempfile::tempdir().unwrap();
    let (old_private, old_public) = openssl_key(dir.path(), "RS256");
    let (new_private, _) = openssl_key(dir.path(), "EdDSA");
    let before = signing_with("RS256", &old_private).await;
    let old_token = before.user_with_tokens("alice").await;
    let old_kid = jwt_parts(&old_token.access).0["kid"].clone();

    // The operator rotates: a new signing key (of another algorithm, even), the old public key
    // still accepted.
    let after = before
        .sibling(&[
            ("JWT_ALGORITHM", "EdDSA"),
            ("JWT_PRIVATE_KEY_FILE", new_private.to_str().unwrap()),
            ("JWT_VERIFY_KEY_FILES", old_public.to_str().unwrap()),
        ])
        .await;
    let keys = jwks(&after).await;
    assert_eq!(
        keys.len(),
        3,
        "the new and the old access key, and the ID-token key"
    );
    after.assert_signed_in(&old_token.access).await;
    verify_independently(&old_token.access, &keys);
    let new_token = after.tokens("alice", PASSWORD).await;
    assert_ne!(jwt_parts(&new_token.access).0["kid"], old_kid);
    verify_independently(&new_token.access, &keys);
    // The old service does not know the new key.
    assert_invalid_token(before.get("/users/me", Some(&new_token.access)).await).await;
}

#[tokio::test]
async fn a_token_of_one_algorithm_is_refused_by_a_server_configured_for_another() {
    let dir = tempfile::tempdir().unwrap();
    let mut apps = Vec::new();
    let mut tokens = Vec::new();
    for algorithm in ["HS256", "EdDSA", "ES256", "RS256"] {
        let (private, _) = openssl_key(dir.path(), algorithm);
        let mut overrides = vec![("JWT_ALGORITHM", algorithm)];
        let path = private.to_str().unwrap().to_owned();
        if algorithm != "HS256" {
            overrides.push(("JWT_PRIVATE_KEY_FILE", &path));
        }
        let app = spawn_app_with(&overrides).await;
        tokens.push(app.user_with_tokens("alice").await.access);
        apps.push(app);
    }
    for (i, app) in apps.iter().enumerate() {
        for (j, token) in tokens.iter().enumerate() {
            if i != j {
                assert_invalid_token(app.get("/users/me", Some(token)).await).await;
            }
        }
    }
}

#[tokio::test]
async fn an_hs256_token_keyed_with_our_rsa_public_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = openssl_key(dir.path(), "RS256");
    let app = signing_with("RS256", &private).await;
    let real = app.user_with_tokens("alice").await;
    let (mut header, claims) = jwt_parts(&real.access);
    // The classic confusion: same kid, alg switched to HS256, the public key as the HMAC secret.
    header["alg"] = "HS256".into();
    let public_pem = std::fs::read(&public).unwrap();
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let key = HS256Key::from_bytes(&public_pem);
    let signature = key.authentication_tag(signing_input.as_bytes());
    let forged = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature));
    assert_invalid_token(app.get("/users/me", Some(&forged)).await).await;
    app.assert_signed_in(&real.access).await;
}

#[tokio::test]
async fn hs256_publishes_no_key_and_discovery_names_our_endpoints() {
    let app = spawn_app().await;
    let keys = jwks(&app).await;
    assert_eq!(
        keys.len(),
        1,
        "only the ID tokens' key: a shared secret is never published"
    );
    assert_eq!(keys[0]["alg"], "RS256");
    assert!(keys[0].get("k").is_none());
    let response = app
        .get("/.well-known/oauth-authorization-server", None)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(header_text(&response, "cache-control").contains("public"));
    let metadata: Value = response.json().await.unwrap();
    assert_eq!(metadata["issuer"], "http://auth.test");
    assert_eq!(metadata["token_endpoint"], "http://auth.test/auth/token");
    assert_eq!(
        metadata["revocation_endpoint"],
        "http://auth.test/auth/revoke"
    );
    assert_eq!(
        metadata["jwks_uri"],
        "http://auth.test/.well-known/jwks.json"
    );
    assert_eq!(
        metadata["grant_types_supported"],
        serde_json::json!([
            "authorization_code",
            "refresh_token",
            "client_credentials",
            "password"
        ])
    );
    assert_eq!(
        metadata["token_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic", "client_secret_post", "none"])
    );
    assert_eq!(
        metadata["access_token_signing_alg_values_supported"],
        serde_json::json!(["HS256"])
    );
}

#[tokio::test]
async fn development_generates_a_signing_key_once_and_keeps_it_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let key_dir = dir.path().join("keys");
    let overrides = [
        ("APP_ENV", "development"),
        ("JWT_ALGORITHM", "ES256"),
        ("JWT_DEV_KEY_DIR", key_dir.to_str().unwrap()),
    ];
    let first = spawn_app_with(&overrides).await;
    let token = first.user_with_tokens("alice").await;
    assert!(key_dir.join("es256.pem").exists());
    let restarted = first.sibling(&overrides).await;
    assert_eq!(jwks(&first).await, jwks(&restarted).await);
    restarted.assert_signed_in(&token.access).await;
}

#[tokio::test]
async fn imported_bcrypt_users_log_in_and_their_hash_is_upgraded_to_argon2id() {
    use auth_service::application::{ImportedUser, RequestContext};
    use auth_service::domain::user::PasswordHash;

    let app = spawn_app().await;
    // passlib writes $2b$; $2a$ and $2y$ are the same algorithm under older names.
    let hash = bcrypt::hash("legacy passphrase", 4).unwrap();
    for (name, prefix) in [("bea", "$2b$"), ("ann", "$2a$"), ("yul", "$2y$")] {
        let user = app
            .services
            .users
            .import_user(
                ImportedUser {
                    username: name.into(),
                    password_hash: PasswordHash::new(format!("{prefix}{}", &hash[4..])),
                    email: None,
                    full_name: None,
                    roles: None,
                },
                &RequestContext::default(),
            )
            .await
            .unwrap();
        let id = user.id.to_string();
        assert!(app.stored_password_hash(&id).await.starts_with(prefix));
        assert_eq!(
            app.login(name, "wrong passphrase").await.status(),
            StatusCode::BAD_REQUEST
        );
        tokens_of(app.login(name, "legacy passphrase").await).await;
        let upgraded = app.stored_password_hash(&id).await;
        assert!(upgraded.starts_with("$argon2id$"), "{upgraded}");
        tokens_of(app.login(name, "legacy passphrase").await).await;
    }
}
