//! The ID-token codec: what a relying party checks with the published key alone, the optional
//! claims, every refusal of a hint, the separation from access tokens, and where the key comes
//! from.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, TimeZone, Utc};
use jsonwebtoken::{decode_header, EncodingKey};
use secrecy::SecretString;
use sha2::{Digest, Sha256};

use super::*;
use crate::domain::oidc::{at_hash, ProfileClaims};
use crate::domain::ports::AccessTokenCodec;
use crate::domain::token::{AccessClaims, ClientAccessClaims};
use crate::domain::user::{Role, Roles};
use crate::infrastructure::crypto::jwt::JwtCodec;

const ISSUER: &str = "https://issuer";

fn codec() -> RsaIdTokenCodec {
    codec_for(ISSUER)
}

fn codec_for(issuer: &str) -> RsaIdTokenCodec {
    let key = keys::from_private_pem(Algorithm::RS256, test_key_pem()).unwrap();
    RsaIdTokenCodec::new(key, issuer).unwrap()
}

fn claims(issued_at: DateTime<Utc>) -> IdClaims {
    IdClaims {
        subject: UserId::new(),
        audience: ClientId::new(),
        issued_at,
        expires_at: issued_at + Duration::minutes(5),
        auth_time: issued_at - Duration::minutes(1),
        nonce: Some("n-0S6_WzA2Mj".into()),
        at_hash: Some(at_hash("an.access.token")),
        session_id: SessionId::new(),
        profile: ProfileClaims {
            preferred_username: Some("alice".into()),
            name: Some("Alice Liddell".into()),
            email: Some("alice@example.com".into()),
            email_verified: Some(false),
        },
    }
}

fn minimal_claims(issued_at: DateTime<Utc>) -> IdClaims {
    IdClaims {
        nonce: None,
        at_hash: None,
        profile: ProfileClaims::default(),
        ..claims(issued_at)
    }
}

fn part(token: &str, index: usize) -> Value {
    serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').nth(index).unwrap())
            .unwrap(),
    )
    .unwrap()
}

fn hint(claims: &IdClaims) -> IdTokenHint {
    IdTokenHint {
        subject: claims.subject,
        audience: claims.audience,
        session_id: claims.session_id,
    }
}

/// `token`'s header and claims edited, signed again with `key` as `algorithm` (the signature is
/// whatever the edited header then claims to be made with).
fn resigned(
    token: &str,
    key: &EncodingKey,
    algorithm: Algorithm,
    edit: impl FnOnce(&mut Value, &mut Value),
) -> String {
    let (mut header, mut claims) = (part(token, 0), part(token, 1));
    edit(&mut header, &mut claims);
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap()),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap())
    );
    let signature = jsonwebtoken::crypto::sign(signing_input.as_bytes(), key, algorithm).unwrap();
    format!("{signing_input}.{signature}")
}

fn own_key() -> EncodingKey {
    EncodingKey::from_rsa_pem(test_key_pem().as_bytes()).unwrap()
}

/// An RSA key too small for the service (and so quick to generate), as PKCS#8 PEM.
fn small_pem() -> String {
    use rsa::pkcs8::{EncodePrivateKey, LineEnding};
    rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 1024)
        .unwrap()
        .to_pkcs8_pem(LineEnding::LF)
        .unwrap()
        .to_string()
}

#[test]
fn a_relying_party_verifies_an_id_token_with_the_published_jwk_alone() {
    let c = codec();
    // jsonwebtoken checks `exp` against the system clock here, as a client library does.
    let original = claims(Utc::now());
    let token = c.sign_id_token(&original).unwrap();

    let header = decode_header(&token).unwrap();
    assert_eq!(header.alg, Algorithm::RS256);
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    let kid = header.kid.unwrap();

    let jwks = c.jwks_with(&json!({"keys": []}));
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let jwk = keys.iter().find(|k| k["kid"] == kid.as_str()).unwrap();
    assert_eq!(jwk["kty"], "RSA");
    assert_eq!(jwk["use"], "sig");
    assert_eq!(jwk["alg"], "RS256");
    assert!(jwk.get("d").is_none(), "no private member is published");
    // The kid is the RFC 7638 thumbprint of the published members.
    let (n, e) = (jwk["n"].as_str().unwrap(), jwk["e"].as_str().unwrap());
    let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    assert_eq!(kid, URL_SAFE_NO_PAD.encode(Sha256::digest(canonical)));
    assert_eq!(c.kid(), kid);

    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[original.audience.to_string()]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let verified = decode::<Value>(
        &token,
        &DecodingKey::from_rsa_components(n, e).unwrap(),
        &validation,
    )
    .unwrap()
    .claims;
    assert_eq!(
        verified,
        json!({
            "iss": ISSUER,
            "sub": original.subject.to_string(),
            "aud": original.audience.to_string(),
            "exp": original.expires_at.timestamp(),
            "iat": original.issued_at.timestamp(),
            "auth_time": original.auth_time.timestamp(),
            "nonce": "n-0S6_WzA2Mj",
            "at_hash": at_hash("an.access.token"),
            "sid": original.session_id.to_string(),
            "preferred_username": "alice",
            "name": "Alice Liddell",
            "email": "alice@example.com",
            "email_verified": false,
        })
    );
    // A client expecting another audience refuses it.
    validation.set_audience(&[ClientId::new().to_string()]);
    assert!(decode::<Value>(
        &token,
        &DecodingKey::from_rsa_components(n, e).unwrap(),
        &validation
    )
    .is_err());
}

#[test]
fn claims_not_given_are_left_out() {
    let c = codec();
    let token = c.sign_id_token(&minimal_claims(Utc::now())).unwrap();
    let claims = part(&token, 1);
    let mut names: Vec<&str> = claims
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["aud", "auth_time", "exp", "iat", "iss", "sid", "sub"]
    );
    // With an access token, its at_hash: the left half of its SHA-256.
    let access = "eyJ.some.token";
    let with_hash = IdClaims {
        at_hash: Some(at_hash(access)),
        ..minimal_claims(Utc::now())
    };
    let claims = part(&c.sign_id_token(&with_hash).unwrap(), 1);
    assert_eq!(
        claims["at_hash"],
        URL_SAFE_NO_PAD.encode(&Sha256::digest(access)[..16])
    );
    assert!(claims.get("nonce").is_none());
}

#[test]
fn a_hint_names_subject_client_and_session_even_long_expired() {
    let c = codec();
    let long_ago = Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap();
    let expired = claims(long_ago);
    let token = c.sign_id_token(&expired).unwrap();
    assert_eq!(c.read_id_token_hint(&token), Ok(hint(&expired)));
    let fresh = minimal_claims(Utc::now());
    let token = c.sign_id_token(&fresh).unwrap();
    assert_eq!(c.read_id_token_hint(&token), Ok(hint(&fresh)));
}

#[test]
fn a_hint_of_another_issuer_key_or_algorithm_is_refused() {
    let c = codec();
    let token = c.sign_id_token(&claims(Utc::now())).unwrap();
    let refused = |token: &str, reason: &'static str| {
        assert_eq!(
            c.read_id_token_hint(token),
            Err(TokenError::Invalid(reason)),
            "{}",
            part(token, 0)
        );
    };
    // The control: signed again unchanged, it reads.
    assert!(c
        .read_id_token_hint(&resigned(&token, &own_key(), Algorithm::RS256, |_, _| {}))
        .is_ok());

    let elsewhere = codec_for("https://elsewhere")
        .sign_id_token(&claims(Utc::now()))
        .unwrap();
    refused(&elsewhere, "wrong issuer");

    // Another key, under this key's kid or its own.
    let small = small_pem();
    let other = EncodingKey::from_rsa_pem(small.as_bytes()).unwrap();
    refused(
        &resigned(&token, &other, Algorithm::RS256, |_, _| {}),
        "bad signature",
    );
    refused(
        &resigned(&token, &other, Algorithm::RS256, |header, _| {
            header["kid"] = json!("another-key");
        }),
        "unknown signing key",
    );
    let (rest, signature) = token.rsplit_once('.').unwrap();
    let flipped = if signature.starts_with('A') { 'B' } else { 'A' };
    refused(
        &format!("{rest}.{flipped}{}", &signature[1..]),
        "bad signature",
    );
    let forged_sub = resigned(&token, &other, Algorithm::RS256, |_, claims| {
        claims["sub"] = json!(UserId::new().to_string());
    });
    let with_real_signature = format!("{}.{}", forged_sub.rsplit_once('.').unwrap().0, signature);
    refused(&with_real_signature, "bad signature");

    // HS256 keyed with the public modulus (the classic confusion), and no algorithm at all.
    let n = c.jwk()["n"].as_str().unwrap().to_owned();
    refused(
        &resigned(
            &token,
            &EncodingKey::from_secret(n.as_bytes()),
            Algorithm::HS256,
            |header, _| header["alg"] = json!("HS256"),
        ),
        "unexpected algorithm",
    );
    let unsigned_header = {
        let mut header = part(&token, 0);
        header["alg"] = json!("none");
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap())
    };
    let payload = token.split('.').nth(1).unwrap();
    assert!(matches!(
        c.read_id_token_hint(&format!("{unsigned_header}.{payload}.")),
        Err(TokenError::Invalid(_))
    ));
    assert!(matches!(
        c.read_id_token_hint(&format!("{unsigned_header}.{payload}")),
        Err(TokenError::Invalid(_))
    ));
}

#[test]
fn a_hint_of_another_type_or_shape_is_refused() {
    let c = codec();
    let token = c.sign_id_token(&claims(Utc::now())).unwrap();
    let key = own_key();
    let with = |edit: &dyn Fn(&mut Value, &mut Value)| {
        resigned(&token, &key, Algorithm::RS256, |header, claims| {
            edit(header, claims)
        })
    };
    for (token, reason) in [
        (
            with(&|h, _| h["typ"] = json!("at+jwt")),
            "not an ID token (typ)",
        ),
        (
            with(&|h, _| h["typ"] = json!("application/at+jwt")),
            "not an ID token (typ)",
        ),
        (
            with(&|h, _| {
                h.as_object_mut().unwrap().remove("typ");
            }),
            "not an ID token (typ)",
        ),
        (
            with(&|h, _| h["crit"] = json!(["exp"])),
            "critical header extension not understood (crit)",
        ),
        (with(&|_, c| c["sub"] = json!("alice")), "malformed claims"),
        (with(&|_, c| c["sid"] = json!("")), "malformed claims"),
        (
            with(&|_, c| c["aud"] = json!("my-client")),
            "malformed claims",
        ),
        (
            with(&|_, c| {
                c.as_object_mut().unwrap().remove("sid");
            }),
            "malformed token",
        ),
    ] {
        assert_eq!(
            c.read_id_token_hint(&token),
            Err(TokenError::Invalid(reason)),
            "{} {}",
            part(&token, 0),
            part(&token, 1)
        );
    }
    let without_issuer = with(&|_, c| {
        c.as_object_mut().unwrap().remove("iss");
    });
    assert!(matches!(
        c.read_id_token_hint(&without_issuer),
        Err(TokenError::Invalid(_))
    ));
    // An audience list is not what this service signs.
    let listed = with(&|_, c| c["aud"] = json!([c["aud"].clone()]));
    assert!(c.read_id_token_hint(&listed).is_err());
    assert!(c.read_id_token_hint("not.a.token").is_err());
    assert!(c.read_id_token_hint("").is_err());
}

fn access_claims(now: DateTime<Utc>) -> AccessClaims {
    AccessClaims {
        user_id: UserId::new(),
        session_id: SessionId::new(),
        username: "alice".into(),
        roles: Roles::new([Role::User]),
        scope: Roles::new([Role::User]),
        oidc: Default::default(),
        client_id: Some(ClientId::new()),
        issued_at: now,
        not_before: now,
        expires_at: now + Duration::minutes(15),
        token_id: Uuid::now_v7(),
    }
}

#[test]
fn access_and_id_tokens_never_pass_for_each_other_even_signed_with_the_same_key() {
    let now = Utc::now();
    let id_codec = codec();
    let same_key = keys::from_private_pem(Algorithm::RS256, test_key_pem()).unwrap();
    let rs256 = JwtCodec::new(same_key, Vec::new(), ISSUER, "auth-service", 30).unwrap();
    assert_eq!(rs256.signing_kid(), id_codec.kid());
    let hs256 = JwtCodec::hs256(
        &SecretString::from("0123456789abcdef0123456789abcdef"),
        ISSUER,
        "auth-service",
        30,
    );

    let id_token = id_codec.sign_id_token(&claims(now)).unwrap();
    for access in [&rs256, &hs256] {
        let user_token = access.sign(&access_claims(now)).unwrap();
        let client_token = access
            .sign_client(&ClientAccessClaims {
                client_id: ClientId::new(),
                scope: Roles::new([Role::User]),
                issued_at: now,
                not_before: now,
                expires_at: now + Duration::minutes(15),
                token_id: Uuid::now_v7(),
            })
            .unwrap();
        // The access tokens are good ones...
        assert!(access.verify(&user_token, now).is_ok());
        assert!(access.verify_any(&client_token, now).is_ok());
        // ...but no hint, whatever signed them.
        for token in [&user_token, &client_token] {
            let refused = id_codec.read_id_token_hint(token).unwrap_err();
            assert!(matches!(refused, TokenError::Invalid(_)), "{refused:?}");
        }
        // And an ID token is no access token.
        assert!(matches!(
            access.verify(&id_token, now),
            Err(TokenError::Invalid(_))
        ));
        assert!(matches!(
            access.verify_any(&id_token, now),
            Err(TokenError::Invalid(_))
        ));
    }
    // With the same key, the type alone tells them apart: everything else checks out.
    let user_token = rs256.sign(&access_claims(now)).unwrap();
    assert_eq!(
        id_codec.read_id_token_hint(&user_token),
        Err(TokenError::Invalid("not an ID token (typ)"))
    );
    assert_eq!(
        rs256.verify(&id_token, now),
        Err(TokenError::Invalid("not an access token (typ)"))
    );
    assert_eq!(
        rs256.verify_any(&id_token, now),
        Err(TokenError::Invalid("not an access token (typ)"))
    );
}

#[test]
fn the_published_key_set_has_every_key_once() {
    let id_codec = codec();
    let same_key = keys::from_private_pem(Algorithm::RS256, test_key_pem()).unwrap();
    let rs256 = JwtCodec::new(same_key, Vec::new(), ISSUER, "auth-service", 30).unwrap();
    assert_eq!(
        id_codec.jwks_with(rs256.jwks()),
        json!({"keys": [id_codec.jwk()]}),
        "the reused key is published once"
    );
    let hs256 = JwtCodec::hs256(&SecretString::from("x".repeat(32)), ISSUER, "aud", 30);
    assert_eq!(
        id_codec.jwks_with(hs256.jwks()),
        json!({"keys": [id_codec.jwk()]})
    );
    let ed = keys::generate_private_pem(Algorithm::EdDSA).unwrap();
    let eddsa = JwtCodec::new(
        keys::from_private_pem(Algorithm::EdDSA, &ed).unwrap(),
        vec![keys::from_verification_pem(test_key_pem()).unwrap()],
        ISSUER,
        "aud",
        30,
    )
    .unwrap();
    // An earlier access key that is the ID-token key is not repeated either.
    let jwks = id_codec.jwks_with(eddsa.jwks());
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, [eddsa.signing_kid(), id_codec.kid()]);
    let only_ed = JwtCodec::new(
        keys::from_private_pem(Algorithm::EdDSA, &ed).unwrap(),
        Vec::new(),
        ISSUER,
        "aud",
        30,
    )
    .unwrap();
    assert_eq!(
        id_codec.jwks_with(only_ed.jwks())["keys"],
        json!([only_ed.jwks()["keys"][0], id_codec.jwk()])
    );
}

#[test]
fn the_codec_takes_only_an_rsa_signing_key() {
    let ed = keys::generate_private_pem(Algorithm::EdDSA).unwrap();
    let error = RsaIdTokenCodec::new(
        keys::from_private_pem(Algorithm::EdDSA, &ed).unwrap(),
        ISSUER,
    )
    .err()
    .unwrap();
    assert!(error.to_string().contains("RS256"), "{error}");
    let public_only = keys::from_verification_pem(test_key_pem()).unwrap();
    assert!(RsaIdTokenCodec::new(public_only, ISSUER).is_err());
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn sources<'a>(
    key_file: Option<&'a Path>,
    access_key_file: Option<&'a Path>,
    dev_key_dir: Option<&'a Path>,
) -> IdKeySources<'a> {
    IdKeySources {
        key_file,
        access_key_file,
        dev_key_dir,
    }
}

#[test]
fn the_key_file_comes_first_then_the_rs256_access_key() {
    let dir = tempfile::tempdir().unwrap();
    let own = write(dir.path(), "oidc.pem", test_key_pem());
    let expected = keys::from_private_pem(Algorithm::RS256, test_key_pem())
        .unwrap()
        .kid;
    let small = write(dir.path(), "small.pem", &small_pem());
    let dev = dir.path().join("dev");
    // The key file wins over the access key (here unusable, so it would fail if read) and the
    // development directory.
    let key = load_key(&sources(Some(&own), Some(&small), Some(&dev))).unwrap();
    assert_eq!(key.kid, expected);
    assert!(key.encoding.is_some());
    // Without it, the RS256 access key is reused.
    let key = load_key(&sources(None, Some(&own), Some(&dev))).unwrap();
    assert_eq!(key.kid, expected);
    assert!(!dev.exists(), "no development key was generated");
}

#[test]
fn an_unusable_key_file_is_refused_naming_the_variable_and_never_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let small = small_pem();
    let ed = keys::generate_private_pem(Algorithm::EdDSA).unwrap();
    let cases = [
        (write(dir.path(), "small.pem", &small), "1024 bits", &small),
        (
            write(dir.path(), "ed.pem", &ed),
            "not a PKCS#8 RS256 private key",
            &ed,
        ),
        (
            write(dir.path(), "garbage.pem", "not a key"),
            "not a PKCS#8 RS256 private key",
            &String::new(),
        ),
        (
            dir.path().join("missing.pem"),
            "cannot read",
            &String::new(),
        ),
    ];
    for (path, reason, pem) in &cases {
        let error = load_key(&sources(Some(path), None, Some(dir.path())))
            .err()
            .unwrap()
            .to_string();
        assert!(error.starts_with("OIDC_SIGNING_KEY_FILE"), "{error}");
        assert!(error.contains(&path.display().to_string()), "{error}");
        assert!(error.contains(reason), "{error}");
        for line in pem.lines().filter(|l| !l.starts_with("-----")) {
            assert!(!error.contains(line), "the key is never in the message");
        }
    }
    let error = load_key(&sources(Some(&cases[0].0), None, None))
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("at least 2048"), "{error}");
    // The reused access key is named as such.
    let error = load_key(&sources(None, Some(&cases[1].0), None))
        .err()
        .unwrap()
        .to_string();
    assert!(error.starts_with("JWT_PRIVATE_KEY_FILE"), "{error}");
}

#[test]
fn production_without_a_key_refuses_and_says_how_to_make_one() {
    let error = load_key(&sources(None, None, None))
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("OIDC_SIGNING_KEY_FILE"), "{error}");
    assert!(
        error.contains("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072"),
        "{error}"
    );
}

#[test]
fn development_generates_the_key_once_in_the_dev_key_dir_and_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let dev = dir.path().join("keys");
    let first = load_key(&sources(None, None, Some(&dev))).unwrap();
    let path = dev.join("rs256.pem");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert_eq!(
        std::fs::read_dir(&dev).unwrap().count(),
        1,
        "no temporary file is left"
    );
    let again = load_key(&sources(None, None, Some(&dev))).unwrap();
    assert_eq!(first.kid, again.kid);
    // It is the development RS256 key of the access tokens too.
    let (access, _) = keys::load(&keys::KeySources {
        algorithm: keys::JwtAlgorithm::Rs256,
        secret: b"",
        private_key_file: None,
        verify_key_files: &[],
        dev_key_dir: Some(&dev),
    })
    .unwrap();
    assert_eq!(access.kid, first.kid);
    assert!(first.encoding.is_some());
    let c = RsaIdTokenCodec::new(first, ISSUER).unwrap();
    let signed = claims(Utc::now());
    assert_eq!(
        c.read_id_token_hint(&c.sign_id_token(&signed).unwrap()),
        Ok(hint(&signed))
    );
}

/// The builder of the wiring, from settings: which key each environment takes.
mod from_settings {
    use std::collections::HashMap;

    use super::*;
    use crate::infrastructure::bootstrap::{build_codec, build_id_token_codec};
    use crate::infrastructure::config::Settings;

    fn settings(vars: &[(&str, &str)]) -> Settings {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_lookup(|key| vars.get(key).cloned()).unwrap()
    }

    #[test]
    fn production_signs_id_tokens_with_the_configured_or_the_rs256_access_key_or_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("rsa.pem");
        std::fs::write(&pem, test_key_pem()).unwrap();
        let pem = pem.to_str().unwrap();
        let secret = "k".repeat(32);
        let dev_dir = dir.path().join("dev");
        let dev_dir = dev_dir.to_str().unwrap();
        let production = [
            ("APP_ENV", "production"),
            (
                "MFA_ENCRYPTION_KEY",
                "Kd8LSQclKTFUGxsUBT3BFJw2zyGAPKUOrEswAwzLKN0=",
            ),
            ("JWT_SECRET", secret.as_str()),
            ("JWT_DEV_KEY_DIR", dev_dir),
        ];

        let error = build_id_token_codec(&settings(&production))
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("OIDC_SIGNING_KEY_FILE"), "{error}");
        assert!(error.contains("rsa_keygen_bits:3072"), "{error}");
        // An RS256 access key file is not enough under another algorithm.
        let error = build_id_token_codec(&settings(
            &[&production[..], &[("JWT_PRIVATE_KEY_FILE", pem)]].concat(),
        ))
        .err()
        .unwrap()
        .to_string();
        assert!(error.contains("OIDC_SIGNING_KEY_FILE"), "{error}");

        let own = settings(&[&production[..], &[("OIDC_SIGNING_KEY_FILE", pem)]].concat());
        let codec = build_id_token_codec(&own).unwrap();
        let rs256 = settings(
            &[
                &production[..],
                &[("JWT_ALGORITHM", "RS256"), ("JWT_PRIVATE_KEY_FILE", pem)],
            ]
            .concat(),
        );
        let reused = build_id_token_codec(&rs256).unwrap();
        assert_eq!(reused.kid(), codec.kid());
        let access = build_codec(&rs256).unwrap();
        assert_eq!(access.signing_kid(), reused.kid());
        assert_eq!(
            reused.jwks_with(access.jwks())["keys"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert!(
            !std::path::Path::new(dev_dir).exists(),
            "production never generates a key"
        );
    }

    #[test]
    fn development_signs_id_tokens_with_the_key_kept_in_the_dev_key_dir() {
        let dir = tempfile::tempdir().unwrap();
        // Put there as a first start would have generated it.
        std::fs::write(dir.path().join("rs256.pem"), test_key_pem()).unwrap();
        let development = settings(&[
            ("APP_ENV", "development"),
            ("JWT_DEV_KEY_DIR", dir.path().to_str().unwrap()),
        ]);
        let codec = build_id_token_codec(&development).unwrap();
        let expected = keys::from_private_pem(jsonwebtoken::Algorithm::RS256, test_key_pem())
            .unwrap()
            .kid;
        assert_eq!(codec.kid(), expected);
    }
}
