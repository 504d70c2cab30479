//! Computing argon2 in each hashing thread's reused memory, and verifying a password with the
//! same work for every "no" (see the module documentation of [`super`]).

use std::cell::RefCell;
use std::sync::atomic::Ordering;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::Output;
use argon2::password_hash::{PasswordHash as Phc, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use secrecy::{ExposeSecret, SecretString};

use super::parse::{parse_stored, Argon2Hash, StoredHash};
use super::Shared;
use crate::domain::ports::HashError;
use crate::domain::user::PasswordHash;

pub(super) fn argon2(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

thread_local! {
    /// This thread's argon2 working memory, reused by every hash it computes. Allocating the
    /// `m` KiB afresh each time left freed buffers in the allocator's arenas (peak RSS 150-350
    /// MiB under a login storm with two hashing threads); reusing it bounds the memory at
    /// threads x `m`.
    pub(super) static BLOCKS: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
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

pub(super) fn hash_blocking(
    params: &Params,
    password: &SecretString,
) -> Result<PasswordHash, HashError> {
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
    pub(super) fn verify(&self, password: &[u8], stored: &str) -> Result<bool, HashError> {
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
