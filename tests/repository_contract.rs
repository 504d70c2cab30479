//! One contract for the repository ports, written once and run against every storage adapter:
//! memory, SQLite, and PostgreSQL when `TEST_POSTGRES_URL` is set (each of its cases says it
//! skipped otherwise). A new backend adds one name to `contract_tests!` and must pass every case.

use std::sync::Arc;

use auth_service::domain::audit::{AuditEvent, AuditEventKind, AuditFilter};
use auth_service::domain::ports::{
    LockoutPolicy, PurgeCutoffs, StoreError, ThrottleChange, ThrottleEvent, ThrottleOutcome,
};
use auth_service::domain::session::{
    NewSession, RefreshToken, RefreshTokenHash, RefreshTokenRecord, RevocationReason, Rotation,
    RotationOutcome, Session, SessionId,
};
use auth_service::domain::user::{
    EmailAddress, FullName, LoginKey, PasswordHash, Role, Roles, User, UserChanges, UserId,
    Username,
};
use auth_service::infrastructure::db::{self, DbOptions, Repositories};
use chrono::{DateTime, Duration, SubsecRound, Utc};
use tempfile::TempDir;

mod support;

#[path = "repository_contract/account.rs"]
mod account;
#[path = "repository_contract/clients.rs"]
mod clients;
#[path = "repository_contract/housekeeping.rs"]
mod housekeeping;
#[path = "repository_contract/invalidation.rs"]
mod invalidation;
#[path = "repository_contract/listings.rs"]
mod listings;
#[path = "repository_contract/mail.rs"]
mod mail;
#[path = "repository_contract/oidc.rs"]
mod oidc;
#[path = "repository_contract/passkeys.rs"]
mod passkeys;
#[path = "repository_contract/rates.rs"]
mod rates;
#[path = "repository_contract/totp.rs"]
mod totp;

use account::*;
use clients::*;
use housekeeping::*;
use invalidation::*;
use listings::*;
use mail::*;
use oidc::*;
use passkeys::*;
use rates::*;
use totp::*;

/// A backend under test; `_guard` keeps its temporary storage alive.
pub struct Backend {
    repos: Repositories,
    /// The database's URL, for a second replica (PostgreSQL only).
    url: Option<String>,
    _guard: Box<dyn std::any::Any + Send>,
}

fn options() -> DbOptions {
    DbOptions {
        max_connections: 8,
        acquire_timeout: std::time::Duration::from_secs(5),
        statement_timeout: std::time::Duration::from_secs(5),
        session_cache_bytes: 16 << 20,
    }
}

/// The in-memory adapter (the use-case unit tests run on it, so it must keep the contract too).
async fn memory() -> Option<Backend> {
    Some(Backend {
        repos: db::memory::MemoryStore::new().repositories(),
        url: None,
        _guard: Box::new(()),
    })
}

async fn sqlite() -> Option<Backend> {
    let dir = TempDir::new().unwrap();
    let url = format!("sqlite://{}/contract.db", dir.path().display());
    let repos = db::connect(&url, &options()).await.unwrap();
    Some(Backend {
        repos,
        url: None,
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
        url: Some(database.url.clone()),
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
        credential_version: 0,
        email_verified: false,
        mfa: Default::default(),
        created_at: at,
        updated_at: at,
    }
}

/// Stores a user with a session and its first refresh token.
async fn session_for(b: &Backend, user: &User, at: DateTime<Utc>) -> (Session, RefreshToken) {
    start_session(b, user, at, None, 100)
        .await
        .expect("the session starts")
}

/// A session for `user` as of credential version `user.credential_version`, optionally started
/// from `parent`, with at most `cap` live sessions per user; `None` when the store refused it.
async fn start_session(
    b: &Backend,
    user: &User,
    at: DateTime<Utc>,
    parent: Option<SessionId>,
    cap: u32,
) -> Option<(Session, RefreshToken)> {
    let token = RefreshToken::generate();
    let mut session = Session {
        id: SessionId::new(),
        user_id: user.id,
        scope: Roles::new([Role::User]),
        created_at: at,
        expires_at: at + Duration::days(14),
        not_after: at + Duration::days(30),
        parent_id: parent,
        oidc: Default::default(),
        client_id: None,
    };
    let first_token = RefreshTokenRecord {
        hash: token.hash(),
        session_id: session.id,
        created_at: at,
        expires_at: session.expires_at,
    };
    let new = NewSession {
        session: session.clone(),
        first_token: Some(first_token),
        signin: None,
        credential_version: user.credential_version,
        max_live_sessions: cap,
        origin: Default::default(),
    };
    let expires_at = b.repos.tokens.create_session(&new).await.unwrap()?;
    session.expires_at = expires_at;
    Some((session, token))
}

/// The audit template a rotation at `at` records its outcome with.
fn audit_template(at: DateTime<Utc>) -> AuditEvent {
    AuditEvent {
        id: uuid::Uuid::now_v7(),
        at,
        kind: AuditEventKind::TokenRefreshed,
        user_id: None,
        username: None,
        ip: Some("10.0.0.9".parse().unwrap()),
        user_agent: Some("contract".into()),
        success: true,
        detail: None,
    }
}

/// Rotates `presented` into `next`.
async fn rotate(
    b: &Backend,
    presented: &RefreshTokenHash,
    next: &RefreshTokenHash,
    next_expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> RotationOutcome {
    b.repos
        .tokens
        .rotate_refresh_token(&Rotation {
            presented: presented.clone(),
            next: next.clone(),
            next_expires_at,
            now,
            grace: Duration::zero(),
            audit: audit_template(now),
        })
        .await
        .unwrap()
}

/// `event` judged by `policy` at `now`.
fn change(event: ThrottleEvent, policy: LockoutPolicy, now: DateTime<Utc>) -> ThrottleChange {
    ThrottleChange { event, policy, now }
}

/// Rotates `token` on each of `days` after `at`, each time for 14 more days; the session after
/// each rotation, and the last token.
async fn rotate_on(
    b: &Backend,
    mut token: RefreshToken,
    at: DateTime<Utc>,
    days: &[i64],
) -> (Vec<Session>, RefreshToken) {
    let mut sessions = Vec::new();
    for day in days {
        let when = at + Duration::days(*day);
        let next = RefreshToken::generate();
        let expires_at = when + Duration::days(14);
        let RotationOutcome::Rotated { session, .. } =
            rotate(b, &token.hash(), &next.hash(), expires_at, when).await
        else {
            panic!("day {day}: the token should rotate");
        };
        sessions.push(session);
        token = next;
    }
    (sessions, token)
}

fn key(raw: &str) -> LoginKey {
    LoginKey::parse(raw).unwrap()
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
        b.repos.users.find_by_username(&key("aLiCe")).await.unwrap(),
        Some(alice)
    );
    assert_eq!(
        b.repos.users.find_by_username(&key("bob")).await.unwrap(),
        None
    );
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

async fn a_password_change_bumps_the_credential_version_and_revokes_the_other_sessions(b: Backend) {
    let alice = stored_user(&b, "alice").await;
    let at = now();
    let (kept, _) = session_for(&b, &alice, at).await;
    let (other, _) = session_for(&b, &alice, at).await;
    let hash = PasswordHash::new("$argon2id$v=19$m=16,t=2,p=1$bmV3$bmV3".into());
    let later = at + Duration::seconds(5);
    let revoked = b
        .repos
        .users
        .change_password(alice.id, &hash, Some(kept.id), later)
        .await
        .unwrap();
    assert_eq!(revoked, Some(1));
    let stored = b.repos.users.find_by_id(alice.id).await.unwrap().unwrap();
    assert_eq!(stored.password_hash, hash);
    assert_eq!(stored.credential_version, alice.credential_version + 1);
    assert_eq!(stored.updated_at, later);
    assert!(live(&b, &alice, &kept, later).await);
    assert!(!live(&b, &alice, &other, later).await);
    // A login that checked the old password (the old version) starts no session.
    assert!(start_session(&b, &alice, later, None, 100).await.is_none());
    assert!(start_session(&b, &stored, later, None, 100).await.is_some());
    assert_eq!(
        b.repos
            .users
            .change_password(UserId::new(), &hash, None, later)
            .await
            .unwrap(),
        None
    );
}

async fn a_hash_upgrade_loses_to_a_password_change(b: Backend) {
    let alice = stored_user(&b, "alice").await;
    let users = &b.repos.users;
    let upgraded = PasswordHash::new("$argon2id$v=19$m=32,t=2,p=1$dXA$dXA".into());
    assert!(users
        .upgrade_password_hash(alice.id, &alice.password_hash, &upgraded)
        .await
        .unwrap());
    let changed = PasswordHash::new("$argon2id$v=19$m=32,t=2,p=1$bmV3$bmV3".into());
    users
        .change_password(alice.id, &changed, None, now())
        .await
        .unwrap();
    // An upgrade computed from the old password arrives late: it must not restore it.
    assert!(!users
        .upgrade_password_hash(alice.id, &upgraded, &alice.password_hash)
        .await
        .unwrap());
    let stored = users.find_by_id(alice.id).await.unwrap().unwrap();
    assert_eq!(stored.password_hash, changed);
}

async fn an_update_changes_only_the_fields_it_names(b: Backend) {
    let alice = stored_user(&b, "alice").await;
    let at = now();
    let (session, _) = session_for(&b, &alice, at).await;
    let users = &b.repos.users;
    let later = at + Duration::seconds(1);
    // Two administrators' changes of different fields, as if read at the same moment.
    let demote = UserChanges {
        roles: Some(Roles::new([Role::User])),
        is_active: Some(false),
        ..UserChanges::default()
    };
    let rename = UserChanges {
        full_name: Some(Some(FullName::parse("Rogue").unwrap())),
        ..UserChanges::default()
    };
    let (demoted, revoked) = users
        .update_fields(alice.id, &demote, later)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(revoked, 1, "disabling revokes in the same step");
    assert!(!demoted.is_active);
    let (renamed, revoked) = users
        .update_fields(alice.id, &rename, later)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(revoked, 0);
    assert_eq!(renamed.full_name.as_ref().unwrap().as_str(), "Rogue");
    assert!(!renamed.is_active, "the rename did not undo the disable");
    assert_eq!(renamed.roles, Roles::new([Role::User]));
    assert_eq!(renamed.email, alice.email);
    assert!(!live(&b, &alice, &session, later).await);
    let clear = UserChanges {
        full_name: Some(None),
        ..UserChanges::default()
    };
    let (cleared, _) = users
        .update_fields(alice.id, &clear, later)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cleared.full_name, None);
    assert_eq!(
        users
            .update_fields(UserId::new(), &rename, later)
            .await
            .unwrap(),
        None
    );
    let bob = user("bob", Some("bob@example.com"));
    users.insert(&bob).await.unwrap();
    let steal = UserChanges {
        email: Some(Some(EmailAddress::parse("BOB@example.com").unwrap())),
        ..UserChanges::default()
    };
    let taken = users.update_fields(alice.id, &steal, later).await;
    assert!(matches!(taken, Err(StoreError::EmailTaken)), "{taken:?}");
}

async fn an_update_of_a_missing_user_changes_nothing_even_with_a_taken_email(b: Backend) {
    let alice = user("alice", Some("alice@example.com"));
    b.repos.users.insert(&alice).await.unwrap();
    let change = UserChanges {
        email: Some(Some(EmailAddress::parse("ALICE@example.com").unwrap())),
        ..UserChanges::default()
    };
    let updated = b
        .repos
        .users
        .update_fields(UserId::new(), &change, now())
        .await;
    assert!(matches!(updated, Ok(None)), "{updated:?}");
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
    let outcome = rotate(&b, &token.hash(), &next.hash(), next_expiry, later).await;
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
    rotate(&b, &token.hash(), &next.hash(), expiry, at).await;
    let again = RefreshToken::generate();
    let outcome = rotate(&b, &token.hash(), &again.hash(), expiry, at).await;
    assert_eq!(
        outcome,
        RotationOutcome::Reused {
            session_id: session.id,
            user_id: alice.id
        }
    );
    let outcome = rotate(&b, &next.hash(), &again.hash(), expiry, at).await;
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
    rotate(&b, &token.hash(), &next.hash(), expiry, at).await;
    assert!(live(&b, &alice, &two, at).await, "a rotation keeps it live");
    rotate(
        &b,
        &token.hash(),
        &RefreshToken::generate().hash(),
        expiry,
        at,
    )
    .await;
    assert!(!live(&b, &alice, &two, at).await, "after reuse detection");

    let (three, _) = session_for(&b, &alice, at).await;
    assert!(live(&b, &alice, &three, at).await);
    let disable = UserChanges {
        is_active: Some(false),
        ..UserChanges::default()
    };
    let later = at + Duration::seconds(1);
    assert!(b
        .repos
        .users
        .update_fields(alice.id, &disable, later)
        .await
        .unwrap()
        .is_some());
    assert!(
        !live(&b, &alice, &three, at).await,
        "after the user is disabled"
    );
    let enable = UserChanges {
        is_active: Some(true),
        roles: Some(Roles::new([Role::User, Role::Admin])),
        ..UserChanges::default()
    };
    b.repos
        .users
        .update_fields(alice.id, &enable, later)
        .await
        .unwrap();
    let (four, _) = session_for(&b, &alice, at).await;
    let found = b
        .repos
        .users
        .find_active_by_session(alice.id, four.id, at)
        .await
        .unwrap()
        .expect("a new session once re-enabled");
    assert!(found.roles.contains(Role::Admin), "the user as stored now");
    b.repos
        .users
        .update_fields(alice.id, &UserChanges::default(), later)
        .await
        .unwrap();
    assert!(
        live(&b, &alice, &four, at).await,
        "after a change that ends nothing"
    );

    tokens
        .revoke_user_sessions(alice.id, None, RevocationReason::PasswordChanged, at)
        .await
        .unwrap();
    assert!(!live(&b, &alice, &four, at).await, "after revoking all");

    let (five, _) = session_for(&b, &alice, at).await;
    assert!(live(&b, &alice, &five, at).await);
    let stored = b.repos.users.find_by_id(alice.id).await.unwrap().unwrap();
    b.repos
        .users
        .change_password(alice.id, &stored.password_hash, None, at)
        .await
        .unwrap();
    assert!(
        !live(&b, &alice, &five, at).await,
        "after a password change"
    );

    let stored = b.repos.users.find_by_id(alice.id).await.unwrap().unwrap();
    let (parent, _) = session_for(&b, &stored, at).await;
    let (child, _) = start_session(&b, &stored, at, Some(parent.id), 100)
        .await
        .unwrap();
    assert!(live(&b, &alice, &child, at).await);
    tokens
        .revoke_session(parent.id, RevocationReason::Logout, at)
        .await
        .unwrap();
    assert!(
        !live(&b, &alice, &child, at).await,
        "after its parent's logout"
    );

    let (capped, _) = session_for(&b, &stored, at).await;
    assert!(live(&b, &alice, &capped, at).await);
    start_session(&b, &stored, at + Duration::seconds(1), None, 1)
        .await
        .unwrap();
    assert!(
        !live(&b, &alice, &capped, at).await,
        "after the cap revoked it"
    );
}

async fn unknown_expired_and_revoked_tokens_do_not_rotate(b: Backend) {
    let alice = stored_user(&b, "alice").await;
    let at = now();
    let tokens = &b.repos.tokens;
    let next = RefreshToken::generate();
    let expiry = at + Duration::days(28);
    let unknown = RefreshToken::generate();
    assert_eq!(
        rotate(&b, &unknown.hash(), &next.hash(), expiry, at).await,
        RotationOutcome::Invalid
    );
    let (_, token) = session_for(&b, &alice, at).await;
    let after = at + Duration::days(14);
    assert_eq!(
        rotate(&b, &token.hash(), &next.hash(), expiry, after).await,
        RotationOutcome::Invalid
    );
    let (session, token) = session_for(&b, &alice, at).await;
    assert!(tokens
        .revoke_session(session.id, RevocationReason::Logout, at)
        .await
        .unwrap());
    assert_eq!(
        rotate(&b, &token.hash(), &next.hash(), expiry, at).await,
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
                .rotate_refresh_token(&Rotation {
                    presented,
                    next: next.hash(),
                    next_expires_at: at + Duration::days(14),
                    now: at,
                    grace: Duration::zero(),
                    audit: audit_template(at),
                })
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

async fn rotation_and_reuse_store_their_audit_event_in_the_same_step(b: Backend) {
    let alice = stored_user(&b, "alice").await;
    let at = now();
    let (session, token) = session_for(&b, &alice, at).await;
    let next = RefreshToken::generate();
    rotate(&b, &token.hash(), &next.hash(), at + Duration::days(14), at).await;
    rotate(&b, &token.hash(), &RefreshToken::generate().hash(), at, at).await;
    rotate(&b, &RefreshToken::generate().hash(), &next.hash(), at, at).await;
    let events = b
        .repos
        .audit
        .list(&AuditFilter {
            user_id: Some(alice.id),
            limit: 10,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            AuditEventKind::RefreshTokenReused,
            AuditEventKind::TokenRefreshed
        ],
        "one event per outcome, none for an unknown token"
    );
    let refreshed = &events[1];
    assert!(refreshed.success);
    assert_eq!(refreshed.username.as_deref(), Some("alice"));
    assert_eq!(refreshed.user_agent.as_deref(), Some("contract"));
    assert!(refreshed
        .detail
        .as_ref()
        .unwrap()
        .contains(&session.id.to_string()));
    assert!(!events[0].success);
}

/// The stored event of a rotation is exactly the one its outcome makes from the template (the
/// PostgreSQL adapter writes it from SQL in the rotation's own statement).
async fn a_rotation_stores_exactly_the_event_its_outcome_makes(b: Backend) {
    let alice = stored_user(&b, "alice").await;
    let at = now();
    let (_, token) = session_for(&b, &alice, at).await;
    let template = audit_template(at);
    let outcome = b
        .repos
        .tokens
        .rotate_refresh_token(&Rotation {
            presented: token.hash(),
            next: RefreshToken::generate().hash(),
            next_expires_at: at + Duration::days(14),
            now: at,
            grace: Duration::zero(),
            audit: template.clone(),
        })
        .await
        .unwrap();
    assert!(matches!(outcome, RotationOutcome::Rotated { .. }));
    let events = b
        .repos
        .audit
        .list(&AuditFilter {
            user_id: Some(alice.id),
            limit: 10,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(events, vec![outcome.audit_event(&template).unwrap()]);
}

async fn rotation_never_extends_a_session_past_its_absolute_end(b: Backend) {
    let alice = stored_user(&b, "alice").await;
    let at = now();
    let (session, token) = session_for(&b, &alice, at).await;
    let (rotated, token) = rotate_on(&b, token, at, &[10, 20, 29]).await;
    for (day, rotated) in [10, 20, 29].iter().zip(&rotated) {
        let expiry = rotated.expires_at;
        assert!(expiry <= session.not_after, "day {day}: {expiry}");
    }
    assert_eq!(rotated[2].expires_at, session.not_after);
    let past = session.not_after + Duration::seconds(1);
    assert_eq!(
        rotate(
            &b,
            &token.hash(),
            &RefreshToken::generate().hash(),
            past + Duration::days(14),
            past
        )
        .await,
        RotationOutcome::Invalid
    );
}

async fn a_session_started_from_another_ends_with_it(b: Backend) {
    let alice = stored_user(&b, "alice").await;
    let at = now();
    let (parent, _) = session_for(&b, &alice, at).await;
    let (child, _) = start_session(&b, &alice, at + Duration::days(1), Some(parent.id), 100)
        .await
        .unwrap();
    assert!(child.expires_at <= parent.not_after);
    // Its absolute end is its parent's, not its own login's plus 30 days.
    let (_, token) = start_session(&b, &alice, at + Duration::days(2), Some(child.id), 100)
        .await
        .unwrap();
    let (rotated, _) = rotate_on(&b, token, at, &[10, 20]).await;
    assert_eq!(rotated[1].expires_at, parent.not_after);
    let tokens = &b.repos.tokens;
    assert!(tokens
        .revoke_session(parent.id, RevocationReason::Logout, at)
        .await
        .unwrap());
    assert!(!live(&b, &alice, &child, at).await);
    // Nothing starts from a revoked session, nor from another user's.
    assert!(start_session(&b, &alice, at, Some(parent.id), 100)
        .await
        .is_none());
    let bob = stored_user(&b, "bob").await;
    let (bobs, _) = session_for(&b, &bob, at).await;
    assert!(start_session(&b, &alice, at, Some(bobs.id), 100)
        .await
        .is_none());
}

async fn the_oldest_sessions_beyond_the_cap_are_revoked(b: Backend) {
    let alice = stored_user(&b, "alice").await;
    let at = now();
    let mut sessions = Vec::new();
    for i in 0..5 {
        let (session, _) = start_session(&b, &alice, at + Duration::seconds(i), None, 3)
            .await
            .unwrap();
        sessions.push(session);
    }
    let when = at + Duration::seconds(10);
    let mut alive = Vec::new();
    for session in &sessions {
        alive.push(live(&b, &alice, session, when).await);
    }
    assert_eq!(alive, [false, false, true, true, true]);
}

async fn an_inactive_user_starts_no_session(b: Backend) {
    let alice = stored_user(&b, "alice").await;
    let disable = UserChanges {
        is_active: Some(false),
        ..UserChanges::default()
    };
    b.repos
        .users
        .update_fields(alice.id, &disable, now())
        .await
        .unwrap();
    assert!(start_session(&b, &alice, now(), None, 100).await.is_none());
    let ghost = user("ghost", None);
    assert!(start_session(&b, &ghost, now(), None, 100).await.is_none());
}

fn policy() -> LockoutPolicy {
    LockoutPolicy {
        max_failures: 5,
        base: Duration::seconds(300),
        max: Duration::seconds(3600),
    }
}

async fn concurrent_guesses_reserve_at_most_the_limit_and_lock_once(b: Backend) {
    let throttle = Arc::clone(&b.repos.throttle);
    let at = now();
    let attempts = (0..30).map(|_| {
        let throttle = Arc::clone(&throttle);
        tokio::spawn(async move {
            let k = key("Mallory");
            let outcome = throttle
                .apply(&k, change(ThrottleEvent::Attempt, policy(), at))
                .await
                .unwrap();
            if outcome != ThrottleOutcome::Allowed {
                return (false, None);
            }
            tokio::task::yield_now().await;
            let failed = throttle
                .apply(&k, change(ThrottleEvent::Failure, policy(), at))
                .await
                .unwrap();
            (true, Some(failed))
        })
    });
    let results: Vec<_> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let checked = results.iter().filter(|(allowed, _)| *allowed).count();
    let locks = results
        .iter()
        .filter(|(_, f)| matches!(f, Some(ThrottleOutcome::Locked { .. })))
        .count();
    assert_eq!(checked, 5, "{results:?}");
    assert_eq!(locks, 1, "{results:?}");
    // The same key in another spelling is the same key; the lock holds for it.
    let refused = throttle
        .apply(
            &key("mallory"),
            change(ThrottleEvent::Attempt, policy(), at),
        )
        .await
        .unwrap();
    assert_eq!(
        refused,
        ThrottleOutcome::Refused {
            until: at + Duration::seconds(300)
        }
    );
    // A success forgets everything; other keys were never touched.
    let later = at + Duration::seconds(301);
    let k = key("mallory");
    assert_eq!(
        throttle
            .apply(&k, change(ThrottleEvent::Attempt, policy(), later))
            .await
            .unwrap(),
        ThrottleOutcome::Allowed
    );
    throttle
        .apply(&k, change(ThrottleEvent::Success, policy(), later))
        .await
        .unwrap();
    assert_eq!(
        throttle
            .apply(&key("trudy"), change(ThrottleEvent::Attempt, policy(), at))
            .await
            .unwrap(),
        ThrottleOutcome::Allowed
    );
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

contract_tests!(memory, sqlite, postgres: [
    // The cache-invalidation port (issue 15).
    every_revocation_path_publishes_an_invalidation_on_every_replica,
    a_replica_whose_listener_is_killed_reports_it_and_never_answers_from_memory,
    a_rotation_publishes_nothing_to_other_replicas,
    // The rate limit's budgets (issue 15).
    a_key_gets_its_burst_then_one_token_per_interval,
    a_lease_takes_what_is_left_and_never_more_than_the_burst,
    concurrent_takes_never_exceed_the_budget,
    a_purge_keeps_the_budgets_in_use,
    // Passkeys (issue 14, part P).
    passkeys_are_added_listed_and_deleted_keeping_the_users_count_in_step,
    a_credential_id_is_registered_once_across_users,
    the_passkey_limit_holds_under_concurrent_registrations,
    another_users_passkey_cannot_be_deleted,
    a_use_is_recorded_only_when_the_counter_advances,
    a_ceremony_is_taken_once_even_under_concurrency,
    a_ceremony_of_another_kind_user_or_past_its_expiry_is_not_given_and_is_gone,
    expired_ceremonies_are_purged,
    a_pending_totp_is_replaced_then_confirmed_once,
    a_totp_step_is_accepted_once_and_never_an_earlier_one,
    concurrent_uses_of_one_totp_step_have_exactly_one_winner,
    recovery_codes_are_single_use_and_counted_on_the_user,
    removing_totp_clears_the_codes_and_the_summary,
    a_live_session_shows_the_mfa_summary_as_stored_now,
    pending_signins_live_until_expiry_and_are_taken_once,
    clients_round_trip_page_update_and_delete,
    a_rotated_secret_replaces_the_old_hash,
    unknown_client_ids_change_nothing,
    deleting_or_disabling_a_client_revokes_exactly_its_sessions,
    sessions_started_from_a_client_session_end_with_the_client,
    a_session_started_while_its_client_is_deleted_does_not_outlive_it,
    a_session_started_while_its_parent_ends_does_not_outlive_it,
    users_round_trip_and_are_found_by_username_regardless_of_case,
    usernames_and_emails_are_unique_regardless_of_case,
    a_password_change_bumps_the_credential_version_and_revokes_the_other_sessions,
    a_hash_upgrade_loses_to_a_password_change,
    an_update_changes_only_the_fields_it_names,
    an_update_of_a_missing_user_changes_nothing_even_with_a_taken_email,
    a_live_session_finds_its_user_and_nothing_else_does,
    rotation_replaces_the_token_and_extends_the_session,
    presenting_a_rotated_token_revokes_the_session,
    a_session_checked_live_is_not_live_after_any_write_that_ends_it,
    unknown_expired_and_revoked_tokens_do_not_rotate,
    concurrent_rotations_of_one_token_have_exactly_one_winner,
    sessions_are_revoked_one_or_all_but_one,
    concurrently_recorded_audit_events_are_all_stored,
    the_health_probe_answers,
    rotation_and_reuse_store_their_audit_event_in_the_same_step,
    a_rotation_stores_exactly_the_event_its_outcome_makes,
    rotation_never_extends_a_session_past_its_absolute_end,
    a_session_started_from_another_ends_with_it,
    the_oldest_sessions_beyond_the_cap_are_revoked,
    an_inactive_user_starts_no_session,
    concurrent_guesses_reserve_at_most_the_limit_and_lock_once,
    each_lock_doubles_until_a_success_forgets_them,
    abandoned_and_stale_reservations_are_given_back,
    the_purge_removes_exactly_what_no_longer_matters,
    a_purge_larger_than_one_step_deletes_every_due_row,
    a_primary_key_collision_is_not_a_username_or_email_clash,
    audit_filters_select_alone_and_combined,
    the_audit_trail_pages_backwards_by_time,
    users_are_listed_oldest_first_page_by_page,
    a_code_is_redeemed_once_and_every_later_redemption_is_a_replay,
    concurrent_redemptions_of_one_code_have_exactly_one_fresh,
    expired_codes_are_unknown_unless_they_were_used,
    the_purge_removes_codes_expired_before_the_revocation_cutoff,
    a_browser_signin_is_found_by_its_cookie_until_it_ends,
    only_a_live_refresh_token_is_found,
    a_sessions_openid_scope_and_client_survive_storage_and_rotation,
    the_session_cap_neither_counts_nor_revokes_browser_signins,
    ending_a_session_ends_its_descendants_at_every_depth,
    a_retry_within_the_window_gets_the_same_successor_and_changes_nothing,
    concurrent_retries_of_one_token_all_get_its_one_successor,
    a_retry_after_the_successor_was_used_or_outside_the_window_revokes,
    the_session_list_shows_live_sessions_newest_first_with_origin_and_last_use,
    a_session_is_ended_only_by_its_owner_and_with_its_descendants,
    deleting_a_user_cascades_and_scrubs_the_audit_trail,
    the_last_active_admin_is_never_deleted_even_concurrently,
    a_reset_token_is_used_once_only_before_it_expires_and_a_newer_one_replaces_it,
    concurrent_uses_of_one_token_have_exactly_one_winner,
    verification_counts_only_for_the_address_the_token_was_sent_to,
    concurrent_requests_for_one_address_never_exceed_its_limit,
    concurrent_claims_share_out_the_due_mails_and_a_lease_keeps_them,
    the_purge_removes_expired_tokens_and_old_sent_mail_but_never_unsent_mail,
]);

/// The in-memory adapter is for tests: no `DATABASE_URL` selects it.
#[tokio::test]
async fn no_database_url_selects_the_in_memory_adapter() {
    for url in [
        "memory:",
        "memory://",
        "sqlite::memory:",
        "sqlite://:memory:",
    ] {
        let refused = db::connect(url, &options()).await;
        assert!(
            matches!(refused, Err(StoreError::Other(_))),
            "{url}: {:?}",
            refused.err()
        );
    }
}

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
        url: None,
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

/// Two store instances on one PostgreSQL database (two replicas' pools) racing to rotate one
/// token: exactly one rotation, every other caller a reuse (which revokes the session); and with
/// a retry window and the same successor (a retry after a lost response), one rotation and
/// every other caller the same successor back, nothing revoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_rotations_racing_across_two_stores_have_one_winner() {
    let Some(admin) = support::postgres_admin_url() else {
        return support::skip("postgres_rotations_racing_across_two_stores_have_one_winner");
    };
    let database = support::PgDatabase::create(&admin).await;
    let one = db::connect(&database.url, &options()).await.unwrap();
    let two = db::connect(&database.url, &options()).await.unwrap();
    let stores = [Arc::clone(&one.tokens), Arc::clone(&two.tokens)];
    let b = Backend {
        repos: one,
        url: Some(database.url.clone()),
        _guard: Box::new(()),
    };
    let alice = stored_user(&b, "alice").await;
    for grace in [Duration::zero(), Duration::seconds(30)] {
        let at = now();
        let (session, token) = session_for(&b, &alice, at).await;
        let successor = RefreshToken::generate().hash();
        let attempts = (0..16).map(|i| {
            let store = Arc::clone(&stores[i % 2]);
            let presented = token.hash();
            let next = if grace > Duration::zero() {
                successor.clone()
            } else {
                RefreshToken::generate().hash()
            };
            tokio::spawn(async move {
                store
                    .rotate_refresh_token(&Rotation {
                        presented,
                        next,
                        next_expires_at: at + Duration::days(14),
                        now: at,
                        grace,
                        audit: audit_template(at),
                    })
                    .await
                    .unwrap()
            })
        });
        let outcomes: Vec<RotationOutcome> = futures::future::join_all(attempts)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let count = |f: fn(&RotationOutcome) -> bool| outcomes.iter().filter(|o| f(o)).count();
        assert_eq!(
            count(|o| matches!(o, RotationOutcome::Rotated { .. })),
            1,
            "{outcomes:?}"
        );
        if grace > Duration::zero() {
            assert_eq!(
                count(|o| matches!(o, RotationOutcome::Retried { .. })),
                15,
                "{outcomes:?}"
            );
            assert!(
                live(&b, &alice, &session, at).await,
                "a retry revokes nothing"
            );
        } else {
            assert_eq!(
                count(|o| matches!(o, RotationOutcome::Reused { .. })),
                15,
                "{outcomes:?}"
            );
            assert!(!live(&b, &alice, &session, at).await, "a reuse revokes");
        }
    }
}
