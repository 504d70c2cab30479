//! Logs and the purge of expired data.

use super::table::{row, Check, Fallback::*, Group, Value, Var};
use super::{AppEnv, ConfigError};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Pretty,
    Json,
}

impl LogFormat {
    const CHOICES: [(&'static str, LogFormat); 2] =
        [("pretty", Self::Pretty), ("json", Self::Json)];

    /// The name used in `LOG_FORMAT`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pretty => "pretty",
            Self::Json => "json",
        }
    }
}

/// The variable holding the log filter (`tracing` `EnvFilter` syntax), read by the subscriber
/// itself since its default depends on the command.
pub const LOG_FILTER_VARIABLE: &str = "RUST_LOG";

/// How the service logs.
#[derive(Debug, Clone, Default)]
pub struct LoggingSettings {
    pub format: LogFormat,
}

fn log_format(_: &LoggingSettings, value: &Value<'_>) -> Result<LogFormat, ConfigError> {
    match value.raw {
        None if value.context.app_env == AppEnv::Production => Ok(LogFormat::Json),
        None => Ok(LogFormat::Pretty),
        Some(_) => value.one_of(&LogFormat::CHOICES),
    }
}

impl Group for LoggingSettings {
    const VARS: &'static [Var<Self>] = &[row!(
        "LOG_FORMAT",
        Computed("pretty; json in production"),
        format <- log_format,
        show = |s| s.format.as_str().to_owned()
    )];
}

/// How long audit events are kept and how often expired data is purged.
#[derive(Debug, Clone, Default)]
pub struct RetentionSettings {
    pub audit_retention_days: u32,
    pub purge_interval_seconds: u64,
}

impl Group for RetentionSettings {
    const VARS: &'static [Var<Self>] = &[
        row!(
            "AUDIT_RETENTION_DAYS",
            Fixed("90"),
            audit_retention_days = number()
        ),
        row!(
            "PURGE_INTERVAL_SECONDS",
            Fixed("3600"),
            purge_interval_seconds = number()
        ),
    ];

    const CHECKS: &'static [Check<Self>] = &[(
        |s| s.purge_interval_seconds > 0,
        "PURGE_INTERVAL_SECONDS must be positive",
    )];
}
