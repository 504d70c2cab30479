//! The wiring of mail: the transport `SMTP_URL` (or its absence) selects, the composer, the
//! waker of this process's worker, and the recovery use cases over them.

use std::sync::Arc;

use secrecy::ExposeSecret;

use super::StartupError;
use crate::application::{MailPolicy, MailPorts, Ports, RecoveryService};
use crate::domain::mail::{MailStore, MailTransport};
use crate::domain::ports::LockoutPolicy;
use crate::domain::user::PasswordPolicy;
use crate::infrastructure::config::{AppEnv, Settings};
use crate::infrastructure::mail::{
    FileTransport, NoTransport, NotifyWaker, Sender, SmtpTransport, TemplateComposer,
};

/// How long a worker keeps a claimed mail to itself: several SMTP timeouts.
const LEASE_SECONDS: i64 = 120;

/// The recovery use cases, the waker of the worker to start, and whether it sends (not in
/// production without `SMTP_URL`, where mails stay queued until a sender is configured and the
/// worker only reports the queue's depth).
///
/// # Errors
/// [`StartupError`] when `MAIL_FROM` or `SMTP_URL` is unusable.
pub fn build_recovery(
    settings: &Settings,
    ports: Ports,
    store: Arc<dyn MailStore>,
    policy: PasswordPolicy,
    lockout: LockoutPolicy,
) -> Result<(RecoveryService, NotifyWaker, bool), StartupError> {
    let mail = &settings.mail;
    let sender = Sender::parse(&mail.from).map_err(StartupError)?;
    let (transport, sends): (Arc<dyn MailTransport>, bool) = match &mail.smtp_url {
        Some(url) => (
            Arc::new(SmtpTransport::new(url.expose_secret(), sender).map_err(StartupError)?),
            true,
        ),
        None if settings.app_env == AppEnv::Production => {
            tracing::warn!(
                "SMTP_URL is not set: mails are queued in the database and not sent until it is (see auth_mail_queue_depth)"
            );
            (Arc::new(NoTransport), false)
        }
        None => (
            Arc::new(FileTransport::new(mail.outbox_dir.clone(), sender)),
            true,
        ),
    };
    let waker = NotifyWaker::default();
    let service = RecoveryService::new(
        ports,
        MailPorts {
            store,
            transport,
            composer: Arc::new(TemplateComposer::new(&settings.tokens.issuer)),
            waker: Arc::new(waker.clone()),
        },
        policy,
        lockout,
        MailPolicy {
            per_address_per_hour: mail.per_address_per_hour,
            retry_base: chrono::Duration::milliseconds(
                i64::try_from(mail.retry_base_ms).unwrap_or(i64::MAX),
            ),
            retry_max: super::seconds(mail.retry_max_seconds),
            lease: chrono::Duration::seconds(LEASE_SECONDS),
        },
    );
    Ok((service, waker, sends))
}
