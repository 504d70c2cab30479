//! Mail storage: tokens (issued with their mail, replaced, used once, expiring, bound to the
//! address), the per-address limit, the outbox's exclusive claims and leases, failures and
//! retries, the purge, and the cascade of a user's rows.

use auth_service::domain::mail::{
    AddressLimit, Issued, MailContent, MailToken, NewMail, TokenGrant, TokenPurpose, Verification,
};
use uuid::Uuid;

use super::*;

fn grant(user: &User, purpose: TokenPurpose, at: DateTime<Utc>) -> (MailToken, TokenGrant) {
    let token = MailToken::generate();
    let grant = TokenGrant {
        hash: token.hash(),
        purpose,
        user_id: user.id,
        email: user.email.as_ref().unwrap().as_str().to_owned(),
        created_at: at,
        expires_at: at + purpose.lifetime(),
    };
    (token, grant)
}

fn mail(user: &User, purpose: TokenPurpose, at: DateTime<Utc>) -> NewMail {
    NewMail {
        id: Uuid::now_v7(),
        user_id: user.id,
        to: user.email.as_ref().unwrap().as_str().to_owned(),
        kind: purpose,
        content: MailContent {
            subject: "s".into(),
            text: "t".into(),
            html: "<p>h</p>".into(),
        },
        created_at: at,
    }
}

fn limit(max: u32, at: DateTime<Utc>) -> AddressLimit {
    AddressLimit {
        max,
        since: at - Duration::hours(1),
    }
}

/// Issues a token of `purpose` with its mail (limit 100) and returns the token.
async fn issue(b: &Backend, user: &User, purpose: TokenPurpose, at: DateTime<Utc>) -> MailToken {
    let (token, grant) = grant(user, purpose, at);
    let issued = b
        .repos
        .mail
        .issue(&grant, &mail(user, purpose, at), limit(100, at))
        .await;
    assert_eq!(issued.unwrap(), Issued::Queued);
    token
}

async fn mailed_user(b: &Backend, name: &str) -> User {
    let user = user(name, Some(&format!("{name}@example.com")));
    b.repos.users.insert(&user).await.unwrap();
    user
}

pub async fn a_reset_token_is_used_once_only_before_it_expires_and_a_newer_one_replaces_it(
    b: Backend,
) {
    let alice = mailed_user(&b, "alice").await;
    let at = now();
    let reset = TokenPurpose::PasswordReset;
    let first = issue(&b, &alice, reset, at).await;
    let second = issue(&b, &alice, reset, at).await;
    let store = &b.repos.mail;
    assert!(
        store
            .find_token(&first.hash(), reset, at)
            .await
            .unwrap()
            .is_none(),
        "replaced"
    );
    let found = store
        .find_token(&second.hash(), reset, at)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.user_id, alice.id);
    let verification = TokenPurpose::EmailVerification;
    assert!(store
        .consume_token(&second.hash(), verification, at)
        .await
        .unwrap()
        .is_none());
    let late = at + reset.lifetime() + Duration::seconds(1);
    assert!(store
        .consume_token(&second.hash(), reset, late)
        .await
        .unwrap()
        .is_none());
    let used = store
        .consume_token(&second.hash(), reset, at)
        .await
        .unwrap();
    assert_eq!(used.unwrap().user_id, alice.id);
    assert!(store
        .consume_token(&second.hash(), reset, at)
        .await
        .unwrap()
        .is_none());
    assert!(store
        .find_token(&second.hash(), reset, at)
        .await
        .unwrap()
        .is_none());
    // A reset token does not replace a verification token.
    let verify = issue(&b, &alice, verification, at).await;
    issue(&b, &alice, reset, at).await;
    assert!(store
        .find_token(&verify.hash(), verification, at)
        .await
        .unwrap()
        .is_some());
}

pub async fn concurrent_uses_of_one_token_have_exactly_one_winner(b: Backend) {
    let alice = mailed_user(&b, "alice").await;
    let at = now();
    let token = issue(&b, &alice, TokenPurpose::PasswordReset, at).await;
    let store = b.repos.mail.clone();
    let uses = (0..16).map(|_| {
        let (store, hash) = (store.clone(), token.hash());
        tokio::spawn(async move {
            store
                .consume_token(&hash, TokenPurpose::PasswordReset, at)
                .await
                .unwrap()
                .is_some()
        })
    });
    let mut winners = 0;
    for used in uses.collect::<Vec<_>>() {
        winners += usize::from(used.await.unwrap());
    }
    assert_eq!(winners, 1);
}

pub async fn verification_counts_only_for_the_address_the_token_was_sent_to(b: Backend) {
    let alice = mailed_user(&b, "alice").await;
    let at = now();
    let purpose = TokenPurpose::EmailVerification;
    let store = &b.repos.mail;
    let token = issue(&b, &alice, purpose, at).await;
    assert_eq!(
        store.verify_email(&token.hash(), at).await.unwrap(),
        Verification::Verified(alice.id)
    );
    assert!(
        b.repos
            .users
            .find_by_id(alice.id)
            .await
            .unwrap()
            .unwrap()
            .email_verified
    );
    assert_eq!(
        store.verify_email(&token.hash(), at).await.unwrap(),
        Verification::Invalid
    );

    // A new address: the flag goes, and a token sent to the old address is used up in vain.
    let token = issue(&b, &alice, purpose, at).await;
    let changes = UserChanges {
        email: Some(Some(EmailAddress::parse("alice@example.org").unwrap())),
        ..UserChanges::default()
    };
    let (changed, _) = b
        .repos
        .users
        .update_fields(alice.id, &changes, at)
        .await
        .unwrap()
        .unwrap();
    assert!(!changed.email_verified);
    assert_eq!(
        store.verify_email(&token.hash(), at).await.unwrap(),
        Verification::AddressChanged(alice.id)
    );
    assert!(
        !b.repos
            .users
            .find_by_id(alice.id)
            .await
            .unwrap()
            .unwrap()
            .email_verified
    );
    // Setting the same address again keeps a verified flag.
    let again = User {
        email: changed.email.clone(),
        ..alice.clone()
    };
    let token = issue(&b, &again, purpose, at).await;
    store.verify_email(&token.hash(), at).await.unwrap();
    let same = UserChanges {
        email: Some(changed.email.clone()),
        ..UserChanges::default()
    };
    let (kept, _) = b
        .repos
        .users
        .update_fields(alice.id, &same, at)
        .await
        .unwrap()
        .unwrap();
    assert!(kept.email_verified);
    assert_eq!(
        store
            .find_user_by_email(&EmailAddress::parse("ALICE@example.ORG").unwrap())
            .await
            .unwrap(),
        Some(alice.id)
    );
    let nobody = EmailAddress::parse("nobody@example.org").unwrap();
    assert_eq!(store.find_user_by_email(&nobody).await.unwrap(), None);
}

pub async fn concurrent_requests_for_one_address_never_exceed_its_limit(b: Backend) {
    let alice = mailed_user(&b, "alice").await;
    let at = now();
    let store = b.repos.mail.clone();
    let requests = (0..12).map(|_| {
        let (store, alice) = (store.clone(), alice.clone());
        tokio::spawn(async move {
            let (_, grant) = grant(&alice, TokenPurpose::PasswordReset, at);
            let mail = mail(&alice, TokenPurpose::PasswordReset, at);
            store.issue(&grant, &mail, limit(3, at)).await.unwrap()
        })
    });
    let mut queued = 0;
    for issued in requests.collect::<Vec<_>>() {
        queued += usize::from(issued.await.unwrap() == Issued::Queued);
    }
    assert_eq!(queued, 3);
    // The window moves on: an hour later the address may get mail again.
    let later = at + Duration::minutes(61);
    let (_, grant) = grant(&alice, TokenPurpose::PasswordReset, later);
    let issued = store
        .issue(
            &grant,
            &mail(&alice, TokenPurpose::PasswordReset, later),
            limit(3, later),
        )
        .await;
    assert_eq!(issued.unwrap(), Issued::Queued);
}

pub async fn concurrent_claims_share_out_the_due_mails_and_a_lease_keeps_them(b: Backend) {
    let alice = mailed_user(&b, "alice").await;
    let at = now();
    for _ in 0..40 {
        issue(&b, &alice, TokenPurpose::PasswordReset, at).await;
    }
    let store = b.repos.mail.clone();
    let lease = at + Duration::seconds(60);
    let claims = (0..8).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.claim_due(at, lease, 7).await.unwrap() })
    });
    let mut ids = Vec::new();
    for claim in claims.collect::<Vec<_>>() {
        ids.extend(claim.await.unwrap().into_iter().map(|m| m.id));
    }
    let total = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), total, "no mail claimed twice");
    assert_eq!(total, 40);
    assert!(
        store.claim_due(at, lease, 100).await.unwrap().is_empty(),
        "all leased"
    );
    assert_eq!(
        store.outbox_state().await.unwrap(),
        (40, Some(lease)),
        "free when the lease ends"
    );

    // Sent: never claimed again. Failed: due again at the retry time, with the count.
    store.mark_sent(ids[0], at).await.unwrap();
    store
        .mark_failed(ids[1], "SMTP connection error", at + Duration::seconds(30))
        .await
        .unwrap();
    let after_lease = lease + Duration::seconds(1);
    let again = store
        .claim_due(after_lease, after_lease + Duration::seconds(60), 100)
        .await
        .unwrap();
    assert_eq!(
        again.len(),
        39,
        "the lease ran out: unsent mails are claimed again"
    );
    assert!(again.iter().all(|m| m.id != ids[0]));
    let failed = again.iter().find(|m| m.id == ids[1]).unwrap();
    assert_eq!(failed.attempts, 1);
    assert_eq!(failed.content.text, "t");
    let (depth, next) = store.outbox_state().await.unwrap();
    assert_eq!(depth, 39);
    assert!(next.is_some());
    // Not due before its retry time.
    store
        .mark_failed(ids[1], "x", at + Duration::hours(1))
        .await
        .unwrap();
    let early = store
        .claim_due(at + Duration::minutes(59), at + Duration::hours(2), 100)
        .await;
    assert!(early.unwrap().iter().all(|m| m.id != ids[1]));
}

pub async fn the_purge_removes_expired_tokens_and_old_sent_mail_but_never_unsent_mail(b: Backend) {
    let alice = mailed_user(&b, "alice").await;
    let at = now();
    let token = issue(&b, &alice, TokenPurpose::PasswordReset, at).await;
    issue(&b, &alice, TokenPurpose::EmailVerification, at).await;
    let store = &b.repos.mail;
    let sent = store
        .claim_due(at, at + Duration::seconds(60), 1)
        .await
        .unwrap();
    store.mark_sent(sent[0].id, at).await.unwrap();
    let later = at + Duration::days(8);
    b.repos
        .purge
        .purge(&PurgeCutoffs {
            now: later,
            revoked_before: later - Duration::days(7),
            audit_before: at - Duration::days(90),
            throttle_before: at - Duration::days(1),
        })
        .await
        .unwrap();
    assert!(store
        .find_token(&token.hash(), TokenPurpose::PasswordReset, at)
        .await
        .unwrap()
        .is_none());
    let (depth, _) = store.outbox_state().await.unwrap();
    assert_eq!(depth, 1, "the unsent mail stays");
    let left = store
        .claim_due(later, later + Duration::seconds(60), 10)
        .await
        .unwrap();
    assert_eq!(left.len(), 1);
}
