//! What the browser flows share: their cookies (the sign-in and the CSRF token of a form), and
//! the redirects back to a client.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use subtle::ConstantTimeEq;

use super::BrowserSettings;

/// The sign-in cookie (`__Host-` when `Secure`: bound to this host and path `/`).
const SIGNIN: &str = "auth_signin";
/// The CSRF cookie of the login and sign-out forms (double submit: an attacker's page can
/// neither read it nor, with `SameSite=Strict`, send it along with a cross-site post).
const CSRF: &str = "auth_csrf";

impl BrowserSettings {
    fn cookie_name(&self, name: &str) -> String {
        if self.secure_cookies {
            format!("__Host-{name}")
        } else {
            name.to_owned()
        }
    }

    fn cookie(
        &self,
        name: &str,
        value: &str,
        same_site: &str,
        max_age: Option<i64>,
    ) -> HeaderValue {
        let secure = if self.secure_cookies { "; Secure" } else { "" };
        let max_age = max_age.map_or(String::new(), |s| format!("; Max-Age={}", s.max(0)));
        let cookie = format!(
            "{}={value}; Path=/; HttpOnly; SameSite={same_site}{secure}{max_age}",
            self.cookie_name(name)
        );
        HeaderValue::from_str(&cookie).expect("cookie values are base64url")
    }

    /// The sign-in cookie's value, if the browser sent one.
    pub fn signin_cookie<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        cookie(headers, &self.cookie_name(SIGNIN))
    }

    /// Sets the sign-in cookie for `max_age` seconds (the sign-in's remaining life).
    pub fn set_signin(&self, token: &str, max_age: i64) -> (header::HeaderName, HeaderValue) {
        (
            header::SET_COOKIE,
            self.cookie(SIGNIN, token, "Lax", Some(max_age)),
        )
    }

    /// Removes the sign-in cookie.
    pub fn clear_signin(&self) -> (header::HeaderName, HeaderValue) {
        (header::SET_COOKIE, self.cookie(SIGNIN, "", "Lax", Some(0)))
    }

    /// A fresh CSRF token and the cookie that carries it.
    pub fn new_csrf(&self) -> (String, (header::HeaderName, HeaderValue)) {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let token = URL_SAFE_NO_PAD.encode(bytes);
        let cookie = self.cookie(CSRF, &token, "Strict", None);
        (token, (header::SET_COOKIE, cookie))
    }

    /// Whether the form's `csrf` field equals the CSRF cookie (compared in constant time).
    pub fn csrf_ok(&self, headers: &HeaderMap, submitted: Option<&str>) -> bool {
        match (cookie(headers, &self.cookie_name(CSRF)), submitted) {
            (Some(expected), Some(submitted)) if !expected.is_empty() => {
                expected.as_bytes().ct_eq(submitted.as_bytes()).into()
            }
            _ => false,
        }
    }
}

/// The value of cookie `name` in the `Cookie` headers (the first, if repeated).
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// A 303 to `uri` with `params` added to its query (RFC 6749 §4.1.2), `no-store`, and any
/// extra headers (cookies).
pub fn redirect(
    uri: &str,
    params: &[(&str, &str)],
    extra: Vec<(header::HeaderName, HeaderValue)>,
) -> Response {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in params {
        query.append_pair(name, value);
    }
    let query = query.finish();
    let location = match (query.is_empty(), uri.contains('?')) {
        (true, _) => uri.to_owned(),
        (false, true) => format!("{uri}&{query}"),
        (false, false) => format!("{uri}?{query}"),
    };
    let Ok(location) = HeaderValue::from_str(&location) else {
        // Registered URIs are printable ASCII and the query is percent-encoded.
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for (name, value) in extra {
        headers.append(name, value);
    }
    response
}

/// The origin a redirect URI points at, as a CSP source: `scheme://host[:port]`, with any port
/// for a loopback `http` URI (its port may vary, RFC 8252 §7.3).
pub fn csp_origin(uri: &str) -> Option<String> {
    let url = url::Url::parse(uri).ok()?;
    let host = url.host_str()?;
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    let loopback = url.scheme() == "http";
    Some(match (loopback, url.port()) {
        (true, _) => format!("http://{host}:*"),
        (false, Some(port)) => format!("{}://{host}:{port}", url.scheme()),
        (false, None) => format!("{}://{host}", url.scheme()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_exact_name_and_csrf_must_match() {
        let settings = BrowserSettings::new("http://127.0.0.1:8000");
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("x_auth_signin=no; auth_signin=yes; auth_csrf=abc"),
        );
        assert_eq!(settings.signin_cookie(&headers), Some("yes"));
        assert!(settings.csrf_ok(&headers, Some("abc")));
        assert!(!settings.csrf_ok(&headers, Some("abd")));
        assert!(!settings.csrf_ok(&headers, None));
        assert!(!settings.csrf_ok(&HeaderMap::new(), Some("")));
        let secure = BrowserSettings::new("https://auth.example");
        let (_, (_, cookie)) = secure.new_csrf();
        let cookie = cookie.to_str().unwrap();
        assert!(
            cookie.starts_with("__Host-auth_csrf=")
                && cookie.contains("; Secure")
                && cookie.contains("SameSite=Strict")
        );
        let (_, signin) = secure.set_signin("t", 60);
        assert!(signin
            .to_str()
            .unwrap()
            .contains("HttpOnly; SameSite=Lax; Secure; Max-Age=60"));
    }

    #[test]
    fn redirects_append_their_parameters_encoded() {
        let response = redirect(
            "https://app.example/cb?x=1",
            &[("code", "a b"), ("state", "s&t")],
            vec![],
        );
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            response.headers()[header::LOCATION],
            "https://app.example/cb?x=1&code=a+b&state=s%26t"
        );
        assert_eq!(
            csp_origin("http://127.0.0.1:5555/cb").as_deref(),
            Some("http://127.0.0.1:*")
        );
        assert_eq!(
            csp_origin("https://app.example:8443/cb").as_deref(),
            Some("https://app.example:8443")
        );
    }
}
