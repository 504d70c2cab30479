use super::*;

#[test]
fn the_rfc_6238_sha1_vectors_are_reproduced() {
    // RFC 6238 Appendix B, SHA-1 secret "12345678901234567890", last 6 of the 8 digits.
    let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec());
    assert_eq!(secret.code_at(TotpSecret::step_of(59)), "287082");
    assert_eq!(secret.code_at(TotpSecret::step_of(1_111_111_109)), "081804");
    assert_eq!(secret.code_at(TotpSecret::step_of(2_000_000_000)), "279037");
}

#[test]
fn a_code_matches_one_step_either_way_and_not_two() {
    let secret = TotpSecret::generate();
    let now = 1_000_000;
    for offset in [-1, 0, 1] {
        let code = secret.code_at(now + offset);
        assert_eq!(secret.matching_step(&code, now), Some(now + offset));
    }
    for offset in [-2, 2] {
        let code = secret.code_at(now + offset);
        let found = secret.matching_step(&code, now);
        // A collision with a neighbouring step's code is possible (1 in 10^6): then it is that step.
        assert!(found.is_none() || found != Some(now + offset));
    }
}

#[test]
fn the_otpauth_uri_names_the_issuer_and_the_account() {
    let secret = TotpSecret::from_bytes(vec![0; 20]);
    let uri = secret.otpauth_uri("auth.example", "alice");
    assert_eq!(
        uri,
        "otpauth://totp/auth.example:alice?secret=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA&issuer=auth.example"
    );
    assert_eq!(secret.base32(), "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
}

#[test]
fn recovery_codes_read_in_any_case_with_or_without_dashes() {
    let code = RecoveryCode::generate();
    let shown = code.display();
    assert_eq!(shown.len(), 19);
    assert_eq!(RecoveryCode::parse(&shown), Some(code.clone()));
    assert_eq!(
        RecoveryCode::parse(&shown.replace('-', "").to_uppercase()),
        Some(code.clone())
    );
    assert_eq!(RecoveryCode::parse(&format!(" {shown} ")), Some(code));
    assert_eq!(
        RecoveryCode::parse("abcd-efgh-ijkl-mno1"),
        None,
        "1 is not base32"
    );
    assert_eq!(RecoveryCode::parse("abcd-efgh"), None);
    assert_eq!(RecoveryCode::parse("ａｂｃｄ-efgh-ijkl-mnop"), None);
    assert_eq!(RecoveryCode::generate_set().len(), 10);
}

#[test]
fn otp_input_tells_codes_apart_and_redacts_them() {
    assert!(matches!(OtpInput::parse("123456"), OtpInput::Totp(_)));
    assert!(matches!(OtpInput::parse(" 123456 "), OtpInput::Totp(_)));
    assert!(matches!(OtpInput::parse("12345"), OtpInput::Malformed));
    assert!(matches!(OtpInput::parse("١٢٣٤٥٦"), OtpInput::Malformed));
    assert!(matches!(
        OtpInput::parse(&"1".repeat(100_000)),
        OtpInput::Malformed
    ));
    let recovery = RecoveryCode::generate().display();
    assert!(matches!(OtpInput::parse(&recovery), OtpInput::Recovery(_)));
    assert_eq!(
        format!("{:?}", OtpInput::parse("123456")),
        "Totp([REDACTED])"
    );
    assert_eq!(
        format!("{:?}", TotpSecret::generate()),
        "TotpSecret([REDACTED])"
    );
}
