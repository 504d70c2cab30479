//! Is a login for an unknown user distinguishable, by its latency, from a login with a wrong
//! password? (It must not be: that would let anyone enumerate accounts.)
//!
//! `cargo bench --bench login_timing` runs the real login use case on a temporary SQLite
//! database with the production argon2 parameters (m=19456 KiB, t=2, p=1), interleaving the two
//! kinds of failed login in a shuffled order, and reports each one's mean and spread, Welch's t
//! statistic, and the difference of the means beside the run-to-run noise (the difference
//! between two halves of the same kind). `LOGIN_TIMING_SAMPLES` sets the samples per kind
//! (default 200). With `--check` it exits 1 when |t| >= 4.
//!
//! Under `cargo test --all-targets` (no `--bench` argument) it does nothing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use auth_service::application::{NewUser, RequestContext};
use auth_service::domain::user::Password;
use auth_service::infrastructure::bootstrap::build_services;
use auth_service::infrastructure::clock::SystemClock;
use auth_service::infrastructure::config::Settings;
use rand::seq::SliceRandom;

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

fn variance(xs: &[f64]) -> f64 {
    let m = mean(xs);
    xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len() as f64 - 1.0)
}

fn welch_t(a: &[f64], b: &[f64]) -> f64 {
    (mean(a) - mean(b)) / (variance(a) / a.len() as f64 + variance(b) / b.len() as f64).sqrt()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("login_timing: run with `cargo bench --bench login_timing`");
        return;
    }
    let check = args.iter().any(|a| a == "--check");
    let samples: usize = std::env::var("LOGIN_TIMING_SAMPLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let dir = tempfile::tempdir().unwrap();
    let vars: HashMap<&str, String> = HashMap::from([
        (
            "DATABASE_URL",
            format!("sqlite://{}/timing.db", dir.path().display()),
        ),
        ("ARGON2_MEMORY_KIB", "19456".into()),
        ("ARGON2_ITERATIONS", "2".into()),
        ("ARGON2_PARALLELISM", "1".into()),
        // Thousands of failures on one name: keep the lockout out of the measurement.
        ("LOGIN_MAX_FAILURES", "1000000".into()),
    ]);
    let settings = Settings::from_lookup(|key| vars.get(key).cloned()).unwrap();
    let services = build_services(&settings, Arc::new(SystemClock))
        .await
        .unwrap();
    let ctx = RequestContext::default();
    services
        .users
        .create_user(
            NewUser {
                username: "alice".into(),
                password: Password::candidate("the real passphrase"),
                email: None,
                full_name: None,
                roles: None,
            },
            &ctx,
        )
        .await
        .unwrap();

    let mut order: Vec<bool> = (0..samples * 2).map(|i| i % 2 == 0).collect();
    order.shuffle(&mut rand::thread_rng());
    let wrong_password = Password::candidate("not the passphrase");
    // Warm-up: caches, the blocking pool, SQLite pages.
    for _ in 0..5 {
        let _ = services
            .auth
            .login("alice", &wrong_password, None, &ctx)
            .await;
        let _ = services
            .auth
            .login("nobody", &wrong_password, None, &ctx)
            .await;
    }
    let (mut unknown, mut wrong) = (Vec::new(), Vec::new());
    for is_unknown in order {
        let username = if is_unknown { "nobody" } else { "alice" };
        let started = Instant::now();
        let outcome = services
            .auth
            .login(username, &wrong_password, None, &ctx)
            .await;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        assert!(outcome.is_err());
        if is_unknown {
            unknown.push(ms)
        } else {
            wrong.push(ms)
        }
    }
    let t = welch_t(&unknown, &wrong);
    let half = samples / 2;
    let noise = ((mean(&unknown[..half]) - mean(&unknown[half..])).abs()
        + (mean(&wrong[..half]) - mean(&wrong[half..])).abs())
        / 2.0;
    let difference = (mean(&unknown) - mean(&wrong)).abs();
    println!("login timing, {samples} samples each, argon2id m=19456 t=2 p=1");
    for (name, xs) in [("unknown user", &unknown), ("wrong password", &wrong)] {
        println!(
            "  {name:<15} mean {:7.2} ms  sd {:6.2} ms",
            mean(xs),
            variance(xs).sqrt()
        );
    }
    println!("  difference of means {difference:.3} ms; run-to-run noise (halves) {noise:.3} ms");
    println!("  Welch t = {t:.2} (|t| < 4: not distinguishable at this sample size)");
    if check && t.abs() >= 4.0 {
        eprintln!("login_timing: unknown users and wrong passwords are distinguishable");
        std::process::exit(1);
    }
}
