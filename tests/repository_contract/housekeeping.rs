//! The login throttle's counters, the purge, and a primary-key collision.

use super::*;

async fn apply(
    b: &Backend,
    name: &str,
    event: ThrottleEvent,
    at: DateTime<Utc>,
) -> ThrottleOutcome {
    b.repos
        .throttle
        .apply(&key(name), change(event, policy(), at))
        .await
        .unwrap()
}

/// `policy().max_failures` wrong guesses in a row; the outcome of the last.
async fn fail_in_a_row(b: &Backend, name: &str, at: DateTime<Utc>) -> ThrottleOutcome {
    let mut last = ThrottleOutcome::Allowed;
    for _ in 0..policy().max_failures {
        assert_eq!(
            apply(b, name, ThrottleEvent::Attempt, at).await,
            ThrottleOutcome::Allowed
        );
        last = apply(b, name, ThrottleEvent::Failure, at).await;
    }
    last
}

pub async fn each_lock_doubles_until_a_success_forgets_them(b: Backend) {
    let at = now();
    let lock = |from: DateTime<Utc>, seconds| ThrottleOutcome::Locked {
        until: from + Duration::seconds(seconds),
    };
    assert_eq!(fail_in_a_row(&b, "eve", at).await, lock(at, 300));
    assert_eq!(
        apply(
            &b,
            "Eve",
            ThrottleEvent::Attempt,
            at + Duration::seconds(299)
        )
        .await,
        ThrottleOutcome::Refused {
            until: at + Duration::seconds(300)
        }
    );
    let second = at + Duration::seconds(300);
    assert_eq!(fail_in_a_row(&b, "eve", second).await, lock(second, 600));
    let third = second + Duration::seconds(600);
    assert_eq!(fail_in_a_row(&b, "eve", third).await, lock(third, 1200));
    let after = third + Duration::seconds(1200);
    assert_eq!(
        apply(&b, "eve", ThrottleEvent::Attempt, after).await,
        ThrottleOutcome::Allowed
    );
    assert_eq!(
        apply(&b, "eve", ThrottleEvent::Success, after).await,
        ThrottleOutcome::Allowed
    );
    assert_eq!(
        fail_in_a_row(&b, "eve", after).await,
        lock(after, 300),
        "forgotten"
    );
}

/// Applies each event at `at` to `name`'s counters and checks its outcome.
async fn expect(
    b: &Backend,
    name: &str,
    at: DateTime<Utc>,
    steps: &[(ThrottleEvent, ThrottleOutcome)],
) {
    for (i, (event, outcome)) in steps.iter().enumerate() {
        assert_eq!(
            apply(b, name, *event, at).await,
            *outcome,
            "step {i}: {event:?}"
        );
    }
}

pub async fn abandoned_and_stale_reservations_are_given_back(b: Backend) {
    use ThrottleEvent::{Abandon, Attempt};
    use ThrottleOutcome::{Allowed, Busy};
    let at = now();
    let reservations = vec![(Attempt, Allowed); policy().max_failures as usize];
    expect(&b, "oscar", at, &reservations).await;
    let given_back = [
        (Attempt, Busy),
        (Abandon, Allowed),
        (Attempt, Allowed),
        (Attempt, Busy),
    ];
    expect(&b, "oscar", at, &given_back).await;
    // Reservations whose outcome never came are given back once they are stale.
    let later = at + LockoutPolicy::PENDING_TIMEOUT + Duration::seconds(1);
    expect(&b, "oscar", later, &[(Attempt, Allowed)]).await;
    // Another key was never touched.
    expect(&b, "victor", at, &[(Attempt, Allowed)]).await;
}

pub async fn the_purge_removes_exactly_what_no_longer_matters(b: Backend) {
    let alice = stored_user(&b, "alice").await;
    let at = now();
    let day = Duration::days(1);
    let cutoffs = PurgeCutoffs {
        now: at,
        revoked_before: at - day,
        audit_before: at - day * 90,
        throttle_before: at - day,
    };
    let (expired, expired_token) = session_for(&b, &alice, at - day * 40).await;
    let (revoked_long_ago, _) = session_for(&b, &alice, at - day * 3).await;
    let (revoked_lately, revoked_lately_token) = session_for(&b, &alice, at - day * 3).await;
    let (current, _) = session_for(&b, &alice, at).await;
    for (session, when) in [(&revoked_long_ago, at - day * 2), (&revoked_lately, at)] {
        let tokens = &b.repos.tokens;
        assert!(tokens
            .revoke_session(session.id, RevocationReason::Logout, when)
            .await
            .unwrap());
    }
    // A live session whose first token expired after it was rotated (at -7 days, the token
    // still valid until -6 days) into one valid until +7 days.
    let (rotated, old) = session_for(&b, &alice, at - day * 20).await;
    let next = RefreshToken::generate();
    let outcome = rotate(&b, &old.hash(), &next.hash(), at + day * 7, at - day * 7).await;
    assert!(matches!(outcome, RotationOutcome::Rotated { .. }));
    let audit = |at| AuditEvent {
        kind: AuditEventKind::Logout,
        ..audit_template(at)
    };
    let (ancient, recent) = (audit(at - day * 100), audit(at - day));
    for event in [&ancient, &recent] {
        b.repos.audit.record(event).await.unwrap();
    }
    let long = LockoutPolicy {
        max_failures: 1,
        base: day * 3,
        max: day * 3,
    };
    let throttle = &b.repos.throttle;
    for (name, when, policy) in [
        ("idle", at - day * 2, policy()),
        ("locked", at - day * 2, long),
        ("recent", at, policy()),
    ] {
        for event in [ThrottleEvent::Attempt, ThrottleEvent::Failure] {
            throttle
                .apply(&key(name), change(event, policy, when))
                .await
                .unwrap();
        }
    }

    let removed = (b.repos.purge).purge(&cutoffs).await.unwrap();
    // Two sessions (their tokens go with them, uncounted), the rotated session's expired
    // token, one audit event, one idle throttle key.
    assert_eq!(removed, 5);
    assert!(!live(&b, &alice, &expired, at - day * 39).await);
    assert!(live(&b, &alice, &current, at).await);
    assert!(live(&b, &alice, &rotated, at).await);
    let tokens = &b.repos.tokens;
    let session_of = |token: &RefreshToken| {
        let hash = token.hash();
        async move { tokens.find_session_of_refresh_token(&hash).await.unwrap() }
    };
    assert_eq!(session_of(&expired_token).await, None);
    assert_eq!(session_of(&old).await, None, "an expired token");
    assert_eq!(session_of(&next).await, Some(rotated.id));
    assert_eq!(
        session_of(&revoked_lately_token).await,
        Some(revoked_lately.id)
    );
    let events = (b.repos.audit)
        .list(&AuditFilter {
            kind: Some(AuditEventKind::Logout),
            limit: 10,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(events.iter().map(|e| e.id).collect::<Vec<_>>(), [recent.id]);
    assert!(matches!(
        throttle
            .apply(&key("locked"), change(ThrottleEvent::Attempt, long, at))
            .await
            .unwrap(),
        ThrottleOutcome::Refused { .. }
    ));
    let again = (b.repos.purge).purge(&cutoffs).await.unwrap();
    assert_eq!(again, 0, "nothing left to purge");
}

pub async fn a_primary_key_collision_is_not_a_username_or_email_clash(b: Backend) {
    let alice = stored_user(&b, "alice").await;
    let impostor = User {
        id: alice.id,
        ..user("mallory", Some("mallory@example.com"))
    };
    let refused = b.repos.users.insert(&impostor).await;
    assert!(matches!(refused, Err(StoreError::Other(_))), "{refused:?}");
    assert_eq!(
        b.repos.users.find_by_id(alice.id).await.unwrap(),
        Some(alice)
    );
    let mallory = b
        .repos
        .users
        .find_by_username(&key("mallory"))
        .await
        .unwrap();
    assert_eq!(mallory, None);
}

/// More rows than one step of any adapter's purge deletes (SQLite: 1,000 rowids a job;
/// PostgreSQL: 5,000 rows a statement): every one of them goes, and nothing else.
pub async fn a_purge_larger_than_one_step_deletes_every_due_row(b: Backend) {
    let at = now();
    let old = at - Duration::days(100);
    let mut recent = Vec::new();
    for batch in 0..21 {
        let records = (0..500).map(|i| {
            let audit = Arc::clone(&b.repos.audit);
            let due = batch * 500 + i < 10_001;
            let event = audit_template(if due { old } else { at });
            tokio::spawn(async move {
                audit.record(&event).await.unwrap();
                (!due).then_some(event.id)
            })
        });
        for id in futures::future::join_all(records).await {
            recent.extend(id.unwrap());
        }
    }
    let removed = (b.repos.purge)
        .purge(&PurgeCutoffs {
            now: at,
            revoked_before: at - Duration::days(1),
            audit_before: at - Duration::days(90),
            throttle_before: at,
        })
        .await
        .unwrap();
    assert_eq!(removed, 10_001);
    let left = (b.repos.audit)
        .list(&AuditFilter {
            limit: 1_000,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let mut left: Vec<_> = left.into_iter().map(|e| e.id).collect();
    left.sort_unstable();
    recent.sort_unstable();
    assert_eq!(left, recent);
}
