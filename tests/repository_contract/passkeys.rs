//! Passkey storage: the passkeys with their users' count, unique credential ids, the per-user
//! limit under concurrency, counters that only advance, and WebAuthn ceremonies taken once,
//! expiring, and purged.

use auth_service::domain::passkey::{
    AddOutcome, Ceremony, CeremonyId, CeremonyKind, Passkey, PasskeyId, PasskeyName,
};

use super::*;

async fn stored_user(b: &Backend, name: &str) -> User {
    let user = user(name, None);
    b.repos.users.insert(&user).await.unwrap();
    user
}

fn passkey(user: &User, credential_id: &str, at: DateTime<Utc>) -> Passkey {
    Passkey {
        id: PasskeyId::new(),
        user_id: user.id,
        name: PasskeyName::parse("Clé 🔑").unwrap(),
        credential_id: credential_id.to_owned(),
        credential: format!("{{\"cred\":\"{credential_id}\"}}"),
        sign_count: 1,
        created_at: at,
        last_used_at: None,
    }
}

async fn passkey_count(b: &Backend, user: &User) -> u32 {
    b.repos
        .users
        .find_by_id(user.id)
        .await
        .unwrap()
        .unwrap()
        .mfa
        .passkeys
}

fn ceremony(kind: CeremonyKind, user: Option<&User>, expires_at: DateTime<Utc>) -> Ceremony {
    Ceremony {
        id: CeremonyId::new(),
        kind,
        user_id: user.map(|u| u.id),
        state: "{\"challenge\":\"c\"}".into(),
        created_at: expires_at - Duration::seconds(300),
        expires_at,
    }
}

pub async fn passkeys_are_added_listed_and_deleted_keeping_the_users_count_in_step(b: Backend) {
    let alice = stored_user(&b, "alice").await;
    let at = now();
    let first = passkey(&alice, "cred-1", at);
    let second = passkey(&alice, "cred-2", at + Duration::seconds(1));
    let store = &b.repos.passkeys;
    assert_eq!(
        store.add_passkey(&first, 10).await.unwrap(),
        AddOutcome::Added
    );
    assert_eq!(
        store.add_passkey(&second, 10).await.unwrap(),
        AddOutcome::Added
    );
    assert_eq!(passkey_count(&b, &alice).await, 2);
    assert_eq!(
        store.list_passkeys(alice.id).await.unwrap(),
        vec![first.clone(), second.clone()]
    );
    assert_eq!(
        store.find_by_credential_id("cred-2").await.unwrap(),
        Some(second.clone())
    );
    assert_eq!(store.find_by_credential_id("cred-3").await.unwrap(), None);

    assert!(store.delete_passkey(alice.id, first.id).await.unwrap());
    assert!(!store.delete_passkey(alice.id, first.id).await.unwrap());
    assert_eq!(passkey_count(&b, &alice).await, 1);
    assert_eq!(store.list_passkeys(alice.id).await.unwrap(), vec![second]);
    let ghost = user("ghost", None);
    let orphan = passkey(&ghost, "cred-9", at);
    assert_eq!(
        store.add_passkey(&orphan, 10).await.unwrap(),
        AddOutcome::NoSuchUser
    );
}

pub async fn a_credential_id_is_registered_once_across_users(b: Backend) {
    let alice = stored_user(&b, "alice").await;
    let bob = stored_user(&b, "bob").await;
    let store = &b.repos.passkeys;
    let at = now();
    assert_eq!(
        store
            .add_passkey(&passkey(&alice, "shared", at), 10)
            .await
            .unwrap(),
        AddOutcome::Added
    );
    assert_eq!(
        store
            .add_passkey(&passkey(&alice, "shared", at), 10)
            .await
            .unwrap(),
        AddOutcome::Duplicate
    );
    assert_eq!(
        store
            .add_passkey(&passkey(&bob, "shared", at), 10)
            .await
            .unwrap(),
        AddOutcome::Duplicate
    );
    assert_eq!(passkey_count(&b, &alice).await, 1);
    assert_eq!(passkey_count(&b, &bob).await, 0);
    assert!(store.list_passkeys(bob.id).await.unwrap().is_empty());
}

pub async fn the_passkey_limit_holds_under_concurrent_registrations(b: Backend) {
    let alice = stored_user(&b, "alice").await;
    let at = now();
    let store = b.repos.passkeys.clone();
    let attempts = (0..16).map(|i| {
        let store = store.clone();
        let key = passkey(&alice, &format!("cred-{i}"), at);
        tokio::spawn(async move { store.add_passkey(&key, 10).await.unwrap() })
    });
    let outcomes = futures::future::join_all(attempts).await;
    let added = outcomes
        .iter()
        .filter(|o| *o.as_ref().unwrap() == AddOutcome::Added)
        .count();
    let refused = outcomes
        .iter()
        .filter(|o| *o.as_ref().unwrap() == AddOutcome::LimitReached)
        .count();
    assert_eq!((added, refused), (10, 6));
    assert_eq!(passkey_count(&b, &alice).await, 10);
    assert_eq!(store.list_passkeys(alice.id).await.unwrap().len(), 10);
}

pub async fn another_users_passkey_cannot_be_deleted(b: Backend) {
    let alice = stored_user(&b, "alice").await;
    let bob = stored_user(&b, "bob").await;
    let key = passkey(&alice, "cred-a", now());
    let store = &b.repos.passkeys;
    store.add_passkey(&key, 10).await.unwrap();
    assert!(!store.delete_passkey(bob.id, key.id).await.unwrap());
    assert!(!store
        .delete_passkey(alice.id, PasskeyId::new())
        .await
        .unwrap());
    assert_eq!(passkey_count(&b, &alice).await, 1);
    assert_eq!(passkey_count(&b, &bob).await, 0);
    assert_eq!(store.list_passkeys(alice.id).await.unwrap(), vec![key]);
}

pub async fn a_use_is_recorded_only_when_the_counter_advances(b: Backend) {
    let alice = stored_user(&b, "alice").await;
    let key = passkey(&alice, "cred-a", now());
    let store = b.repos.passkeys.clone();
    store.add_passkey(&key, 10).await.unwrap();
    let used_at = now() + Duration::seconds(5);
    // Two uses racing with one counter value: one is recorded.
    let racing = (0..8).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .record_use(key.id, "{\"v\":2}", 2, used_at)
                .await
                .unwrap()
        })
    });
    let recorded = futures::future::join_all(racing)
        .await
        .into_iter()
        .filter(|r| *r.as_ref().unwrap())
        .count();
    assert_eq!(recorded, 1);
    assert!(
        !store
            .record_use(key.id, "{\"v\":1}", 1, used_at)
            .await
            .unwrap(),
        "a counter going back"
    );
    let stored = store
        .find_by_credential_id("cred-a")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (stored.sign_count, stored.credential.as_str()),
        (2, "{\"v\":2}")
    );
    assert_eq!(stored.last_used_at, Some(used_at));
    assert!(!store
        .record_use(PasskeyId::new(), "{}", 9, used_at)
        .await
        .unwrap());

    // Authenticators without a counter (always 0) are recorded every time.
    let zero = Passkey {
        sign_count: 0,
        ..passkey(&alice, "cred-z", now())
    };
    store.add_passkey(&zero, 10).await.unwrap();
    assert!(store.record_use(zero.id, "{}", 0, used_at).await.unwrap());
    assert!(store.record_use(zero.id, "{}", 0, used_at).await.unwrap());
}

pub async fn a_ceremony_is_taken_once_even_under_concurrency(b: Backend) {
    let alice = stored_user(&b, "alice").await;
    let at = now();
    let started = ceremony(
        CeremonyKind::Registration,
        Some(&alice),
        at + Duration::seconds(300),
    );
    let store = b.repos.passkeys.clone();
    store.insert_ceremony(&started).await.unwrap();
    let takers = (0..20).map(|_| {
        let store = store.clone();
        let user = alice.id;
        tokio::spawn(async move {
            store
                .take_ceremony(started.id, CeremonyKind::Registration, Some(user), at)
                .await
                .unwrap()
        })
    });
    let taken: Vec<Ceremony> = futures::future::join_all(takers)
        .await
        .into_iter()
        .filter_map(|r| r.unwrap())
        .collect();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].state, started.state);
    assert_eq!(taken[0].user_id, Some(alice.id));
    assert_eq!(
        (taken[0].created_at, taken[0].expires_at),
        (started.created_at, started.expires_at)
    );
}

pub async fn a_ceremony_of_another_kind_user_or_past_its_expiry_is_not_given_and_is_gone(
    b: Backend,
) {
    let alice = stored_user(&b, "alice").await;
    let bob = stored_user(&b, "bob").await;
    let at = now();
    let store = &b.repos.passkeys;
    let later = at + Duration::seconds(300);
    for (kind, user, when) in [
        (CeremonyKind::SecondFactor, Some(alice.id), at),
        (CeremonyKind::Registration, Some(bob.id), at),
        (CeremonyKind::Registration, None, at),
        (CeremonyKind::Registration, Some(alice.id), later),
    ] {
        let started = ceremony(CeremonyKind::Registration, Some(&alice), later);
        store.insert_ceremony(&started).await.unwrap();
        assert!(store
            .take_ceremony(started.id, kind, user, when)
            .await
            .unwrap()
            .is_none());
        // The refused attempt used it up: its challenge is never answered.
        let again = store
            .take_ceremony(started.id, CeremonyKind::Registration, Some(alice.id), at)
            .await
            .unwrap();
        assert!(again.is_none());
    }
    let usernameless = ceremony(CeremonyKind::Discoverable, None, later);
    store.insert_ceremony(&usernameless).await.unwrap();
    let taken = store
        .take_ceremony(usernameless.id, CeremonyKind::Discoverable, None, at)
        .await
        .unwrap();
    assert_eq!(taken.map(|c| c.id), Some(usernameless.id));
}

pub async fn expired_ceremonies_are_purged(b: Backend) {
    let at = now();
    let store = &b.repos.passkeys;
    let expired = ceremony(CeremonyKind::Discoverable, None, at - Duration::seconds(1));
    let live = ceremony(CeremonyKind::Discoverable, None, at + Duration::seconds(60));
    store.insert_ceremony(&expired).await.unwrap();
    store.insert_ceremony(&live).await.unwrap();
    assert_eq!(store.purge_ceremonies(at).await.unwrap(), 1);
    assert_eq!(store.purge_ceremonies(at).await.unwrap(), 0);
    let kept = store
        .take_ceremony(live.id, CeremonyKind::Discoverable, None, at)
        .await
        .unwrap();
    assert_eq!(kept.map(|c| c.id), Some(live.id));
}
