//! Settings from the environment and `.env.{APP_ENV}` / `.env`, validated once at start.
//!
//! Precedence: the process environment, then `.env.{APP_ENV}`, then `.env` (dotenvy never
//! overrides a variable that is already set). An empty value counts as unset.
//!
//! The settings come in groups (`http`, `database`, `tokens`, ...). Each group is one table of
//! rows ([`table::Var`]), and each row names its variable once, with its default, how it is
//! parsed and how `auth-service check-config` prints it; `.env.example` and
//! `docs/configuration.md` are checked against these tables by the tests.

mod accounts;
mod database;
mod hashing;
mod housekeeping;
mod http;
mod mail;
mod mfa;
mod refresh_retry;
pub mod table;
mod tokens;
mod webauthn;

use std::fmt;

pub use self::accounts::{AccountSettings, LockoutSettings, RateLimitSettings, SessionSettings};
pub use self::database::DatabaseSettings;
pub use self::hashing::HashingSettings;
pub use self::housekeeping::{LogFormat, LoggingSettings, RetentionSettings, LOG_FILTER_VARIABLE};
pub use self::http::HttpSettings;
pub use self::mail::MailSettings;
pub use self::mfa::{MfaKey, MfaSettings};
pub use self::refresh_retry::{RefreshRetrySettings, MAX_REFRESH_REUSE_GRACE_SECONDS};
use self::table::{Context, Fallback, Group, Var, Variable};
pub use self::tokens::{TokenSettings, DEVELOPMENT_JWT_SECRET};
pub use self::webauthn::{RelyingParty, WebAuthnSettings};
pub use crate::infrastructure::crypto::keys::JwtAlgorithm;

/// The deployment environment, from `APP_ENV`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AppEnv {
    #[default]
    Development,
    Testing,
    Production,
}

impl AppEnv {
    const ALL: [AppEnv; 3] = [Self::Development, Self::Testing, Self::Production];

    /// The name used in `APP_ENV` and in `.env.{name}`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Development => "development",
            Self::Testing => "testing",
            Self::Production => "production",
        }
    }
}

impl Group for AppEnv {
    const VARS: &'static [Var<Self>] = &[Var {
        name: "APP_ENV",
        default: Fallback::Fixed("development"),
        read: |s, v| {
            *s = v.one_of(&AppEnv::ALL.map(|env| (env.as_str(), env)))?;
            Ok(())
        },
        show: |s| s.as_str().to_owned(),
    }];
}

/// A configuration value that cannot be used; the message names the variable.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(pub String);

/// The variable with the password of the demo `admin` of `seed`.
pub const SEED_ADMIN_PASSWORD: &str = "SEED_ADMIN_PASSWORD";
/// The variable with the password of the demo `demo` user of `seed`.
pub const SEED_DEMO_PASSWORD: &str = "SEED_DEMO_PASSWORD";
/// The variable with the rows between two progress lines of a `seed --from-file` import.
pub const SEED_PROGRESS_EVERY: &str = "SEED_PROGRESS_EVERY";

/// The variables read outside [`Settings`]: the log filter, whose default depends on the
/// command, and the options of `seed`.
pub const OTHER_VARIABLES: [Variable; 4] = [
    Variable {
        name: LOG_FILTER_VARIABLE,
        default: Fallback::Computed("info; warn for migrate and seed"),
    },
    Variable {
        name: SEED_ADMIN_PASSWORD,
        default: Fallback::Unset,
    },
    Variable {
        name: SEED_DEMO_PASSWORD,
        default: Fallback::Unset,
    },
    Variable {
        name: SEED_PROGRESS_EVERY,
        default: Fallback::Fixed("1000"),
    },
];

/// Every setting of the service, by group. `Debug` masks the secrets.
#[derive(Clone)]
pub struct Settings {
    pub app_env: AppEnv,
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub tokens: TokenSettings,
    pub sessions: SessionSettings,
    pub hashing: HashingSettings,
    pub accounts: AccountSettings,
    pub lockout: LockoutSettings,
    pub rate_limit: RateLimitSettings,
    pub logging: LoggingSettings,
    pub retention: RetentionSettings,
    pub refresh_retry: RefreshRetrySettings,
    /// Passkeys: the WebAuthn relying party.
    pub webauthn: WebAuthnSettings,
    /// Second factors: the TOTP secrets' encryption key.
    pub mfa: MfaSettings,
    pub mail: MailSettings,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.entries()).finish()
    }
}

/// Every variable the service reads, with its default: the rows of every group, then
/// [`OTHER_VARIABLES`].
pub fn variables() -> Vec<Variable> {
    fn of<G: Group>() -> impl Iterator<Item = Variable> {
        G::VARS.iter().map(Var::variable)
    }
    of::<AppEnv>()
        .chain(of::<HttpSettings>())
        .chain(of::<DatabaseSettings>())
        .chain(of::<TokenSettings>())
        .chain(of::<SessionSettings>())
        .chain(of::<HashingSettings>())
        .chain(of::<AccountSettings>())
        .chain(of::<LockoutSettings>())
        .chain(of::<RateLimitSettings>())
        .chain(of::<LoggingSettings>())
        .chain(of::<RetentionSettings>())
        .chain(of::<RefreshRetrySettings>())
        .chain(of::<WebAuthnSettings>())
        .chain(of::<MfaSettings>())
        .chain(of::<MailSettings>())
        .chain(OTHER_VARIABLES)
        .collect()
}

impl Settings {
    /// Every setting under its variable name, as in effect, with secrets masked: what
    /// `auth-service check-config` prints, group by group.
    pub fn entries(&self) -> Vec<(&'static str, String)> {
        self.app_env
            .entries()
            .chain(self.http.entries())
            .chain(self.database.entries())
            .chain(self.tokens.entries())
            .chain(self.sessions.entries())
            .chain(self.hashing.entries())
            .chain(self.accounts.entries())
            .chain(self.lockout.entries())
            .chain(self.rate_limit.entries())
            .chain(self.logging.entries())
            .chain(self.retention.entries())
            .chain(self.refresh_retry.entries())
            .chain(self.webauthn.entries())
            .chain(self.mfa.entries())
            .chain(self.mail.entries())
            .collect()
    }

    /// Loads `.env.{APP_ENV}` and `.env` into the process environment (without overriding what
    /// is set) and reads the settings from it.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first unusable variable.
    pub fn load() -> Result<Self, ConfigError> {
        // `APP_ENV` from the process environment alone picks the file.
        let env_name = std::env::var(AppEnv::VARS[0].name)
            .unwrap_or_else(|_| AppEnv::default().as_str().to_owned());
        let _ = dotenvy::from_filename(format!(".env.{env_name}"));
        let _ = dotenvy::from_filename(".env");
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// Reads the settings through `lookup` (the environment, or a map in tests).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first unusable variable.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut context = Context {
            app_env: AppEnv::Development,
            listen: None,
        };
        context.app_env = AppEnv::read(&lookup, &context)?;
        let http = HttpSettings::read(&lookup, &context)?;
        context.listen = Some((http.host, http.port));
        let settings = Settings {
            app_env: context.app_env,
            http,
            database: Group::read(&lookup, &context)?,
            tokens: Group::read(&lookup, &context)?,
            sessions: Group::read(&lookup, &context)?,
            hashing: Group::read(&lookup, &context)?,
            accounts: Group::read(&lookup, &context)?,
            lockout: Group::read(&lookup, &context)?,
            rate_limit: Group::read(&lookup, &context)?,
            logging: Group::read(&lookup, &context)?,
            retention: Group::read(&lookup, &context)?,
            refresh_retry: Group::read(&lookup, &context)?,
            webauthn: Group::read(&lookup, &context)?,
            mfa: Group::read(&lookup, &context)?,
            mail: Group::read(&lookup, &context)?,
        };
        // Refuse to start with a relying party browsers would refuse.
        settings.webauthn.relying_party(&settings.tokens.issuer)?;
        Ok(settings)
    }

    /// The address to listen on.
    pub fn bind_address(&self) -> std::net::SocketAddr {
        (self.http.host, self.http.port).into()
    }
}

/// A database URL with any password replaced by `***`.
pub fn mask_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests;
