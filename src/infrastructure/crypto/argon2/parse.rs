//! Stored and imported hashes taken apart and checked completely before any verification: argon2
//! PHC strings within the accepted parameters, and bcrypt hashes as passlib writes them.

use std::str::FromStr;

use argon2::password_hash::Output;
use argon2::password_hash::PasswordHash as Phc;
use argon2::{Algorithm, Params, Version};

/// The most memory an imported or stored argon2 hash may ask for (unless the configured
/// parameters ask for more): 1 GiB, libsodium's "sensitive" profile. Beyond it a single login
/// attempt could exhaust the machine's memory (`m` is a 32-bit KiB count: up to 4 TiB).
const MAX_ARGON2_MEMORY_KIB: u32 = 1 << 20;

/// The most passes an imported or stored argon2 hash may ask for (unless the configured
/// parameters ask for more). Every published profile uses at most 10.
const MAX_ARGON2_ITERATIONS: u32 = 16;

/// What the hasher accepts in a stored or imported hash.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// The legacy bcrypt cost `C` (see the module documentation); `None`: bcrypt refused.
    pub(super) bcrypt_cost: Option<u32>,
    max_memory_kib: u32,
    max_iterations: u32,
}

impl Limits {
    pub(super) fn new(configured: &Params, bcrypt_cost: Option<u32>) -> Self {
        Self {
            bcrypt_cost,
            max_memory_kib: MAX_ARGON2_MEMORY_KIB.max(configured.m_cost()),
            max_iterations: MAX_ARGON2_ITERATIONS.max(configured.t_cost()),
        }
    }
}

/// A stored hash taken apart and checked: everything a verification needs.
pub(super) enum StoredHash {
    Argon2(Argon2Hash),
    Bcrypt { cost: u32 },
}

/// An argon2 PHC string taken apart and checked.
pub(super) struct Argon2Hash {
    pub(super) algorithm: Algorithm,
    pub(super) version: Version,
    pub(super) params: Params,
    pub(super) salt: Vec<u8>,
    pub(super) expected: Output,
}

/// The characters of bcrypt's own base64 alphabet.
fn is_bcrypt_base64(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'.' || byte == b'/'
}

/// Checks `hash` completely and takes it apart, or says (without quoting it) why it cannot be
/// verified by this hasher.
pub(super) fn parse_stored(hash: &str, limits: &Limits) -> Result<StoredHash, String> {
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
