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

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::Output;
use argon2::password_hash::{PasswordHash as Phc, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use std::cell::RefCell;
use tokio::sync::Semaphore;
use tracing::Span;

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

/// The most memory an imported or stored argon2 hash may ask for (unless the configured
/// parameters ask for more): 1 GiB, libsodium's "sensitive" profile. Beyond it a single login
/// attempt could exhaust the machine's memory (`m` is a 32-bit KiB count: up to 4 TiB).
const MAX_ARGON2_MEMORY_KIB: u32 = 1 << 20;

/// The most passes an imported or stored argon2 hash may ask for (unless the configured
/// parameters ask for more). Every published profile uses at most 10.
const MAX_ARGON2_ITERATIONS: u32 = 16;

/// What the hasher accepts in a stored or imported hash.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// The legacy bcrypt cost `C` (see the module documentation); `None`: bcrypt refused.
    bcrypt_cost: Option<u32>,
    max_memory_kib: u32,
    max_iterations: u32,
}

impl Limits {
    fn new(configured: &Params, bcrypt_cost: Option<u32>) -> Self {
        Self {
            bcrypt_cost,
            max_memory_kib: MAX_ARGON2_MEMORY_KIB.max(configured.m_cost()),
            max_iterations: MAX_ARGON2_ITERATIONS.max(configured.t_cost()),
        }
    }
}

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

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of hashing threads. Tokio's blocking pool would run successive
/// hashes on ever new threads, each with its own allocator arena keeping a freed argon2 buffer
/// (seen: 610 MiB peak under 500 concurrent logins); with fixed threads the memory held is
/// bounded by threads x argon2 memory.
struct HashWorkers {
    jobs: std::sync::mpsc::Sender<Job>,
}

impl HashWorkers {
    fn start(count: usize) -> Self {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let queue = Arc::new(std::sync::Mutex::new(queue));
        for i in 0..count {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        let job = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return, // the hasher was dropped
                        }
                    }
                });
            if let Err(error) = spawned {
                tracing::error!(%error, "cannot start a hashing thread");
            }
        }
        Self { jobs }
    }
}

/// How much lower than the rest of the process a hashing thread runs (a nice value).
const HASHING_NICENESS: libc::c_int = 10;

/// Lowers the calling thread's scheduling priority, so that when logins keep every core busy
/// hashing, the async workers still get a core as soon as a request arrives: `/health` and
/// token checks stay fast during a login storm, and the hashes take whatever is left, which
/// under such a storm is nearly everything. (On Linux the nice value is per thread.)
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid and setpriority take no pointers; this changes only this thread's nice
        // value, and a failure (say, a sandbox refusing it) leaves the thread as it was.
        let result = unsafe {
            let tid = libc::gettid();
            libc::setpriority(
                libc::PRIO_PROCESS,
                libc::id_t::try_from(tid).unwrap_or_default(),
                HASHING_NICENESS,
            )
        };
        if result != 0 {
            tracing::debug!("could not lower the priority of a hashing thread");
        }
    }
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
            // Twice the threads: each thread has its next job waiting when it finishes one, instead
            // of idling while the finished caller's task wakes up and the next caller gets its
            // slot and hands its job over (with the cores busy hashing, that hand-over cost about
            // a tenth of the hash rate). A queued job holds no argon2 memory, only the password.
            permits: Arc::new(Semaphore::new(concurrency.max(1) * 2)),
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

    /// Runs `work` on a hashing thread once a slot is free (or gives up after the queue
    /// timeout), inside the caller's span.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, HashError> + Send + 'static,
    ) -> Result<T, HashError> {
        let busy = || HashError::Busy {
            retry_after_secs: self.queue_timeout.as_secs().max(1),
        };
        let queued = std::time::Instant::now();
        let permit =
            match tokio::time::timeout(self.queue_timeout, self.permits.clone().acquire_owned())
                .await
            {
                Ok(Ok(permit)) => permit,
                _ => {
                    metrics::counter!("password_hash_rejected_total").increment(1);
                    return Err(busy());
                }
            };
        metrics::histogram!("password_hash_queue_wait_seconds")
            .record(queued.elapsed().as_secs_f64());
        let span = Span::current();
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _permit = permit;
            let in_flight = metrics::gauge!("password_hashes_in_flight");
            in_flight.increment(1.0);
            let outcome = span.in_scope(work);
            in_flight.decrement(1.0);
            let _ = done.send(outcome);
        });
        self.workers
            .jobs
            .send(job)
            .map_err(|_| HashError::Failed("the hashing threads are gone".into()))?;
        result
            .await
            .map_err(|_| HashError::Failed("a hashing job was dropped".into()))?
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

/// A stored hash taken apart and checked: everything a verification needs.
enum StoredHash {
    Argon2(Argon2Hash),
    Bcrypt { cost: u32 },
}

/// An argon2 PHC string taken apart and checked.
struct Argon2Hash {
    algorithm: Algorithm,
    version: Version,
    params: Params,
    salt: Vec<u8>,
    expected: Output,
}

/// The characters of bcrypt's own base64 alphabet.
fn is_bcrypt_base64(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'.' || byte == b'/'
}

/// Checks `hash` completely and takes it apart, or says (without quoting it) why it cannot be
/// verified by this hasher.
fn parse_stored(hash: &str, limits: &Limits) -> Result<StoredHash, String> {
    if hash.starts_with("$2") {
        return parse_bcrypt(hash, limits).map(|cost| StoredHash::Bcrypt { cost });
    }
    parse_argon2(hash, limits).map(StoredHash::Argon2)
}

/// A bcrypt hash as passlib and others write it: `$2a$`, `$2b$` or `$2y$`, a two-digit cost
/// from 04 to the legacy cost, `$`, then 53 characters of bcrypt base64 (a 22-character salt and
/// a 31-character checksum, each a canonical encoding). Returns the cost.
fn parse_bcrypt(hash: &str, limits: &Limits) -> Result<u32, String> {
    if !["$2a$", "$2b$", "$2y$"]
        .iter()
        .any(|prefix| hash.starts_with(prefix))
    {
        return Err("a bcrypt hash starts with $2a$, $2b$ or $2y$".into());
    }
    let Some(ceiling) = limits.bcrypt_cost else {
        return Err("bcrypt hashes are not accepted any more".into());
    };
    let bytes = hash.as_bytes();
    if bytes.len() != 60 {
        return Err(format!(
            "a bcrypt hash has 60 characters, this one {}",
            hash.chars().count()
        ));
    }
    let cost = match (bytes[4], bytes[5], bytes[6]) {
        (tens @ b'0'..=b'9', units @ b'0'..=b'9', b'$') => {
            u32::from(tens - b'0') * 10 + u32::from(units - b'0')
        }
        _ => return Err("a bcrypt hash has a two-digit cost after $2b$, then $".into()),
    };
    if !(4..=31).contains(&cost) {
        return Err(format!("bcrypt cost {cost:02} is outside 04-31"));
    }
    if cost > ceiling {
        return Err(format!(
            "bcrypt cost {cost:02} is above the accepted {ceiling:02} (a login of this user would take longer than any other, telling it apart)"
        ));
    }
    if !bytes[7..].iter().all(|b| is_bcrypt_base64(*b)) {
        return Err("the 53 characters after the cost must be bcrypt base64 (./A-Za-z0-9)".into());
    }
    bcrypt::HashParts::from_str(hash)
        .map_err(|_| "the salt or checksum is not a canonical bcrypt base64 encoding".to_owned())?;
    Ok(cost)
}

/// An argon2 PHC string: algorithm, version, parameters within argon2's ranges and the limits,
/// a salt argon2 accepts, a checksum; no `keyid` (a secret key this service does not have).
fn parse_argon2(hash: &str, limits: &Limits) -> Result<Argon2Hash, String> {
    let phc = Phc::new(hash).map_err(|e| format!("not a PHC string ({e})"))?;
    let algorithm = Algorithm::try_from(phc.algorithm)
        .map_err(|_| "not an argon2 hash (argon2id, argon2i or argon2d)".to_owned())?;
    let version = phc
        .version
        .map(Version::try_from)
        .transpose()
        .map_err(|_| "unknown argon2 version (v=16 or v=19)".to_owned())?
        .unwrap_or_default();
    let params = Params::try_from(&phc).map_err(|e| format!("unusable argon2 parameters ({e})"))?;
    if !params.keyid().is_empty() {
        return Err("made with a secret key (keyid) this service does not have".into());
    }
    if params.m_cost() > limits.max_memory_kib || params.t_cost() > limits.max_iterations {
        return Err(format!(
            "argon2 parameters m={} t={} exceed the accepted m={} t={}",
            params.m_cost(),
            params.t_cost(),
            limits.max_memory_kib,
            limits.max_iterations
        ));
    }
    let (Some(salt), Some(expected)) = (phc.salt, phc.hash) else {
        return Err("the PHC string has no salt or no checksum".into());
    };
    let mut salt_bytes = [0u8; 64];
    let salt = salt
        .decode_b64(&mut salt_bytes)
        .map_err(|_| "the salt is not canonical base64".to_owned())?;
    if salt.len() < argon2::MIN_SALT_LEN {
        return Err(format!(
            "the salt has {} bytes, argon2 needs at least {}",
            salt.len(),
            argon2::MIN_SALT_LEN
        ));
    }
    Ok(Argon2Hash {
        algorithm,
        version,
        params,
        salt: salt.to_vec(),
        expected,
    })
}

fn argon2(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

thread_local! {
    /// This thread's argon2 working memory, reused by every hash it computes. Allocating the
    /// `m` KiB afresh each time left freed buffers in the allocator's arenas (peak RSS 150-350
    /// MiB under a login storm with two hashing threads); reusing it bounds the memory at
    /// threads x `m`.
    static BLOCKS: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// The raw argon2 output of `password` and `salt` into `out`, in this thread's memory.
fn compute(
    hasher: &Argon2<'_>,
    params: &Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), HashError> {
    BLOCKS.with(|blocks| {
        let mut blocks = blocks.borrow_mut();
        if blocks.len() != params.block_count() {
            *blocks = vec![Block::default(); params.block_count()];
        }
        hasher
            .hash_password_into_with_memory(password, salt, out, &mut blocks[..])
            .map_err(|e| HashError::Failed(format!("argon2 failed: {e}")))
    })
}

fn failed(e: impl std::fmt::Display) -> HashError {
    HashError::Failed(format!("argon2: {e}"))
}

fn hash_blocking(params: &Params, password: &SecretString) -> Result<PasswordHash, HashError> {
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0u8; 64];
    let raw_salt = salt.decode_b64(&mut salt_bytes).map_err(failed)?;
    let mut out = [0u8; argon2::Params::DEFAULT_OUTPUT_LEN];
    compute(
        &argon2(params),
        params,
        password.expose_secret().as_bytes(),
        raw_salt,
        &mut out,
    )?;
    let phc = Phc {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: params.try_into().map_err(failed)?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(failed)?),
    };
    Ok(PasswordHash::new(phc.to_string()))
}

impl Shared {
    fn count_argon2(&self, hash: &Argon2Hash) {
        let configured = hash.algorithm == Algorithm::Argon2id
            && hash.version == Version::V0x13
            && hash.params.m_cost() == self.params.m_cost()
            && hash.params.t_cost() == self.params.t_cost()
            && hash.params.p_cost() == self.params.p_cost();
        let counter = if configured {
            &self.work.argon2_configured
        } else {
            &self.work.argon2_other
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether `password` matches the checked argon2 hash.
    fn verify_argon2(&self, password: &[u8], hash: &Argon2Hash) -> Result<bool, HashError> {
        let mut out = vec![0u8; hash.expected.len()];
        self.count_argon2(hash);
        compute(
            &Argon2::new(hash.algorithm, hash.version, hash.params.clone()),
            &hash.params,
            password,
            &hash.salt,
            &mut out,
        )?;
        // `Output` compares in constant time.
        Ok(hash.expected == Output::new(&out).map_err(failed)?)
    }

    /// Whether `password` matches the checked bcrypt hash `stored` of cost `cost`. Legacy
    /// hashes (passlib's bcrypt, 72-byte input limit), verified only to be upgraded to argon2id
    /// on this login.
    fn verify_bcrypt(&self, password: &[u8], stored: &str, cost: u32) -> Result<bool, HashError> {
        self.work
            .bcrypt_rounds
            .fetch_add(1 << cost, Ordering::Relaxed);
        bcrypt::verify(password, stored)
            .map_err(|e| HashError::Failed(format!("bcrypt verification failed: {e}")))
    }

    /// One bcrypt run of `cost` whose result is thrown away.
    fn bcrypt_rounds(&self, password: &[u8], cost: u32) -> Result<(), HashError> {
        self.work
            .bcrypt_rounds
            .fetch_add(1 << cost, Ordering::Relaxed);
        let out = bcrypt::hash_with_salt(password, cost, [0x5a; 16])
            .map_err(|e| HashError::Failed(format!("bcrypt padding failed: {e}")))?;
        std::hint::black_box(out);
        Ok(())
    }

    /// `password` against `stored`, with the same work for every "no" (see the module
    /// documentation). A hash that cannot be verified is logged and answers "no".
    fn verify(&self, password: &[u8], stored: &str) -> Result<bool, HashError> {
        let parsed = parse_stored(stored, &self.limits);
        let (outcome, bcrypt_cost, argon2_done) = match &parsed {
            Ok(StoredHash::Argon2(hash)) => (self.verify_argon2(password, hash), None, true),
            Ok(StoredHash::Bcrypt { cost }) => {
                self.legacy_present.store(true, Ordering::Relaxed);
                (
                    self.verify_bcrypt(password, stored, *cost),
                    Some(*cost),
                    false,
                )
            }
            Err(reason) => (Err(HashError::Failed(reason.clone())), None, false),
        };
        let matches = match outcome {
            Ok(matches) => matches,
            Err(HashError::Failed(reason)) => {
                tracing::error!(
                    %reason,
                    "the stored password hash cannot be verified; the password is refused as wrong (set a new password for this user)"
                );
                false
            }
            Err(busy) => return Err(busy),
        };
        if matches {
            return Ok(true);
        }
        if !argon2_done {
            self.verify_argon2(password, &self.dummy)?;
        }
        let padded = self
            .limits
            .bcrypt_cost
            .filter(|_| self.legacy_present.load(Ordering::Relaxed));
        if let Some(target) = padded {
            match bcrypt_cost {
                // 2^c + (2^c + 2^(c+1) + .. + 2^(C-1)) = 2^C
                Some(done) => {
                    for cost in done..target {
                        self.bcrypt_rounds(password, cost)?;
                    }
                }
                None => self.bcrypt_rounds(password, target)?,
            }
        }
        Ok(false)
    }
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
mod tests {
    use super::*;

    const CHEAP: Argon2Config = Argon2Config {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    /// The legacy bcrypt cost of the test hashers: low, so that padding stays cheap in debug
    /// builds (the production default is 12).
    const LEGACY: u32 = 6;

    fn hasher(config: Argon2Config, concurrency: usize) -> Argon2Hasher {
        Argon2Hasher::with_legacy_bcrypt(
            config,
            concurrency,
            Duration::from_millis(200),
            Some(LEGACY),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn hashes_are_argon2id_phc_strings_that_verify() {
        let h = hasher(CHEAP, 2);
        let password = Password::candidate("correct horse");
        let hash = h.hash(&password).await.unwrap();
        assert!(hash.as_str().starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert!(h.verify(&password, &hash).await.unwrap());
        assert!(!h
            .verify(&Password::candidate("wrong"), &hash)
            .await
            .unwrap());
        assert!(!h.verify(&password, h.dummy_hash()).await.unwrap());
    }

    #[tokio::test]
    async fn hashes_interoperate_with_the_reference_implementation() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let h = hasher(CHEAP, 1);
        let ours = h.hash(&Password::candidate("interop")).await.unwrap();
        let phc = Phc::new(ours.as_str()).unwrap();
        assert!(Argon2::default().verify_password(b"interop", &phc).is_ok());
        let params = Params::new(64, 1, 1, None).unwrap();
        let theirs = argon2(&params)
            .hash_password(b"interop", &SaltString::generate(&mut OsRng))
            .unwrap()
            .to_string();
        let theirs = PasswordHash::new(theirs);
        assert!(h
            .verify(&Password::candidate("interop"), &theirs)
            .await
            .unwrap());
        assert!(!h
            .verify(&Password::candidate("interoq"), &theirs)
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn a_hash_with_other_parameters_needs_rehashing() {
        let old = hasher(CHEAP, 1);
        let new = hasher(
            Argon2Config {
                memory_kib: 128,
                ..CHEAP
            },
            1,
        );
        let hash = old.hash(&Password::candidate("pw")).await.unwrap();
        assert!(!old.needs_rehash(&hash));
        assert!(new.needs_rehash(&hash));
        assert!(new.verify(&Password::candidate("pw"), &hash).await.unwrap());
        assert!(new.needs_rehash(&PasswordHash::new("$2b$12$notargon".into())));
    }

    #[tokio::test]
    async fn bcrypt_hashes_verify_and_always_need_an_upgrade() {
        let h = hasher(CHEAP, 1);
        let bcrypt = bcrypt::hash("legacy passphrase", 4).unwrap();
        for prefix in ["$2a$", "$2b$", "$2y$"] {
            let hash = PasswordHash::new(format!("{prefix}{}", &bcrypt[4..]));
            assert!(h.is_supported(&hash));
            assert!(h
                .verify(&Password::candidate("legacy passphrase"), &hash)
                .await
                .unwrap());
            assert!(!h
                .verify(&Password::candidate("wrong"), &hash)
                .await
                .unwrap());
            assert!(h.needs_rehash(&hash));
        }
        assert!(!h.is_supported(&PasswordHash::new("md5$abc".into())));
    }

    #[tokio::test]
    async fn a_full_pool_answers_busy_after_the_queue_timeout() {
        let h = Arc::new(hasher(CHEAP, 1));
        // Every slot taken: the one hashing and the one queued per thread.
        let slots = u32::try_from(h.permits.available_permits()).unwrap();
        assert_eq!(slots, 2);
        let _held = h.permits.clone().acquire_many_owned(slots).await.unwrap();
        let result = h.hash(&Password::candidate("pw")).await;
        assert!(matches!(
            result,
            Err(HashError::Busy {
                retry_after_secs: 1
            })
        ));
    }

    /// A bcrypt hash of `password` at cost 4 with the given prefix.
    fn bcrypt_hash(prefix: &str, password: &str) -> PasswordHash {
        let hash = bcrypt::hash(password, 4).unwrap();
        PasswordHash::new(format!("{prefix}{}", &hash[4..]))
    }

    /// `hash` with its two cost digits replaced (the checksum no longer matches: only the
    /// format is of interest).
    fn with_cost(hash: &PasswordHash, cost: &str) -> PasswordHash {
        let s = hash.as_str();
        PasswordHash::new(format!("{}{cost}{}", &s[..4], &s[6..]))
    }

    #[tokio::test]
    async fn a_wrong_password_costs_the_same_work_whatever_the_stored_hash_is() {
        let h = hasher(CHEAP, 1);
        let native = h
            .hash(&Password::candidate("right password"))
            .await
            .unwrap();
        let legacy4 = bcrypt_hash("$2b$", "right password");
        let legacy6 = PasswordHash::new(bcrypt::hash("right password", LEGACY).unwrap());
        let corrupt_bcrypt = PasswordHash::new(legacy4.as_str()[..59].to_owned());
        let corrupt_argon2 =
            PasswordHash::new(native.as_str()[..native.as_str().len() - 30].to_owned());
        let dummy = h.dummy_hash().clone();
        let expected = HashingWork {
            argon2_configured: 1,
            argon2_other: 0,
            bcrypt_rounds: 1 << LEGACY,
        };
        let wrong = Password::candidate("wrong password");
        for (name, stored) in [
            ("native argon2id", &native),
            ("unknown user (dummy)", &dummy),
            ("bcrypt cost 4", &legacy4),
            ("bcrypt at the legacy cost", &legacy6),
            ("corrupt bcrypt", &corrupt_bcrypt),
            ("corrupt argon2", &corrupt_argon2),
        ] {
            let before = h.work_done();
            assert!(!h.verify(&wrong, stored).await.unwrap(), "{name}");
            assert_eq!(h.work_done().since(&before), expected, "{name}");
        }
        // A right password stops after the real check.
        let right = Password::candidate("right password");
        let before = h.work_done();
        assert!(h.verify(&right, &legacy4).await.unwrap());
        assert_eq!(
            h.work_done().since(&before),
            HashingWork {
                bcrypt_rounds: 1 << 4,
                ..HashingWork::default()
            }
        );
        let before = h.work_done();
        assert!(h.verify(&right, &native).await.unwrap());
        assert_eq!(
            h.work_done().since(&before),
            HashingWork {
                argon2_configured: 1,
                ..HashingWork::default()
            }
        );
    }

    #[tokio::test]
    async fn a_stored_hash_that_cannot_be_verified_is_a_wrong_password_not_an_error() {
        let h = hasher(CHEAP, 1);
        let good = bcrypt_hash("$2b$", "pw");
        for corrupt in [
            good.as_str()[..50].to_owned(),
            with_cost(&good, "03").as_str().to_owned(),
            good.as_str().replace("$2b$04$", "$2b$+4$"),
            "$argon2id$v=19$m=64,t=1,p=1$c2FsdA$aGFzaGhhc2hoYXNo".to_owned(),
            "$argon2id$v=19$m=64,t=1,p=1".to_owned(),
            "md5$abc".to_owned(),
            String::new(),
        ] {
            let stored = PasswordHash::new(corrupt.clone());
            assert!(!h.is_supported(&stored), "{corrupt}");
            assert!(
                !h.verify(&Password::candidate("pw"), &stored).await.unwrap(),
                "{corrupt}"
            );
        }
    }

    #[test]
    fn malformed_bcrypt_hashes_are_refused_with_a_reason() {
        let h = hasher(CHEAP, 1);
        let good = bcrypt_hash("$2b$", "pw");
        assert!(h.is_supported(&good));
        let s = good.as_str();
        let last = s.len() - 1;
        // The salt's last character carries 2 bits of the salt and 4 unused ones, which must be
        // zero ('.', 'O', 'e', 'u'): 'f' and 'g' set them. The checksum's last character has 2
        // unused bits: 'x' and 'z' set them.
        let salt_end = 7 + 21;
        let odd_salt = if &s[salt_end..=salt_end] == "f" {
            "g"
        } else {
            "f"
        };
        let odd_checksum = if &s[last..] == "z" { "x" } else { "z" };
        let cases = [
            (format!("{s}A"), "60 characters"),
            (s[..59].to_owned(), "60 characters"),
            (with_cost(&good, "00").as_str().to_owned(), "outside 04-31"),
            (with_cost(&good, "32").as_str().to_owned(), "outside 04-31"),
            (with_cost(&good, "+4").as_str().to_owned(), "two-digit cost"),
            (
                with_cost(&good, "07").as_str().to_owned(),
                "above the accepted",
            ),
            (format!("{}!{}", &s[..10], &s[11..]), "bcrypt base64"),
            (format!("{}+{}", &s[..10], &s[11..]), "bcrypt base64"),
            (
                format!("{}{odd_salt}{}", &s[..salt_end], &s[salt_end + 1..]),
                "canonical",
            ),
            (format!("{}{odd_checksum}", &s[..last]), "canonical"),
            (s.replacen("$2b$", "$2x$", 1), "$2a$, $2b$ or $2y$"),
            (s.replacen("$2b$04$", "$2b$04", 1) + "x", "two-digit cost"),
        ];
        for (hash, reason) in cases {
            let stored = PasswordHash::new(hash.clone());
            assert!(!h.is_supported(&stored), "{hash}");
            let why = h.unusable_reason(&stored).unwrap();
            assert!(why.contains(reason), "{hash}: {why}");
            assert!(!why.contains(&s[7..20]), "the reason never quotes the hash");
        }
    }

    #[test]
    fn the_default_hasher_takes_bcrypt_up_to_cost_12_and_none_refuses_bcrypt() {
        let cheap = |legacy| {
            Argon2Hasher::with_legacy_bcrypt(CHEAP, 1, Duration::from_millis(200), legacy).unwrap()
        };
        let default = Argon2Hasher::new(CHEAP, 1, Duration::from_millis(200)).unwrap();
        assert_eq!(default.shared.limits.bcrypt_cost, Some(12));
        let good = bcrypt_hash("$2y$", "pw");
        assert!(default.is_supported(&with_cost(&good, "12")));
        assert!(!default.is_supported(&with_cost(&good, "13")));
        assert!(!default.is_supported(&with_cost(&good, "31")));
        assert!(import_problem(with_cost(&good, "12").as_str()).is_none());
        assert!(import_problem(with_cost(&good, "13").as_str())
            .unwrap()
            .contains("above the accepted 12"));
        let no_bcrypt = cheap(None);
        assert!(!no_bcrypt.is_supported(&good));
        assert!(
            Argon2Hasher::with_legacy_bcrypt(CHEAP, 1, Duration::from_millis(200), Some(3))
                .is_err()
        );
    }

    #[tokio::test]
    async fn argon2_hashes_are_checked_fully_and_within_limits() {
        let h = hasher(CHEAP, 1);
        let good = h.hash(&Password::candidate("pw")).await.unwrap();
        assert!(h.is_supported(&good));
        let tail = good.as_str().split_once("p=1").unwrap().1.to_owned();
        let with_params =
            |params: &str| PasswordHash::new(format!("$argon2id$v=19${params}{tail}"));
        assert!(h.is_supported(&with_params("m=19456,t=2,p=1")));
        assert!(h.is_supported(&with_params("m=1048576,t=16,p=4")));
        for (stored, reason) in [
            (with_params("m=1048577,t=1,p=1"), "exceed"),
            (with_params("m=4294967295,t=1,p=1"), "exceed"),
            (with_params("m=64,t=17,p=1"), "exceed"),
            (with_params("m=64,t=0,p=1"), "parameters"),
            (with_params("m=4,t=1,p=1"), "parameters"),
            (with_params("m=64,t=1,p=1,x=3"), "parameters"),
            (with_params("m=64,t=1,p=1,keyid=AAAA"), "keyid"),
            (
                PasswordHash::new(good.as_str().replace("v=19", "v=18")),
                "version",
            ),
            (
                PasswordHash::new(good.as_str().replace("$argon2id$", "$scrypt$")),
                "not an argon2 hash",
            ),
            (
                PasswordHash::new("$argon2id$v=19$m=64,t=1,p=1$c2FsdA$aGFzaGhhc2hoYXNo".into()),
                "salt",
            ),
            (
                PasswordHash::new(format!(
                    "$argon2id$v=19$m=64,t=1,p=1${}",
                    tail.split('$').nth(1).unwrap()
                )),
                "no salt or no checksum",
            ),
        ] {
            assert!(!h.is_supported(&stored), "{}", stored.as_str());
            let why = h.unusable_reason(&stored).unwrap();
            assert!(why.contains(reason), "{}: {why}", stored.as_str());
        }
        // The configured parameters are always accepted, however heavy.
        let heavy = Argon2Hasher::with_legacy_bcrypt(
            Argon2Config {
                memory_kib: 64,
                iterations: 20,
                parallelism: 1,
            },
            1,
            Duration::from_millis(200),
            None,
        )
        .unwrap();
        assert!(heavy.is_supported(&with_params("m=64,t=20,p=1")));
    }

    /// Every one-character change, truncation and extension of a good hash: whatever
    /// `is_supported` accepts, the reference implementations verify without an error (so an
    /// accepted import never turns into a failing login).
    #[test]
    fn whatever_is_supported_accepts_the_reference_implementations_can_verify() {
        use argon2::password_hash::PasswordVerifier as _;
        let h = hasher(CHEAP, 1);
        let bcrypt_good = bcrypt::hash("pw", 4).unwrap();
        let params = Params::new(64, 1, 1, None).unwrap();
        let argon2_good = {
            use argon2::password_hash::PasswordHasher as _;
            argon2(&params)
                .hash_password(b"pw", &SaltString::generate(&mut OsRng))
                .unwrap()
                .to_string()
        };
        let replacements = ['.', '/', 'A', 'e', 'z', '0', '9', '$', '=', '+', ',', 'é'];
        let mut accepted = 0;
        for good in [&bcrypt_good, &argon2_good] {
            let chars: Vec<char> = good.chars().collect();
            let mut variants: Vec<String> = Vec::new();
            for i in 0..chars.len() {
                for r in replacements {
                    let mut v = chars.clone();
                    v[i] = r;
                    variants.push(v.into_iter().collect());
                }
                variants.push(chars[..i].iter().collect());
                let mut longer = chars.clone();
                longer.insert(i, 'A');
                variants.push(longer.into_iter().collect());
            }
            for variant in variants {
                if !h.is_supported(&PasswordHash::new(variant.clone())) {
                    continue;
                }
                accepted += 1;
                if variant.starts_with("$2") {
                    assert!(bcrypt::verify("pw", &variant).is_ok(), "{variant}");
                } else {
                    let phc = Phc::new(&variant).unwrap();
                    match Argon2::default().verify_password(b"pw", &phc) {
                        Ok(()) | Err(argon2::password_hash::Error::Password) => {}
                        Err(e) => panic!("{variant}: {e}"),
                    }
                }
            }
        }
        assert!(accepted > 100, "the mutations exercise accepted hashes too");
    }
}
