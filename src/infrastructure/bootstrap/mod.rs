//! The one wiring place: settings → adapters → use cases ([`build_use_cases`]), and for the
//! server, use cases → HTTP state → router ([`build_services`], [`build_app`]).
//!
//! `seed` needs only the user and client use cases: [`build_seed_services`] connects the
//! database and builds the hasher, and loads no signing key, installs no metrics recorder and builds no HTTP state.

mod mail;
mod server;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;

pub use self::server::{
    build_app, build_codec, build_id_token_codec, build_services, http_options, serve,
    shutdown_signal, spawn_purge_task, Services,
};
use super::clock::SystemClock;
use super::config::Settings;
use super::crypto::argon2::{Argon2Config, Argon2Hasher};
use super::db::{self, DbOptions, Repositories};
use super::mail::NotifyWaker;
use super::metrics::MeteredAuditLog;
use super::passwords::CommonPasswords;
use crate::application::{
    AccountService, AuthService, AuthSettings, ClientService, MaintenanceService, MfaService,
    PasskeyService, Ports, RecoveryService, RefreshSuccessorKey, Retention, SecondFactors,
    UserService,
};
use crate::domain::ports::{AccessTokenCodec, Clock, LockoutPolicy, TokenError};
use crate::domain::token::{AccessClaims, ClientAccessClaims, VerifiedAccess};
use crate::domain::user::PasswordPolicy;
use crate::infrastructure::config::{AppEnv, MfaKey};
use crate::infrastructure::crypto::sealer::{self, ChaChaSealer};

/// A start-up failure, with a message an operator can act on.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartupError(pub String);

/// The use cases wired from settings, and the repositories the HTTP state reads besides.
pub struct UseCases {
    pub auth: AuthService,
    pub account: AccountService,
    pub users: UserService,
    pub clients: ClientService,
    pub maintenance: MaintenanceService,
    pub passkeys: PasskeyService,
    /// E-mail verification, password reset and the outbox's delivery.
    pub recovery: RecoveryService,
    /// The waker of the mail worker to start, and whether it sends (see `mail.rs`).
    pub mail_waker: (NotifyWaker, bool),
    pub repos: Repositories,
    /// Second factors (issue 14, TOTP).
    pub mfa: MfaService,
}

fn seconds(s: u64) -> chrono::Duration {
    chrono::Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX))
}

/// The pool options of `settings`.
pub fn db_options(settings: &Settings) -> DbOptions {
    let database = &settings.database;
    DbOptions {
        max_connections: database.max_connections,
        acquire_timeout: Duration::from_millis(database.acquire_timeout_ms),
        statement_timeout: Duration::from_millis(database.statement_timeout_ms),
        session_cache_bytes: database.session_cache_mib << 20,
    }
}

/// The password hasher of `settings`.
///
/// # Errors
/// [`StartupError`] when the argon2 parameters are unusable.
pub fn build_hasher(settings: &Settings) -> Result<Argon2Hasher, StartupError> {
    let hashing = &settings.hashing;
    Argon2Hasher::with_legacy_bcrypt(
        Argon2Config {
            memory_kib: hashing.argon2_memory_kib,
            iterations: hashing.argon2_iterations,
            parallelism: hashing.argon2_parallelism,
        },
        hashing.concurrency,
        Duration::from_millis(hashing.queue_timeout_ms),
        hashing.legacy_bcrypt_cost,
    )
    .map_err(|e| StartupError(e.to_string()))
}

/// The raw 32 bytes of `MFA_ENCRYPTION_KEY`, or outside production when it is unset, the
/// development key kept in `JWT_DEV_KEY_DIR` (generated on first use, race-free). It seals the
/// TOTP secrets; other keys may be derived from it (with a distinct label each).
///
/// # Errors
/// [`StartupError`] when the development key cannot be read or written.
pub fn mfa_encryption_key(settings: &Settings) -> Result<MfaKey, StartupError> {
    match (&settings.mfa.encryption_key, settings.app_env) {
        (Some(key), _) => Ok(key.clone()),
        (None, AppEnv::Production) => Err(StartupError(
            "MFA_ENCRYPTION_KEY is not set; production requires it".into(),
        )),
        (None, _) => sealer::development_key(&settings.tokens.dev_key_dir)
            .map_err(|e| StartupError(format!("MFA_ENCRYPTION_KEY: {e}"))),
    }
}

/// The issuer label of the TOTP key URIs: `MFA_TOTP_ISSUER`, else the host of the issuer.
fn totp_issuer_label(settings: &Settings) -> String {
    settings.mfa.totp_issuer.clone().unwrap_or_else(|| {
        url::Url::parse(&settings.tokens.issuer)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| "auth-service".to_owned())
    })
}

/// Connects the database (migrating it), builds the hasher and wires the use cases around
/// `codec`. The clock is a parameter so tests can control time.
///
/// # Errors
/// [`StartupError`] when the database cannot be opened or a parameter is unusable.
pub async fn build_use_cases(
    settings: &Settings,
    clock: Arc<dyn Clock>,
    codec: Arc<dyn AccessTokenCodec>,
) -> Result<UseCases, StartupError> {
    let repos = db::connect(settings.database.url.expose_secret(), &db_options(settings))
        .await
        .map_err(|e| StartupError(format!("database: {e}")))?;
    let hasher = Arc::new(build_hasher(settings)?);
    let server_key = mfa_encryption_key(settings)?;
    let sealer = Arc::new(ChaChaSealer::new(&server_key));
    let factors = SecondFactors::new(repos.mfa.clone(), sealer, clock.clone());
    let ports = Ports {
        users: repos.users.clone(),
        tokens: repos.tokens.clone(),
        throttle: repos.throttle.clone(),
        audit: Arc::new(MeteredAuditLog::new(repos.audit.clone())),
        hasher,
        codec,
        clock: clock.clone(),
    };
    let lockout = LockoutPolicy {
        max_failures: settings.lockout.max_failures,
        base: seconds(settings.lockout.seconds),
        max: seconds(settings.lockout.max_seconds),
    };
    let auth = AuthService::new(
        ports.clone(),
        AuthSettings {
            access_token_ttl: seconds(settings.tokens.access_token_ttl_seconds),
            refresh_token_ttl: seconds(settings.tokens.refresh_token_ttl_seconds),
            session_max_lifetime: seconds(settings.sessions.max_lifetime_seconds),
            max_sessions_per_user: settings.sessions.max_per_user,
            lockout,
            refresh_reuse_grace: seconds(settings.refresh_retry.grace_seconds),
            // Under its own label, so the sealing key itself is never used for two purposes;
            // the same on every replica, so a retry may land on any of them.
            successor_key: RefreshSuccessorKey::derive_from(server_key.expose()),
        },
    )
    .with_second_factors(factors.clone());
    let mfa = MfaService::new(
        ports.clone(),
        factors.clone(),
        repos.passkeys.clone(),
        lockout,
        totp_issuer_label(settings),
    );
    let policy = PasswordPolicy {
        min_chars: settings.accounts.password_min_length,
        blocklist: Some(Arc::new(CommonPasswords::load())),
    };
    let clients = ClientService::new(repos.clients.clone(), clock.clone(), ports.auditor());
    let account = AccountService::new(
        ports.clone(),
        repos.account.clone(),
        factors.clone(),
        lockout,
    );
    let (recovery, waker, sends) = mail::build_recovery(
        settings,
        ports.clone(),
        repos.mail.clone(),
        policy.clone(),
        lockout,
    )?;
    let mail_waker = (waker, sends);
    let (ports_users, ports_hasher) = (ports.users.clone(), ports.hasher.clone());
    let users = UserService::new(ports, policy, settings.accounts.registration_open, lockout);
    let maintenance = MaintenanceService::new(
        repos.purge.clone(),
        ports_users,
        ports_hasher,
        clock,
        Retention {
            audit: chrono::Duration::days(i64::from(settings.retention.audit_retention_days)),
            revoked_sessions: chrono::Duration::days(7),
            login_failures: chrono::Duration::days(1),
        },
    )
    .purging_ceremonies(repos.passkeys.clone());
    let passkeys = build_passkeys(settings, &auth, &repos)?;
    // Before the first request: failed logins are padded to a bcrypt verification's cost only
    // while bcrypt hashes are stored (see crypto::argon2).
    maintenance
        .check_legacy_hashes()
        .await
        .map_err(|e| StartupError(format!("database: {e}")))?;
    Ok(UseCases {
        auth,
        account,
        users,
        clients,
        maintenance,
        passkeys,
        recovery,
        mail_waker,
        repos,
        mfa,
    })
}

/// The passkey use cases on the relying party of `settings` (checked at start: see
/// [`crate::infrastructure::config::WebAuthnSettings::relying_party`]).
fn build_passkeys(
    settings: &Settings,
    auth: &AuthService,
    repos: &Repositories,
) -> Result<PasskeyService, StartupError> {
    let rp = settings
        .webauthn
        .relying_party(&settings.tokens.issuer)
        .map_err(|e| StartupError(e.to_string()))?;
    let webauthn: Arc<dyn crate::domain::passkey::WebAuthn> = match rp {
        Some(rp) => Arc::new(
            super::webauthn::WebAuthnRp::new(&rp.id, &rp.origin, &rp.name).map_err(StartupError)?,
        ),
        None => {
            tracing::warn!(
                "passkeys are off: the issuer is an IP address, which browsers refuse as WebAuthn RP id; set WEBAUTHN_ORIGIN (and WEBAUTHN_RP_ID) to a host name to turn them on"
            );
            Arc::new(super::webauthn::PasskeysOff)
        }
    };
    Ok(PasskeyService::new(
        auth.clone(),
        repos.passkeys.clone(),
        webauthn,
    ))
}

/// The user and client use cases on the system clock, as `seed` runs them: no signing key is
/// loaded (or generated), so the codec refuses to sign; creating and importing users and
/// registering clients never signs.
///
/// # Errors
/// [`StartupError`] when the database cannot be opened or a parameter is unusable.
pub async fn build_seed_services(
    settings: &Settings,
) -> Result<(UserService, ClientService), StartupError> {
    let use_cases =
        build_use_cases(settings, Arc::new(SystemClock), Arc::new(NoAccessTokens)).await?;
    Ok((use_cases.users, use_cases.clients))
}

/// The codec of a process that issues and accepts no access tokens (`seed`).
struct NoAccessTokens;

impl AccessTokenCodec for NoAccessTokens {
    fn sign(&self, _: &AccessClaims) -> Result<String, TokenError> {
        Err(TokenError::Signing(
            "this command loads no signing key".into(),
        ))
    }

    fn verify(&self, _: &str, _: DateTime<Utc>) -> Result<AccessClaims, TokenError> {
        Err(TokenError::Invalid("this command accepts no access token"))
    }

    fn sign_client(&self, _: &ClientAccessClaims) -> Result<String, TokenError> {
        Err(TokenError::Signing(
            "this command loads no signing key".into(),
        ))
    }

    fn verify_any(&self, _: &str, _: DateTime<Utc>) -> Result<VerifiedAccess, TokenError> {
        Err(TokenError::Invalid("this command accepts no access token"))
    }
}

/// What every command starts with: the settings (from the environment and the `.env` files)
/// and a runtime. On failure the reason is printed to standard error after `program: `, and the
/// caller exits with status 1.
pub fn start(program: &str) -> Option<(Settings, tokio::runtime::Runtime)> {
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("{program}: {error}");
            return None;
        }
    };
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => Some((settings, runtime)),
        Err(error) => {
            eprintln!("{program}: cannot start the runtime: {error}");
            None
        }
    }
}
