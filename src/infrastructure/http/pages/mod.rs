//! The server-rendered pages of the browser flows: the hosted login page, the error page of a
//! bad authorization request, and the sign-out pages. Templates are askama's (`templates/`,
//! compiled in and escaped by default); the one stylesheet is served from this binary, so a
//! page loads nothing from elsewhere and works without JavaScript.

use askama::Template;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

mod recovery;
pub use recovery::{done, reset_password, verify_email};

/// The name shown in page titles.
const SERVICE: &str = "Sign-in";

/// The stylesheet of every page.
pub const STYLESHEET: &str = include_str!("pages.css");

/// The login page's one script: passkey sign-in (served from this binary, never inline).
pub const PASSKEY_SCRIPT: &str = include_str!("passkey.js");

/// The login page's policy: [`csp`] plus this origin's script (passkey sign-in) and the
/// requests it makes (`connect-src 'self'`).
fn login_csp(redirect_origin: Option<&str>) -> String {
    csp(redirect_origin).replacen(
        "default-src 'none';",
        "default-src 'none'; script-src 'self'; connect-src 'self';",
        1,
    )
}

/// The Content-Security-Policy of the pages: nothing but this origin's stylesheet, no script,
/// no framing. `form-action` names this origin and, for the login page, the origin the
/// browser is redirected to after the form (browsers check a form's redirects against it).
fn csp(redirect_origin: Option<&str>) -> String {
    let targets = redirect_origin.map_or(String::new(), |o| format!(" {o}"));
    format!(
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'{targets}; frame-ancestors 'none'; base-uri 'none'"
    )
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginTemplate<'a> {
    service: &'a str,
    client_name: &'a str,
    error: Option<&'a str>,
    csrf: &'a str,
    username: &'a str,
    hidden: &'a [(&'static str, String)],
}

#[derive(Template)]
#[template(path = "login_otp.html")]
struct SecondFactorTemplate<'a> {
    service: &'a str,
    client_name: &'a str,
    error: Option<&'a str>,
    csrf: &'a str,
    pending: &'a str,
    hidden: &'a [(&'static str, String)],
    passkey: bool,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorTemplate<'a> {
    service: &'a str,
    title: &'a str,
    message: &'a str,
    hint: &'a str,
}

#[derive(Template)]
#[template(path = "logout.html")]
struct LogoutTemplate<'a> {
    service: &'a str,
    client_name: Option<&'a str>,
    csrf: &'a str,
    hidden: &'a [(&'static str, String)],
}

#[derive(Template)]
#[template(path = "signed_out.html")]
struct SignedOutTemplate<'a> {
    service: &'a str,
}

/// The login page's content.
pub struct LoginPage<'a> {
    pub client_name: &'a str,
    /// Announced to screen readers (`role="alert"`), and the fields marked invalid.
    pub error: Option<&'a str>,
    pub csrf: &'a str,
    /// Kept after a failed attempt (never the password).
    pub username: &'a str,
    /// The authorization request, carried through the form.
    pub hidden: &'a [(&'static str, String)],
    /// The origin of the redirect URI (for `form-action`).
    pub redirect_origin: Option<&'a str>,
}

/// The second step's content: the page asking for a TOTP or recovery code.
pub struct SecondFactorPage<'a> {
    pub client_name: &'a str,
    /// Announced to screen readers (`role="alert"`).
    pub error: Option<&'a str>,
    pub csrf: &'a str,
    /// The pending sign-in's token, carried to the second step.
    pub pending: &'a str,
    /// The authorization request, carried through the form.
    pub hidden: &'a [(&'static str, String)],
    /// The origin of the redirect URI (for `form-action`).
    pub redirect_origin: Option<&'a str>,
    /// The user has a passkey: offer it (with the page's script).
    pub passkey: bool,
}

/// An HTML page response with the pages' headers.
pub struct Page {
    status: StatusCode,
    html: String,
    csp: String,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Page {
    fn new(status: StatusCode, html: Result<String, askama::Error>, csp: String) -> Self {
        let html = html.unwrap_or_else(|error| {
            tracing::error!(%error, "page template failed");
            "<!doctype html><title>Error</title><p>Something went wrong.</p>".to_owned()
        });
        Self {
            status,
            html,
            csp,
            headers: Vec::new(),
        }
    }

    /// Adds a header (a cookie, `Retry-After`).
    #[must_use]
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.html).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Ok(csp) = HeaderValue::from_str(&self.csp) {
            headers.insert(header::CONTENT_SECURITY_POLICY, csp);
        }
        for (name, value) in self.headers {
            headers.append(name, value);
        }
        response
    }
}

/// The login page, with `status` (200, or 400/429/503 after a failed attempt).
pub fn login(status: StatusCode, page: &LoginPage<'_>) -> Page {
    let html = LoginTemplate {
        service: SERVICE,
        client_name: page.client_name,
        error: page.error,
        csrf: page.csrf,
        username: page.username,
        hidden: page.hidden,
    }
    .render();
    Page::new(status, html, login_csp(page.redirect_origin))
}

/// The second step of the login page, with `status` (200, or 429/503 after a failure).
pub fn second_factor(status: StatusCode, page: &SecondFactorPage<'_>) -> Page {
    let html = SecondFactorTemplate {
        service: SERVICE,
        client_name: page.client_name,
        error: page.error,
        csrf: page.csrf,
        pending: page.pending,
        hidden: page.hidden,
        passkey: page.passkey,
    }
    .render();
    let policy = if page.passkey {
        login_csp(page.redirect_origin)
    } else {
        csp(page.redirect_origin)
    };
    Page::new(status, html, policy)
}

/// An error page: what went wrong and what the user can do.
pub fn error(status: StatusCode, title: &str, message: &str, hint: &str) -> Page {
    let html = ErrorTemplate {
        service: SERVICE,
        title,
        message,
        hint,
    }
    .render();
    Page::new(status, html, csp(None))
}

/// The sign-out confirmation.
pub fn logout(
    client_name: Option<&str>,
    csrf: &str,
    hidden: &[(&'static str, String)],
    redirect_origin: Option<&str>,
) -> Page {
    let html = LogoutTemplate {
        service: SERVICE,
        client_name,
        csrf,
        hidden,
    }
    .render();
    Page::new(StatusCode::OK, html, csp(redirect_origin))
}

/// The page after a sign-out with nowhere to go back to.
pub fn signed_out() -> Page {
    let html = SignedOutTemplate { service: SERVICE }.render();
    Page::new(StatusCode::OK, html, csp(None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_login_page_escapes_what_it_shows_and_has_the_named_inputs() {
        let hidden = [("state", "\"><script>alert(1)</script>".to_owned())];
        let page = LoginTemplate {
            service: SERVICE,
            client_name: "<b>App</b>",
            error: Some("Wrong <password>"),
            csrf: "c",
            username: "a\"b",
            hidden: &hidden,
        }
        .render()
        .unwrap();
        assert!(!page.contains("<script>"));
        assert!(!page.contains("<b>App</b>"));
        assert!(page.contains("name=\"username\""));
        assert!(page.contains("name=\"password\" type=\"password\""));
        assert!(page.contains("role=\"alert\""));
        assert!(page.contains("aria-invalid=\"true\""));
        assert!(
            !page.contains("http://") && !page.contains("https://"),
            "no external asset"
        );
    }

    #[test]
    fn the_second_step_asks_for_a_one_time_code_and_offers_a_recovery_code() {
        let hidden = [("state", "\"><script>x</script>".to_owned())];
        let page = SecondFactorTemplate {
            service: SERVICE,
            client_name: "App",
            error: Some("Wrong code."),
            csrf: "c",
            pending: "p\"q",
            hidden: &hidden,
            passkey: false,
        }
        .render()
        .unwrap();
        assert!(!page.contains("<script>"));
        assert!(page.contains("autocomplete=\"one-time-code\""));
        assert!(page.contains("inputmode=\"numeric\""));
        assert!(page.contains("role=\"alert\""));
        assert!(page.contains("Recovery code"));
        assert!(page.contains("name=\"pending\" value=\"p&#34;q\""));
        assert!(!page.contains("<script"), "no script at all");
    }

    #[test]
    fn pages_forbid_framing_and_scripts() {
        let policy = csp(Some("https://app.example"));
        assert!(policy.contains("frame-ancestors 'none'"));
        assert!(policy.contains("default-src 'none'"));
        assert!(policy.contains("form-action 'self' https://app.example"));
        assert!(!policy.contains("script-src"));
        let login = login_csp(Some("https://app.example"));
        assert!(login.contains("script-src 'self'; connect-src 'self';"));
        assert!(!login.contains("unsafe-inline") && login.contains("frame-ancestors 'none'"));
    }
}
