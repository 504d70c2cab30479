//! Password hashing: the argon2id cost, the hashing threads and imported bcrypt hashes.

use super::table::{first_failure, row, Fallback::*, Group, Value, Var};
use super::ConfigError;

/// How passwords are hashed and how many hashes run at once.
#[derive(Debug, Clone)]
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

fn legacy_bcrypt_cost(value: &Value<'_>) -> Result<Option<u32>, ConfigError> {
    match value.raw.map(str::trim) {
        Some("off") => Ok(None),
        _ => value.parse(BCRYPT_COST).map(Some),
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
        Var {
            name: "HASH_CONCURRENCY",
            default: Computed("the number of cores"),
            read: |s, v| {
                s.concurrency = match v.raw {
                    None => std::thread::available_parallelism().map_or(1, |n| n.get()),
                    Some(_) => v.number()?,
                };
                Ok(())
            },
            show: |s| s.concurrency.to_string(),
        },
        row!(
            "HASH_QUEUE_TIMEOUT_MS",
            Fixed("2000"),
            queue_timeout_ms = number()
        ),
        Var {
            name: "LEGACY_BCRYPT_COST",
            default: Fixed("12"),
            read: |s, v| {
                s.legacy_bcrypt_cost = legacy_bcrypt_cost(v)?;
                Ok(())
            },
            show: |s| {
                s.legacy_bcrypt_cost
                    .map_or_else(|| "off".to_owned(), |cost| cost.to_string())
            },
        },
    ];

    fn initial() -> Self {
        Self {
            argon2_memory_kib: 0,
            argon2_iterations: 0,
            argon2_parallelism: 0,
            concurrency: 0,
            queue_timeout_ms: 0,
            legacy_bcrypt_cost: None,
        }
    }

    fn check(&self) -> Result<(), ConfigError> {
        first_failure(&[
            (
                !matches!(self.legacy_bcrypt_cost, Some(cost) if !(4..=31).contains(&cost)),
                "LEGACY_BCRYPT_COST must be a bcrypt cost from 4 to 31, or off",
            ),
            (self.concurrency > 0, "HASH_CONCURRENCY must be at least 1"),
            (
                self.argon2_parallelism >= 1 && self.argon2_iterations >= 1,
                "ARGON2_ITERATIONS and ARGON2_PARALLELISM must be at least 1",
            ),
            (
                self.argon2_memory_kib >= 8 * self.argon2_parallelism,
                "ARGON2_MEMORY_KIB must be at least 8 x ARGON2_PARALLELISM",
            ),
        ])
    }
}
