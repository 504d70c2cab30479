use chrono::Duration;

use super::*;
use crate::application::auth::SignInStep;
use crate::application::harness::Harness;
use crate::application::{NewUser, Principal};
use crate::domain::audit::AuditEventKind as Event;
use crate::domain::mfa::TotpSecret;
use crate::domain::ports::UserRepository;

const PASSWORD: &str = "correct horse battery";

fn ctx() -> RequestContext {
    RequestContext::default()
}

fn password(p: &str) -> Password {
    Password::candidate(p)
}

async fn principal(h: &Harness, otp: Option<&str>) -> Principal {
    let pair = h
        .auth
        .login_with_otp("alice", &password(PASSWORD), otp, None, &ctx())
        .await
        .unwrap();
    h.auth.authenticate(&pair.access_token.token).await.unwrap()
}

/// Alice with TOTP on (confirmed at the clock's step); the clock then moves one step on.
async fn alice_with_totp() -> (Harness, TotpSecret, Vec<RecoveryCode>) {
    let h = Harness::new();
    h.users
        .create_user(
            NewUser {
                username: "alice".into(),
                password: password(PASSWORD),
                email: None,
                full_name: None,
                roles: None,
            },
            &ctx(),
        )
        .await
        .unwrap();
    let me = principal(&h, None).await;
    let enrolment = h
        .mfa
        .enrol_totp(&me, &password(PASSWORD), &ctx())
        .await
        .unwrap();
    let step = TotpSecret::step_of(h.clock.now().timestamp());
    let codes = h
        .mfa
        .confirm_totp(&me, &enrolment.secret.code_at(step), &ctx())
        .await
        .unwrap();
    h.clock.advance(Duration::seconds(30));
    (h, enrolment.secret, codes)
}

fn code_now(h: &Harness, secret: &TotpSecret) -> String {
    secret.code_at(TotpSecret::step_of(h.clock.now().timestamp()))
}

async fn login(h: &Harness, pass: &str, otp: Option<&str>) -> Result<(), AppError> {
    h.auth
        .login_with_otp("alice", &password(pass), otp, None, &ctx())
        .await
        .map(|_| ())
}

#[tokio::test]
async fn the_confirmed_authenticator_and_its_codes_show_on_the_user() {
    let (h, _, codes) = alice_with_totp().await;
    assert_eq!(codes.len(), 10);
    let alice = h
        .store
        .find_by_username(&"alice".parse_key())
        .await
        .unwrap()
        .unwrap();
    assert!(alice.mfa.totp && alice.mfa.recovery_codes_left == 10);
    let kinds = h.store.audit_kinds();
    assert!(kinds.contains(&Event::TotpEnrollmentStarted) && kinds.contains(&Event::TotpEnrolled));
}

#[tokio::test]
async fn a_right_password_alone_neither_counts_nor_clears_the_failures_of_wrong_codes() {
    // The harness locks after 3 failures.
    let (h, secret, _) = alice_with_totp().await;
    assert!(matches!(
        login(&h, PASSWORD, Some("000000")).await,
        Err(AppError::InvalidCredentials)
    ));
    assert!(matches!(
        login(&h, PASSWORD, Some("000001")).await,
        Err(AppError::InvalidCredentials)
    ));
    for _ in 0..5 {
        assert!(matches!(
            login(&h, PASSWORD, None).await,
            Err(AppError::MfaRequired)
        ));
    }
    assert!(matches!(
        login(&h, PASSWORD, Some("000002")).await,
        Err(AppError::InvalidCredentials)
    ));
    let code = code_now(&h, &secret);
    assert!(matches!(
        login(&h, PASSWORD, Some(&code)).await,
        Err(AppError::AccountLocked { .. })
    ));
    h.clock.advance(Duration::minutes(6));
    let code = code_now(&h, &secret);
    login(&h, PASSWORD, Some(&code)).await.unwrap();
    // A success clears the failures.
    for otp in ["000000", "000001"] {
        assert!(login(&h, PASSWORD, Some(otp)).await.is_err());
    }
    h.clock.advance(Duration::seconds(30));
    login(&h, PASSWORD, Some(&code_now(&h, &secret)))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_wrong_password_with_the_right_code_uses_nothing_up() {
    let (h, secret, codes) = alice_with_totp().await;
    let code = code_now(&h, &secret);
    assert!(matches!(
        login(&h, "wrong password", Some(&code)).await,
        Err(AppError::InvalidCredentials)
    ));
    assert!(matches!(
        login(&h, "wrong password", Some(&codes[0].display())).await,
        Err(AppError::InvalidCredentials)
    ));
    login(&h, PASSWORD, Some(&code)).await.unwrap();
    login(&h, PASSWORD, Some(&codes[0].display()))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_browser_sign_in_waits_for_the_second_factor_and_a_password_change_voids_it() {
    let (h, secret, _) = alice_with_totp().await;
    let before = h.store.live_sessions(principal_id(&h).await);
    let step = h
        .auth
        .sign_in_first_step("alice", &password(PASSWORD), None, &ctx())
        .await
        .unwrap();
    let SignInStep::SecondFactor(token) = step else {
        panic!("expected the second step");
    };
    assert_eq!(
        h.store.live_sessions(principal_id(&h).await),
        before,
        "no sign-in yet"
    );
    let wrong = h
        .auth
        .sign_in_second_step(&token, "000000", None, &ctx())
        .await;
    assert!(matches!(wrong, Err(AppError::InvalidCredentials)));
    let signed_in = h
        .auth
        .sign_in_second_step(&token, &code_now(&h, &secret), None, &ctx())
        .await
        .unwrap();
    assert_eq!(signed_in.user.username.as_str(), "alice");
    let again = h
        .auth
        .sign_in_second_step(&token, "123456", None, &ctx())
        .await;
    assert!(matches!(again, Err(AppError::SignInExpired)), "used once");

    // A password change between the two steps voids the pending sign-in.
    let SignInStep::SecondFactor(token) = h
        .auth
        .sign_in_first_step("alice", &password(PASSWORD), None, &ctx())
        .await
        .unwrap()
    else {
        panic!("expected the second step");
    };
    h.clock.advance(Duration::seconds(30));
    let me = principal(&h, Some(&code_now(&h, &secret))).await;
    h.users
        .change_password(&me, &password(PASSWORD), "another long passphrase", &ctx())
        .await
        .unwrap();
    h.clock.advance(Duration::seconds(30));
    let after = h
        .auth
        .sign_in_second_step(&token, &code_now(&h, &secret), None, &ctx())
        .await;
    assert!(matches!(after, Err(AppError::SignInExpired)));
}

async fn principal_id(h: &Harness) -> crate::domain::user::UserId {
    h.store
        .find_by_username(&"alice".parse_key())
        .await
        .unwrap()
        .unwrap()
        .id
}

#[tokio::test]
async fn an_admin_reset_needs_the_admin_role_and_a_known_user() {
    let (h, secret, _) = alice_with_totp().await;
    let me = principal(&h, Some(&code_now(&h, &secret))).await;
    let id = me.user.id;
    assert!(matches!(
        h.mfa.admin_reset(&me, id, &ctx()).await,
        Err(AppError::Forbidden)
    ));
    assert!(h.store.audit_kinds().iter().all(|k| *k != Event::MfaReset));
}

trait ParseKey {
    fn parse_key(&self) -> crate::domain::user::LoginKey;
}

impl ParseKey for str {
    fn parse_key(&self) -> crate::domain::user::LoginKey {
        crate::domain::user::LoginKey::parse(self).unwrap()
    }
}
