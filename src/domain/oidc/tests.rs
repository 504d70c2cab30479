use super::*;
use crate::domain::user::{Role, Roles};

#[test]
fn the_rfc_7636_example_verifier_matches_its_challenge() {
    let verifier = CodeVerifier::parse("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk").unwrap();
    let challenge =
        CodeChallenge::parse_s256("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM").unwrap();
    assert!(challenge.matches(&verifier));
    let other = CodeVerifier::parse(&"a".repeat(43)).unwrap();
    assert!(!challenge.matches(&other));
}

#[test]
fn verifiers_and_challenges_outside_the_rfc_are_refused() {
    for bad in [
        "",
        "short",
        &"a".repeat(42),
        &"a".repeat(129),
        &format!("{}é", "a".repeat(43)),
        &format!("{} ", "a".repeat(43)),
    ] {
        assert!(CodeVerifier::parse(bad).is_err(), "{bad:?}");
    }
    assert!(CodeVerifier::parse(&"a-._~".repeat(20)).is_ok());
    // `plain` challenges are verifiers: anything but a 43-character SHA-256 is refused.
    for bad in [
        "",
        &"a".repeat(44),
        &"a".repeat(128),
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-c+",
    ] {
        assert!(CodeChallenge::parse_s256(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn codes_and_sign_in_tokens_are_random_and_stored_as_hashes() {
    let code = AuthorizationCode::generate();
    assert_eq!(code.expose().len(), 43);
    assert_ne!(code.expose(), AuthorizationCode::generate().expose());
    assert_eq!(
        code.hash(),
        AuthorizationCode::from_presented(code.expose()).hash()
    );
    assert_eq!(code.hash().as_str().len(), 64);
    assert!(!format!("{code:?}").contains(code.expose()));
    let token = SigninToken::generate();
    assert!(!format!("{token:?}").contains(token.expose()));
    assert_eq!(
        token.hash(),
        SigninToken::from_presented(token.expose()).hash()
    );
}

#[test]
fn scopes_mix_openid_values_and_roles_and_refuse_anything_else() {
    let scope = Scope::parse("  admin openid  email openid user ").unwrap();
    assert_eq!(scope.to_space_separated(), "openid email user admin");
    assert!(scope.is_openid());
    assert_eq!(scope.roles, Roles::new([Role::User, Role::Admin]));
    assert_eq!(Scope::parse("openid Profile"), Err("Profile".to_owned()));
    assert!(Scope::parse(&"openid ".repeat(200)).is_err());
    assert!(Scope::parse("").unwrap().is_empty());
    let narrowed = scope.intersection(&Scope::parse("openid profile user").unwrap());
    assert_eq!(narrowed.to_space_separated(), "openid user");
    assert_eq!(
        Scope::from_stored("user").unwrap(),
        Scope::from(Roles::new([Role::User]))
    );
}

#[test]
fn at_hash_is_the_left_half_of_the_sha256_in_base64url() {
    // Expected value computed independently with Python's hashlib and base64.
    assert_eq!(
        at_hash("jHkWEdUXMU1BwAsC4vtUsZwnNhg"),
        "cbTSU53rtXpT7it6n2GhOw"
    );
}
