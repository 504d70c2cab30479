use super::*;

fn uri(raw: &str) -> Result<RedirectUri, &'static str> {
    RedirectUri::parse("redirect_uris", raw).map_err(|e| e.code)
}

#[test]
fn redirect_uris_must_be_https_or_loopback_http_without_fragment_or_wildcard() {
    for good in [
        "https://app.example.com/callback",
        "https://app.example.com:8443/cb?x=1",
        "http://127.0.0.1:8080/cb",
        "http://[::1]/cb",
        "http://localhost:3000/cb",
    ] {
        assert_eq!(
            uri(good).map(|u| u.as_str().to_owned()),
            Ok(good.to_owned())
        );
    }
    let bad = [
        ("/callback", "not_absolute"),
        ("app.example.com/cb", "not_absolute"),
        ("https://app.example.com/cb#frag", "fragment_not_allowed"),
        ("https://*.example.com/cb", "wildcard_not_allowed"),
        ("https://app.example.com/*", "wildcard_not_allowed"),
        ("http://app.example.com/cb", "insecure_scheme"),
        ("http://127.0.0.2/cb", "insecure_scheme"),
        ("http://localhost.evil.com/cb", "insecure_scheme"),
        ("javascript:alert(1)", "insecure_scheme"),
        ("data:text/html,x", "insecure_scheme"),
        ("com.example.app:/cb", "insecure_scheme"),
        (
            "https://user:pw@app.example.com/cb",
            "credentials_not_allowed",
        ),
        ("https://app.example.com/ cb", "invalid_characters"),
        ("https://app.example.com/\tcb", "invalid_characters"),
        ("https://exämple.com/cb", "invalid_characters"),
        ("", "invalid_length"),
    ];
    for (raw, code) in bad {
        assert_eq!(uri(raw).map(|_| ()), Err(code), "{raw}");
    }
    let huge = format!("https://example.com/{}", "a".repeat(600));
    assert_eq!(uri(&huge).map(|_| ()), Err("invalid_length"));
}

#[test]
fn uri_lists_are_bounded_deduplicated_and_round_trip_through_storage() {
    let list = |raw: &[&str]| raw.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        RedirectUris::parse("redirect_uris", &[], true)
            .unwrap_err()
            .code,
        "invalid_length"
    );
    assert!(RedirectUris::parse("post_logout_redirect_uris", &[], false)
        .unwrap()
        .is_empty());
    let eleven = list(&["https://a.example/cb"; 11]);
    assert!(RedirectUris::parse("redirect_uris", &eleven, true).is_err());
    let uris = RedirectUris::parse(
        "redirect_uris",
        &list(&[
            "https://a.example/cb",
            "http://127.0.0.1/cb",
            "https://a.example/cb",
        ]),
        true,
    )
    .unwrap();
    assert_eq!(uris.len(), 2);
    assert_eq!(split_uris(&join_uris(&uris)).unwrap(), uris);
    assert!(split_uris("").unwrap().is_empty());
}

#[test]
fn grant_types_are_a_closed_set_and_public_clients_have_no_client_credentials() {
    let names = |raw: &[&str]| raw.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let grants = GrantTypes::parse(
        &names(&["refresh_token", "authorization_code", "refresh_token"]),
        ClientType::Public,
    )
    .unwrap();
    assert_eq!(grants.names(), ["authorization_code", "refresh_token"]);
    assert_eq!(
        GrantTypes::from_stored(&grants.to_space_separated()),
        Ok(grants)
    );
    let code = |raw: &[&str], t| GrantTypes::parse(&names(raw), t).unwrap_err().code;
    assert_eq!(
        code(&["password"], ClientType::Confidential),
        "unknown_grant_type"
    );
    assert_eq!(
        code(&["implicit"], ClientType::Public),
        "unknown_grant_type"
    );
    assert_eq!(code(&[], ClientType::Public), "invalid_length");
    assert_eq!(
        code(&["refresh_token"; 4], ClientType::Public),
        "invalid_length"
    );
    assert_eq!(
        code(&["client_credentials"], ClientType::Public),
        "not_allowed_for_public_client"
    );
    assert!(GrantTypes::parse(&names(&["client_credentials"]), ClientType::Confidential).is_ok());
    assert!(GrantTypes::from_stored("password").is_err());
}

#[test]
fn scopes_are_known_values_and_names_are_bounded() {
    let scope = ClientScope::parse("openid  profile email openid admin").unwrap();
    assert_eq!(scope.to_space_separated(), "openid profile email admin");
    assert_eq!(
        ClientScope::parse("openid write").unwrap_err().code,
        "unknown_scope"
    );
    assert_eq!(
        ClientScope::parse("OPENID").unwrap_err().code,
        "unknown_scope"
    );
    assert_eq!(ClientScope::parse("").unwrap_err().code, "invalid_length");
    assert_eq!(ClientScope::parse("  ").unwrap_err().code, "invalid_length");
    let huge = "openid ".repeat(100);
    assert_eq!(
        ClientScope::parse(&huge).unwrap_err().code,
        "invalid_length"
    );
    assert_eq!(
        ClientName::parse("Ünïcødé app ✓").unwrap().as_str(),
        "Ünïcødé app ✓"
    );
    assert_eq!(ClientName::parse("").unwrap_err().code, "invalid_length");
    assert_eq!(ClientName::parse("   ").unwrap_err().code, "invalid_length");
    assert_eq!(
        ClientName::parse(&"é".repeat(101)).unwrap_err().code,
        "invalid_length"
    );
    assert_eq!(
        ClientName::parse("a\u{0}b").unwrap_err().code,
        "invalid_characters"
    );
    assert_eq!(
        ClientType::parse("secret").unwrap_err().code,
        "invalid_value"
    );
}

#[test]
fn secrets_carry_256_random_bits_and_verify_only_against_their_own_hash() {
    let secret = ClientSecret::generate();
    assert_eq!(secret.expose().len(), 43, "32 bytes in unpadded base64url");
    assert!(secret
        .expose()
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    let other = ClientSecret::generate();
    assert_ne!(secret.expose(), other.expose());
    let hash = secret.hash();
    assert_eq!(hash.as_str().len(), 64);
    assert!(!hash.as_str().contains(secret.expose()));
    assert!(hash.verify(secret.expose()));
    assert!(!hash.verify(other.expose()));
    assert!(!hash.verify(""));
    assert!(!hash.verify(&secret.expose()[..42]));
    assert!(!ClientSecretHash::from_stored(String::new()).verify(""));
    assert_eq!(format!("{secret:?}"), "ClientSecret(..)");
}

#[test]
fn redirect_uris_match_exactly_except_a_loopback_port() {
    let https = RedirectUri::parse("r", "https://app.example/cb?x=1").unwrap();
    assert!(https.matches("https://app.example/cb?x=1"));
    for other in [
        "https://app.example/cb?x=2",
        "https://app.example/cb?x=1&y=2",
        "https://APP.example/cb?x=1",
        "https://app.example:443/cb?x=1",
        "https://app.example/cb/?x=1",
        "https://app.example/cb?x=1#f",
        "http://app.example/cb?x=1",
        "https://app.example.evil/cb?x=1",
    ] {
        assert!(!https.matches(other), "{other}");
    }
    let native = RedirectUri::parse("r", "http://127.0.0.1/callback").unwrap();
    assert!(native.matches("http://127.0.0.1:54321/callback"));
    assert!(native.matches("http://127.0.0.1/callback"));
    for other in [
        "http://127.0.0.1:54321/callback2",
        "http://127.0.0.1:54321/Callback",
        "http://localhost:54321/callback",
        "https://127.0.0.1:54321/callback",
        "http://127.0.0.1:54321/callback#x",
        "http://127.0.0.1:54321/callback?x",
        "http://127.0.0.2:54321/callback",
    ] {
        assert!(!native.matches(other), "{other}");
    }
    let v6 = RedirectUri::parse("r", "http://[::1]:8080/cb").unwrap();
    assert!(v6.matches("http://[::1]:9999/cb"));
    assert!(v6.matches("http://[::1]/cb"));
    assert!(!v6.matches("http://127.0.0.1:9999/cb"));
}
