//! Is a failed login for an unknown user distinguishable, by its latency, from one with a wrong
//! password, for a native (argon2id) user or for a user imported with a bcrypt hash (passlib's
//! cost 12) who has not logged in since? (It must not be: that would let anyone enumerate
//! accounts.)
//!
//! `cargo bench --bench login_timing` runs the real login use case on a temporary SQLite
//! database with the production argon2 parameters (m=19456 KiB, t=2, p=1) and the default
//! hasher, interleaving the three kinds of failed login in a shuffled order, and reports each
//! one's mean and spread, Welch's t statistic against the unknown user, and the difference of
//! the means beside the run-to-run noise (the difference between two halves of the same kind).
//! `LOGIN_TIMING_SAMPLES` sets the samples per kind (default 200). With `--check` it exits 1
//! when any |t| >= 4.
//!
//! Under `cargo test --all-targets` (no `--bench` argument) it does nothing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use auth_service::application::{ImportedUser, NewUser, RequestContext};
use auth_service::domain::user::{Password, PasswordHash};
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

    // A user of the proof of concept, imported with its passlib hash (cost 12, the README's
    // example hash of "correct horse battery") and never logged in since.
    services
        .users
        .import_user(
            ImportedUser {
                username: "legacy".into(),
                password_hash: PasswordHash::new(
                    "$2b$12$ISsl0HZ8E3fc3w1iQuC.0ujEmxC4LQVkWA.u0HNlmGSgUMScQ9yUe".into(),
                ),
                email: None,
                full_name: None,
                roles: None,
            },
            &ctx,
        )
        .await
        .unwrap();

    let kinds = [
        ("unknown user", "nobody"),
        ("wrong password", "alice"),
        ("bcrypt user", "legacy"),
    ];
    let mut order: Vec<usize> = (0..samples * kinds.len())
        .map(|i| i % kinds.len())
        .collect();
    order.shuffle(&mut rand::thread_rng());
    let wrong_password = Password::candidate("not the passphrase");
    // Warm-up: caches, the hashing threads, SQLite pages.
    for _ in 0..5 {
        for (_, username) in kinds {
            let _ = services
                .auth
                .login(username, &wrong_password, None, &ctx)
                .await;
        }
    }
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); kinds.len()];
    for kind in order {
        let started = Instant::now();
        let outcome = services
            .auth
            .login(kinds[kind].1, &wrong_password, None, &ctx)
            .await;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        assert!(outcome.is_err());
        times[kind].push(ms);
    }
    println!("login timing, {samples} samples each, argon2id m=19456 t=2 p=1, bcrypt cost 12");
    for ((name, _), xs) in kinds.iter().zip(&times) {
        println!(
            "  {name:<15} mean {:7.2} ms  sd {:6.2} ms",
            mean(xs),
            variance(xs).sqrt()
        );
    }
    let half = samples / 2;
    let noise = |xs: &[f64]| (mean(&xs[..half]) - mean(&xs[half..])).abs();
    let unknown = &times[0];
    let mut distinguishable = false;
    for ((name, _), xs) in kinds.iter().zip(&times).skip(1) {
        let t = welch_t(unknown, xs);
        let difference = (mean(unknown) - mean(xs)).abs();
        println!(
            "  unknown user vs {name}: difference of means {difference:.3} ms; run-to-run noise (halves) {:.3} ms; Welch t = {t:.2}",
            (noise(unknown) + noise(xs)) / 2.0
        );
        distinguishable |= t.abs() >= 4.0;
    }
    println!("  (|t| < 4: not distinguishable at this sample size)");
    if check && distinguishable {
        eprintln!("login_timing: some kinds of failed login are distinguishable");
        std::process::exit(1);
    }
}
