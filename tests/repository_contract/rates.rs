//! The rate limit's budgets ([`RateBudget`], issue 15): GCRA per key, partial leases, and no
//! more than the budget under concurrent takes. Run on every backend, and on Redis when
//! `TEST_REDIS_URL` is set.

use auth_service::domain::ports::{Grant, RateQuota};
use auth_service::infrastructure::redis_rates::RedisBudget;

use super::*;

const QUOTA: RateQuota = RateQuota {
    per_second: 10,
    burst: 5,
};

/// A key no other test (nor an earlier run, on Redis) uses.
fn fresh_key() -> String {
    format!("198.51.100.{}", uuid::Uuid::new_v4())
}

async fn take(b: &Backend, key: &str, quota: RateQuota, want: u32, at: DateTime<Utc>) -> Grant {
    b.repos.rates.take(key, quota, want, at).await.unwrap()
}

pub async fn a_key_gets_its_burst_then_one_token_per_interval(b: Backend) {
    let (key, at) = (fresh_key(), now());
    for _ in 0..QUOTA.burst {
        assert_eq!(take(&b, &key, QUOTA, 1, at).await, Grant::Granted(1));
    }
    match take(&b, &key, QUOTA, 1, at).await {
        Grant::Refused { retry_after_micros } => {
            assert_eq!(
                retry_after_micros, 100_000,
                "the next token, one interval away"
            );
        }
        granted => panic!("over the burst: {granted:?}"),
    }
    let soon = at + Duration::milliseconds(40);
    assert_eq!(
        take(&b, &key, QUOTA, 1, soon).await,
        Grant::Refused {
            retry_after_micros: 60_000
        }
    );
    let later = at + Duration::milliseconds(100);
    assert_eq!(take(&b, &key, QUOTA, 1, later).await, Grant::Granted(1));
    assert!(matches!(
        take(&b, &key, QUOTA, 1, later).await,
        Grant::Refused { .. }
    ));
}

pub async fn a_lease_takes_what_is_left_and_never_more_than_the_burst(b: Backend) {
    let (key, at) = (fresh_key(), now());
    assert_eq!(take(&b, &key, QUOTA, 3, at).await, Grant::Granted(3));
    assert_eq!(take(&b, &key, QUOTA, 3, at).await, Grant::Granted(2));
    assert!(matches!(
        take(&b, &key, QUOTA, 3, at).await,
        Grant::Refused { .. }
    ));
    let much_later = at + Duration::seconds(30);
    assert_eq!(
        take(&b, &key, QUOTA, 9, much_later).await,
        Grant::Granted(5)
    );
    // Another key has its own budget.
    assert_eq!(
        take(&b, &fresh_key(), QUOTA, 9, at).await,
        Grant::Granted(5)
    );
}

pub async fn concurrent_takes_never_exceed_the_budget(b: Backend) {
    let (key, at) = (fresh_key(), now());
    let quota = RateQuota {
        per_second: 1,
        burst: 20,
    };
    let rates = b.repos.rates.clone();
    let takes = (0..60).map(|i| {
        let (rates, key) = (rates.clone(), key.clone());
        tokio::spawn(async move { rates.take(&key, quota, 1 + i % 3, at).await.unwrap() })
    });
    let mut granted = 0;
    for take in futures::future::join_all(takes).await {
        if let Grant::Granted(n) = take.unwrap() {
            granted += n;
        }
    }
    assert_eq!(granted, quota.burst, "exactly the burst, whoever asked");
}

pub async fn a_purge_keeps_the_budgets_in_use(b: Backend) {
    let (key, at) = (fresh_key(), now());
    assert_eq!(take(&b, &key, QUOTA, 5, at).await, Grant::Granted(5));
    let old = fresh_key();
    assert_eq!(
        take(&b, &old, QUOTA, 5, at - Duration::hours(1)).await,
        Grant::Granted(5)
    );
    b.repos
        .purge
        .purge(&PurgeCutoffs {
            now: at,
            revoked_before: at - Duration::days(1),
            audit_before: at - Duration::days(90),
            throttle_before: at - Duration::days(1),
        })
        .await
        .unwrap();
    assert!(
        matches!(take(&b, &key, QUOTA, 1, at).await, Grant::Refused { .. }),
        "a spent budget survives the purge"
    );
    assert_eq!(
        take(&b, &old, QUOTA, 9, at).await,
        Grant::Granted(5),
        "a refilled one is as good as new"
    );
}

/// The memory adapter with its budgets in Redis (`TEST_REDIS_URL`), under a prefix of its own.
pub async fn redis() -> Option<Backend> {
    let url = support::redis_url()?;
    let prefix = format!("contract-{}:", uuid::Uuid::new_v4());
    let mut repos = db::memory::MemoryStore::new().repositories();
    repos.rates = Arc::new(RedisBudget::connect(&url, &prefix).await.unwrap());
    Some(Backend {
        repos,
        url: None,
        _guard: Box::new(()),
    })
}

macro_rules! redis_tests {
    ($($case:ident),+ $(,)?) => {
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    match super::redis().await {
                        Some(backend) => super::$case(backend).await,
                        None => super::support::skip_redis(concat!("redis::", stringify!($case))),
                    }
                }
            )+
        }
    };
}

redis_tests!(
    a_key_gets_its_burst_then_one_token_per_interval,
    a_lease_takes_what_is_left_and_never_more_than_the_burst,
    concurrent_takes_never_exceed_the_budget,
);
