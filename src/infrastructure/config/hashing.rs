//! Password hashing: the argon2id cost, the hashing threads and imported bcrypt hashes.

use super::table::{row, Check, Fallback::*, Group, Value, Var};
use super::ConfigError;

/// How passwords are hashed and how many hashes run at once.
#[derive(Debug, Clone, Default)]
pub struct HashingSettings {
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    /// Hashing threads (default: the number of cores).
    pub concurrency: usize,
    pub queue_timeout_ms: u64,
    /// The highest cost of an imported bcrypt hash, and the bcrypt cost failed verifications
    /// are padded to while bcrypt hashes are stored; `None` (`off`): bcrypt hashes refused.
    pub legacy_bcrypt_cost: Option<u32>,
}

const BCRYPT_COST: &str = "a bcrypt cost from 4 to 31, or off";

fn legacy_bcrypt_cost(_: &HashingSettings, value: &Value<'_>) -> Result<Option<u32>, ConfigError> {
    match value.raw.map(str::trim) {
        Some("off") => Ok(None),
        _ => value.parse(BCRYPT_COST).map(Some),
    }
}

/// The number of cores unless set.
fn concurrency(_: &HashingSettings, value: &Value<'_>) -> Result<usize, ConfigError> {
    match value.raw {
        None => Ok(std::thread::available_parallelism().map_or(1, |n| n.get())),
        Some(_) => value.number(),
    }
}

impl Group for HashingSettings {
    const VARS: &'static [Var<Self>] = &[
        row!(
            "ARGON2_MEMORY_KIB",
            Fixed("19456"),
            argon2_memory_kib = number()
        ),
        row!(
            "ARGON2_ITERATIONS",
            Fixed("2"),
            argon2_iterations = number()
        ),
        row!(
            "ARGON2_PARALLELISM",
            Fixed("1"),
            argon2_parallelism = number()
        ),
        row!(
            "HASH_CONCURRENCY",
            Computed("the number of cores"),
            concurrency <- concurrency,
            show = |s| s.concurrency.to_string()
        ),
        row!(
            "HASH_QUEUE_TIMEOUT_MS",
            Fixed("2000"),
            queue_timeout_ms = number()
        ),
        row!(
            "LEGACY_BCRYPT_COST",
            Fixed("12"),
            legacy_bcrypt_cost <- legacy_bcrypt_cost,
            show = |s| s.legacy_bcrypt_cost.map_or("off".to_owned(), |cost| cost.to_string())
        ),
    ];

    const CHECKS: &'static [Check<Self>] = &[
        (
            |s| !matches!(s.legacy_bcrypt_cost, Some(cost) if !(4..=31).contains(&cost)),
            "LEGACY_BCRYPT_COST must be a bcrypt cost from 4 to 31, or off",
        ),
        (|s| s.concurrency > 0, "HASH_CONCURRENCY must be at least 1"),
        (
            |s| s.argon2_parallelism >= 1 && s.argon2_iterations >= 1,
            "ARGON2_ITERATIONS and ARGON2_PARALLELISM must be at least 1",
        ),
        (
            |s| s.argon2_memory_kib >= 8 * s.argon2_parallelism,
            "ARGON2_MEMORY_KIB must be at least 8 x ARGON2_PARALLELISM",
        ),
    ];
}
