//! The tracing subscriber: human-readable in development, JSON lines in production.

use tracing_subscriber::{fmt, EnvFilter};

use super::config::LogFormat;

/// Installs the global subscriber. The level comes from `RUST_LOG`, else `default_level`.
pub fn init(format: LogFormat, default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = fmt().with_env_filter(filter).with_target(false);
    // `try_init`: a second call (tests, the seed binary) keeps the first subscriber.
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
}
