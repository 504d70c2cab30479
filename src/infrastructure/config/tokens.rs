//! The signing of access tokens (`JWT_*`) and ID tokens (`OIDC_SIGNING_KEY_FILE`), and the
//! lifetimes of tokens and sessions.

use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};

use super::table::{row, show_list, Check, Fallback::*, Group, Value, Var};
use super::{AppEnv, ConfigError};
use crate::infrastructure::crypto::keys::JwtAlgorithm;

/// The secret used outside production when `JWT_SECRET` is not set. Refused in production.
pub const DEVELOPMENT_JWT_SECRET: &str = "development-only-secret-do-not-use-in-production!";

/// How access tokens are signed and checked, and how long tokens live.
#[derive(Clone)]
pub struct TokenSettings {
    pub algorithm: JwtAlgorithm,
    /// The HS256 key; with another algorithm unused, but never empty.
    pub secret: SecretString,
    /// PKCS#8 PEM signing key for EdDSA, ES256 and RS256.
    pub private_key_file: Option<PathBuf>,
    /// PEM keys still accepted for verification after a rotation.
    pub verify_key_files: Vec<PathBuf>,
    /// Where development keeps the signing key it generates when none is configured.
    pub dev_key_dir: PathBuf,
    pub issuer: String,
    pub audience: String,
    pub leeway_seconds: u64,
    pub access_token_ttl_seconds: u64,
    pub refresh_token_ttl_seconds: u64,
    /// PKCS#8 PEM RSA key signing ID tokens; unset: the RS256 access-token key, else (outside
    /// production) the development RSA key in `dev_key_dir`.
    pub oidc_signing_key_file: Option<PathBuf>,
    /// The memory budget of the verified-token cache, in MiB (0: no cache).
    pub token_cache_mib: u64,
}

impl TokenSettings {
    /// Whether HS256 signs with the public development secret (allowed outside production).
    pub fn uses_development_secret(&self) -> bool {
        self.algorithm == JwtAlgorithm::Hs256
            && self.secret.expose_secret() == DEVELOPMENT_JWT_SECRET
    }
}

fn algorithm(_: &TokenSettings, value: &Value<'_>) -> Result<JwtAlgorithm, ConfigError> {
    let choices = JwtAlgorithm::ALL.map(|a| (a.name(), a));
    value.one_of(&choices)
}

/// The secret, under the production rules: with HS256, set, at least 32 bytes and not the
/// development value; with a key pair, a key file instead.
fn secret(tokens: &TokenSettings, value: &Value<'_>) -> Result<SecretString, ConfigError> {
    const HINT: &str =
        "set JWT_SECRET to at least 32 random bytes, e.g. the output of `openssl rand -base64 48`";
    let production = value.context.app_env == AppEnv::Production;
    if tokens.algorithm.is_asymmetric() {
        if production && tokens.private_key_file.is_none() {
            return Err(ConfigError(format!(
                "JWT_PRIVATE_KEY_FILE is not set; production with JWT_ALGORITHM={} needs a PKCS#8 PEM private key, e.g. from `openssl genpkey -algorithm ed25519`",
                tokens.algorithm.name()
            )));
        }
        // Unused for signing; kept so nothing else ever falls back to an empty secret.
        return Ok(SecretString::from(
            value
                .text()
                .unwrap_or_else(|| DEVELOPMENT_JWT_SECRET.into()),
        ));
    }
    match (production, value.text()) {
        (true, None) => Err(ConfigError(format!(
            "JWT_SECRET is not set; production requires it: {HINT}"
        ))),
        (true, Some(secret)) if secret.len() < 32 => Err(ConfigError(format!(
            "JWT_SECRET is too short ({} bytes); production requires at least 32: {HINT}",
            secret.len()
        ))),
        (true, Some(secret)) if secret == DEVELOPMENT_JWT_SECRET => Err(ConfigError(format!(
            "JWT_SECRET is the public development value; {HINT}"
        ))),
        (_, Some(secret)) => Ok(SecretString::from(secret)),
        (_, None) => Ok(SecretString::from(DEVELOPMENT_JWT_SECRET)),
    }
}

fn shown_secret(secret: &SecretString) -> String {
    if secret.expose_secret() == DEVELOPMENT_JWT_SECRET {
        "(public development value)".to_owned()
    } else {
        format!("******** ({} bytes)", secret.expose_secret().len())
    }
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            algorithm: JwtAlgorithm::default(),
            secret: SecretString::from(DEVELOPMENT_JWT_SECRET),
            private_key_file: None,
            verify_key_files: Vec::new(),
            dev_key_dir: PathBuf::new(),
            issuer: String::new(),
            audience: String::new(),
            leeway_seconds: 0,
            access_token_ttl_seconds: 0,
            refresh_token_ttl_seconds: 0,
            oidc_signing_key_file: None,
            token_cache_mib: 0,
        }
    }
}

impl Group for TokenSettings {
    const VARS: &'static [Var<Self>] = &[
        row!(
            "JWT_ALGORITHM",
            Fixed("HS256"),
            algorithm <- algorithm,
            show = |s| s.algorithm.name().to_owned()
        ),
        Var {
            name: "JWT_PRIVATE_KEY_FILE",
            default: Unset,
            read: |s, v| {
                s.private_key_file = v.text().map(PathBuf::from);
                Ok(())
            },
            show: |s| {
                s.private_key_file
                    .as_ref()
                    .map_or("(none)".into(), |p| p.display().to_string())
            },
        },
        row!(
            "JWT_SECRET",
            Computed("the public development value outside production; required in production with HS256"),
            secret <- secret,
            show = |s| shown_secret(&s.secret)
        ),
        Var {
            name: "JWT_VERIFY_KEY_FILES",
            default: Unset,
            read: |s, v| {
                s.verify_key_files = v.list().into_iter().map(PathBuf::from).collect();
                Ok(())
            },
            show: |s| {
                let paths: Vec<_> = s.verify_key_files.iter().map(|p| p.display()).collect();
                show_list(&paths)
            },
        },
        Var {
            name: "JWT_DEV_KEY_DIR",
            default: Fixed("jwt-dev-keys"),
            read: |s, v| {
                s.dev_key_dir = PathBuf::from(v.string()?);
                Ok(())
            },
            show: |s| s.dev_key_dir.display().to_string(),
        },
        Var {
            name: "JWT_ISSUER",
            default: Computed("http://HOST:PORT"),
            read: |s, v| {
                s.issuer = v.text().unwrap_or_else(|| {
                    let (host, port) = v.context.listen.expect("HOST and PORT are read first");
                    format!("http://{host}:{port}")
                });
                Ok(())
            },
            show: |s| s.issuer.clone(),
        },
        row!("JWT_AUDIENCE", Fixed("auth-service"), audience = string()),
        row!("JWT_LEEWAY_SECONDS", Fixed("30"), leeway_seconds = number()),
        row!(
            "ACCESS_TOKEN_TTL_SECONDS",
            Fixed("900"),
            access_token_ttl_seconds = number()
        ),
        row!(
            "REFRESH_TOKEN_TTL_SECONDS",
            Fixed("1209600"),
            refresh_token_ttl_seconds = number()
        ),
        Var {
            name: "OIDC_SIGNING_KEY_FILE",
            default: Unset,
            read: |s, v| {
                s.oidc_signing_key_file = v.text().map(PathBuf::from);
                Ok(())
            },
            show: |s| {
                s.oidc_signing_key_file
                    .as_ref()
                    .map_or("(none)".into(), |p| p.display().to_string())
            },
        },
        row!("TOKEN_CACHE_MIB", Fixed("32"), token_cache_mib = number()),
    ];

    const CHECKS: &'static [Check<Self>] = &[
        (
            |s| s.access_token_ttl_seconds > 0,
            "ACCESS_TOKEN_TTL_SECONDS must be positive",
        ),
        (
            |s| s.refresh_token_ttl_seconds > 0,
            "REFRESH_TOKEN_TTL_SECONDS must be positive",
        ),
        (
            |s| s.token_cache_mib <= 65_536,
            "TOKEN_CACHE_MIB must be at most 65536 (64 GiB)",
        ),
    ];
}
