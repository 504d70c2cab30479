//! One contract for the repository ports, written once and run against every storage adapter.
//! A new backend adds one line to `contract_tests!` and must pass every case.

use std::sync::Arc;

use auth_service::domain::ports::StoreError;
use auth_service::domain::session::{
    RefreshToken, RefreshTokenRecord, RevocationReason, RotationOutcome, Session, SessionId,
};
use auth_service::domain::user::{
    EmailAddress, FullName, PasswordHash, Role, Roles, User, UserId, Username,
};
use auth_service::infrastructure::db::{self, DbOptions, Repositories};
use chrono::{DateTime, Duration, SubsecRound, Utc};
use tempfile::TempDir;

mod support;

/// A backend under test; `_guard` keeps its temporary storage alive.
pub struct Backend {
    repos: Repositories,
    _guard: Box<dyn std::any::Any + Send>,
}

fn options() -> DbOptions {
    DbOptions {
        max_connections: 8,
        acquire_timeout: std::time::Duration::from_secs(5),
        statement_timeout: std::time::Duration::from_secs(5),
    }
}

async fn sqlite() -> Option<Backend> {
    let dir = TempDir::new().unwrap();
    let url = format!("sqlite://{}/contract.db", dir.path().display());
    let repos = db::connect(&url, &options()).await.unwrap();
    Some(Backend {
        repos,
        _guard: Box::new(dir),
    })
}

/// A fresh database on the `TEST_POSTGRES_URL` server; `None` (the test is skipped) without it.
async fn postgres() -> Option<Backend> {
    let admin = support::postgres_admin_url()?;
    let database = support::PgDatabase::create(&admin).await;
    let repos = db::connect(&database.url, &options()).await.unwrap();
    Some(Backend {
        repos,
        _guard: Box::new(database),
    })
}

fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

fn user(name: &str, email: Option<&str>) -> User {
    let at = now();
    User {
        id: UserId::new(),
        username: Username::parse(name).unwrap(),
        email: email.map(|e| EmailAddress::parse(e).unwrap()),
        full_name: Some(FullName::parse("Zoë Example").unwrap()),
        roles: Roles::new([Role::User, Role::Admin]),
        is_active: true,
        password_hash: PasswordHash::new("$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA".into()),
        created_at: at,
        updated_at: at,
    }
}

/// Stores a user with a session and its first refresh token.
async fn session_for(b: &Backend, user: &User, at: DateTime<Utc>) -> (Session, RefreshToken) {
    let token = RefreshToken::generate();
    let session = Session {
        id: SessionId::new(),
        user_id: user.id,
        scope: Roles::new([Role::User]),
        created_at: at,
        expires_at: at + Duration::days(14),
    };
    let record = RefreshTokenRecord {
        hash: token.hash(),
        session_id: session.id,
        created_at: at,
        expires_at: session.expires_at,
    };
    b.repos
        .tokens
        .create_session(&session, &record)
        .await
        .unwrap();
    (session, token)
}

async fn stored_user(b: &Backend, name: &str) -> User {
    let user = user(name, None);
    b.repos.users.insert(&user).await.unwrap();
    user
}

async fn users_round_trip_and_are_found_by_username_regardless_of_case(b: Backend) {
    let alice = user("Alice", Some("alice@example.com"));
    b.repos.users.insert(&alice).await.unwrap();
    assert_eq!(
        b.repos.users.find_by_id(alice.id).await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(
        b.repos.users.find_by_username("aLiCe").await.unwrap(),
        Some(alice)
    );
    assert_eq!(b.repos.users.find_by_username("bob").await.unwrap(), None);
    assert_eq!(b.repos.users.find_by_id(UserId::new()).await.unwrap(), None);
}

async fn usernames_and_emails_are_unique_regardless_of_case(b: Backend) {
    b.repos
        .users
        .insert(&user("carol", Some("c@example.com")))
        .await
        .unwrap();
    let taken = b.repos.users.insert(&user("CAROL", None)).await;
    assert!(matches!(taken, Err(StoreError::UsernameTaken)), "{taken:?}");
    let taken = b
        .repos
        .users
        .insert(&user("carol2", Some("C@Example.COM")))
        .await;
    assert!(matches!(taken, Err(StoreError::EmailTaken)), "{taken:?}");
    // Any number of users may have no e-mail address.
    b.repos.users.insert(&user("dave", None)).await.unwrap();
    b.repos.users.insert(&user("erin", None)).await.unwrap();
}

async fn password_hashes_are_replaced(b: Backend) {
    let alice = stored_user(&b, "alice").await;
    let hash = PasswordHash::new("$argon2id$v=19$m=16,t=2,p=1$bmV3$bmV3".into());
    let later = now() + Duration::seconds(5);
    assert!(b
        .repos
        .users
        .update_password_hash(alice.id, &hash, later)
        .await
        .unwrap());
    let stored = b.repos.users.find_by_id(alice.id).await.unwrap().unwrap();
    assert_eq!(stored.password_hash, hash);
    assert_eq!(stored.updated_at, later);
    assert!(!b
        .repos
        .users
        .update_password_hash(UserId::new(), &hash, later)
        .await
        .unwrap());
}

async fn a_live_session_finds_its_user_and_nothing_else_does(b: Backend) {
    let alice = stored_user(&b, "alice").await;
    let bob = stored_user(&b, "bob").await;
    let at = now();
    let (session, _) = session_for(&b, &alice, at).await;
    let users = &b.repos.users;
    assert_eq!(
        users
            .find_active_by_session(alice.id, session.id, at)
            .await
            .unwrap(),
        Some(Arc::new(alice.clone()))
    );
    assert_eq!(
        users
            .find_active_by_session(bob.id, session.id, at)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        users
            .find_active_by_session(alice.id, SessionId::new(), at)
            .await
            .unwrap(),
        None
    );
    let expired = session.expires_at + Duration::seconds(1);
    assert_eq!(
        users
            .find_active_by_session(alice.id, session.id, expired)
            .await
            .unwrap(),
        None
    );
}

async fn rotation_replaces_the_token_and_extends_the_session(b: Backend) {
    let alice = stored_user(&b, "alice").await;
    let at = now();
    let (session, token) = session_for(&b, &alice, at).await;
    let next = RefreshToken::generate();
    let later = at + Duration::days(1);
    let next_expiry = later + Duration::days(14);
    let outcome = b
        .repos
        .tokens
        .rotate_refresh_token(&token.hash(), &next.hash(), next_expiry, later)
        .await
        .unwrap();
    let RotationOutcome::Rotated {
        session: rotated,
        user,
    } = outcome
    else {
        panic!("expected a rotation, got {outcome:?}");
    };
    assert_eq!(rotated.id, session.id);
    assert_eq!(rotated.scope, session.scope);
    assert_eq!(rotated.expires_at, next_expiry);
    assert_eq!(*user, alice);
    assert_eq!(
        b.repos
            .tokens
            .find_session_of_refresh_token(&next.hash())
            .await
            .unwrap(),
        Some(session.id)
    );
    // The session now lives as long as its newest token.
    let past_first_expiry = session.expires_at + Duration::days(1) - Duration::seconds(1);
    assert!(b
        .repos
        .users
        .find_active_by_session(alice.id, session.id, past_first_expiry)
        .await
        .unwrap()
        .is_some());
}

async fn presenting_a_rotated_token_revokes_the_session(b: Backend) {
    let alice = stored_user(&b, "alice").await;
    let at = now();
    let (session, token) = session_for(&b, &alice, at).await;
    let next = RefreshToken::generate();
    let expiry = at + Duration::days(14);
    let tokens = &b.repos.tokens;
    tokens
        .rotate_refresh_token(&token.hash(), &next.hash(), expiry, at)
        .await
        .unwrap();
    let again = RefreshToken::generate();
    let outcome = tokens
        .rotate_refresh_token(&token.hash(), &again.hash(), expiry, at)
        .await
        .unwrap();
    assert_eq!(
        outcome,
        RotationOutcome::Reused {
            session_id: session.id,
            user_id: alice.id
        }
    );
    let outcome = tokens
        .rotate_refresh_token(&next.hash(), &again.hash(), expiry, at)
        .await
        .unwrap();
    assert_eq!(
        outcome,
        RotationOutcome::Invalid,
        "the descendant token died with the session"
    );
    assert!(b
        .repos
        .users
        .find_active_by_session(alice.id, session.id, at)
        .await
        .unwrap()
        .is_none());
}

/// Whether `user`'s session `session` is live at `at`.
async fn live(b: &Backend, user: &User, session: &Session, at: DateTime<Utc>) -> bool {
    b.repos
        .users
        .find_active_by_session(user.id, session.id, at)
        .await
        .unwrap()
        .is_some()
}

/// An adapter may remember sessions it found live; every write that ends a session or changes
/// its user must be seen by the very next check, even right after a positive one.
async fn a_session_checked_live_is_not_live_after_any_write_that_ends_it(b: Backend) {
    let alice = stored_user(&b, "alice").await;
    let at = now();
    let tokens = &b.repos.tokens;

    let (one, _) = session_for(&b, &alice, at).await;
    assert!(live(&b, &alice, &one, at).await);
    assert!(tokens
        .revoke_session(one.id, RevocationReason::Logout, at)
        .await
        .unwrap());
    assert!(!live(&b, &alice, &one, at).await, "after a revocation");

    let (two, token) = session_for(&b, &alice, at).await;
    assert!(live(&b, &alice, &two, at).await);
    let next = RefreshToken::generate();
    let expiry = at + Duration::days(14);
    tokens
        .rotate_refresh_token(&token.hash(), &next.hash(), expiry, at)
        .await
        .unwrap();
    assert!(live(&b, &alice, &two, at).await, "a rotation keeps it live");
    tokens
        .rotate_refresh_token(&token.hash(), &RefreshToken::generate().hash(), expiry, at)
        .await
        .unwrap();
    assert!(!live(&b, &alice, &two, at).await, "after reuse detection");

    let (three, _) = session_for(&b, &alice, at).await;
    assert!(live(&b, &alice, &three, at).await);
    let mut disabled = alice.clone();
    disabled.is_active = false;
    disabled.updated_at = at + Duration::seconds(1);
    assert!(b.repos.users.update(&disabled).await.unwrap());
    assert!(
        !live(&b, &alice, &three, at).await,
        "after the user is disabled"
    );
    let mut enabled = disabled.clone();
    enabled.is_active = true;
    enabled.roles = Roles::new([Role::User, Role::Admin]);
    assert!(b.repos.users.update(&enabled).await.unwrap());
    let found = b
        .repos
        .users
        .find_active_by_session(alice.id, three.id, at)
        .await
        .unwrap()
        .expect("live again once re-enabled");
    assert!(found.roles.contains(Role::Admin), "the user as stored now");

    tokens
        .revoke_user_sessions(alice.id, None, RevocationReason::PasswordChanged, at)
        .await
        .unwrap();
    assert!(!live(&b, &alice, &three, at).await, "after revoking all");
}

async fn unknown_expired_and_revoked_tokens_do_not_rotate(b: Backend) {
    let alice = stored_user(&b, "alice").await;
    let at = now();
    let tokens = &b.repos.tokens;
    let next = RefreshToken::generate();
    let expiry = at + Duration::days(28);
    let unknown = RefreshToken::generate();
    assert_eq!(
        tokens
            .rotate_refresh_token(&unknown.hash(), &next.hash(), expiry, at)
            .await
            .unwrap(),
        RotationOutcome::Invalid
    );
    let (_, token) = session_for(&b, &alice, at).await;
    let after = at + Duration::days(14);
    assert_eq!(
        tokens
            .rotate_refresh_token(&token.hash(), &next.hash(), expiry, after)
            .await
            .unwrap(),
        RotationOutcome::Invalid
    );
    let (session, token) = session_for(&b, &alice, at).await;
    assert!(tokens
        .revoke_session(session.id, RevocationReason::Logout, at)
        .await
        .unwrap());
    assert_eq!(
        tokens
            .rotate_refresh_token(&token.hash(), &next.hash(), expiry, at)
            .await
            .unwrap(),
        RotationOutcome::Invalid
    );
}

async fn concurrent_rotations_of_one_token_have_exactly_one_winner(b: Backend) {
    let alice = stored_user(&b, "alice").await;
    let at = now();
    let (_, token) = session_for(&b, &alice, at).await;
    let tokens = Arc::clone(&b.repos.tokens);
    let attempts = (0..20).map(|_| {
        let tokens = Arc::clone(&tokens);
        let presented = token.hash();
        tokio::spawn(async move {
            let next = RefreshToken::generate();
            tokens
                .rotate_refresh_token(&presented, &next.hash(), at + Duration::days(14), at)
                .await
                .unwrap()
        })
    });
    let outcomes: Vec<RotationOutcome> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let winners = outcomes
        .iter()
        .filter(|o| matches!(o, RotationOutcome::Rotated { .. }))
        .count();
    assert_eq!(winners, 1, "{outcomes:?}");
    let reused = outcomes
        .iter()
        .filter(|o| matches!(o, RotationOutcome::Reused { .. }))
        .count();
    assert_eq!(
        reused, 19,
        "every loser presented an already-rotated token: {outcomes:?}"
    );
}

async fn sessions_are_revoked_one_or_all_but_one(b: Backend) {
    let alice = stored_user(&b, "alice").await;
    let bob = stored_user(&b, "bob").await;
    let at = now();
    let (one, one_token) = session_for(&b, &alice, at).await;
    let (two, _) = session_for(&b, &alice, at).await;
    let (three, _) = session_for(&b, &alice, at).await;
    let (bobs, _) = session_for(&b, &bob, at).await;
    let tokens = &b.repos.tokens;
    let users = &b.repos.users;
    assert_eq!(
        tokens
            .find_session_of_refresh_token(&one_token.hash())
            .await
            .unwrap(),
        Some(one.id)
    );
    assert!(tokens
        .revoke_session(one.id, RevocationReason::Logout, at)
        .await
        .unwrap());
    assert!(
        !tokens
            .revoke_session(one.id, RevocationReason::Logout, at)
            .await
            .unwrap(),
        "already revoked"
    );
    assert_eq!(
        tokens
            .find_session_of_refresh_token(&one_token.hash())
            .await
            .unwrap(),
        Some(one.id)
    );
    let revoked = tokens
        .revoke_user_sessions(
            alice.id,
            Some(three.id),
            RevocationReason::PasswordChanged,
            at,
        )
        .await
        .unwrap();
    assert_eq!(revoked, 1, "only `two` was still live among the others");
    assert!(users
        .find_active_by_session(alice.id, two.id, at)
        .await
        .unwrap()
        .is_none());
    assert!(users
        .find_active_by_session(alice.id, three.id, at)
        .await
        .unwrap()
        .is_some());
    assert!(users
        .find_active_by_session(bob.id, bobs.id, at)
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        tokens
            .revoke_user_sessions(alice.id, None, RevocationReason::LogoutAll, at)
            .await
            .unwrap(),
        1
    );
    assert!(users
        .find_active_by_session(alice.id, three.id, at)
        .await
        .unwrap()
        .is_none());
}

async fn concurrently_recorded_audit_events_are_all_stored(b: Backend) {
    use auth_service::domain::audit::{AuditEvent, AuditEventKind, AuditFilter};
    let audit = Arc::clone(&b.repos.audit);
    let records = (0..40).map(|i| {
        let audit = Arc::clone(&audit);
        tokio::spawn(async move {
            let event = AuditEvent {
                id: uuid::Uuid::now_v7(),
                at: now(),
                kind: AuditEventKind::LoginFailed,
                user_id: None,
                username: Some(format!("burst{i}")),
                ip: Some("10.0.0.1".parse().unwrap()),
                user_agent: None,
                success: false,
                detail: Some("wrong password".into()),
            };
            audit.record(&event).await.unwrap();
        })
    });
    for handle in futures::future::join_all(records).await {
        handle.unwrap();
    }
    let stored = audit
        .list(&AuditFilter {
            limit: 100,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(stored.len(), 40, "every acknowledged event is stored");
}

async fn the_health_probe_answers(b: Backend) {
    b.repos.health.ping().await.unwrap();
}

macro_rules! contract_tests {
    ($($backend:ident),+: $cases:tt) => {
        $(contract_tests!(@backend $backend $cases);)+
    };
    (@backend $backend:ident [$($case:ident),+ $(,)?]) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    match super::$backend().await {
                        Some(backend) => super::$case(backend).await,
                        None => super::support::skip(concat!(stringify!($backend), "::", stringify!($case))),
                    }
                }
            )+
        }
    };
}

contract_tests!(sqlite, postgres: [
    users_round_trip_and_are_found_by_username_regardless_of_case,
    usernames_and_emails_are_unique_regardless_of_case,
    password_hashes_are_replaced,
    a_live_session_finds_its_user_and_nothing_else_does,
    rotation_replaces_the_token_and_extends_the_session,
    presenting_a_rotated_token_revokes_the_session,
    a_session_checked_live_is_not_live_after_any_write_that_ends_it,
    unknown_expired_and_revoked_tokens_do_not_rotate,
    concurrent_rotations_of_one_token_have_exactly_one_winner,
    sessions_are_revoked_one_or_all_but_one,
    concurrently_recorded_audit_events_are_all_stored,
    the_health_probe_answers,
]);

/// SQLite only: a session revoked by another process (here a connection of this test, outside
/// the store) stops being live for the store once it notices the foreign write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_sees_a_revocation_written_by_another_process() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("foreign.db");
    let repos = db::connect(&format!("sqlite://{}", path.display()), &options())
        .await
        .unwrap();
    let b = Backend {
        repos,
        _guard: Box::new(()),
    };
    let alice = stored_user(&b, "alice").await;
    let at = now();
    let (session, _) = session_for(&b, &alice, at).await;
    assert!(live(&b, &alice, &session, at).await);
    let other = rusqlite::Connection::open(&path).unwrap();
    other
        .busy_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    let changed = other
        .execute(
            "UPDATE sessions SET revoked_at = 1, revoked_reason = 'revoked' WHERE id = ?",
            [session.id.to_string()],
        )
        .unwrap();
    assert_eq!(changed, 1);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while live(&b, &alice, &session, at).await {
        assert!(
            std::time::Instant::now() < deadline,
            "the foreign revocation was never seen"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
