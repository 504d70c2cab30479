//! Micro-benchmarks of the hot crypto: JWT sign and verify per algorithm, refresh-token
//! generation and hashing, and one argon2id verification at the configured parameters (which
//! bounds logins: cores / verification time), alone and on every core at once.
//!
//! `cargo bench --bench crypto`. `ARGON2_MEMORY_KIB`, `ARGON2_ITERATIONS` and
//! `ARGON2_PARALLELISM` override the OWASP defaults (19456, 2, 1).

use std::time::Duration;

use auth_service::domain::ports::{AccessTokenCodec, PasswordHasher};
use auth_service::domain::session::{RefreshToken, SessionId};
use auth_service::domain::token::AccessClaims;
use auth_service::domain::user::{Password, Role, Roles, UserId};
use auth_service::infrastructure::crypto::argon2::{Argon2Config, Argon2Hasher};
use auth_service::infrastructure::crypto::jwt::JwtCodec;
use auth_service::infrastructure::crypto::keys;
use chrono::Utc;
use criterion::{criterion_group, criterion_main, Criterion};
use jsonwebtoken::Algorithm;
use secrecy::SecretString;

fn claims() -> AccessClaims {
    let now = Utc::now();
    AccessClaims {
        user_id: UserId::new(),
        session_id: SessionId::new(),
        username: "alice".into(),
        roles: Roles::new([Role::User]),
        scope: Roles::new([Role::User]),
        oidc: Default::default(),
        client_id: None,
        issued_at: now,
        not_before: now,
        expires_at: now + chrono::Duration::minutes(15),
        token_id: uuid::Uuid::now_v7(),
    }
}

fn codecs() -> Vec<(&'static str, JwtCodec)> {
    let mut codecs = vec![(
        "HS256",
        JwtCodec::hs256(
            &SecretString::from("a-benchmark-secret-of-32-bytes!!"),
            "http://bench",
            "auth-service",
            30,
        ),
    )];
    for (name, algorithm) in [
        ("EdDSA", Algorithm::EdDSA),
        ("ES256", Algorithm::ES256),
        ("RS256", Algorithm::RS256),
    ] {
        let pem = keys::generate_private_pem(algorithm).unwrap();
        let key = keys::from_private_pem(algorithm, &pem).unwrap();
        codecs.push((
            name,
            JwtCodec::new(key, vec![], "http://bench", "auth-service", 30).unwrap(),
        ));
    }
    codecs
}

fn jwt(c: &mut Criterion) {
    let claims = claims();
    for (name, codec) in codecs() {
        let token = codec.sign(&claims).unwrap();
        c.bench_function(&format!("jwt sign {name}"), |b| {
            b.iter(|| codec.sign(&claims).unwrap())
        });
        c.bench_function(&format!("jwt verify {name}"), |b| {
            b.iter(|| codec.verify(&token, Utc::now()).unwrap())
        });
    }
    // Without the verified-token cache: every check every time (the cost of a miss, which a
    // working set larger than the cache pays on every request).
    for (name, codec) in codecs() {
        let codec = codec.with_token_cache(0);
        let token = codec.sign(&claims).unwrap();
        c.bench_function(&format!("jwt verify {name} uncached"), |b| {
            b.iter(|| codec.verify(&token, Utc::now()).unwrap())
        });
    }
    // The key of the verified-token cache: the SHA-256 digest of the token's text.
    let token = codecs()[0].1.sign(&claims).unwrap();
    c.bench_function("access token digest (sha-256)", |b| {
        b.iter(|| <sha2::Sha256 as sha2::Digest>::digest(token.as_bytes()))
    });
}

fn refresh_tokens(c: &mut Criterion) {
    c.bench_function("refresh token generate", |b| b.iter(RefreshToken::generate));
    let token = RefreshToken::generate();
    c.bench_function("refresh token hash (sha-256)", |b| b.iter(|| token.hash()));
}

fn argon2(c: &mut Criterion) {
    let var = |name: &str, default: u32| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let config = Argon2Config {
        memory_kib: var("ARGON2_MEMORY_KIB", 19456),
        iterations: var("ARGON2_ITERATIONS", 2),
        parallelism: var("ARGON2_PARALLELISM", 1),
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let hasher = Argon2Hasher::new(config, 1, Duration::from_secs(60)).unwrap();
    let password = Password::candidate("correct horse battery");
    let hash = runtime.block_on(hasher.hash(&password)).unwrap();
    let mut group = c.benchmark_group("argon2id");
    group.sample_size(20);
    group.bench_function(
        format!(
            "verify m={} t={} p={}",
            config.memory_kib, config.iterations, config.parallelism
        ),
        |b| b.iter(|| runtime.block_on(hasher.verify(&password, &hash)).unwrap()),
    );
    // The same verification on every core at once, as a login storm runs it: the cores share
    // caches and memory bandwidth, so each verification takes longer than alone. One iteration
    // is one verification per core, in parallel; the rate is cores / time per iteration.
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let all = Argon2Hasher::new(config, cores, Duration::from_secs(60)).unwrap();
    group.bench_function(
        format!(
            "verify on {cores} cores at once m={} t={} p={}",
            config.memory_kib, config.iterations, config.parallelism
        ),
        |b| {
            b.iter(|| {
                runtime.block_on(async {
                    let all_verified =
                        futures::future::join_all((0..cores).map(|_| all.verify(&password, &hash)))
                            .await;
                    assert!(all_verified.into_iter().all(|ok| ok.unwrap()));
                });
            });
        },
    );
    group.finish();
}

criterion_group!(benches, jwt, refresh_tokens, argon2);
criterion_main!(benches);
