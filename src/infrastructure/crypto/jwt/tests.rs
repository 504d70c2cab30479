//! The codec: claims round-trip, every refusal of verification, key rotation.

use chrono::{Duration, TimeZone};
use jsonwebtoken::decode_header;

use super::*;
use crate::domain::client::ClientId;
use crate::domain::user::Role;

fn codec(secret: &str) -> JwtCodec {
    JwtCodec::hs256(&SecretString::from(secret), "https://issuer", "api", 30)
}

fn claims(now: DateTime<Utc>) -> AccessClaims {
    AccessClaims {
        user_id: UserId::new(),
        session_id: SessionId::new(),
        username: "alice".into(),
        roles: Roles::new([Role::User, Role::Admin]),
        scope: Roles::new([Role::User]),
        oidc: Default::default(),
        client_id: None,
        issued_at: now,
        not_before: now,
        expires_at: now + Duration::minutes(15),
        token_id: Uuid::now_v7(),
    }
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 1, 10, 0, 0).unwrap()
}

#[test]
fn signed_claims_verify_back_to_the_same_claims() {
    let c = codec("0123456789abcdef0123456789abcdef");
    let original = claims(now());
    let token = c.sign(&original).unwrap();
    let header = decode_header(&token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert!(header.kid.is_some());
    assert_eq!(c.verify(&token, now()).unwrap(), original);
}

#[test]
fn expiry_and_not_before_respect_the_leeway() {
    let c = codec("0123456789abcdef0123456789abcdef");
    let token = c.sign(&claims(now())).unwrap();
    let after_expiry = now() + Duration::minutes(15);
    assert!(c
        .verify(&token, after_expiry + Duration::seconds(29))
        .is_ok());
    assert_eq!(
        c.verify(&token, after_expiry + Duration::seconds(30)),
        Err(TokenError::Expired)
    );
    assert!(c.verify(&token, now() - Duration::seconds(29)).is_ok());
    assert!(c.verify(&token, now() - Duration::seconds(31)).is_err());
}

#[test]
fn a_remembered_token_answers_only_for_its_exact_text_and_still_expires() {
    let c = codec("0123456789abcdef0123456789abcdef");
    let original = claims(now());
    let token = c.sign(&original).unwrap();
    assert_eq!(c.verify(&token, now()).unwrap(), original);
    // The same token again comes from the remembered set, with the same answer.
    assert_eq!(c.verify(&token, now()).unwrap(), original);
    let (rest, signature) = token.rsplit_once('.').unwrap();
    let flipped = if signature.starts_with('A') { 'B' } else { 'A' };
    let tampered = format!("{rest}.{flipped}{}", &signature[1..]);
    assert_eq!(
        c.verify(&tampered, now()),
        Err(TokenError::Invalid("bad signature"))
    );
    assert_eq!(
        c.verify(&token, now() + Duration::hours(1)),
        Err(TokenError::Expired)
    );
}

#[test]
fn tokens_of_another_key_issuer_or_audience_are_rejected() {
    let token = codec("0123456789abcdef0123456789abcdef")
        .sign(&claims(now()))
        .unwrap();
    let other_key = codec("another-secret-another-secret-xx");
    assert_eq!(
        other_key.verify(&token, now()),
        Err(TokenError::Invalid("unknown signing key"))
    );
    let other_issuer = JwtCodec::hs256(
        &SecretString::from("0123456789abcdef0123456789abcdef"),
        "https://elsewhere",
        "api",
        30,
    );
    assert_eq!(
        other_issuer.verify(&token, now()),
        Err(TokenError::Invalid("wrong issuer"))
    );
    assert!(codec("x").verify("not.a.jwt", now()).is_err());
}

#[test]
fn after_a_rotation_tokens_of_the_previous_key_still_verify_until_they_expire() {
    use jsonwebtoken::Algorithm;
    let old_pem = keys::generate_private_pem(Algorithm::EdDSA).unwrap();
    let new_pem = keys::generate_private_pem(Algorithm::ES256).unwrap();
    // A codec signing with `pem` of `algorithm`, still accepting `previous`.
    let signing_with = |algorithm, pem: &str, previous: &[&str]| {
        let previous = previous
            .iter()
            .map(|pem| keys::from_verification_pem(pem).unwrap())
            .collect();
        let signing = keys::from_private_pem(algorithm, pem).unwrap();
        JwtCodec::new(signing, previous, "https://issuer", "api", 30).unwrap()
    };
    let before = signing_with(Algorithm::EdDSA, &old_pem, &[]);
    let old_token = before.sign(&claims(now())).unwrap();
    let after = signing_with(Algorithm::ES256, &new_pem, &[&old_pem]);
    assert!(after.verify(&old_token, now()).is_ok());
    assert_eq!(after.jwks()["keys"].as_array().unwrap().len(), 2);
    assert_eq!(
        decode_header(after.sign(&claims(now())).unwrap())
            .unwrap()
            .alg,
        Algorithm::ES256
    );
    // Without the old key in the verification set, the old token is refused.
    let forgetful = signing_with(Algorithm::ES256, &new_pem, &[]);
    assert_eq!(
        forgetful.verify(&old_token, now()),
        Err(TokenError::Invalid("unknown signing key"))
    );
}

/// `token` re-signed (HS256, `secret`) with `edit` applied to its header and claims.
fn resigned(token: &str, secret: &str, edit: impl FnOnce(&mut Value, &mut Value)) -> String {
    let part = |i: usize| -> Value {
        serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(token.split('.').nth(i).unwrap())
                .unwrap(),
        )
        .unwrap()
    };
    let (mut header, mut claims) = (part(0), part(1));
    edit(&mut header, &mut claims);
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap()),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap())
    );
    let key = EncodingKey::from_secret(secret.as_bytes());
    let signature = jsonwebtoken::crypto::sign(
        signing_input.as_bytes(),
        &key,
        jsonwebtoken::Algorithm::HS256,
    )
    .unwrap();
    format!("{signing_input}.{signature}")
}

#[test]
fn a_header_with_crit_is_refused_whatever_it_names() {
    let secret = "0123456789abcdef0123456789abcdef";
    let c = codec(secret);
    let token = c.sign(&claims(now())).unwrap();
    let control = resigned(&token, secret, |_, _| {});
    assert!(c.verify(&control, now()).is_ok());
    for crit in [
        json!(["exp"]),
        json!(["urn:x"]),
        json!([]),
        json!(null),
        json!("exp"),
        json!({"exp": true}),
    ] {
        let with_crit = resigned(&token, secret, |header, _| {
            header["crit"] = crit.clone();
            header["urn:x"] = json!("1");
        });
        assert!(
            matches!(c.verify(&with_crit, now()), Err(TokenError::Invalid(_))),
            "crit {crit}"
        );
    }
    // A duplicated member cannot hide it either.
    let header = URL_SAFE_NO_PAD.encode(format!(
        r#"{{"typ":"at+jwt","alg":"HS256","kid":"{}","crit":["urn:x"],"crit":null}}"#,
        c.signing_kid()
    ));
    let payload = token.split('.').nth(1).unwrap();
    let signing_input = format!("{header}.{payload}");
    let signature = jsonwebtoken::crypto::sign(
        signing_input.as_bytes(),
        &EncodingKey::from_secret(secret.as_bytes()),
        jsonwebtoken::Algorithm::HS256,
    )
    .unwrap();
    assert!(c
        .verify(&format!("{signing_input}.{signature}"), now())
        .is_err());
    // Nor extra segments.
    assert!(c.verify(&format!("{control}.x"), now()).is_err());
}

#[test]
fn a_token_issued_in_the_future_is_refused_beyond_the_leeway_even_when_remembered() {
    let secret = "0123456789abcdef0123456789abcdef";
    let c = codec(secret);
    let token = c.sign(&claims(now())).unwrap();
    let at = |iat: DateTime<Utc>| {
        resigned(&token, secret, |_, claims| {
            claims["iat"] = json!(iat.timestamp());
        })
    };
    assert!(c.verify(&at(now() + Duration::seconds(30)), now()).is_ok());
    assert_eq!(
        c.verify(&at(now() + Duration::seconds(31)), now()),
        Err(TokenError::Invalid("token issued in the future"))
    );
    let future = at(now() + Duration::minutes(10));
    assert!(c.verify(&future, now()).is_err());
    // Checked at every use: once its iat is past, the same token is fine, and the
    // remembered copy is checked again against an earlier clock.
    assert!(c.verify(&future, now() + Duration::minutes(10)).is_ok());
    assert!(c.verify(&future, now()).is_err());
}

/// The claims of `token`, as JSON text exactly as signed.
fn payload_text(token: &str) -> String {
    String::from_utf8(
        URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap()
}

fn payload(token: &str) -> Value {
    serde_json::from_str(&payload_text(token)).unwrap()
}

fn client_claims(now: DateTime<Utc>) -> ClientAccessClaims {
    ClientAccessClaims {
        client_id: ClientId::new(),
        scope: Roles::new([Role::User]),
        issued_at: now,
        not_before: now,
        expires_at: now + Duration::minutes(15),
        token_id: Uuid::now_v7(),
    }
}

#[test]
fn a_password_grant_token_carries_exactly_the_claims_it_always_had() {
    let c = codec("0123456789abcdef0123456789abcdef");
    let original = claims(now());
    let token = c.sign(&original).unwrap();
    let expected = format!(
        r#"{{"iss":"https://issuer","aud":"api","sub":"{}","exp":{},"iat":{},"nbf":{},"jti":"{}","sid":"{}","username":"alice","roles":["user","admin"],"scope":"user"}}"#,
        original.user_id,
        original.expires_at.timestamp(),
        original.issued_at.timestamp(),
        original.not_before.timestamp(),
        original.token_id,
        original.session_id,
    );
    assert_eq!(payload_text(&token), expected);
    let header = decode_header(&token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
}

#[test]
fn a_client_session_token_carries_the_whole_scope_and_the_client_and_verifies_back() {
    use crate::domain::oidc::{OidcScope, OidcScopes};
    let c = codec("0123456789abcdef0123456789abcdef");
    let mut original = claims(now());
    original.oidc = OidcScopes::NONE
        .with(OidcScope::Profile)
        .with(OidcScope::OpenId)
        .with(OidcScope::OfflineAccess);
    original.client_id = Some(ClientId::new());
    let token = c.sign(&original).unwrap();
    let wire = payload(&token);
    assert_eq!(wire["scope"], "openid profile offline_access user");
    assert_eq!(
        wire["client_id"],
        original.client_id.unwrap().to_string().as_str()
    );
    assert_eq!(wire["sub"], original.user_id.to_string().as_str());
    assert_eq!(c.verify(&token, now()).unwrap(), original);
    assert_eq!(
        c.verify_any(&token, now()).unwrap(),
        VerifiedAccess::User(original)
    );
}

#[test]
fn a_client_credentials_token_verifies_only_as_a_client_token() {
    let c = codec("0123456789abcdef0123456789abcdef");
    let original = client_claims(now());
    let token = c.sign_client(&original).unwrap();
    let header = decode_header(&token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let wire = payload(&token);
    let id = original.client_id.to_string();
    assert_eq!(wire["sub"], id.as_str());
    assert_eq!(wire["client_id"], id.as_str());
    assert_eq!(wire["scope"], "user");
    let mut names: Vec<&str> = wire
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "aud",
            "client_id",
            "exp",
            "iat",
            "iss",
            "jti",
            "nbf",
            "scope",
            "sub"
        ]
    );
    // Refused as a user's token, before and after it was verified (and remembered) as a
    // client's.
    assert_eq!(
        c.verify(&token, now()),
        Err(TokenError::Invalid(NOT_A_USER_TOKEN))
    );
    assert_eq!(
        c.verify_any(&token, now()).unwrap(),
        VerifiedAccess::Client(original.clone())
    );
    assert_eq!(
        c.verify_any(&token, now()).unwrap(),
        VerifiedAccess::Client(original)
    );
    assert_eq!(
        c.verify(&token, now()),
        Err(TokenError::Invalid(NOT_A_USER_TOKEN))
    );
    // The time checks apply to it as to any token, remembered or not.
    assert_eq!(
        c.verify_any(&token, now() + Duration::hours(1)),
        Err(TokenError::Expired)
    );
    assert_eq!(
        codec("0123456789abcdef0123456789abcdef").verify_any(&token, now() + Duration::hours(1)),
        Err(TokenError::Expired)
    );
}

#[test]
fn verify_any_makes_every_check_of_verify() {
    let secret = "0123456789abcdef0123456789abcdef";
    let c = codec(secret);
    let token = c.sign_client(&client_claims(now())).unwrap();
    let (rest, signature) = token.rsplit_once('.').unwrap();
    let flipped = if signature.starts_with('A') { 'B' } else { 'A' };
    assert_eq!(
        c.verify_any(&format!("{rest}.{flipped}{}", &signature[1..]), now()),
        Err(TokenError::Invalid("bad signature"))
    );
    assert_eq!(
        codec("another-secret-another-secret-xx").verify_any(&token, now()),
        Err(TokenError::Invalid("unknown signing key"))
    );
    let other_issuer = JwtCodec::hs256(&SecretString::from(secret), "https://elsewhere", "api", 30);
    assert_eq!(
        other_issuer.verify_any(&token, now()),
        Err(TokenError::Invalid("wrong issuer"))
    );
    let other_audience = JwtCodec::hs256(&SecretString::from(secret), "https://issuer", "web", 30);
    assert_eq!(
        other_audience.verify_any(&token, now()),
        Err(TokenError::Invalid("wrong audience"))
    );
    let with_crit = resigned(&token, secret, |header, _| {
        header["crit"] = json!(["urn:x"])
    });
    assert!(matches!(
        c.verify_any(&with_crit, now()),
        Err(TokenError::Invalid(_))
    ));
    let untyped = resigned(&token, secret, |header, _| header["typ"] = json!("JWT"));
    assert_eq!(
        c.verify_any(&untyped, now()),
        Err(TokenError::Invalid("not an access token (typ)"))
    );
    let future = resigned(&token, secret, |_, claims| {
        claims["iat"] = json!((now() + Duration::minutes(5)).timestamp());
    });
    assert_eq!(
        c.verify_any(&future, now()),
        Err(TokenError::Invalid("token issued in the future"))
    );
    let early = resigned(&token, secret, |_, claims| {
        claims["nbf"] = json!((now() + Duration::minutes(5)).timestamp());
    });
    assert_eq!(
        c.verify_any(&early, now()),
        Err(TokenError::Invalid("token not yet valid"))
    );
}

#[test]
fn claims_of_neither_kind_are_refused_even_when_signed_with_the_key() {
    let secret = "0123456789abcdef0123456789abcdef";
    let c = codec(secret);
    let user = c.sign(&claims(now())).unwrap();
    let client = c.sign_client(&client_claims(now())).unwrap();
    let other_client = ClientId::new().to_string();
    let malformed = [
        // A user's token stripped of its session is not a client's either.
        resigned(&user, secret, |_, claims| {
            claims.as_object_mut().unwrap().remove("sid");
        }),
        resigned(&user, secret, |_, claims| {
            claims.as_object_mut().unwrap().remove("username");
        }),
        resigned(&user, secret, |_, claims| {
            claims["client_id"] = json!("web-app")
        }),
        resigned(&user, secret, |_, claims| {
            claims["scope"] = json!("openid bogus")
        }),
        resigned(&client, secret, |_, claims| {
            claims["username"] = json!("alice")
        }),
        resigned(&client, secret, |_, claims| {
            claims["roles"] = json!(["admin"])
        }),
        resigned(&client, secret, |_, claims| {
            claims["client_id"] = json!(other_client.as_str());
        }),
        resigned(&client, secret, |_, claims| {
            claims.as_object_mut().unwrap().remove("client_id");
        }),
        // OpenID values are a user's; a client acts only with roles.
        resigned(&client, secret, |_, claims| {
            claims["scope"] = json!("openid user")
        }),
        // A client's token given a session id is still no user's: it has no user.
        resigned(&client, secret, |_, claims| {
            claims["sid"] = json!(SessionId::new().to_string());
        }),
    ];
    for token in malformed {
        assert_eq!(
            c.verify_any(&token, now()),
            Err(TokenError::Invalid("malformed claims")),
            "{}",
            payload_text(&token)
        );
        assert!(c.verify(&token, now()).is_err());
    }
    // The control: re-signed unchanged, both verify.
    assert!(c.verify(&resigned(&user, secret, |_, _| {}), now()).is_ok());
    assert!(c
        .verify_any(&resigned(&client, secret, |_, _| {}), now())
        .is_ok());
}

#[test]
fn the_verified_token_cache_stays_within_its_memory_budget() {
    let budget = 64 << 10;
    let c = codec("0123456789abcdef0123456789abcdef").with_token_cache(budget);
    for _ in 0..2_000 {
        let token = c.sign(&claims(now())).unwrap();
        c.verify(&token, now()).unwrap();
    }
    let (tokens, weight) = c.verified.usage();
    assert!(weight <= budget, "{weight} > {budget}");
    assert!(tokens > 100, "only {tokens} tokens remembered");
    // A zero budget remembers nothing, and still verifies.
    let off = codec("0123456789abcdef0123456789abcdef").with_token_cache(0);
    let token = off.sign(&claims(now())).unwrap();
    assert!(off.verify(&token, now()).is_ok());
    assert!(off.verify(&token, now()).is_ok());
    assert_eq!(off.verified.usage(), (0, 0));
}

#[test]
fn an_expired_remembered_token_is_refused_and_forgotten() {
    let c = codec("0123456789abcdef0123456789abcdef");
    let token = c.sign(&claims(now())).unwrap();
    c.verify(&token, now()).unwrap();
    assert_eq!(c.verified.usage().0, 1);
    let too_late = now() + Duration::minutes(15) + Duration::seconds(30);
    assert_eq!(c.verify(&token, too_late), Err(TokenError::Expired));
    assert_eq!(c.verify_any(&token, too_late), Err(TokenError::Expired));
    assert_eq!(c.verified.usage().0, 0);
}

#[test]
fn a_different_token_with_the_same_claims_is_not_confused_with_a_remembered_one() {
    let secret = "0123456789abcdef0123456789abcdef";
    let c = codec(secret);
    let original = claims(now());
    let token = c.sign(&original).unwrap();
    assert_eq!(c.verify(&token, now()).unwrap(), original);
    // The same claims under another key: never answered from the remembered token.
    let forged = codec("another secret, another secret, 0")
        .sign(&original)
        .unwrap();
    assert_ne!(forged, token);
    assert!(c.verify(&forged, now()).is_err());
    // The same header and claims with a broken signature, and the same signature under other
    // claims: both refused although the remembered token shares most of their text.
    let (head, signature) = token.rsplit_once('.').unwrap();
    let flipped = if signature.ends_with('A') { 'B' } else { 'A' };
    let bad_signature = format!("{head}.{}{flipped}", &signature[..signature.len() - 1]);
    assert!(c.verify(&bad_signature, now()).is_err());
    let other = c.sign(&claims(now())).unwrap();
    let (other_head, _) = other.rsplit_once('.').unwrap();
    assert!(c
        .verify(&format!("{other_head}.{signature}"), now())
        .is_err());
    // The remembered token still answers with its own claims.
    assert_eq!(c.verify(&token, now()).unwrap(), original);
}

/// The real memory of a remembered token: the cache's own count of its slots and index
/// (`memory_used`) plus the claims' heap blocks, which it does not see. Run with
/// `cargo test --lib token_cache_cost -- --nocapture` to print it; asserts the weight does
/// not understate it.
#[test]
fn token_cache_cost_per_entry() {
    let c = codec("0123456789abcdef0123456789abcdef").with_token_cache(64 << 20);
    let n = 20_000u64;
    for _ in 0..n {
        let token = c.sign(&claims(now())).unwrap();
        c.verify(&token, now()).unwrap();
    }
    let cache = c.verified.tokens.as_ref().unwrap();
    assert_eq!(cache.len() as u64, n);
    let slots = cache.memory_used().total() as u64;
    // The username "alice" and the two roles vectors: three blocks of 32 bytes each with the
    // allocator's header (glibc's smallest chunk).
    let heap = 3 * 32;
    let real = slots / n + heap;
    let weight = cache.weight() / n;
    println!(
        "token cache: {} bytes of slots and index per entry, about {real} with the heap; weight {weight}; size_of VerifiedAccess {}",
        slots / n,
        std::mem::size_of::<VerifiedAccess>()
    );
    assert!(weight >= real, "weight {weight} < real {real}");
    assert!(weight <= real * 2, "weight {weight} overstates {real}");
}
