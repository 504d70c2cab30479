//! Second-factor storage: pending and confirmed TOTP authenticators, the once-only TOTP step,
//! single-use recovery codes, the user's MFA summary kept in step, and pending sign-ins.

use auth_service::domain::mfa::{
    PendingSignin, PendingSigninToken, RecoveryCode, RecoveryCodeHash, SealedSecret,
};

use super::*;

async fn stored_user(b: &Backend, name: &str) -> User {
    let user = user(name, None);
    b.repos.users.insert(&user).await.unwrap();
    user
}

fn sealed(tag: u8) -> SealedSecret {
    SealedSecret::from_bytes(vec![1, tag, 2, 3, 4, 5, 6, 7, 8, 9])
}

fn codes(n: usize) -> (Vec<RecoveryCode>, Vec<RecoveryCodeHash>) {
    let codes: Vec<RecoveryCode> = (0..n).map(|_| RecoveryCode::generate()).collect();
    let hashes = codes.iter().map(RecoveryCode::hash).collect();
    (codes, hashes)
}

async fn mfa_of(b: &Backend, user: &User) -> auth_service::domain::user::MfaSummary {
    b.repos
        .users
        .find_by_id(user.id)
        .await
        .unwrap()
        .unwrap()
        .mfa
}

pub async fn a_pending_totp_is_replaced_then_confirmed_once(b: Backend) {
    let alice = stored_user(&b, "alice").await;
    let mfa = &b.repos.mfa;
    assert!(mfa.find_totp(alice.id).await.unwrap().is_none());
    assert!(mfa
        .store_pending_totp(alice.id, &sealed(1), now())
        .await
        .unwrap());
    assert!(
        mfa.store_pending_totp(alice.id, &sealed(2), now())
            .await
            .unwrap(),
        "replaced"
    );
    let pending = mfa.find_totp(alice.id).await.unwrap().unwrap();
    assert_eq!(
        (pending.sealed, pending.confirmed, pending.last_step),
        (sealed(2), false, None)
    );
    assert!(!mfa_of(&b, &alice).await.totp, "pending is not on");
    let (_, hashes) = codes(10);
    assert!(
        !mfa.confirm_totp(alice.id, &sealed(1), 7, &hashes, now())
            .await
            .unwrap(),
        "a confirmation of the replaced secret changes nothing"
    );
    assert!(mfa
        .confirm_totp(alice.id, &sealed(2), 7, &hashes, now())
        .await
        .unwrap());
    assert!(
        !mfa.confirm_totp(alice.id, &sealed(2), 8, &hashes, now())
            .await
            .unwrap(),
        "once"
    );
    let confirmed = mfa.find_totp(alice.id).await.unwrap().unwrap();
    assert_eq!((confirmed.confirmed, confirmed.last_step), (true, Some(7)));
    let summary = mfa_of(&b, &alice).await;
    assert!(summary.totp && summary.has_second_factor());
    assert_eq!(summary.recovery_codes_left, 10);
    assert!(
        !mfa.store_pending_totp(alice.id, &sealed(3), now())
            .await
            .unwrap(),
        "no enrolment over a confirmed authenticator"
    );
    assert_eq!(
        mfa.find_totp(alice.id).await.unwrap().unwrap().sealed,
        sealed(2)
    );
}

pub async fn a_totp_step_is_accepted_once_and_never_an_earlier_one(b: Backend) {
    let alice = stored_user(&b, "alice").await;
    let mfa = &b.repos.mfa;
    assert!(
        !mfa.accept_totp_step(alice.id, 5).await.unwrap(),
        "no authenticator"
    );
    mfa.store_pending_totp(alice.id, &sealed(1), now())
        .await
        .unwrap();
    assert!(
        !mfa.accept_totp_step(alice.id, 5).await.unwrap(),
        "pending only"
    );
    mfa.confirm_totp(alice.id, &sealed(1), 3, &[], now())
        .await
        .unwrap();
    assert!(
        !mfa.accept_totp_step(alice.id, 3).await.unwrap(),
        "the confirming step is used"
    );
    assert!(mfa.accept_totp_step(alice.id, 5).await.unwrap());
    assert!(
        !mfa.accept_totp_step(alice.id, 5).await.unwrap(),
        "replayed"
    );
    assert!(!mfa.accept_totp_step(alice.id, 4).await.unwrap(), "earlier");
    assert!(mfa.accept_totp_step(alice.id, 6).await.unwrap());
    let bob = stored_user(&b, "bob").await;
    assert!(
        !mfa.accept_totp_step(bob.id, 7).await.unwrap(),
        "another user's step is theirs"
    );
}

pub async fn concurrent_uses_of_one_totp_step_have_exactly_one_winner(b: Backend) {
    let alice = stored_user(&b, "alice").await;
    let mfa = b.repos.mfa.clone();
    mfa.store_pending_totp(alice.id, &sealed(1), now())
        .await
        .unwrap();
    mfa.confirm_totp(alice.id, &sealed(1), 1, &[], now())
        .await
        .unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let mfa = mfa.clone();
            tokio::spawn(async move { mfa.accept_totp_step(alice.id, 100).await.unwrap() })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        winners += usize::from(task.await.unwrap());
    }
    assert_eq!(winners, 1);
}

pub async fn recovery_codes_are_single_use_and_counted_on_the_user(b: Backend) {
    let alice = stored_user(&b, "alice").await;
    let mfa = b.repos.mfa.clone();
    mfa.store_pending_totp(alice.id, &sealed(1), now())
        .await
        .unwrap();
    let (plain, hashes) = codes(10);
    mfa.confirm_totp(alice.id, &sealed(1), 1, &hashes, now())
        .await
        .unwrap();
    assert!(mfa
        .use_recovery_code(alice.id, &plain[0].hash(), now())
        .await
        .unwrap());
    assert!(!mfa
        .use_recovery_code(alice.id, &plain[0].hash(), now())
        .await
        .unwrap());
    assert_eq!(mfa_of(&b, &alice).await.recovery_codes_left, 9);
    let bob = stored_user(&b, "bob").await;
    assert!(
        !mfa.use_recovery_code(bob.id, &plain[1].hash(), now())
            .await
            .unwrap(),
        "a code is its user's only"
    );
    // Twenty concurrent uses of one code: one wins. Concurrent uses of different codes each
    // count.
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let mfa = mfa.clone();
            let hash = plain[1 + (i % 3) * usize::from(i >= 10)].hash();
            tokio::spawn(
                async move { mfa.use_recovery_code(alice.id, &hash, now()).await.unwrap() },
            )
        })
        .collect();
    let mut used = 0;
    for task in tasks {
        used += usize::from(task.await.unwrap());
    }
    assert_eq!(used, 3, "codes 1, 2 and 3, each once");
    assert_eq!(mfa_of(&b, &alice).await.recovery_codes_left, 6);
    // Confirming a new authenticator replaces the codes.
    mfa.remove_totp(alice.id, now()).await.unwrap();
    mfa.store_pending_totp(alice.id, &sealed(2), now())
        .await
        .unwrap();
    let (fresh, fresh_hashes) = codes(10);
    mfa.confirm_totp(alice.id, &sealed(2), 1, &fresh_hashes, now())
        .await
        .unwrap();
    assert!(!mfa
        .use_recovery_code(alice.id, &plain[5].hash(), now())
        .await
        .unwrap());
    assert!(mfa
        .use_recovery_code(alice.id, &fresh[5].hash(), now())
        .await
        .unwrap());
    assert_eq!(mfa_of(&b, &alice).await.recovery_codes_left, 9);
}

pub async fn removing_totp_clears_the_codes_and_the_summary(b: Backend) {
    let alice = stored_user(&b, "alice").await;
    let mfa = &b.repos.mfa;
    mfa.store_pending_totp(alice.id, &sealed(1), now())
        .await
        .unwrap();
    let (plain, hashes) = codes(10);
    mfa.confirm_totp(alice.id, &sealed(1), 1, &hashes, now())
        .await
        .unwrap();
    assert!(mfa.remove_totp(alice.id, now()).await.unwrap());
    assert!(mfa.find_totp(alice.id).await.unwrap().is_none());
    assert!(!mfa
        .use_recovery_code(alice.id, &plain[0].hash(), now())
        .await
        .unwrap());
    let summary = mfa_of(&b, &alice).await;
    assert!(!summary.totp && summary.recovery_codes_left == 0);
    assert!(
        mfa.remove_totp(alice.id, now()).await.unwrap(),
        "again: nothing to remove, user exists"
    );
    assert!(
        !mfa.remove_totp(UserId::new(), now()).await.unwrap(),
        "no such user"
    );
    // A pending one goes too.
    mfa.store_pending_totp(alice.id, &sealed(2), now())
        .await
        .unwrap();
    mfa.remove_totp(alice.id, now()).await.unwrap();
    assert!(mfa.find_totp(alice.id).await.unwrap().is_none());
}

pub async fn a_live_session_shows_the_mfa_summary_as_stored_now(b: Backend) {
    let alice = stored_user(&b, "alice").await;
    let at = now();
    let (session, _) = session_for(&b, &alice, at).await;
    let live = |b: &Backend| {
        let users = b.repos.users.clone();
        async move {
            users
                .find_active_by_session(alice.id, session.id, now())
                .await
                .unwrap()
                .unwrap()
                .mfa
        }
    };
    assert!(!live(&b).await.totp, "read once (a cache may keep it)");
    let mfa = &b.repos.mfa;
    mfa.store_pending_totp(alice.id, &sealed(1), now())
        .await
        .unwrap();
    let (plain, hashes) = codes(10);
    mfa.confirm_totp(alice.id, &sealed(1), 1, &hashes, now())
        .await
        .unwrap();
    assert_eq!(live(&b).await.recovery_codes_left, 10);
    assert!(live(&b).await.totp);
    mfa.use_recovery_code(alice.id, &plain[0].hash(), now())
        .await
        .unwrap();
    assert_eq!(live(&b).await.recovery_codes_left, 9);
    mfa.remove_totp(alice.id, now()).await.unwrap();
    assert!(!live(&b).await.totp);
}

pub async fn pending_signins_live_until_expiry_and_are_taken_once(b: Backend) {
    let alice = stored_user(&b, "alice").await;
    let mfa = b.repos.mfa.clone();
    let at = now();
    let token = PendingSigninToken::generate();
    let pending = PendingSignin {
        hash: token.hash(),
        user_id: alice.id,
        credential_version: 3,
        created_at: at,
        expires_at: at + Duration::minutes(5),
    };
    mfa.insert_pending_signin(&pending).await.unwrap();
    assert_eq!(
        mfa.find_pending_signin(&token.hash(), at).await.unwrap(),
        Some(pending.clone())
    );
    let later = at + Duration::minutes(5);
    assert_eq!(
        mfa.find_pending_signin(&token.hash(), later).await.unwrap(),
        None
    );
    assert!(
        !mfa.take_pending_signin(&token.hash(), later).await.unwrap(),
        "expired"
    );
    let unknown = PendingSigninToken::generate();
    assert_eq!(
        mfa.find_pending_signin(&unknown.hash(), at).await.unwrap(),
        None
    );
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (mfa, hash) = (mfa.clone(), token.hash());
            tokio::spawn(async move { mfa.take_pending_signin(&hash, at).await.unwrap() })
        })
        .collect();
    let mut taken = 0;
    for task in tasks {
        taken += usize::from(task.await.unwrap());
    }
    assert_eq!(taken, 1);
    assert_eq!(
        mfa.find_pending_signin(&token.hash(), at).await.unwrap(),
        None
    );
    // An insert drops the expired ones.
    let old = PendingSignin {
        hash: PendingSigninToken::generate().hash(),
        expires_at: at + Duration::seconds(1),
        ..pending.clone()
    };
    mfa.insert_pending_signin(&old).await.unwrap();
    let newer = PendingSignin {
        hash: PendingSigninToken::generate().hash(),
        created_at: at + Duration::seconds(2),
        expires_at: at + Duration::minutes(5),
        ..pending
    };
    mfa.insert_pending_signin(&newer).await.unwrap();
    assert_eq!(mfa.find_pending_signin(&old.hash, at).await.unwrap(), None);
}
