//! Passkeys: the WebAuthn relying party (its id, the origin of its pages, its display name).

use url::Url;

use super::table::{Fallback::*, Group, Var};
use super::ConfigError;

/// The relying party as configured; unset id and origin follow the issuer (`JWT_ISSUER`).
#[derive(Debug, Clone, Default)]
pub struct WebAuthnSettings {
    pub rp_id: Option<String>,
    pub origin: Option<String>,
    pub rp_name: String,
}

/// The relying party in effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelyingParty {
    pub id: String,
    pub origin: Url,
    pub name: String,
}

impl WebAuthnSettings {
    /// The relying party for `issuer`: the origin is `WEBAUTHN_ORIGIN` or the issuer's, the id
    /// `WEBAUTHN_RP_ID` or the origin's host. `None` when neither is set and the issuer is a
    /// non-loopback IP address: browsers refuse an IP address as RP id, so passkeys are off
    /// (an installation that worked before passkeys existed keeps starting; the start-up log
    /// says how to turn them on).
    ///
    /// # Errors
    /// A [`ConfigError`] when the origin is not an `http(s)` origin with a host name, or the id
    /// is not that host or a parent domain of it (an IP address never is: browsers refuse IP
    /// addresses as RP ids).
    pub fn relying_party(&self, issuer: &str) -> Result<Option<RelyingParty>, ConfigError> {
        let (variable, raw) = match &self.origin {
            Some(origin) => ("WEBAUTHN_ORIGIN", origin.as_str()),
            None => ("JWT_ISSUER (the default of WEBAUTHN_ORIGIN)", issuer),
        };
        let url = Url::parse(raw)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
            .ok_or_else(|| ConfigError(format!("{variable} '{raw}' is not an http(s) URL")))?;
        let mut origin = Url::parse(&url.origin().ascii_serialization())
            .map_err(|e| ConfigError(format!("{variable} '{raw}': {e}")))?;
        // The development default (an issuer on 127.0.0.1, [::1] or 0.0.0.0): browsers refuse
        // an IP address as RP id, and reach the same port as `localhost`.
        let loopback = match origin.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback() || ip.is_unspecified(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback() || ip.is_unspecified(),
            _ => false,
        };
        if self.origin.is_none() && loopback {
            origin
                .set_host(Some("localhost"))
                .map_err(|e| ConfigError(format!("{variable} '{raw}': {e}")))?;
        }
        let Some(host) = origin.domain().map(str::to_owned) else {
            if self.origin.is_none() && self.rp_id.is_none() {
                return Ok(None);
            }
            return Err(ConfigError(format!(
                "{variable} '{raw}' names an IP address; browsers refuse an IP address as WebAuthn RP id: use a host name (localhost in development)"
            )));
        };
        let id = self
            .rp_id
            .clone()
            .unwrap_or(host.clone())
            .to_ascii_lowercase();
        let registrable = !id.is_empty()
            && !id.starts_with('.')
            && id.parse::<std::net::IpAddr>().is_err()
            && (host == id || host.ends_with(&format!(".{id}")));
        if !registrable {
            return Err(ConfigError(format!(
                "WEBAUTHN_RP_ID '{id}' is neither the host of the origin '{host}' nor a parent domain of it"
            )));
        }
        Ok(Some(RelyingParty {
            id,
            origin,
            name: self.rp_name.clone(),
        }))
    }
}

impl Group for WebAuthnSettings {
    const VARS: &'static [Var<Self>] = &[
        Var {
            name: "WEBAUTHN_RP_ID",
            default: Computed("the host of WEBAUTHN_ORIGIN"),
            read: |s, v| {
                s.rp_id = v.text();
                Ok(())
            },
            show: |s| {
                s.rp_id
                    .clone()
                    .unwrap_or_else(|| "(host of the origin)".into())
            },
        },
        Var {
            name: "WEBAUTHN_ORIGIN",
            default: Computed("the origin of JWT_ISSUER"),
            read: |s, v| {
                s.origin = v.text();
                Ok(())
            },
            show: |s| {
                s.origin
                    .clone()
                    .unwrap_or_else(|| "(origin of JWT_ISSUER)".into())
            },
        },
        Var {
            name: "WEBAUTHN_RP_NAME",
            default: Fixed("auth-service"),
            read: |s, v| {
                s.rp_name = v.string()?;
                Ok(())
            },
            show: |s| s.rp_name.clone(),
        },
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(rp_id: Option<&str>, origin: Option<&str>) -> WebAuthnSettings {
        WebAuthnSettings {
            rp_id: rp_id.map(str::to_owned),
            origin: origin.map(str::to_owned),
            rp_name: "auth-service".into(),
        }
    }

    #[test]
    fn the_relying_party_follows_the_issuer_unless_configured() {
        let rp = settings(None, None)
            .relying_party("https://auth.example.com/base")
            .unwrap()
            .unwrap();
        assert_eq!(rp.id, "auth.example.com");
        assert_eq!(rp.origin.as_str(), "https://auth.example.com/");
        let rp = settings(Some("example.com"), None)
            .relying_party("https://auth.example.com")
            .unwrap()
            .unwrap();
        assert_eq!(rp.id, "example.com");
        let rp = settings(None, Some("http://localhost:8080"))
            .relying_party("http://10.0.0.5:8080")
            .unwrap()
            .unwrap();
        assert_eq!(
            (rp.id.as_str(), rp.origin.port()),
            ("localhost", Some(8080))
        );
        // The development default: a loopback issuer is reached as localhost.
        let rp = settings(None, None)
            .relying_party("http://127.0.0.1:8080")
            .unwrap()
            .unwrap();
        assert_eq!(rp.origin.as_str(), "http://localhost:8080/");
        assert_eq!(rp.id, "localhost");
    }

    #[test]
    fn an_rp_id_that_is_not_a_suffix_of_the_host_or_an_ip_address_is_refused() {
        for (rp_id, origin) in [
            (Some("other.com"), "https://auth.example.com"),
            (Some("ample.com"), "https://auth.example.com"),
            (Some("sub.auth.example.com"), "https://auth.example.com"),
            (Some(".example.com"), "https://auth.example.com"),
            (Some("10.0.0.5"), "http://10.0.0.5:8000"),
            (Some("127.0.0.1"), "http://127.0.0.1:8000"),
            (None, "not a url"),
        ] {
            let result = settings(rp_id, None).relying_party(origin);
            assert!(result.is_err(), "{rp_id:?} for {origin} must be refused");
        }
    }

    #[test]
    fn an_ip_issuer_without_passkey_settings_turns_passkeys_off_instead_of_refusing_to_start() {
        for issuer in ["http://10.0.0.5:8000", "http://[2001:db8::1]:8000"] {
            assert_eq!(
                settings(None, None).relying_party(issuer).ok(),
                Some(None),
                "{issuer}"
            );
        }
    }
}
