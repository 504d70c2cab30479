//! The settings: defaults, production refusals, messages of invalid values, and the
//! documentation of every variable.

use std::collections::HashMap;

use secrecy::ExposeSecret;

use super::table::Fallback;
use super::*;

fn load(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Settings::from_lookup(|key| map.get(key).cloned())
}

/// A random MFA_ENCRYPTION_KEY for the production cases.
const TEST_MFA_KEY: &str = "Kd8LSQclKTFUGxsUBT3BFJw2zyGAPKUOrEswAwzLKN0=";

#[test]
fn production_refuses_a_missing_malformed_or_weak_mfa_key_and_names_the_variable() {
    let base = [
        ("APP_ENV", "production"),
        ("JWT_SECRET", "k-long-enough-k-long-enough-k-long-enough"),
    ];
    let zeros = "0".repeat(64);
    for key in [
        None,
        Some("c2hvcnQ="),
        Some(zeros.as_str()),
        Some("not base64 at all!"),
    ] {
        let mut vars = base.to_vec();
        if let Some(key) = key {
            vars.push(("MFA_ENCRYPTION_KEY", key));
        }
        let error = load(&vars).unwrap_err().to_string();
        assert!(error.contains("MFA_ENCRYPTION_KEY"), "{error}");
        assert!(
            key.is_none_or(|key| !error.contains(key)),
            "never the key itself"
        );
    }
    let mut vars = base.to_vec();
    vars.push(("MFA_ENCRYPTION_KEY", TEST_MFA_KEY));
    let ok = load(&vars).unwrap();
    assert!(ok.mfa.encryption_key.is_some());
    let shown = ok
        .entries()
        .into_iter()
        .find(|(n, _)| *n == "MFA_ENCRYPTION_KEY")
        .unwrap()
        .1;
    assert_eq!(shown, "******** (32 bytes)");
    // Outside production an unset key is generated later; a malformed one is still refused.
    assert!(load(&[]).unwrap().mfa.encryption_key.is_none());
    assert!(load(&[("MFA_ENCRYPTION_KEY", "c2hvcnQ=")]).is_err());
}

#[test]
fn defaults_follow_the_contract() {
    let s = load(&[]).unwrap();
    assert_eq!(s.app_env, AppEnv::Development);
    assert_eq!(s.http.port, 8000);
    assert_eq!(s.database.url.expose_secret(), "sqlite://auth.db");
    assert_eq!(s.tokens.issuer, "http://127.0.0.1:8000");
    assert_eq!(s.tokens.audience, "auth-service");
    assert_eq!(
        (
            s.hashing.argon2_memory_kib,
            s.hashing.argon2_iterations,
            s.hashing.argon2_parallelism
        ),
        (19456, 2, 1)
    );
    assert_eq!(
        (
            s.tokens.access_token_ttl_seconds,
            s.tokens.refresh_token_ttl_seconds
        ),
        (900, 1_209_600)
    );
    assert_eq!(s.http.body_limit_bytes, 64 * 1024);
    assert_eq!(s.logging.format, LogFormat::Pretty);
}

#[test]
fn production_refuses_a_missing_short_or_development_secret_and_names_the_variable() {
    for vars in [
        vec![("APP_ENV", "production")],
        vec![("APP_ENV", "production"), ("JWT_SECRET", "short")],
        vec![
            ("APP_ENV", "production"),
            ("JWT_SECRET", DEVELOPMENT_JWT_SECRET),
        ],
    ] {
        let error = load(&vars).unwrap_err().to_string();
        assert!(error.contains("JWT_SECRET"), "{error}");
    }
    let ok = load(&[
        ("APP_ENV", "production"),
        ("JWT_SECRET", &"k".repeat(32)),
        ("MFA_ENCRYPTION_KEY", TEST_MFA_KEY),
    ])
    .unwrap();
    assert_eq!(ok.logging.format, LogFormat::Json);
}

#[test]
fn asymmetric_algorithms_need_a_key_file_in_production_but_no_secret() {
    let error = load(&[("APP_ENV", "production"), ("JWT_ALGORITHM", "EdDSA")])
        .unwrap_err()
        .to_string();
    assert!(error.contains("JWT_PRIVATE_KEY_FILE"), "{error}");
    let ok = load(&[
        ("APP_ENV", "production"),
        ("JWT_ALGORITHM", "RS256"),
        ("JWT_PRIVATE_KEY_FILE", "/etc/auth/key.pem"),
        ("MFA_ENCRYPTION_KEY", TEST_MFA_KEY),
        (
            "JWT_VERIFY_KEY_FILES",
            "/etc/auth/old1.pem, /etc/auth/old2.pem",
        ),
    ])
    .unwrap();
    assert_eq!(ok.tokens.verify_key_files.len(), 2);
    let error = load(&[("JWT_ALGORITHM", "HS512")]).unwrap_err().to_string();
    assert!(error.contains("JWT_ALGORITHM"), "{error}");
}

#[test]
fn bad_values_name_their_variable() {
    let error = load(&[("PORT", "eighty")]).unwrap_err().to_string();
    assert!(error.contains("PORT"), "{error}");
    let error = load(&[("HASH_CONCURRENCY", "0")]).unwrap_err().to_string();
    assert!(error.contains("HASH_CONCURRENCY"), "{error}");
}

#[test]
fn security_settings_have_safe_defaults_and_parse_lists() {
    let s = load(&[]).unwrap();
    assert_eq!((s.lockout.max_failures, s.lockout.seconds), (5, 300));
    assert!(s.accounts.registration_open && s.rate_limit.enabled);
    assert!(
        s.http.cors_allowed_origins.is_empty(),
        "CORS is off by default"
    );
    let s = load(&[(
        "CORS_ALLOWED_ORIGINS",
        "https://a.example, http://localhost:3000/",
    )])
    .unwrap();
    assert_eq!(
        s.http.cors_allowed_origins,
        ["https://a.example", "http://localhost:3000"]
    );
    let error = load(&[("CORS_ALLOWED_ORIGINS", "*")])
        .unwrap_err()
        .to_string();
    assert!(error.contains("CORS_ALLOWED_ORIGINS"), "{error}");
}

#[test]
fn connection_limits_have_defaults_and_refuse_zero() {
    let s = load(&[]).unwrap();
    assert_eq!(
        (
            s.http.header_read_timeout_seconds,
            s.http.idle_timeout_seconds,
            s.http.max_connections
        ),
        (10, 60, 10_000)
    );
    for name in [
        "HTTP_HEADER_READ_TIMEOUT_SECONDS",
        "HTTP_IDLE_TIMEOUT_SECONDS",
        "HTTP_MAX_CONNECTIONS",
    ] {
        let error = load(&[(name, "0")]).unwrap_err().to_string();
        assert!(error.contains(name), "{error}");
    }
}

#[test]
fn debug_output_masks_secrets() {
    let s = load(&[
        ("JWT_SECRET", "super-secret-value-that-is-long-enough"),
        ("DATABASE_URL", "postgres://app:pa55word@db/auth"),
    ])
    .unwrap();
    let shown = format!("{s:?}");
    assert!(!shown.contains("super-secret"), "{shown}");
    assert!(!shown.contains("pa55word"), "{shown}");
    assert!(shown.contains("postgres://app:***@db/auth"), "{shown}");
}

#[test]
fn invalid_values_name_the_values_accepted() {
    for (name, value, accepted) in [
        ("PORT", "abc", "a port number from 1 to 65535"),
        ("PORT", "70000", "a port number from 1 to 65535"),
        ("HOST", "localhost", "an IP address"),
        ("REGISTRATION_OPEN", "yes", "must be true or false"),
        ("TRUST_PROXY_HEADERS", "1", "must be true or false"),
        ("RATE_LIMIT_ENABLED", "on", "must be true or false"),
        ("APP_ENV", "prod", "one of development, testing, production"),
        (
            "JWT_ALGORITHM",
            "HS512",
            "one of HS256, EdDSA, ES256, RS256",
        ),
        ("LOG_FORMAT", "text", "one of pretty, json"),
        (
            "LEGACY_BCRYPT_COST",
            "high",
            "a bcrypt cost from 4 to 31, or off",
        ),
        ("ACCESS_TOKEN_TTL_SECONDS", "15m", "a whole number"),
        ("DATABASE_URL", "auth.db", "use sqlite://auth.db"),
        ("DATABASE_URL", "mysql://db/auth", "postgres://"),
        ("REDIS_URL", "localhost:6379", "redis://"),
    ] {
        let error = load(&[(name, value)]).unwrap_err().to_string();
        assert!(
            error.contains(&format!("{name}='{value}'")) && error.contains(accepted),
            "{name}={value}: {error}"
        );
    }
}

#[test]
fn a_redis_url_never_shows_its_password_and_a_lease_is_at_least_one() {
    let error = load(&[("REDIS_URL", "http://app:pa55word@cache:6379")])
        .unwrap_err()
        .to_string();
    assert!(!error.contains("pa55word"), "{error}");
    let error = load(&[("RATE_LIMIT_LEASE", "0")]).unwrap_err().to_string();
    assert!(
        error.contains("RATE_LIMIT_LEASE must be at least 1"),
        "{error}"
    );
    let s = load(&[("REDIS_URL", "redis://:pa55word@cache:6379/2")]).unwrap();
    assert_eq!(s.rate_limit.lease, 8);
    let shown = format!("{:?}", s.rate_limit);
    assert!(!shown.contains("pa55word"), "{shown}");
}

#[test]
fn a_refused_database_url_never_shows_its_password() {
    let error = load(&[("DATABASE_URL", "mysql://app:pa55word@db/auth")])
        .unwrap_err()
        .to_string();
    assert!(!error.contains("pa55word"), "{error}");
    assert!(error.contains("mysql://app:***@db/auth"), "{error}");
    for url in [
        "sqlite://auth.db",
        "sqlite::memory:",
        "postgres://u@h/db",
        "postgresql://u@h/db",
    ] {
        assert!(load(&[("DATABASE_URL", url)]).is_ok(), "{url}");
    }
}

/// The variables a file names: `NAME=value` lines and commented-out `# NAME=` lines.
fn named_in(text: &str) -> Vec<(&str, bool, &str)> {
    text.lines()
        .filter_map(|line| {
            let (commented, rest) = match line.strip_prefix("# ") {
                Some(rest) => (true, rest),
                None => (false, line),
            };
            let (name, value) = rest.split_once('=')?;
            let is_name = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            is_name.then_some((name, commented, value))
        })
        .collect()
}

fn read(file: &str) -> String {
    std::fs::read_to_string(format!("{}/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn sorted(names: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut names: Vec<String> = names.into_iter().collect();
    names.sort();
    names
}

#[test]
fn env_example_and_the_reference_list_exactly_the_variables_the_code_reads() {
    let code = sorted(variables().iter().map(|v| v.name.to_owned()));
    let mut unique = code.clone();
    unique.dedup();
    assert_eq!(unique, code, "a variable is read by two rows");

    let example = read(".env.example");
    let in_example = sorted(named_in(&example).iter().map(|(n, _, _)| (*n).to_owned()));
    assert_eq!(in_example, code, ".env.example, each variable once");

    let reference = read("docs/configuration.md");
    let in_reference = sorted(reference.lines().filter_map(|line| {
        let name = line.strip_prefix("### `")?.strip_suffix('`')?;
        Some(name.to_owned())
    }));
    assert_eq!(
        in_reference, code,
        "docs/configuration.md, one `### `NAME`` heading each"
    );
}

#[test]
fn the_environment_files_set_only_variables_the_code_reads() {
    let code: Vec<&str> = variables().iter().map(|v| v.name).collect();
    for file in [".env.development", ".env.testing"] {
        for (name, _, _) in named_in(&read(file)) {
            assert!(
                code.contains(&name),
                "{file} sets {name}, which nothing reads"
            );
        }
    }
}

#[test]
fn every_line_of_env_example_is_the_default_with_one_line_of_comment() {
    let example = read(".env.example");
    let lines: Vec<&str> = example.lines().collect();
    for variable in variables() {
        let at = lines
            .iter()
            .position(|line| named_in(line).first().map(|(n, _, _)| *n) == Some(variable.name))
            .unwrap();
        let (_, commented, value) = named_in(lines[at])[0];
        let expected = match variable.default {
            Fallback::Fixed(default) => (false, default),
            Fallback::Unset => (false, ""),
            Fallback::Computed(_) => (true, ""),
        };
        assert_eq!((commented, value), expected, "{}", lines[at]);
        let comment = lines[at - 1];
        assert!(
            comment.starts_with("# ") && named_in(comment).is_empty(),
            "{} needs its line of comment above it",
            variable.name
        );
    }
}

#[test]
fn a_copied_env_example_changes_nothing_in_development_or_production() {
    let path = format!("{}/.env.example", env!("CARGO_MANIFEST_DIR"));
    let example: HashMap<String, String> = dotenvy::from_path_iter(path)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let secret = "k".repeat(40);
    for environment in [
        vec![("APP_ENV", "development")],
        vec![
            ("APP_ENV", "production"),
            ("JWT_SECRET", secret.as_str()),
            ("MFA_ENCRYPTION_KEY", TEST_MFA_KEY),
        ],
    ] {
        let without = load(&environment).unwrap();
        // The process environment wins over the file, as in `Settings::load`.
        let mut with = example.clone();
        with.extend(
            environment
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let with = Settings::from_lookup(|key| with.get(key).cloned()).unwrap();
        assert_eq!(with.entries(), without.entries());
    }
    assert!(
        !example.contains_key(LOG_FILTER_VARIABLE) && !example.contains_key("LOG_FORMAT"),
        "the log format and filter are left to their defaults"
    );
}

#[test]
fn the_pool_defaults_to_8_on_sqlite_and_to_8_per_core_on_postgresql() {
    assert_eq!(load(&[]).unwrap().database.max_connections, 8);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pg = [("DATABASE_URL", "postgres://auth@db/auth")];
    assert_eq!(
        load(&pg).unwrap().database.max_connections,
        database::postgres_pool_for(cores)
    );
    for (cores, pool) in [(1, 8), (2, 16), (3, 24), (4, 32), (64, 32)] {
        assert_eq!(database::postgres_pool_for(cores), pool);
    }
    let set = [
        ("DATABASE_URL", "postgres://auth@db/auth"),
        ("DATABASE_MAX_CONNECTIONS", "5"),
    ];
    assert_eq!(load(&set).unwrap().database.max_connections, 5);
    let set = [("DATABASE_MAX_CONNECTIONS", "3")];
    assert_eq!(load(&set).unwrap().database.max_connections, 3);
    assert!(load(&[("DATABASE_MAX_CONNECTIONS", "0")]).is_err());
}
