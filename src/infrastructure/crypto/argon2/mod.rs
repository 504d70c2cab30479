//! [`PasswordHasher`] with argon2id: off the async runtime, with bounded concurrency.
//!
//! Each hash holds `m` KiB of RAM for tens of milliseconds, so hashes run on a fixed set of
//! hashing threads, one per core by default, each reusing its working memory; a request that
//! cannot get a slot within the queue timeout is answered "busy" instead of piling up.
//!
//! # Imported bcrypt hashes, and why every failed verification costs the same
//!
//! Users imported from the proof of concept keep their passlib bcrypt hash until their first
//! successful login. Checking a password against a bcrypt hash of cost `c` costs 2^c
//! key-schedule rounds whatever the answer, and nothing known without the password makes it
//! cheaper: at cost 12 (passlib's default) that is ~200 ms on one core of the development
//! machine, against ~13 ms for an argon2id verification with the default parameters. Measured
//! with `cargo bench --bench login_timing` before this change, a failed login took 214 ms for
//! such a user against 13.6 ms for a wrong password of a native user or an unknown username
//! (Welch t = -465): anyone with a stopwatch could tell which usernames exist (and that they
//! are dormant accounts from the old system). Wrapping the bcrypt hash in
//! argon2id at import (argon2id(bcrypt(password))) would protect a stolen database better but
//! still costs the bcrypt rounds at every login of these users, so it cannot close that gap.
//!
//! What closes it is doing the same work on every failed verification: one argon2
//! verification with the configured parameters **and** bcrypt rounds up to the legacy cost `C`
//! ([`DEFAULT_LEGACY_BCRYPT_COST`], 12):
//!
//! - argon2 hash (or the dummy hash of an unknown user), wrong password: the argon2
//!   verification, then 2^C bcrypt rounds on the dummy input;
//! - bcrypt hash of cost `c <= C`, wrong password: the bcrypt verification (2^c), bcrypt runs of
//!   costs `c, c+1, .., C-1` (2^C - 2^c more, so 2^C in all), and the dummy argon2 verification;
//! - a stored hash that cannot be verified at all: the dummy argon2 verification and 2^C
//!   rounds, then the answer "no match" (logged as an error), never a failure of the request.
//!
//! A successful verification stops after the real check (the password is right: there is
//! nothing to hide from its owner). Imports with a cost above `C` are refused, which also keeps
//! a hash of cost 31 (days per attempt) from being a way to stall the hashing threads. Measured
//! after the change: 225.9 ms (unknown user), 225.1 ms (wrong password), 227.4 ms (bcrypt
//! user), |t| <= 1.4. The price: a failed login costs ~225 ms of a hashing thread instead of
//! ~14 ms, so a flood of wrong passwords saturates the hashing threads about 16 times sooner
//! (the queue timeout then answers "busy", as before); successful logins cost what they did.
//!
//! That price is paid only while it buys something: the padding is on only while the store may
//! hold a bcrypt hash. The service asks the store at start and at every purge run
//! ([`PasswordHasher::set_legacy_hashes_present`]), an import through the service turns it on
//! at once, and so does any bcrypt verification; until the first answer it is on. A deployment
//! that never imported bcrypt hashes, or whose imported users have all logged in once since,
//! pays one argon2 verification per failed login. `LEGACY_BCRYPT_COST=off` refuses bcrypt
//! hashes altogether. Figures: BENCHMARKS.md, "Failed logins and imported bcrypt hashes".

mod parse;
mod verify;
mod workers;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::PasswordHash as Phc;
use argon2::{Params, Version};
use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

use self::parse::{parse_stored, Argon2Hash, Limits, StoredHash};
use self::verify::{hash_blocking, BLOCKS};
use self::workers::HashWorkers;
use crate::domain::ports::{HashError, PasswordHasher};
use crate::domain::user::{Password, PasswordHash};

/// The argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Config {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

/// The bcrypt cost every failed verification is padded to, and the highest cost an imported
/// bcrypt hash may have: passlib's default, which the proof of concept used.
pub const DEFAULT_LEGACY_BCRYPT_COST: u32 = 12;

/// How much hashing a hasher has done since it was built, by kind. Two code paths that must
/// not be told apart by their timing must add the same amounts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HashingWork {
    /// argon2 computations with the configured algorithm, version and parameters (hashes,
    /// verifications, dummy verifications).
    pub argon2_configured: u64,
    /// argon2 computations with any other parameters (hashes made before a parameter change).
    pub argon2_other: u64,
    /// bcrypt work in key-schedule rounds: 2^cost per bcrypt run (a cost-12 run counts 4096).
    pub bcrypt_rounds: u64,
}

impl HashingWork {
    /// The work done between `earlier` and `self`.
    pub fn since(&self, earlier: &HashingWork) -> HashingWork {
        HashingWork {
            argon2_configured: self.argon2_configured - earlier.argon2_configured,
            argon2_other: self.argon2_other - earlier.argon2_other,
            bcrypt_rounds: self.bcrypt_rounds - earlier.bcrypt_rounds,
        }
    }
}

#[derive(Default)]
struct WorkCounters {
    argon2_configured: AtomicU64,
    argon2_other: AtomicU64,
    bcrypt_rounds: AtomicU64,
}

/// What every hashing job needs: the parameters, the limits, the parsed dummy hash, the
/// counters.
struct Shared {
    params: Params,
    limits: Limits,
    dummy: Argon2Hash,
    work: WorkCounters,
    /// Whether the store may hold bcrypt hashes: failures are padded only then (a deployment
    /// with none pays one argon2 verification per failed login, not ~16 times that). Starts
    /// true until the store has been asked ([`PasswordHasher::set_legacy_hashes_present`]), and
    /// turns true again the moment a bcrypt hash is verified.
    legacy_present: std::sync::atomic::AtomicBool,
}

/// argon2id hashing on `concurrency` threads of its own, with at most one more hash queued per
/// thread; further requests wait for a slot up to the queue timeout.
pub struct Argon2Hasher {
    shared: Arc<Shared>,
    permits: Arc<Semaphore>,
    queue_timeout: Duration,
    dummy: PasswordHash,
    workers: HashWorkers,
}

impl Argon2Hasher {
    /// Builds the hasher and its dummy hash (one hash at start-up), accepting imported bcrypt
    /// hashes up to [`DEFAULT_LEGACY_BCRYPT_COST`] and padding every failed verification to it.
    ///
    /// # Errors
    /// [`HashError::Failed`] when the parameters are out of argon2's range.
    pub fn new(
        config: Argon2Config,
        concurrency: usize,
        queue_timeout: Duration,
    ) -> Result<Self, HashError> {
        Self::with_legacy_bcrypt(
            config,
            concurrency,
            queue_timeout,
            Some(DEFAULT_LEGACY_BCRYPT_COST),
        )
    }

    /// Like [`Argon2Hasher::new`] with another legacy bcrypt cost: bcrypt hashes up to
    /// `legacy_bcrypt_cost` are accepted and every failed verification does that many bcrypt
    /// rounds (see the module documentation); `None` refuses bcrypt hashes and pads nothing.
    ///
    /// # Errors
    /// [`HashError::Failed`] when the parameters are out of argon2's range or the cost is
    /// outside bcrypt's 4-31.
    pub fn with_legacy_bcrypt(
        config: Argon2Config,
        concurrency: usize,
        queue_timeout: Duration,
        legacy_bcrypt_cost: Option<u32>,
    ) -> Result<Self, HashError> {
        let params = Params::new(
            config.memory_kib,
            config.iterations,
            config.parallelism,
            None,
        )
        .map_err(|e| HashError::Failed(format!("invalid argon2 parameters: {e}")))?;
        if let Some(cost) = legacy_bcrypt_cost.filter(|cost| !(4..=31).contains(cost)) {
            return Err(HashError::Failed(format!(
                "invalid legacy bcrypt cost {cost}: bcrypt costs are 4 to 31"
            )));
        }
        let mut random = [0u8; 24];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut random);
        let dummy = hash_blocking(&params, &SecretString::from(hex::encode(random)))?;
        // The start-up thread hashes only this once: give its working memory back.
        BLOCKS.with(|blocks| *blocks.borrow_mut() = Vec::new());
        let limits = Limits::new(&params, legacy_bcrypt_cost);
        let parsed_dummy = match parse_stored(dummy.as_str(), &limits) {
            Ok(StoredHash::Argon2(hash)) => hash,
            _ => return Err(HashError::Failed("the dummy hash does not parse".into())),
        };
        Ok(Self {
            shared: Arc::new(Shared {
                params,
                limits,
                dummy: parsed_dummy,
                work: WorkCounters::default(),
                legacy_present: std::sync::atomic::AtomicBool::new(true),
            }),
            permits: workers::slots(concurrency),
            queue_timeout,
            dummy,
            workers: HashWorkers::start(concurrency.max(1)),
        })
    }

    /// The hashing done so far (for tests and benchmarks that compare code paths).
    pub fn work_done(&self) -> HashingWork {
        let work = &self.shared.work;
        HashingWork {
            argon2_configured: work.argon2_configured.load(Ordering::Relaxed),
            argon2_other: work.argon2_other.load(Ordering::Relaxed),
            bcrypt_rounds: work.bcrypt_rounds.load(Ordering::Relaxed),
        }
    }

    /// Why this hasher cannot use `hash`, or `None` when it can (the reason behind
    /// [`PasswordHasher::is_supported`]; never quotes the hash).
    pub fn unusable_reason(&self, hash: &PasswordHash) -> Option<String> {
        parse_stored(hash.as_str(), &self.shared.limits).err()
    }
}

/// Why `hash` is not the checked format of the password hashes this service may import.
///
/// The same checks as [`PasswordHasher::is_supported`] of a hasher built with
/// [`Argon2Hasher::new`] and parameters no heavier than the default (the seed command explains
/// a refused row with it). `None`: usable.
pub fn import_problem(hash: &str) -> Option<String> {
    parse_stored(
        hash,
        &Limits::new(&Params::DEFAULT, Some(DEFAULT_LEGACY_BCRYPT_COST)),
    )
    .err()
}

#[async_trait]
impl PasswordHasher for Argon2Hasher {
    async fn hash(&self, password: &Password) -> Result<PasswordHash, HashError> {
        let shared = self.shared.clone();
        let password = SecretString::from(password.expose());
        self.run(move || {
            shared
                .work
                .argon2_configured
                .fetch_add(1, Ordering::Relaxed);
            hash_blocking(&shared.params, &password)
        })
        .await
    }

    async fn verify(&self, password: &Password, hash: &PasswordHash) -> Result<bool, HashError> {
        let shared = self.shared.clone();
        let password = SecretString::from(password.expose());
        let stored = hash.as_str().to_owned();
        self.run(move || shared.verify(password.expose_secret().as_bytes(), &stored))
            .await
    }

    fn dummy_hash(&self) -> &PasswordHash {
        &self.dummy
    }

    fn is_supported(&self, hash: &PasswordHash) -> bool {
        parse_stored(hash.as_str(), &self.shared.limits).is_ok()
    }

    fn legacy_hash_prefix(&self) -> Option<&'static str> {
        self.shared.limits.bcrypt_cost.map(|_| "$2")
    }

    fn set_legacy_hashes_present(&self, present: bool) {
        self.shared.legacy_present.store(present, Ordering::Relaxed);
    }

    fn needs_rehash(&self, hash: &PasswordHash) -> bool {
        let Ok(phc) = Phc::new(hash.as_str()) else {
            return true;
        };
        let Ok(stored) = Params::try_from(&phc) else {
            return true;
        };
        let params = &self.shared.params;
        phc.algorithm.as_str() != "argon2id"
            || phc.version != Some(Version::V0x13.into())
            || stored.m_cost() != params.m_cost()
            || stored.t_cost() != params.t_cost()
            || stored.p_cost() != params.p_cost()
    }
}

#[cfg(test)]
mod tests;
