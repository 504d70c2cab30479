//! Logs and the purge of expired data.

use super::table::{first_failure, row, Fallback::*, Group, Value, Var};
use super::{AppEnv, ConfigError};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
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
#[derive(Debug, Clone)]
pub struct LoggingSettings {
    pub format: LogFormat,
}

fn log_format(value: &Value<'_>) -> Result<LogFormat, ConfigError> {
    match value.raw {
        None if value.context.app_env == AppEnv::Production => Ok(LogFormat::Json),
        None => Ok(LogFormat::Pretty),
        Some(_) => value.one_of(&LogFormat::CHOICES),
    }
}

impl Group for LoggingSettings {
    const VARS: &'static [Var<Self>] = &[Var {
        name: "LOG_FORMAT",
        default: Computed("pretty; json in production"),
        read: |s, v| {
            s.format = log_format(v)?;
            Ok(())
        },
        show: |s| s.format.as_str().to_owned(),
    }];

    fn initial() -> Self {
        Self {
            format: LogFormat::Pretty,
        }
    }
}

/// How long audit events are kept and how often expired data is purged.
#[derive(Debug, Clone)]
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

    fn initial() -> Self {
        Self {
            audit_retention_days: 0,
            purge_interval_seconds: 0,
        }
    }

    fn check(&self) -> Result<(), ConfigError> {
        first_failure(&[(
            self.purge_interval_seconds > 0,
            "PURGE_INTERVAL_SECONDS must be positive",
        )])
    }
}
