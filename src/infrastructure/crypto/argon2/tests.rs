//! The hasher: argon2id hashes, imported bcrypt hashes, the queue, and equal work for every
//! failed verification.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::SaltString;
use argon2::Argon2;

use super::verify::argon2;
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

/// Asserts that `hash` verifies `password` and nothing else tried.
async fn accepts_only(h: &Argon2Hasher, password: &str, hash: &PasswordHash) {
    assert!(h
        .verify(&Password::candidate(password), hash)
        .await
        .unwrap());
    let wrong = format!("{password}!");
    assert!(!h.verify(&Password::candidate(&wrong), hash).await.unwrap());
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
    accepts_only(&h, "interop", &PasswordHash::new(theirs)).await;
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
    for prefix in ["$2a$", "$2b$", "$2y$"] {
        let hash = bcrypt_hash(prefix, "legacy passphrase");
        assert!(h.is_supported(&hash));
        accepts_only(&h, "legacy passphrase", &hash).await;
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
        Argon2Hasher::with_legacy_bcrypt(CHEAP, 1, Duration::from_millis(200), Some(3)).is_err()
    );
}

#[tokio::test]
async fn argon2_hashes_are_checked_fully_and_within_limits() {
    let h = hasher(CHEAP, 1);
    let good = h.hash(&Password::candidate("pw")).await.unwrap();
    assert!(h.is_supported(&good));
    let tail = good.as_str().split_once("p=1").unwrap().1.to_owned();
    let with_params = |params: &str| PasswordHash::new(format!("$argon2id$v=19${params}{tail}"));
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
