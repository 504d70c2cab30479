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
        let loopback = match url.host() {
            Some(Host::Ipv4(ip)) => ip == std::net::Ipv4Addr::LOCALHOST,
            Some(Host::Ipv6(ip)) => ip.is_loopback(),
            Some(Host::Domain(name)) => name == "localhost",
            None => false,
        };
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
}
