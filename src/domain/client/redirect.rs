//! Redirect URIs (RFC 6749 §3.1.2, with the rules of RFC 9700 §4.1 and RFC 8252 §7.3): absolute
//! `https` URIs, or `http` on a loopback host for native and development apps; no fragment, no
//! wildcard, no credentials. Compared by exact string later, so the URI is kept as given.

use url::{Host, Url};

use crate::domain::validation::FieldError;

/// A redirect URI that passed every rule, as the client registered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectUri(String);

impl RedirectUri {
    /// The longest URI accepted, in bytes. A redirect URI names an endpoint and carries no data,
    /// so 512 is ample, and it keeps the largest valid registration (20 URIs) near 10 KB, far
    /// below the body limit.
    pub const MAX_LEN: usize = 512;

    /// Checks `raw` (reported under `field`).
    ///
    /// # Errors
    /// `field` / `invalid_length`, `invalid_characters` (not printable ASCII: the URL parser
    /// would silently drop tabs and new lines, and international names must be sent
    /// percent-encoded or in punycode), `wildcard_not_allowed`, `not_absolute`,
    /// `fragment_not_allowed`, `credentials_not_allowed`, `insecure_scheme` (anything but
    /// `https`, and `http` off loopback).
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        let fail = |code, message: &str| Err(FieldError::new(field, code, message));
        if raw.is_empty() || raw.len() > Self::MAX_LEN {
            return fail("invalid_length", "each URI must be 1-512 characters long");
        }
        if !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return fail(
                "invalid_characters",
                "each URI must be printable ASCII without spaces (percent-encode the rest)",
            );
        }
        if raw.contains('*') {
            return fail(
                "wildcard_not_allowed",
                "URIs are matched exactly: no wildcards",
            );
        }
        if raw.contains('#') {
            return fail(
                "fragment_not_allowed",
                "a redirect URI must not have a fragment",
            );
        }
        let Ok(url) = Url::parse(raw) else {
            return fail(
                "not_absolute",
                "each URI must be absolute (https://host/path)",
            );
        };
        if !url.username().is_empty() || url.password().is_some() {
            return fail(
                "credentials_not_allowed",
                "a redirect URI must not carry a user name or password",
            );
        }
        let loopback = is_loopback(&url);
        let secure = match url.scheme() {
            "https" => url.host().is_some(),
            "http" => loopback,
            _ => false,
        };
        if !secure {
            return fail(
                "insecure_scheme",
                "must be https, or http on 127.0.0.1, [::1] or localhost",
            );
        }
        Ok(Self(raw.to_owned()))
    }

    /// The URI as registered.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether an authorization request's `redirect_uri` names this registered URI: the same
    /// string exactly (RFC 9700 §4.1.3), except that for `http` on a loopback IP literal or
    /// `localhost` the port may differ (RFC 8252 §7.3: a native app listens on whatever port
    /// the system gives it). Scheme, host, path and query must still be identical.
    pub fn matches(&self, requested: &str) -> bool {
        if self.0 == requested {
            return true;
        }
        let (Ok(registered), Ok(asked)) = (Url::parse(&self.0), Url::parse(requested)) else {
            return false;
        };
        let loopback = registered.scheme() == "http" && is_loopback(&registered);
        // Comparing the raw strings with the port removed keeps every other byte significant
        // (the parser would normalise case, dots and percent-encoding).
        loopback
            && asked.scheme() == "http"
            && registered.host() == asked.host()
            && !requested.contains('#')
            && without_port(&self.0) == without_port(requested)
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => ip == std::net::Ipv4Addr::LOCALHOST,
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(name)) => name == "localhost",
        None => false,
    }
}

/// `http://host:port/rest` as `http://host/rest` (the text after the authority untouched).
fn without_port(raw: &str) -> Option<String> {
    let rest = raw.strip_prefix("http://")?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let host = match authority.rfind(':') {
        // `[::1]:8080` or `127.0.0.1:8080`; `[::1]` alone has its last colon inside brackets.
        Some(colon) if !authority[colon..].contains(']') => &authority[..colon],
        _ => authority,
    };
    Some(format!("http://{host}{tail}"))
}
