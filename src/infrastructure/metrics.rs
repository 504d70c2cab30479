//! Prometheus metrics: the recorder, the audit-event counters, and the families the HTTP layer
//! and the hasher report.
//!
//! Security events are counted where they are already recorded: [`MeteredAuditLog`] wraps the
//! audit port, so the use cases need no metrics code and the counts match the audit trail.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::domain::audit::{AuditEvent, AuditEventKind, AuditFilter, LoginFailure};
use crate::domain::ports::{AuditLog, StoreError};

/// Seconds buckets from half a millisecond to ten seconds.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process-wide recorder (installed once; every app in the process shares it).
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS)
                .expect("static buckets are valid")
                .build_recorder();
            let handle = recorder.handle();
            spawn_upkeep(handle.clone());
            // Another recorder may already be installed (an embedding program); then ours only
            // renders what it was given.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            handle
        })
        .clone()
}

/// Histogram samples queue up in the recorder until they are folded into the buckets, which
/// happens at a scrape or at upkeep. Without a scraper they would grow by 16 bytes a request
/// forever, so a thread runs the upkeep every five seconds.
fn spawn_upkeep(handle: PrometheusHandle) {
    let started = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || loop {
            std::thread::sleep(std::time::Duration::from_secs(5));
            handle.run_upkeep();
        });
    if let Err(error) = started {
        tracing::warn!(%error, "cannot start the metrics upkeep thread; histograms are folded at scrape time only");
    }
}

fn describe() {
    describe_counter!(
        "http_requests_total",
        "HTTP requests by method, route and status"
    );
    describe_histogram!(
        "http_request_duration_seconds",
        Unit::Seconds,
        "HTTP request latency by method, route and status"
    );
    describe_gauge!("http_connections_open", "Open client connections");
    describe_counter!(
        "http_connections_dropped_total",
        "Client connections closed by the server, by reason (header_timeout, idle_timeout, shed at the cap, refused at the cap)"
    );
    describe_counter!("auth_logins_total", "Password-grant logins by outcome");
    describe_counter!("auth_refreshes_total", "Refresh-token rotations");
    describe_counter!(
        "auth_refresh_token_reuse_total",
        "Already-rotated refresh tokens presented (sessions revoked)"
    );
    describe_counter!(
        "auth_lockouts_total",
        "Accounts locked after repeated failed logins"
    );
    describe_counter!("auth_events_total", "Audit events by event and success");
    describe_gauge!("auth_mail_queue_depth", "Mails in the outbox not sent yet");
    describe_counter!(
        "auth_mail_send_failures_total",
        "Failed attempts to send a mail (each is retried)"
    );
    describe_histogram!(
        "password_hash_queue_wait_seconds",
        Unit::Seconds,
        "Time waited for a password-hashing slot"
    );
    describe_gauge!(
        "password_hashes_in_flight",
        "Password hashes being computed now"
    );
    describe_counter!(
        "password_hash_rejected_total",
        "Hashing requests refused because every slot stayed busy"
    );
    describe_gauge!(
        "auth_session_cache_feed_up",
        "1 while this replica's session-cache invalidation feed (PostgreSQL LISTEN) is up, 0 while it is down and the cache is bypassed"
    );
    describe_gauge!(
        "db_pool_connections",
        "Database pool connections (state=size|idle)"
    );
    describe_counter!(
        "auth_rate_limit_fallbacks_total",
        "Rate-limited requests judged by the replica's own buckets because the shared store did not answer"
    );
}

/// The `outcome` label of a failed login, from a fixed set (bounded label values): its
/// [`LoginFailure`], or `failed` when it has none the label names.
fn failed_login_outcome(event: &AuditEvent) -> &'static str {
    match event.login_failure() {
        Some(LoginFailure::WrongPassword) => "wrong_password",
        Some(LoginFailure::UnknownUser) => "unknown_user",
        Some(LoginFailure::InactiveUser) => "inactive_user",
        Some(LoginFailure::AccountLocked) => "locked",
        Some(LoginFailure::PasswordChanged) | None => "failed",
    }
}

/// Counts every audit event on its way to the real log.
pub struct MeteredAuditLog {
    inner: Arc<dyn AuditLog>,
}

impl MeteredAuditLog {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn AuditLog>) -> Self {
        Self { inner }
    }
}

#[async_trait]
impl AuditLog for MeteredAuditLog {
    async fn record(&self, event: &AuditEvent) -> Result<(), StoreError> {
        self.inner.record(event).await?;
        self.observe(event);
        Ok(())
    }

    fn observe(&self, event: &AuditEvent) {
        let success = if event.success { "true" } else { "false" };
        counter!("auth_events_total", "event" => event.kind.as_str(), "success" => success)
            .increment(1);
        match event.kind {
            AuditEventKind::LoginSucceeded => {
                counter!("auth_logins_total", "outcome" => "success").increment(1);
            }
            AuditEventKind::LoginFailed => {
                let outcome = failed_login_outcome(event);
                counter!("auth_logins_total", "outcome" => outcome).increment(1);
            }
            AuditEventKind::AccountLocked => counter!("auth_lockouts_total").increment(1),
            AuditEventKind::MailFailed => {
                counter!("auth_mail_send_failures_total").increment(1);
            }
            AuditEventKind::TokenRefreshed => counter!("auth_refreshes_total").increment(1),
            AuditEventKind::RefreshTokenReused => {
                counter!("auth_refresh_token_reuse_total").increment(1);
            }
            _ => {}
        }
    }

    async fn list(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError> {
        self.inner.list(filter).await
    }
}

/// Sets the gauge of unsent mails.
pub fn record_mail_queue(depth: u64) {
    gauge!("auth_mail_queue_depth").set(depth as f64);
}

/// Counts a request judged locally because the shared rate-limit store did not answer.
pub fn record_rate_limit_fallback() {
    counter!("auth_rate_limit_fallbacks_total").increment(1);
}

/// Sets the pool gauges (called at scrape time).
pub fn record_pool(size: u32, idle: usize) {
    gauge!("db_pool_connections", "state" => "size").set(f64::from(size));
    gauge!("db_pool_connections", "state" => "idle").set(idle as f64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_logins_are_labelled_as_they_always_were() {
        let labels: Vec<&str> = LoginFailure::ALL
            .iter()
            .map(|reason| failed_login_outcome(&AuditEvent::failed_login(reason.detail())))
            .collect();
        assert_eq!(
            labels,
            [
                "unknown_user",
                "wrong_password",
                "inactive_user",
                "locked",
                "failed"
            ]
        );
        assert_eq!(
            failed_login_outcome(&AuditEvent::failed_login("something else")),
            "failed"
        );
    }
}
