use std::sync::atomic::Ordering;

use chrono::Duration;

use super::*;
use crate::application::harness::Harness;
use crate::application::NewUser;
use crate::domain::audit::AuditEventKind as Event;
use crate::domain::ports::UserRepository;
use crate::domain::user::{PasswordHash, Role};

const PASSWORD: &str = "correct horse battery";

async fn harness_with_user(roles: Option<Vec<&str>>) -> (Harness, User) {
    let h = Harness::new();
    let user = h
        .users
        .create_user(
            NewUser {
                username: "Alice".into(),
                password: Password::candidate(PASSWORD),
                email: None,
                full_name: None,
                roles: roles.map(|r| r.into_iter().map(String::from).collect()),
            },
            &RequestContext::default(),
        )
        .await
        .unwrap();
    (h, user)
}

async fn login(h: &Harness, username: &str, password: &str) -> Result<TokenPair, AppError> {
    h.auth
        .login(
            username,
            &Password::candidate(password),
            None,
            &RequestContext::default(),
        )
        .await
}

#[tokio::test]
async fn login_matches_the_username_regardless_of_case_and_grants_all_roles() {
    let (h, user) = harness_with_user(Some(vec!["user", "admin"])).await;
    let pair = login(&h, "ALICE", PASSWORD).await.unwrap();
    assert_eq!(pair.access_token.claims.user_id, user.id);
    assert_eq!(pair.access_token.claims.username, "Alice");
    assert_eq!(pair.scope, Roles::new([Role::User, Role::Admin]).into());
    assert_eq!(
        pair.access_token.claims.expires_at - pair.access_token.claims.issued_at,
        Duration::minutes(15)
    );
    let principal = h.auth.authenticate(&pair.access_token.token).await.unwrap();
    assert_eq!(principal.user.id, user.id);
}

#[tokio::test]
async fn unknown_users_wrong_passwords_and_inactive_users_get_the_same_error() {
    let (h, user) = harness_with_user(None).await;
    assert!(matches!(
        login(&h, "nobody", PASSWORD).await,
        Err(AppError::InvalidCredentials)
    ));
    assert!(matches!(
        login(&h, "alice", "wrong password").await,
        Err(AppError::InvalidCredentials)
    ));
    h.store.set_active(user.id, false);
    assert!(matches!(
        login(&h, "alice", PASSWORD).await,
        Err(AppError::InvalidCredentials)
    ));
}

#[tokio::test]
async fn an_unknown_user_costs_one_hash_verification_like_a_wrong_password() {
    let (h, _) = harness_with_user(None).await;
    let count = || h.hasher.verifications.load(Ordering::SeqCst);
    let before = count();
    let _ = login(&h, "nobody", PASSWORD).await;
    assert_eq!(count() - before, 1);
    let _ = login(&h, "alice", "wrong password").await;
    assert_eq!(count() - before, 2);
}

#[tokio::test]
async fn a_scope_narrows_the_session_and_unknown_scopes_are_refused() {
    let (h, _) = harness_with_user(Some(vec!["user", "admin"])).await;
    let ctx = RequestContext::default();
    let pw = Password::candidate(PASSWORD);
    let pair = h
        .auth
        .login("alice", &pw, Some("user"), &ctx)
        .await
        .unwrap();
    assert_eq!(pair.scope, Roles::new([Role::User]).into());
    let err = h.auth.login("alice", &pw, Some("user root"), &ctx).await;
    assert!(matches!(err, Err(AppError::InvalidScope(m)) if m.contains("root")));

    let (h, _) = harness_with_user(None).await;
    let pair = h
        .auth
        .login("alice", &pw, Some("admin user"), &ctx)
        .await
        .unwrap();
    assert_eq!(
        pair.scope,
        Roles::new([Role::User]).into(),
        "a role the user lacks is left out"
    );
}

#[tokio::test]
async fn refresh_rotates_the_token_and_keeps_the_session_scope() {
    let (h, _) = harness_with_user(Some(vec!["user", "admin"])).await;
    let ctx = RequestContext::default();
    let first = h
        .auth
        .login("alice", &Password::candidate(PASSWORD), Some("user"), &ctx)
        .await
        .unwrap();
    let second = h.auth.refresh(&first.refresh_token, &ctx).await.unwrap();
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_eq!(second.session_id, first.session_id);
    assert_eq!(second.scope, Roles::new([Role::User]).into());
    assert!(h.auth.refresh(&second.refresh_token, &ctx).await.is_ok());
}

#[tokio::test]
async fn reusing_a_rotated_refresh_token_revokes_the_whole_session() {
    let (h, user) = harness_with_user(None).await;
    let ctx = RequestContext::default();
    let first = login(&h, "alice", PASSWORD).await.unwrap();
    let second = h.auth.refresh(&first.refresh_token, &ctx).await.unwrap();

    let reuse = h.auth.refresh(&first.refresh_token, &ctx).await;
    assert!(matches!(reuse, Err(AppError::RefreshTokenReused)));
    // Every token descended from the login is dead now.
    assert!(matches!(
        h.auth.refresh(&second.refresh_token, &ctx).await,
        Err(AppError::InvalidRefreshToken)
    ));
    assert!(h
        .auth
        .authenticate(&second.access_token.token)
        .await
        .is_err());
    assert_eq!(h.store.live_sessions(user.id), 0);
}

#[tokio::test]
async fn expired_tokens_are_refused_by_the_clock() {
    let (h, _) = harness_with_user(None).await;
    let pair = login(&h, "alice", PASSWORD).await.unwrap();
    h.clock.advance(Duration::minutes(16));
    assert!(matches!(
        h.auth.authenticate(&pair.access_token.token).await,
        Err(AppError::InvalidToken(TokenError::Expired))
    ));
    h.clock.advance(Duration::days(14));
    assert!(matches!(
        h.auth
            .refresh(&pair.refresh_token, &RequestContext::default())
            .await,
        Err(AppError::InvalidRefreshToken)
    ));
}

#[tokio::test]
async fn logout_revokes_only_the_callers_session_and_logout_all_every_one() {
    let (h, user) = harness_with_user(None).await;
    let ctx = RequestContext::default();
    let a = login(&h, "alice", PASSWORD).await.unwrap();
    let b = login(&h, "alice", PASSWORD).await.unwrap();
    let principal = h.auth.authenticate(&a.access_token.token).await.unwrap();
    h.auth.logout(&principal, &ctx).await.unwrap();
    assert!(h.auth.authenticate(&a.access_token.token).await.is_err());
    assert!(matches!(
        h.auth.refresh(&a.refresh_token, &ctx).await,
        Err(AppError::InvalidRefreshToken)
    ));
    let principal = h.auth.authenticate(&b.access_token.token).await.unwrap();
    let _c = login(&h, "alice", PASSWORD).await.unwrap();
    h.auth.logout_all(&principal, &ctx).await.unwrap();
    assert_eq!(h.store.live_sessions(user.id), 0);
}

#[tokio::test]
async fn revoke_accepts_refresh_and_access_tokens_and_ignores_unknown_ones() {
    let (h, user) = harness_with_user(None).await;
    let ctx = RequestContext::default();
    let a = login(&h, "alice", PASSWORD).await.unwrap();
    h.auth
        .revoke(a.refresh_token.expose(), None, &ctx)
        .await
        .unwrap();
    assert!(h.auth.authenticate(&a.access_token.token).await.is_err());

    let b = login(&h, "alice", PASSWORD).await.unwrap();
    h.auth
        .revoke(
            &b.access_token.token,
            Some(TokenTypeHint::RefreshToken),
            &ctx,
        )
        .await
        .unwrap();
    assert_eq!(h.store.live_sessions(user.id), 0);
    h.auth.revoke("no-such-token", None, &ctx).await.unwrap();
}

#[tokio::test]
async fn issue_refresh_token_starts_a_new_session_with_the_callers_scope() {
    let (h, user) = harness_with_user(None).await;
    let ctx = RequestContext::default();
    let a = login(&h, "alice", PASSWORD).await.unwrap();
    let principal = h.auth.authenticate(&a.access_token.token).await.unwrap();
    let (token, _, session_id) = h.auth.issue_refresh_token(&principal, &ctx).await.unwrap();
    assert_ne!(session_id, a.session_id);
    assert_eq!(h.store.live_sessions(user.id), 2);
    let pair = h.auth.refresh(&token, &ctx).await.unwrap();
    assert_eq!(pair.session_id, session_id);
}

#[tokio::test]
async fn a_busy_hasher_is_reported_as_busy() {
    let (h, _) = harness_with_user(None).await;
    h.hasher.busy.store(true, Ordering::SeqCst);
    assert!(matches!(
        login(&h, "alice", PASSWORD).await,
        Err(AppError::Busy { .. })
    ));
}

#[tokio::test]
async fn an_outdated_hash_is_upgraded_on_login() {
    let (h, user) = harness_with_user(None).await;
    let old = PasswordHash::new(format!("old:{PASSWORD}"));
    let current = h.store.find_by_id(user.id).await.unwrap().unwrap();
    assert!(h
        .store
        .upgrade_password_hash(user.id, &current.password_hash, &old)
        .await
        .unwrap());
    login(&h, "alice", PASSWORD).await.unwrap();
    let stored = h.store.find_by_id(user.id).await.unwrap().unwrap();
    assert_eq!(stored.password_hash.as_str(), format!("fake:{PASSWORD}"));
}

#[tokio::test]
async fn consecutive_failures_lock_the_account_even_for_the_right_password() {
    let (h, _) = harness_with_user(None).await;
    for _ in 0..3 {
        assert!(matches!(
            login(&h, "alice", "wrong password").await,
            Err(AppError::InvalidCredentials)
        ));
    }
    let locked = login(&h, "alice", PASSWORD).await;
    assert!(
        matches!(locked, Err(AppError::AccountLocked { retry_after_secs }) if retry_after_secs > 290 && retry_after_secs <= 301),
        "{locked:?}"
    );
    h.clock.advance(Duration::minutes(5) + Duration::seconds(1));
    assert!(login(&h, "alice", PASSWORD).await.is_ok());
    let kinds = h.store.audit_kinds();
    assert!(kinds.contains(&Event::AccountLocked));
    assert_eq!(kinds.last(), Some(&Event::LoginSucceeded));
}

#[tokio::test]
async fn a_success_resets_the_count_and_repeat_offenders_are_locked_longer() {
    let (h, _) = harness_with_user(None).await;
    for _ in 0..2 {
        let _ = login(&h, "alice", "wrong").await;
    }
    login(&h, "alice", PASSWORD).await.unwrap();
    for _ in 0..2 {
        let _ = login(&h, "alice", "wrong").await;
    }
    assert!(
        login(&h, "alice", PASSWORD).await.is_ok(),
        "the count restarted"
    );
    for round in 1..=2_i64 {
        for _ in 0..3 {
            let _ = login(&h, "alice", "wrong").await;
        }
        let Err(AppError::AccountLocked { retry_after_secs }) = login(&h, "alice", PASSWORD).await
        else {
            panic!("expected a lock");
        };
        // 5 minutes, then 10: each lock doubles the next.
        assert_eq!(retry_after_secs, u64::try_from(300 * round + 1).unwrap());
        h.clock.advance(Duration::seconds(300 * round + 1));
    }
}

#[tokio::test]
async fn unknown_usernames_lock_like_real_ones() {
    let (h, _) = harness_with_user(None).await;
    for _ in 0..3 {
        let _ = login(&h, "ghost", PASSWORD).await;
    }
    assert!(matches!(
        login(&h, "GHOST", PASSWORD).await,
        Err(AppError::AccountLocked { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_logins_of_one_account_beyond_the_lockout_limit_all_go_through() {
    // The harness allows 3 guesses per window; 8 right passwords at once wait their turn.
    let (h, _) = harness_with_user(None).await;
    let h = std::sync::Arc::new(h);
    let logins = (0..8).map(|_| {
        let h = std::sync::Arc::clone(&h);
        tokio::spawn(async move { login(&h, "alice", PASSWORD).await.map(|_| ()) })
    });
    for result in futures::future::join_all(logins).await {
        result.unwrap().unwrap();
    }
}

#[tokio::test]
async fn a_login_whose_password_changed_while_it_was_checked_starts_no_session() {
    let (h, user) = harness_with_user(None).await;
    let pair = login(&h, "alice", PASSWORD).await.unwrap();
    let principal = h.auth.authenticate(&pair.access_token.token).await.unwrap();
    // A login checked the password against this version of the user...
    let stale = h.store.find_by_id(user.id).await.unwrap().unwrap();
    h.users
        .change_password(
            &principal,
            &Password::candidate(PASSWORD),
            "a brand new secret",
            &RequestContext::default(),
        )
        .await
        .unwrap();
    // ...and the store refuses the session it would start now.
    let started = h
        .auth
        .start_session(SessionStart::password_grant(
            &stale,
            Roles::new([Role::User]).into(),
            &RequestContext::default(),
        ))
        .await
        .unwrap();
    assert!(started.is_none());
    assert_eq!(
        h.store.live_sessions(user.id),
        1,
        "only the changer's own session"
    );
}

#[tokio::test]
async fn wrong_current_passwords_lock_the_account_for_logins_too() {
    let (h, _) = harness_with_user(None).await;
    let pair = login(&h, "alice", PASSWORD).await.unwrap();
    let principal = h.auth.authenticate(&pair.access_token.token).await.unwrap();
    for _ in 0..3 {
        let result = h
            .users
            .change_password(
                &principal,
                &Password::candidate("not my password"),
                "a brand new secret",
                &RequestContext::default(),
            )
            .await;
        assert!(matches!(result, Err(AppError::WrongPassword)), "{result:?}");
    }
    let result = h
        .users
        .change_password(
            &principal,
            &Password::candidate(PASSWORD),
            "a brand new secret",
            &RequestContext::default(),
        )
        .await;
    assert!(
        matches!(result, Err(AppError::AccountLocked { .. })),
        "{result:?}"
    );
    assert!(matches!(
        login(&h, "alice", PASSWORD).await,
        Err(AppError::AccountLocked { .. })
    ));
    assert!(h.store.audit_kinds().contains(&Event::AccountLocked));
}
