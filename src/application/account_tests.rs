use chrono::Duration;

use super::*;
use crate::application::harness::Harness;
use crate::application::{AuthService, AuthSettings, NewUser};
use crate::domain::audit::AuditFilter;
use crate::domain::ports::AuditLog;
use crate::domain::token::TokenPair;
use crate::domain::user::Password;

const PASSWORD: &str = "correct horse battery";

async fn create(h: &Harness, name: &str, roles: &[&str]) -> User {
    h.users
        .create_user(
            NewUser {
                username: name.into(),
                password: Password::candidate(PASSWORD),
                email: Some(format!("{name}@example.com")),
                full_name: None,
                roles: Some(roles.iter().map(|r| (*r).to_owned()).collect()),
            },
            &RequestContext::default(),
        )
        .await
        .unwrap()
}

fn ctx(ip: &str, agent: &str) -> RequestContext {
    RequestContext {
        ip: Some(ip.parse().unwrap()),
        user_agent: Some(agent.to_owned()),
    }
}

async fn login(h: &Harness, name: &str, ctx: &RequestContext) -> (TokenPair, Principal) {
    let pair = h
        .auth
        .login(name, &Password::candidate(PASSWORD), None, ctx)
        .await
        .unwrap();
    let principal = h.auth.authenticate(&pair.access_token.token).await.unwrap();
    (pair, principal)
}

/// The harness's auth use cases with the retry window on.
fn with_grace(h: &Harness, seconds: i64) -> AuthService {
    AuthService::new(
        h.auth.ports().clone(),
        AuthSettings {
            refresh_reuse_grace: Duration::seconds(seconds),
            ..h.auth.settings()
        },
    )
}

#[tokio::test]
async fn a_retry_within_the_window_gets_the_same_successor_and_a_fresh_access_token() {
    let h = Harness::new();
    create(&h, "alice", &["user"]).await;
    let (first, _) = login(&h, "alice", &RequestContext::default()).await;
    let auth = with_grace(&h, 30);
    let no = RequestContext::default();
    let rotated = auth.refresh(&first.refresh_token, &no).await.unwrap();
    h.clock.advance(Duration::seconds(29));
    let retried = auth.refresh(&first.refresh_token, &no).await.unwrap();
    assert_eq!(retried.refresh_token, rotated.refresh_token);
    assert_eq!(retried.session_id, rotated.session_id);
    assert_ne!(retried.access_token.token, rotated.access_token.token);
    assert!(h
        .auth
        .authenticate(&retried.access_token.token)
        .await
        .is_ok());
    assert!(h.store.audit_kinds().contains(&Event::RefreshTokenRetried));
    // The successor still rotates normally afterwards.
    let next = auth.refresh(&retried.refresh_token, &no).await.unwrap();
    assert_ne!(next.refresh_token, retried.refresh_token);
}

#[tokio::test]
async fn a_retry_after_the_successor_was_used_revokes_the_session() {
    let h = Harness::new();
    let alice = create(&h, "alice", &["user"]).await;
    let (first, _) = login(&h, "alice", &RequestContext::default()).await;
    let auth = with_grace(&h, 30);
    let no = RequestContext::default();
    let rotated = auth.refresh(&first.refresh_token, &no).await.unwrap();
    let newest = auth.refresh(&rotated.refresh_token, &no).await.unwrap();
    assert!(matches!(
        auth.refresh(&first.refresh_token, &no).await,
        Err(AppError::RefreshTokenReused)
    ));
    assert_eq!(h.store.live_sessions(alice.id), 0);
    assert!(auth.refresh(&newest.refresh_token, &no).await.is_err());
}

#[tokio::test]
async fn a_retry_outside_the_window_or_with_the_window_off_revokes_the_session() {
    for (grace, wait) in [(30, 31), (0, 0)] {
        let h = Harness::new();
        let alice = create(&h, "alice", &["user"]).await;
        let (first, _) = login(&h, "alice", &RequestContext::default()).await;
        let auth = with_grace(&h, grace);
        let no = RequestContext::default();
        let rotated = auth.refresh(&first.refresh_token, &no).await.unwrap();
        h.clock.advance(Duration::seconds(wait));
        assert!(
            matches!(
                auth.refresh(&first.refresh_token, &no).await,
                Err(AppError::RefreshTokenReused)
            ),
            "grace {grace}, {wait} s later"
        );
        assert_eq!(h.store.live_sessions(alice.id), 0);
        assert!(auth.refresh(&rotated.refresh_token, &no).await.is_err());
    }
}

#[tokio::test]
async fn with_the_window_off_successors_are_random_not_derived() {
    let h = Harness::new();
    create(&h, "alice", &["user"]).await;
    let (first, _) = login(&h, "alice", &RequestContext::default()).await;
    let key = h.auth.settings().successor_key;
    let rotated = h
        .auth
        .refresh(&first.refresh_token, &RequestContext::default())
        .await
        .unwrap();
    assert_ne!(rotated.refresh_token, key.successor(&first.refresh_token));
    let on = with_grace(&h, 30)
        .refresh(&rotated.refresh_token, &RequestContext::default())
        .await
        .unwrap();
    assert_eq!(on.refresh_token, key.successor(&rotated.refresh_token));
}

#[tokio::test]
async fn the_session_list_shows_live_sessions_newest_first_with_their_origin() {
    let h = Harness::new();
    create(&h, "alice", &["user"]).await;
    let long_agent = "é".repeat(600);
    let (old, _) = login(&h, "alice", &ctx("192.0.2.1", "curl/8")).await;
    h.clock.advance(Duration::seconds(5));
    let (_, principal) = login(&h, "alice", &ctx("2001:db8::1", &long_agent)).await;
    h.clock.advance(Duration::seconds(5));
    let rotated = h
        .auth
        .refresh(&old.refresh_token, &RequestContext::default())
        .await
        .unwrap();
    let listed = h.account.sessions(&principal).await.unwrap();
    assert_eq!(listed.len(), 2);
    let (newest, oldest) = (&listed[0], &listed[1]);
    assert!(newest.current && !oldest.current);
    assert_eq!(newest.summary.id, principal.claims.session_id);
    assert_eq!(
        newest.summary.origin.ip,
        Some("2001:db8::1".parse().unwrap())
    );
    assert_eq!(
        newest
            .summary
            .origin
            .user_agent
            .as_deref()
            .map(|a| a.chars().count()),
        Some(256)
    );
    assert_eq!(newest.summary.last_used_at, newest.summary.created_at);
    assert_eq!(oldest.summary.id, rotated.session_id);
    assert_eq!(oldest.summary.origin.user_agent.as_deref(), Some("curl/8"));
    assert_eq!(
        oldest.summary.last_used_at - oldest.summary.created_at,
        Duration::seconds(10),
        "a rotation is a use"
    );
}

#[tokio::test]
async fn a_user_ends_their_own_sessions_only_and_never_learns_of_anothers() {
    let h = Harness::new();
    create(&h, "alice", &["user"]).await;
    create(&h, "bob", &["user"]).await;
    let (first, alice) = login(&h, "alice", &RequestContext::default()).await;
    let (other_pair, other) = login(&h, "alice", &RequestContext::default()).await;
    let (bob_pair, bob) = login(&h, "bob", &RequestContext::default()).await;
    let no = RequestContext::default();
    let bobs = bob.claims.session_id;
    assert!(matches!(
        h.account.end_session(&alice, bobs, &no).await,
        Err(AppError::SessionNotFound)
    ));
    assert!(matches!(
        h.account.end_session(&alice, SessionId::new(), &no).await,
        Err(AppError::SessionNotFound)
    ));
    assert!(h
        .auth
        .authenticate(&bob_pair.access_token.token)
        .await
        .is_ok());
    h.account
        .end_session(&alice, other.claims.session_id, &no)
        .await
        .unwrap();
    assert!(matches!(
        h.account
            .end_session(&alice, other.claims.session_id, &no)
            .await,
        Err(AppError::SessionNotFound)
    ));
    assert!(h
        .auth
        .authenticate(&other_pair.access_token.token)
        .await
        .is_err());
    // Ending the current session logs the caller out, with its refresh token.
    h.account
        .end_session(&alice, alice.claims.session_id, &no)
        .await
        .unwrap();
    assert!(h.auth.refresh(&first.refresh_token, &no).await.is_err());
    assert!(h
        .auth
        .authenticate(&first.access_token.token)
        .await
        .is_err());
    assert!(h.store.audit_kinds().contains(&Event::SessionEnded));
}

#[tokio::test]
async fn a_user_deletes_their_account_with_the_password_and_can_register_again() {
    let h = Harness::new();
    let alice = create(&h, "alice", &["user"]).await;
    let (pair, principal) = login(&h, "alice", &ctx("192.0.2.7", "agent")).await;
    let no = RequestContext::default();
    let wrong = h
        .account
        .delete_own_account(&principal, &Password::candidate("not it at all"), None, &no)
        .await;
    assert!(matches!(wrong, Err(AppError::WrongPassword)));
    h.account
        .delete_own_account(&principal, &Password::candidate(PASSWORD), None, &no)
        .await
        .unwrap();
    assert!(h.auth.authenticate(&pair.access_token.token).await.is_err());
    assert!(h.auth.refresh(&pair.refresh_token, &no).await.is_err());
    assert_eq!(h.store.live_sessions(alice.id), 0);
    let events = h
        .store
        .list(&AuditFilter {
            user_id: Some(alice.id),
            kind: None,
            before: None,
            limit: 200,
        })
        .await
        .unwrap();
    assert!(events.iter().any(|e| e.kind == Event::LoginSucceeded));
    for event in &events {
        assert_eq!(
            (&event.username, event.ip, &event.user_agent),
            (&None, None, &None)
        );
    }
    assert_eq!(events[0].kind, Event::AccountDeleted);
    let again = create(&h, "ALICE", &["user"]).await;
    assert_ne!(again.id, alice.id);
}

#[tokio::test]
async fn wrong_passwords_of_a_deletion_count_toward_the_lockout() {
    let h = Harness::new();
    create(&h, "alice", &["user"]).await;
    let (_, principal) = login(&h, "alice", &RequestContext::default()).await;
    let no = RequestContext::default();
    let wrong = Password::candidate("not it at all");
    for _ in 0..3 {
        let result = h
            .account
            .delete_own_account(&principal, &wrong, None, &no)
            .await;
        assert!(matches!(result, Err(AppError::WrongPassword)));
    }
    let locked = h
        .account
        .delete_own_account(&principal, &Password::candidate(PASSWORD), None, &no)
        .await;
    assert!(matches!(locked, Err(AppError::AccountLocked { .. })));
}

#[tokio::test]
async fn admins_delete_users_but_never_the_last_admin() {
    let h = Harness::new();
    create(&h, "root", &["user", "admin"]).await;
    let bob = create(&h, "bob", &["user"]).await;
    let (_, root) = login(&h, "root", &RequestContext::default()).await;
    let (_, bobs) = login(&h, "bob", &RequestContext::default()).await;
    assert!(matches!(
        h.account.delete_user(&bobs, root.user.id).await,
        Err(AppError::Forbidden)
    ));
    assert!(matches!(
        h.account.delete_user(&root, UserId::new()).await,
        Err(AppError::UserNotFound)
    ));
    assert!(matches!(
        h.account.delete_user(&root, root.user.id).await,
        Err(AppError::LastAdmin)
    ));
    h.account.delete_user(&root, bob.id).await.unwrap();
    assert!(matches!(
        h.account.delete_user(&root, bob.id).await,
        Err(AppError::UserNotFound)
    ));
    // With a second admin, the first may go (themself included).
    create(&h, "second", &["user", "admin"]).await;
    h.account.delete_user(&root, root.user.id).await.unwrap();
}
