//! The account: the retry of a refresh after a lost response, the user's session list, ending
//! one session, and deleting a user.

use auth_service::domain::account::{Deletion, SessionOrigin};
use auth_service::domain::oidc::SigninToken;

use super::*;

/// A rotation of `presented` into `next` at `now`, retried within `grace`.
fn rotation(
    presented: &RefreshToken,
    next: &RefreshToken,
    now: DateTime<Utc>,
    grace: i64,
) -> Rotation {
    Rotation {
        presented: presented.hash(),
        next: next.hash(),
        next_expires_at: now + Duration::days(14),
        now,
        grace: Duration::seconds(grace),
        audit: audit_template(now),
    }
}

async fn rotate_with(b: &Backend, rotation: &Rotation) -> RotationOutcome {
    b.repos.tokens.rotate_refresh_token(rotation).await.unwrap()
}

async fn is_live_token(b: &Backend, token: &RefreshToken, at: DateTime<Utc>) -> bool {
    b.repos
        .tokens
        .find_live_refresh_token(&token.hash(), at)
        .await
        .unwrap()
        .is_some()
}

pub async fn a_retry_within_the_window_gets_the_same_successor_and_changes_nothing(b: Backend) {
    let alice = stored_user(&b, "alice").await;
    let at = now();
    let (session, t0) = session_for(&b, &alice, at).await;
    let t1 = RefreshToken::generate();
    let RotationOutcome::Rotated {
        session: rotated, ..
    } = rotate_with(&b, &rotation(&t0, &t1, at, 30)).await
    else {
        panic!("the first presentation rotates");
    };
    let later = at + Duration::seconds(30);
    let RotationOutcome::Retried {
        session: retried,
        user,
    } = rotate_with(&b, &rotation(&t0, &t1, later, 30)).await
    else {
        panic!("a retry within the window is a retry");
    };
    assert_eq!(user.id, alice.id);
    assert_eq!(retried, rotated, "nothing changed");
    assert!(live(&b, &alice, &session, later).await);
    assert!(is_live_token(&b, &t1, later).await);
    // A retry naming another successor is a reuse: it cannot know the real one.
    let stranger = RefreshToken::generate();
    assert!(matches!(
        rotate_with(&b, &rotation(&t0, &stranger, later, 30)).await,
        RotationOutcome::Reused { .. }
    ));
    assert!(!live(&b, &alice, &session, later).await);
    let events = b
        .repos
        .audit
        .list(&AuditFilter {
            user_id: Some(alice.id),
            kind: Some(AuditEventKind::RefreshTokenRetried),
            before: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(events.len(), 1, "the retry is audited in the same step");
}

pub async fn concurrent_retries_of_one_token_all_get_its_one_successor(b: Backend) {
    let alice = stored_user(&b, "alice").await;
    let at = now();
    let (session, t0) = session_for(&b, &alice, at).await;
    let t1 = RefreshToken::generate();
    let tokens = Arc::clone(&b.repos.tokens);
    let attempts = (0..20).map(|i| {
        let tokens = Arc::clone(&tokens);
        let rotation = rotation(&t0, &t1, at + Duration::milliseconds(i), 30);
        tokio::spawn(async move { tokens.rotate_refresh_token(&rotation).await.unwrap() })
    });
    let outcomes: Vec<RotationOutcome> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let rotated = outcomes
        .iter()
        .filter(|o| matches!(o, RotationOutcome::Rotated { .. }))
        .count();
    let retried = outcomes
        .iter()
        .filter(|o| matches!(o, RotationOutcome::Retried { .. }))
        .count();
    assert_eq!((rotated, retried), (1, 19), "{outcomes:?}");
    let later = at + Duration::seconds(1);
    assert!(live(&b, &alice, &session, later).await);
    assert!(is_live_token(&b, &t1, later).await);
    // The successor rotates as usual; then the first token is a reuse again.
    let t2 = RefreshToken::generate();
    assert!(matches!(
        rotate_with(&b, &rotation(&t1, &t2, later, 30)).await,
        RotationOutcome::Rotated { .. }
    ));
    assert!(matches!(
        rotate_with(&b, &rotation(&t0, &t1, later, 30)).await,
        RotationOutcome::Reused { .. }
    ));
    assert!(!live(&b, &alice, &session, later).await);
    assert!(!is_live_token(&b, &t2, later).await);
}

pub async fn a_retry_after_the_successor_was_used_or_outside_the_window_revokes(b: Backend) {
    let alice = stored_user(&b, "alice").await;
    let at = now();
    // Outside the window, and with the window off.
    for (grace, wait) in [(30, 31), (0, 0)] {
        let (session, t0) = session_for(&b, &alice, at).await;
        let t1 = RefreshToken::generate();
        rotate_with(&b, &rotation(&t0, &t1, at, grace)).await;
        let later = at + Duration::seconds(wait);
        assert!(
            matches!(
                rotate_with(&b, &rotation(&t0, &t1, later, grace)).await,
                RotationOutcome::Reused { .. }
            ),
            "grace {grace}, {wait} s later"
        );
        assert!(!live(&b, &alice, &session, later).await);
        assert!(!is_live_token(&b, &t1, later).await);
    }
    // After the successor was used.
    let (session, t0) = session_for(&b, &alice, at).await;
    let (t1, t2) = (RefreshToken::generate(), RefreshToken::generate());
    rotate_with(&b, &rotation(&t0, &t1, at, 30)).await;
    rotate_with(&b, &rotation(&t1, &t2, at, 30)).await;
    assert!(matches!(
        rotate_with(&b, &rotation(&t0, &t1, at, 30)).await,
        RotationOutcome::Reused { .. }
    ));
    assert!(!live(&b, &alice, &session, at).await);
    assert!(!is_live_token(&b, &t2, at).await);
}

/// A session of `user` at `at` started from `origin`: with a refresh token, or a browser
/// sign-in when `browser`.
async fn start_from(
    b: &Backend,
    user: &User,
    at: DateTime<Utc>,
    origin: SessionOrigin,
    browser: bool,
) -> (Session, Option<RefreshToken>) {
    let token = (!browser).then(RefreshToken::generate);
    let session = Session {
        id: SessionId::new(),
        user_id: user.id,
        scope: Roles::new([Role::User]),
        created_at: at,
        expires_at: at + Duration::days(14),
        not_after: at + Duration::days(30),
        parent_id: None,
        oidc: Default::default(),
        client_id: None,
    };
    let new = NewSession {
        first_token: token.as_ref().map(|t| RefreshTokenRecord {
            hash: t.hash(),
            session_id: session.id,
            created_at: at,
            expires_at: session.expires_at,
        }),
        signin: browser.then(|| SigninToken::generate().hash()),
        session: session.clone(),
        credential_version: user.credential_version,
        max_live_sessions: 100,
        origin,
    };
    b.repos.tokens.create_session(&new).await.unwrap().unwrap();
    (session, token)
}

pub async fn the_session_list_shows_live_sessions_newest_first_with_origin_and_last_use(
    b: Backend,
) {
    let alice = stored_user(&b, "alice").await;
    let bob = stored_user(&b, "bob").await;
    let at = now();
    let agent = "Mozilla/5.0 (Ünïcödé; \u{1F600}) 'quoted' \"and\" <tags>";
    let phone = SessionOrigin::new(Some("2001:db8::7".parse().unwrap()), Some(agent));
    let (first, token) = start_from(&b, &alice, at, phone.clone(), false).await;
    let (browser, _) = start_from(
        &b,
        &alice,
        at + Duration::seconds(1),
        Default::default(),
        true,
    )
    .await;
    let (ended, _) = start_from(
        &b,
        &alice,
        at + Duration::seconds(2),
        Default::default(),
        false,
    )
    .await;
    start_from(
        &b,
        &bob,
        at + Duration::seconds(3),
        Default::default(),
        false,
    )
    .await;
    b.repos
        .tokens
        .revoke_session(
            ended.id,
            RevocationReason::Logout,
            at + Duration::seconds(3),
        )
        .await
        .unwrap();
    let used = at + Duration::seconds(9);
    rotate_with(
        &b,
        &rotation(&token.unwrap(), &RefreshToken::generate(), used, 0),
    )
    .await;
    let listed = b
        .repos
        .account
        .list_sessions(alice.id, at + Duration::seconds(10))
        .await
        .unwrap();
    let ids: Vec<SessionId> = listed.iter().map(|s| s.id).collect();
    assert_eq!(ids, [browser.id, first.id]);
    assert!(listed[0].browser && !listed[1].browser);
    assert_eq!(listed[0].last_used_at, browser.created_at);
    assert_eq!(listed[0].origin, SessionOrigin::default());
    assert_eq!(listed[1].origin, phone, "stored as given");
    assert_eq!(listed[1].created_at, at);
    assert_eq!(listed[1].last_used_at, used, "a rotation is a use");
    assert_eq!(listed[1].expires_at, used + Duration::days(14));
    // Expired sessions are not listed.
    let later = b
        .repos
        .account
        .list_sessions(alice.id, at + Duration::days(14) + Duration::seconds(5))
        .await
        .unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].id, first.id);
}

pub async fn a_session_is_ended_only_by_its_owner_and_with_its_descendants(b: Backend) {
    let alice = stored_user(&b, "alice").await;
    let bob = stored_user(&b, "bob").await;
    let at = now();
    let (parent, _) = session_for(&b, &alice, at).await;
    let (child, _) = start_session(&b, &alice, at, Some(parent.id), 100)
        .await
        .unwrap();
    let (bobs, _) = session_for(&b, &bob, at).await;
    let account = &b.repos.account;
    assert!(!account.end_session(alice.id, bobs.id, at).await.unwrap());
    assert!(live(&b, &bob, &bobs, at).await);
    assert!(!account
        .end_session(alice.id, SessionId::new(), at)
        .await
        .unwrap());
    assert!(
        live(&b, &alice, &child, at).await,
        "checked live, then ended"
    );
    assert!(account.end_session(alice.id, parent.id, at).await.unwrap());
    assert!(!live(&b, &alice, &parent, at).await);
    assert!(!live(&b, &alice, &child, at).await);
    assert!(!account.end_session(alice.id, parent.id, at).await.unwrap());
}

pub async fn deleting_a_user_cascades_and_scrubs_the_audit_trail(b: Backend) {
    let mut alice = user("Alice", Some("alice@example.com"));
    alice.roles = Roles::new([Role::User]);
    b.repos.users.insert(&alice).await.unwrap();
    let admin = stored_user(&b, "root").await;
    let bob = stored_user(&b, "bob").await;
    let at = now();
    let (session, token) = session_for(&b, &alice, at).await;
    assert!(live(&b, &alice, &session, at).await);
    let policy = LockoutPolicy {
        max_failures: 5,
        base: Duration::minutes(5),
        max: Duration::hours(1),
    };
    b.repos
        .throttle
        .apply(&key("alice"), change(ThrottleEvent::Attempt, policy, at))
        .await
        .unwrap();
    let event = |kind, user_id: Option<UserId>, username: &str, detail: &str| AuditEvent {
        id: uuid::Uuid::now_v7(),
        at,
        kind,
        user_id,
        username: Some(username.to_owned()),
        ip: Some("192.0.2.1".parse().unwrap()),
        user_agent: Some("agent".into()),
        success: true,
        detail: Some(detail.to_owned()),
    };
    let hers = event(
        AuditEventKind::LoginSucceeded,
        Some(alice.id),
        "Alice",
        "session x",
    );
    let anonymous = event(AuditEventKind::LoginFailed, None, "alice", "unknown user");
    let by_her = event(
        AuditEventKind::UserUpdated,
        Some(bob.id),
        "bob",
        "by Alice: roles=user",
    );
    let by_other = event(
        AuditEventKind::UserUpdated,
        Some(bob.id),
        "bob",
        "by Alicey: roles=user",
    );
    for e in [&hers, &anonymous, &by_her, &by_other] {
        b.repos.audit.record(e).await.unwrap();
    }
    let mut deleted = audit_template(at);
    deleted.kind = AuditEventKind::AccountDeleted;
    deleted.user_id = Some(alice.id);
    deleted.ip = None;
    deleted.user_agent = None;
    let account = &b.repos.account;
    assert_eq!(
        account.delete_user(alice.id, &deleted).await.unwrap(),
        Deletion::Deleted
    );
    assert_eq!(b.repos.users.find_by_id(alice.id).await.unwrap(), None);
    assert!(!live(&b, &alice, &session, at).await);
    assert!(!is_live_token(&b, &token, at).await);
    assert_eq!(
        b.repos
            .tokens
            .find_session_of_refresh_token(&token.hash())
            .await
            .unwrap(),
        None,
        "the sessions and tokens are gone, not just revoked"
    );
    assert!(account
        .list_sessions(alice.id, at)
        .await
        .unwrap()
        .is_empty());
    let all = b
        .repos
        .audit
        .list(&AuditFilter {
            user_id: None,
            kind: None,
            before: None,
            limit: 200,
        })
        .await
        .unwrap();
    let find = |id| all.iter().find(|e| e.id == id).unwrap();
    let scrubbed = find(hers.id);
    assert_eq!(scrubbed.user_id, Some(alice.id), "the user id stays");
    assert_eq!(
        (&scrubbed.username, scrubbed.ip, &scrubbed.user_agent),
        (&None, None, &None)
    );
    assert_eq!(scrubbed.detail, hers.detail);
    assert_eq!(find(anonymous.id).username, None);
    assert_eq!(
        find(by_her.id).detail.as_deref(),
        Some(format!("by {}: roles=user", alice.id).as_str())
    );
    assert_eq!(find(by_her.id).username.as_deref(), Some("bob"));
    assert_eq!(find(by_other.id).detail, by_other.detail);
    assert_eq!(find(deleted.id).kind, AuditEventKind::AccountDeleted);
    // The lockout counter of the name is gone: a fresh account starts with a clean slate.
    let fresh = b
        .repos
        .throttle
        .apply(&key("alice"), change(ThrottleEvent::Attempt, policy, at))
        .await
        .unwrap();
    assert_eq!(fresh, ThrottleOutcome::Allowed);
    // The username and e-mail address are free again.
    b.repos
        .users
        .insert(&user("ALICE", Some("Alice@Example.com")))
        .await
        .unwrap();
    assert_eq!(
        account.delete_user(alice.id, &deleted).await.unwrap(),
        Deletion::NotFound
    );
    assert!(b.repos.users.find_by_id(admin.id).await.unwrap().is_some());
}

pub async fn the_last_active_admin_is_never_deleted_even_concurrently(b: Backend) {
    // `user()` makes admins.
    let first = stored_user(&b, "first").await;
    let second = stored_user(&b, "second").await;
    let mut plain = user("plain", None);
    plain.roles = Roles::new([Role::User]);
    b.repos.users.insert(&plain).await.unwrap();
    let at = now();
    let template = |id: UserId| {
        let mut e = audit_template(at);
        e.kind = AuditEventKind::AccountDeleted;
        e.user_id = Some(id);
        e
    };
    let account = Arc::clone(&b.repos.account);
    let attempts = [first.id, second.id].map(|id| {
        let account = Arc::clone(&account);
        let event = template(id);
        tokio::spawn(async move { account.delete_user(id, &event).await.unwrap() })
    });
    let mut outcomes: Vec<Deletion> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    outcomes.sort_by_key(|o| *o as u8);
    assert_eq!(outcomes, [Deletion::Deleted, Deletion::LastAdmin]);
    let survivor = if b.repos.users.find_by_id(first.id).await.unwrap().is_some() {
        first
    } else {
        second
    };
    assert_eq!(
        account
            .delete_user(survivor.id, &template(survivor.id))
            .await
            .unwrap(),
        Deletion::LastAdmin
    );
    // Users who are not admins go as usual.
    assert_eq!(
        account
            .delete_user(plain.id, &template(plain.id))
            .await
            .unwrap(),
        Deletion::Deleted
    );
}
