//! Mail: the SMTP server, the sender, the development outbox directory, retries and limits.

use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};

use super::table::{row, Check, Fallback::*, Group, Value, Var};
use super::{mask_url, ConfigError};

/// How mail is sent.
#[derive(Clone)]
pub struct MailSettings {
    /// `smtp://host:port` (plain; `?tls=required` or `?tls=opportunistic` for STARTTLS) or
    /// `smtps://user:password@host:port` (implicit TLS). Unset: files in `outbox_dir` outside
    /// production; queued only in production.
    pub smtp_url: Option<SecretString>,
    /// The `From` of every mail.
    pub from: String,
    /// Where mails are written without `SMTP_URL` outside production.
    pub outbox_dir: PathBuf,
    /// The first retry's delay, in milliseconds; doubled per failure.
    pub retry_base_ms: u64,
    /// The longest delay between two attempts, in seconds.
    pub retry_max_seconds: u64,
    /// At most this many mails to one address per hour.
    pub per_address_per_hour: u32,
}

impl Default for MailSettings {
    fn default() -> Self {
        Self {
            smtp_url: None,
            from: String::new(),
            outbox_dir: PathBuf::new(),
            retry_base_ms: 0,
            retry_max_seconds: 0,
            per_address_per_hour: 0,
        }
    }
}

fn smtp_url(_: &MailSettings, value: &Value<'_>) -> Result<Option<SecretString>, ConfigError> {
    let Some(raw) = value.raw else {
        return Ok(None);
    };
    let parsed = url::Url::parse(raw).ok();
    let usable = parsed.as_ref().is_some_and(|url| {
        matches!(url.scheme(), "smtp" | "smtps") && url.host_str().is_some_and(|h| !h.is_empty())
    });
    if usable {
        Ok(Some(SecretString::from(raw.to_owned())))
    } else {
        // Never echo a password the value may hold.
        Err(ConfigError(format!(
            "SMTP_URL='{}' is not valid: must be smtp://HOST:PORT (plain; add ?tls=required for STARTTLS) or smtps://USER:PASSWORD@HOST:PORT",
            mask_url(raw)
        )))
    }
}

fn from(_: &MailSettings, value: &Value<'_>) -> Result<String, ConfigError> {
    let raw = value.string()?;
    let address = raw
        .rsplit_once('<')
        .map_or(raw.as_str(), |(_, rest)| rest.trim_end_matches('>'));
    if crate::domain::user::EmailAddress::parse(address.trim()).is_ok() {
        Ok(raw)
    } else {
        Err(value.invalid("an address, or a name and an address: Name <user@example.com>"))
    }
}

impl Group for MailSettings {
    const VARS: &'static [Var<Self>] = &[
        row!(
            "SMTP_URL",
            Unset,
            smtp_url <- smtp_url,
            show = |s| s
                .smtp_url
                .as_ref()
                .map_or_else(|| "(unset)".to_owned(), |u| mask_url(u.expose_secret()))
        ),
        row!(
            "MAIL_FROM",
            Fixed("no-reply@auth.localhost.localdomain"),
            from <- from,
            show = |s| s.from.clone()
        ),
        row!(
            "MAIL_OUTBOX_DIR",
            Fixed("mail-outbox/"),
            outbox_dir = parse("a directory"),
            show = |s| s.outbox_dir.display().to_string()
        ),
        row!(
            "MAIL_RETRY_BASE_MS",
            Fixed("30000"),
            retry_base_ms = number()
        ),
        row!(
            "MAIL_RETRY_MAX_SECONDS",
            Fixed("3600"),
            retry_max_seconds = number()
        ),
        row!(
            "MAIL_PER_ADDRESS_PER_HOUR",
            Fixed("5"),
            per_address_per_hour = number()
        ),
    ];

    const CHECKS: &'static [Check<Self>] = &[
        (
            |s| s.retry_base_ms > 0 && s.retry_max_seconds > 0,
            "MAIL_RETRY_BASE_MS and MAIL_RETRY_MAX_SECONDS must be positive",
        ),
        (
            |s| s.per_address_per_hour > 0,
            "MAIL_PER_ADDRESS_PER_HOUR must be positive",
        ),
    ];
}
