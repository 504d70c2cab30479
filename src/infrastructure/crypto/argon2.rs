//! [`PasswordHasher`] with argon2id: off the async runtime, with bounded concurrency.
//!
//! Each hash holds `m` KiB of RAM for tens of milliseconds, so hashes run on a fixed set of
//! hashing threads, one per core by default, each reusing its working memory; a request that
//! cannot get a slot within the queue timeout is answered "busy" instead of piling up.

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

/// argon2id hashing on `concurrency` threads of its own, with at most one more hash queued per
/// thread; further requests wait for a slot up to the queue timeout.
pub struct Argon2Hasher {
    params: Params,
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
    /// Builds the hasher and its dummy hash (one hash at start-up).
    ///
    /// # Errors
    /// [`HashError::Failed`] when the parameters are out of argon2's range.
    pub fn new(
        config: Argon2Config,
        concurrency: usize,
        queue_timeout: Duration,
    ) -> Result<Self, HashError> {
        let params = Params::new(
            config.memory_kib,
            config.iterations,
            config.parallelism,
            None,
        )
        .map_err(|e| HashError::Failed(format!("invalid argon2 parameters: {e}")))?;
        let mut random = [0u8; 24];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut random);
        let dummy = hash_blocking(&params, &SecretString::from(hex::encode(random)))?;
        // The start-up thread hashes only this once: give its working memory back.
        BLOCKS.with(|blocks| *blocks.borrow_mut() = Vec::new());
        Ok(Self {
            params,
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

/// A bcrypt hash as passlib and others write it: `$2a$`, `$2b$` or `$2y$`, cost, 53 characters.
fn is_bcrypt(hash: &str) -> bool {
    hash.len() == 60
        && ["$2a$", "$2b$", "$2y$"]
            .iter()
            .any(|prefix| hash.starts_with(prefix))
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

/// Whether `password` matches the argon2 PHC string `stored` (with the parameters it names).
fn verify_blocking(password: &[u8], stored: &str) -> Result<bool, HashError> {
    let phc = Phc::new(stored)
        .map_err(|e| HashError::Failed(format!("stored hash is not a PHC string: {e}")))?;
    let algorithm = Algorithm::try_from(phc.algorithm).map_err(failed)?;
    let version = phc
        .version
        .map(Version::try_from)
        .transpose()
        .map_err(failed)?
        .unwrap_or_default();
    let params = Params::try_from(&phc).map_err(failed)?;
    let (Some(salt), Some(expected)) = (phc.salt, phc.hash) else {
        return Err(HashError::Failed(
            "stored hash has no salt or output".into(),
        ));
    };
    let mut salt_bytes = [0u8; 64];
    let raw_salt = salt.decode_b64(&mut salt_bytes).map_err(failed)?;
    let mut out = vec![0u8; expected.len()];
    compute(
        &Argon2::new(algorithm, version, params.clone()),
        &params,
        password,
        raw_salt,
        &mut out,
    )?;
    // `Output` compares in constant time.
    Ok(expected == Output::new(&out).map_err(failed)?)
}

#[async_trait]
impl PasswordHasher for Argon2Hasher {
    async fn hash(&self, password: &Password) -> Result<PasswordHash, HashError> {
        let params = self.params.clone();
        let password = SecretString::from(password.expose());
        self.run(move || hash_blocking(&params, &password)).await
    }

    async fn verify(&self, password: &Password, hash: &PasswordHash) -> Result<bool, HashError> {
        let password = SecretString::from(password.expose());
        let stored = hash.as_str().to_owned();
        self.run(move || {
            if is_bcrypt(&stored) {
                // Legacy hashes (passlib's bcrypt, 72-byte input limit), verified only to be
                // upgraded to argon2id on this login.
                return bcrypt::verify(password.expose_secret(), &stored)
                    .map_err(|e| HashError::Failed(format!("bcrypt verification failed: {e}")));
            }
            verify_blocking(password.expose_secret().as_bytes(), &stored)
        })
        .await
    }

    fn dummy_hash(&self) -> &PasswordHash {
        &self.dummy
    }

    fn is_supported(&self, hash: &PasswordHash) -> bool {
        is_bcrypt(hash.as_str())
            || Phc::new(hash.as_str()).is_ok_and(|phc| phc.algorithm.as_str().starts_with("argon2"))
    }

    fn needs_rehash(&self, hash: &PasswordHash) -> bool {
        let Ok(phc) = Phc::new(hash.as_str()) else {
            return true;
        };
        let Ok(stored) = Params::try_from(&phc) else {
            return true;
        };
        phc.algorithm.as_str() != "argon2id"
            || phc.version != Some(Version::V0x13.into())
            || stored.m_cost() != self.params.m_cost()
            || stored.t_cost() != self.params.t_cost()
            || stored.p_cost() != self.params.p_cost()
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

    fn hasher(config: Argon2Config, concurrency: usize) -> Argon2Hasher {
        Argon2Hasher::new(config, concurrency, Duration::from_millis(200)).unwrap()
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
}
