//! The mail worker: a tokio task that sends the outbox, started by the server's wiring and
//! stopped with it.
//!
//! Each round claims up to [`BATCH`] due mails (leased, so another replica skips them) and
//! sends them concurrently; then, with nothing due, it sleeps until the next mail is due, a
//! mail is queued in this process ([`NotifyWaker`]), or [`POLL`] passes (for mails queued by
//! other replicas and leases that ran out). Stopping lets the round in progress finish.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::task::{JoinHandle, JoinSet};

use crate::application::{Delivery, RecoveryService};
use crate::domain::mail::MailWaker;
use crate::infrastructure::metrics;

/// The most mails one round claims.
const BATCH: u32 = 64;

/// The longest sleep between two looks at the outbox.
const POLL: Duration = Duration::from_secs(2);

/// Wakes the worker of this process.
#[derive(Clone, Default)]
pub struct NotifyWaker(Arc<Notify>);

impl MailWaker for NotifyWaker {
    fn wake(&self) {
        // Stores a permit when the worker is busy: it looks again after its round.
        self.0.notify_one();
    }
}

/// The running worker; dropping it stops the worker after its current round.
pub struct MailWorker {
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl MailWorker {
    /// Starts the worker on the current runtime. With `sends` false (production without
    /// `SMTP_URL`) it sends nothing and only keeps `auth_mail_queue_depth` up to date.
    pub fn spawn(service: RecoveryService, waker: NotifyWaker, sends: bool) -> Self {
        let (stop, stopped) = watch::channel(false);
        let task = if sends {
            tokio::spawn(run(service, waker.0, stopped))
        } else {
            tokio::spawn(watch_depth(service, stopped))
        };
        Self {
            stop,
            task: Some(task),
        }
    }

    /// Stops the worker and waits for its round in progress to finish.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for MailWorker {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn run(service: RecoveryService, wake: Arc<Notify>, mut stopped: watch::Receiver<bool>) {
    loop {
        if *stopped.borrow() {
            return;
        }
        let claimed = match service.claim_due(BATCH).await {
            Ok(claimed) => claimed,
            Err(error) => {
                tracing::warn!(%error, "cannot read the mail outbox; retrying");
                Vec::new()
            }
        };
        if !claimed.is_empty() {
            send_all(&service, claimed).await;
            continue; // more may be due
        }
        let wait = match service.outbox_state().await {
            Ok((depth, next)) => {
                metrics::record_mail_queue(depth);
                next.map_or(POLL, |due| {
                    (due - service.now())
                        .to_std()
                        .unwrap_or(Duration::ZERO)
                        .clamp(Duration::from_millis(10), POLL)
                })
            }
            Err(_) => POLL,
        };
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(wait) => {}
            _ = stopped.changed() => {}
        }
    }
}

/// Without a transport: the queue's depth, every [`POLL`], so that the metric shows the mails
/// waiting for a sender.
async fn watch_depth(service: RecoveryService, mut stopped: watch::Receiver<bool>) {
    while !*stopped.borrow() {
        if let Ok((depth, _)) = service.outbox_state().await {
            metrics::record_mail_queue(depth);
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            _ = stopped.changed() => {}
        }
    }
}

async fn send_all(service: &RecoveryService, claimed: Vec<crate::domain::mail::ClaimedMail>) {
    let mut sending = JoinSet::new();
    for mail in claimed {
        let service = service.clone();
        sending.spawn(async move { service.deliver(&mail).await });
    }
    while let Some(done) = sending.join_next().await {
        match done {
            Ok(Ok(Delivery::Sent)) => {}
            Ok(Ok(Delivery::Retry(at))) => {
                tracing::warn!(retry_at = %at, "mail not sent; it stays queued");
            }
            Ok(Err(error)) => {
                // The lease runs out and the mail is claimed again.
                tracing::warn!(%error, "cannot record a mail's delivery");
            }
            Err(error) => tracing::error!(%error, "mail delivery task failed"),
        }
    }
}
