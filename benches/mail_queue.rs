//! How many mails a second does the outbox deliver? (The target: at least 200 a second to a
//! local SMTP server.)
//!
//! `cargo bench --bench mail_queue` starts the service's use cases on a temporary SQLite
//! database (or on `MAIL_BENCH_DATABASE_URL`, e.g. a PostgreSQL database) with `SMTP_URL` at an
//! in-process SMTP sink (the tests' one: a real SMTP dialogue over TCP), creates 50 users with
//! an address, queues `MAIL_BENCH_MAILS` password-reset mails (default 2,000) through the use
//! case, and reports the time until the sink has them all: the delivery rate (first mail to
//! last) and the end-to-end rate (first request to last mail). Each mail is a full round: claim
//! under a lease, SMTP (EHLO on a pooled connection, MAIL, RCPT, DATA), the mark as sent and the
//! `mail_sent` audit event.
//!
//! Under `cargo test --all-targets` (no `--bench` argument) it does nothing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use auth_service::application::{NewUser, RequestContext, ResetLogin};
use auth_service::domain::user::{EmailAddress, Password};
use auth_service::infrastructure::bootstrap::build_services;
use auth_service::infrastructure::clock::SystemClock;
use auth_service::infrastructure::config::Settings;

#[path = "../tests/support/smtp.rs"]
#[allow(dead_code)]
mod smtp;

const USERS: usize = 50;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("mail_queue: run with `cargo bench --bench mail_queue`");
        return;
    }
    let mails: usize = std::env::var("MAIL_BENCH_MAILS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let sink = smtp::SmtpSink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let database = std::env::var("MAIL_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}/mail.db", dir.path().display()));
    let vars: HashMap<&str, String> = HashMap::from([
        ("DATABASE_URL", database.clone()),
        ("APP_ENV", "testing".into()),
        ("JWT_DEV_KEY_DIR", "target/jwt-test-keys".into()),
        ("ARGON2_MEMORY_KIB", "256".into()),
        ("ARGON2_ITERATIONS", "1".into()),
        ("SMTP_URL", sink.url()),
        ("MAIL_PER_ADDRESS_PER_HOUR", "1000000".into()),
        ("MAIL_FROM", "bench@example.com".into()),
    ]);
    let settings = Settings::from_lookup(|key| vars.get(key).cloned()).unwrap();
    let services = build_services(&settings, Arc::new(SystemClock))
        .await
        .unwrap();
    let ctx = RequestContext::default();
    for i in 0..USERS {
        services
            .users
            .create_user(
                NewUser {
                    username: format!("user{i}"),
                    password: Password::candidate("a bench passphrase"),
                    email: Some(format!("user{i}@example.com")),
                    full_name: None,
                    roles: None,
                },
                &ctx,
            )
            .await
            .unwrap();
    }
    let recovery = services.state.recovery.clone();
    let started = Instant::now();
    let mut requests = tokio::task::JoinSet::new();
    for i in 0..mails {
        let (recovery, ctx) = (recovery.clone(), ctx.clone());
        let email = EmailAddress::parse(&format!("user{}@example.com", i % USERS)).unwrap();
        requests.spawn(async move {
            recovery
                .request_password_reset(ResetLogin::Email(email), &ctx)
                .await
                .unwrap();
        });
        // Keep at most 64 requests in flight, as a busy server would.
        while requests.len() >= 64 {
            requests.join_next().await.unwrap().unwrap();
        }
    }
    while let Some(done) = requests.join_next().await {
        done.unwrap();
    }
    let queued = started.elapsed();
    let received = sink.wait_for(mails, Duration::from_secs(600)).await;
    let done = started.elapsed();
    let first_at = received.iter().map(|m| m.at).min().unwrap() - started;
    let backend = database.split(':').next().unwrap_or_default();
    println!("mail queue, {mails} mails to {USERS} addresses, {backend}, in-process SMTP sink");
    println!(
        "  queued in {:.2} s ({:.0} requests/s)",
        queued.as_secs_f64(),
        mails as f64 / queued.as_secs_f64()
    );
    println!(
        "  delivered in {:.2} s after the first request: {:.0} mails/s end to end",
        done.as_secs_f64(),
        mails as f64 / done.as_secs_f64()
    );
    let last_at = received.iter().map(|m| m.at).max().unwrap() - started;
    let sending = (last_at - first_at).as_secs_f64();
    println!(
        "  first to last mail {:.2} s: {:.0} mails/s delivered",
        sending,
        (mails - 1) as f64 / sending
    );
    assert_eq!(sink.received().len(), mails, "each mail once");
}
