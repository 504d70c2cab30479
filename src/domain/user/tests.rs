use std::sync::Arc;

use super::*;

#[test]
fn a_login_key_is_the_ascii_lower_case_of_a_possible_username_only() {
    assert_eq!(LoginKey::parse("MiKe.In").unwrap().as_str(), "mike.in");
    assert_eq!(
        Username::parse("Mike.In").unwrap().login_key(),
        LoginKey::parse("mike.in").unwrap()
    );
    // U+0130 lower-cases to "i̇" in Unicode, to "i" nowhere: not a username at all.
    assert_eq!(LoginKey::parse("m\u{130}ke.in"), None);
    assert_eq!(LoginKey::parse("K\u{212A}elvin"), None);
    assert_eq!(LoginKey::parse(&"a".repeat(65_536)), None);
    assert_eq!(LoginKey::parse("al\0ice"), None);
    assert_eq!(LoginKey::parse("al\nice"), None);
    assert_eq!(LoginKey::parse("ab"), None);
}

#[test]
fn usernames_follow_the_contract_rules() {
    assert!(Username::parse("alice").is_ok());
    assert!(Username::parse("a.b_c-9").is_ok());
    assert_eq!(Username::parse("ab").unwrap_err().code, "invalid_length");
    assert_eq!(
        Username::parse(&"a".repeat(33)).unwrap_err().code,
        "invalid_length"
    );
    assert_eq!(
        Username::parse("al ice").unwrap_err().code,
        "invalid_characters"
    );
    assert_eq!(
        Username::parse("äbc").unwrap_err().code,
        "invalid_characters"
    );
}

#[test]
fn passwords_count_unicode_characters_and_are_never_truncated() {
    let policy = PasswordPolicy::default();
    // Eight characters, but sixteen bytes.
    assert!(Password::parse("пароль12", &policy).is_ok());
    assert_eq!(
        Password::parse("short", &policy).unwrap_err().code,
        "too_short"
    );
    assert!(Password::parse(&"x".repeat(128), &policy).is_ok());
    assert_eq!(
        Password::parse(&"x".repeat(129), &policy).unwrap_err().code,
        "too_long"
    );
    let strict = PasswordPolicy {
        min_chars: 12,
        blocklist: None,
    };
    assert!(Password::parse("elevenchars", &strict).is_err());
}

struct TwoCommon;
impl PasswordBlocklist for TwoCommon {
    fn contains(&self, lowercase: &str) -> bool {
        ["password1", "iloveyou!"].contains(&lowercase)
    }
}

#[test]
fn common_passwords_are_refused_regardless_of_case() {
    let policy = PasswordPolicy {
        min_chars: 8,
        blocklist: Some(Arc::new(TwoCommon)),
    };
    let error = Password::parse("PassWord1", &policy).unwrap_err();
    assert_eq!(error.code, "password_too_common");
    assert!(Password::parse("password12", &policy).is_ok());
}

#[test]
fn passwords_and_hashes_never_show_in_debug_output() {
    let password = Password::candidate("hunter22");
    assert!(!format!("{password:?}").contains("hunter22"));
    let hash = PasswordHash::new("$argon2id$secret".into());
    assert!(!format!("{hash:?}").contains("argon2id"));
}

#[test]
fn emails_are_checked_for_syntax() {
    for ok in ["a@example.com", "first.last+tag@sub.example.org"] {
        assert!(EmailAddress::parse(ok).is_ok(), "{ok}");
    }
    for bad in [
        "",
        "plain",
        "@example.com",
        "a@b",
        "a@@b.com",
        "a b@c.com",
        "a@-b.com",
    ] {
        assert!(EmailAddress::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn roles_parse_sort_and_intersect() {
    let roles = Roles::parse_space_separated("admin user admin").unwrap();
    assert_eq!(roles.names(), vec!["user", "admin"]);
    assert_eq!(
        Roles::parse_space_separated("user root").unwrap_err().code,
        "unknown_role"
    );
    let only_user = Roles::new([Role::User]);
    assert_eq!(roles.intersection(&only_user), only_user);
}

#[test]
fn full_names_are_limited_to_100_characters() {
    assert!(FullName::parse(&"é".repeat(100)).is_ok());
    assert_eq!(
        FullName::parse(&"é".repeat(101)).unwrap_err().code,
        "too_long"
    );
}
