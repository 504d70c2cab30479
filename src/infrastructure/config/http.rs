//! `HOST`, `PORT` and the limits of the HTTP server.

use std::net::{IpAddr, Ipv6Addr};

use super::table::{row, show_list, Check, Fallback::*, Group, Value, Var};
use super::ConfigError;

/// Where the service listens and how much it takes from a client.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub host: IpAddr,
    pub port: u16,
    /// Take the client IP from the last `X-Forwarded-For` entry (behind a proxy only).
    pub trust_proxy_headers: bool,
    pub body_limit_bytes: usize,
    pub request_timeout_seconds: u64,
    /// A connection that has not sent a complete request head this long after it opened is
    /// closed (slowloris).
    pub header_read_timeout_seconds: u64,
    /// A keep-alive connection idle this long between requests is closed.
    pub idle_timeout_seconds: u64,
    /// Open client connections at most; the server lowers it below the process's file
    /// descriptor limit.
    pub max_connections: usize,
    /// Origins allowed by CORS; empty: CORS off (no header is sent).
    pub cors_allowed_origins: Vec<String>,
}

/// The listed origins without a trailing `/`.
fn origins(_: &HttpSettings, value: &Value<'_>) -> Result<Vec<String>, ConfigError> {
    Ok(value
        .list()
        .into_iter()
        .map(|o| o.trim_end_matches('/').to_owned())
        .filter(|o| !o.is_empty())
        .collect())
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            host: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            port: 0,
            trust_proxy_headers: false,
            body_limit_bytes: 0,
            request_timeout_seconds: 0,
            header_read_timeout_seconds: 0,
            idle_timeout_seconds: 0,
            max_connections: 0,
            cors_allowed_origins: Vec::new(),
        }
    }
}

impl Group for HttpSettings {
    const VARS: &'static [Var<Self>] = &[
        row!(
            "HOST",
            Fixed("127.0.0.1"),
            host = parse("an IP address such as 127.0.0.1, 0.0.0.0 or ::")
        ),
        row!(
            "PORT",
            Fixed("8000"),
            port = parse("a port number from 1 to 65535 (or 0: any free port)")
        ),
        row!(
            "TRUST_PROXY_HEADERS",
            Fixed("false"),
            trust_proxy_headers = boolean()
        ),
        row!(
            "BODY_LIMIT_BYTES",
            Fixed("65536"),
            body_limit_bytes = number()
        ),
        row!(
            "REQUEST_TIMEOUT_SECONDS",
            Fixed("30"),
            request_timeout_seconds = number()
        ),
        row!(
            "HTTP_HEADER_READ_TIMEOUT_SECONDS",
            Fixed("10"),
            header_read_timeout_seconds = number()
        ),
        row!(
            "HTTP_IDLE_TIMEOUT_SECONDS",
            Fixed("60"),
            idle_timeout_seconds = number()
        ),
        row!(
            "HTTP_MAX_CONNECTIONS",
            Fixed("10000"),
            max_connections = number()
        ),
        row!(
            "CORS_ALLOWED_ORIGINS",
            Unset,
            cors_allowed_origins <- origins,
            show = |s| show_list(&s.cors_allowed_origins)
        ),
    ];

    const CHECKS: &'static [Check<Self>] = &[
        (
            |s| s.request_timeout_seconds > 0,
            "REQUEST_TIMEOUT_SECONDS must be positive",
        ),
        (
            |s| s.header_read_timeout_seconds > 0 && s.idle_timeout_seconds > 0,
            "HTTP_HEADER_READ_TIMEOUT_SECONDS and HTTP_IDLE_TIMEOUT_SECONDS must be positive",
        ),
        (
            |s| s.max_connections > 0,
            "HTTP_MAX_CONNECTIONS must be at least 1",
        ),
        (
            |s| s.body_limit_bytes >= 1024,
            "BODY_LIMIT_BYTES must be at least 1024",
        ),
    ];

    fn check(&self) -> Result<(), ConfigError> {
        self.check_table()?;
        match self
            .cors_allowed_origins
            .iter()
            .find(|o| !(o.starts_with("http://") || o.starts_with("https://")) || o.as_str() == "*")
        {
            Some(origin) => Err(ConfigError(format!(
                "CORS_ALLOWED_ORIGINS: '{origin}' is not an origin like https://app.example.com"
            ))),
            None => Ok(()),
        }
    }
}
