use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::Duration;

use super::*;
use crate::application::harness::Harness;
use crate::application::NewUser;
use crate::domain::audit::AuditEventKind;
use crate::domain::mail::{MailContent, SendError};

/// A transport that fails while `down` and keeps what it sent.
#[derive(Default)]
struct Transport {
    down: AtomicBool,
    sent: Mutex<Vec<ClaimedMail>>,
}

#[async_trait]
impl MailTransport for Transport {
    async fn send(&self, mail: &ClaimedMail) -> Result<(), SendError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(SendError("SMTP connection error".into()));
        }
        self.sent.lock().unwrap().push(mail.clone());
        Ok(())
    }
}

struct Composer;

impl MailComposer for Composer {
    fn compose(&self, message: MailMessage<'_>) -> MailContent {
        let token = match message {
            MailMessage::Verification { token, .. } | MailMessage::PasswordReset { token, .. } => {
                token
            }
        };
        MailContent {
            subject: "s".into(),
            text: format!("token={}", token.expose()),
            html: String::new(),
        }
    }
}

#[derive(Default)]
struct Waker(AtomicUsize);

impl MailWaker for Waker {
    fn wake(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

struct Setup {
    h: Harness,
    service: RecoveryService,
    transport: Arc<Transport>,
    waker: Arc<Waker>,
}

fn setup() -> Setup {
    let h = Harness::new();
    let transport = Arc::new(Transport::default());
    let waker = Arc::new(Waker::default());
    let service = RecoveryService::new(
        h.auth.ports().clone(),
        MailPorts {
            store: Arc::new(h.store.clone()),
            transport: transport.clone(),
            composer: Arc::new(Composer),
            waker: waker.clone(),
        },
        PasswordPolicy::default(),
        crate::domain::ports::LockoutPolicy {
            max_failures: 3,
            base: Duration::minutes(5),
            max: Duration::hours(1),
        },
        MailPolicy {
            per_address_per_hour: 5,
            retry_base: Duration::seconds(10),
            retry_max: Duration::seconds(60),
            lease: Duration::seconds(120),
        },
    );
    Setup {
        h,
        service,
        transport,
        waker,
    }
}

async fn user(s: &Setup, name: &str, email: Option<&str>) {
    s.h.users
        .create_user(
            NewUser {
                username: name.into(),
                password: Password::candidate("correct horse battery"),
                email: email.map(str::to_owned),
                full_name: None,
                roles: None,
            },
            &RequestContext::default(),
        )
        .await
        .unwrap();
}

#[test]
fn the_backoff_doubles_from_the_base_up_to_the_cap() {
    let s = setup();
    let delays: Vec<i64> = (0..6).map(|n| s.service.backoff(n).num_seconds()).collect();
    assert_eq!(delays, [10, 20, 40, 60, 60, 60]);
    assert_eq!(s.service.backoff(u32::MAX).num_seconds(), 60);
}

#[tokio::test]
async fn a_failed_mail_is_kept_retried_after_the_backoff_and_sent_once() {
    let s = setup();
    user(&s, "alice", Some("alice@example.com")).await;
    let ctx = RequestContext::default();
    let login = s
        .service
        .parse_reset_request(Some("alice@example.com"), None)
        .unwrap();
    s.service.request_password_reset(login, &ctx).await.unwrap();
    assert_eq!(s.waker.0.load(Ordering::SeqCst), 1, "the worker is woken");

    s.transport.down.store(true, Ordering::SeqCst);
    let claimed = s.service.claim_due(10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let outcome = s.service.deliver(&claimed[0]).await.unwrap();
    assert_eq!(
        outcome,
        Delivery::Retry(s.service.now() + Duration::seconds(10))
    );
    assert!(
        s.service.claim_due(10).await.unwrap().is_empty(),
        "not due yet"
    );
    assert_eq!(s.service.outbox_state().await.unwrap().0, 1, "kept");

    s.transport.down.store(false, Ordering::SeqCst);
    s.h.clock.advance(Duration::seconds(10));
    let claimed = s.service.claim_due(10).await.unwrap();
    assert_eq!(claimed[0].attempts, 1);
    assert_eq!(
        s.service.deliver(&claimed[0]).await.unwrap(),
        Delivery::Sent
    );
    assert_eq!(s.transport.sent.lock().unwrap().len(), 1);
    s.h.clock.advance(Duration::hours(1));
    assert!(
        s.service.claim_due(10).await.unwrap().is_empty(),
        "sent once"
    );
    assert_eq!(s.service.outbox_state().await.unwrap().0, 0);
    let kinds = s.h.store.audit_kinds();
    for kind in [
        AuditEventKind::PasswordResetRequested,
        AuditEventKind::MailFailed,
        AuditEventKind::MailSent,
    ] {
        assert!(kinds.contains(&kind), "{kind}");
    }
}

#[tokio::test]
async fn unknown_inactive_and_addressless_accounts_queue_nothing() {
    let s = setup();
    user(&s, "bob", None).await;
    user(&s, "carol", Some("carol@example.com")).await;
    let carol = s.h.store.clone();
    let id = {
        use crate::domain::ports::UserRepository;
        carol
            .find_by_username(&LoginKey::parse("carol").unwrap())
            .await
            .unwrap()
            .unwrap()
            .id
    };
    s.h.store.set_active(id, false);
    let ctx = RequestContext::default();
    for (email, username) in [
        (Some("nobody@example.com"), None),
        (None, Some("bob")),
        (None, Some("carol")),
        (None, Some("nobody")),
        (None, Some("not a possible username!")),
    ] {
        let login = s.service.parse_reset_request(email, username).unwrap();
        s.service.request_password_reset(login, &ctx).await.unwrap();
    }
    assert_eq!(s.service.outbox_state().await.unwrap().0, 0);
    assert!(!s
        .h
        .store
        .audit_kinds()
        .contains(&AuditEventKind::PasswordResetRequested));
    assert!(s.service.parse_reset_request(None, None).is_err());
    assert!(s
        .service
        .parse_reset_request(Some("a@b.co"), Some("a"))
        .is_err());
}
