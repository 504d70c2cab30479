//! The pages behind the links of the recovery mails: choosing a new password, confirming an
//! address, and what happened after.

use askama::Template;
use axum::http::StatusCode;

use super::{csp, Page, SERVICE};

#[derive(Template)]
#[template(path = "reset_password.html")]
struct ResetPasswordTemplate<'a> {
    service: &'a str,
    error: Option<&'a str>,
    csrf: &'a str,
    token: &'a str,
    min_length: usize,
}

#[derive(Template)]
#[template(path = "verify_email.html")]
struct VerifyEmailTemplate<'a> {
    service: &'a str,
    csrf: &'a str,
    token: &'a str,
}

#[derive(Template)]
#[template(path = "done.html")]
struct DoneTemplate<'a> {
    service: &'a str,
    title: &'a str,
    message: &'a str,
}

/// The new-password form for `token`, with `status` and, after a failed attempt, why.
pub fn reset_password(
    status: StatusCode,
    csrf: &str,
    token: &str,
    min_length: usize,
    error: Option<&str>,
) -> Page {
    let html = ResetPasswordTemplate {
        service: SERVICE,
        error,
        csrf,
        token,
        min_length,
    }
    .render();
    Page::new(status, html, csp(None))
}

/// The confirmation button for a verification `token` (a link alone never verifies: mail
/// scanners open links).
pub fn verify_email(csrf: &str, token: &str) -> Page {
    let html = VerifyEmailTemplate {
        service: SERVICE,
        csrf,
        token,
    }
    .render();
    Page::new(StatusCode::OK, html, csp(None))
}

/// A page saying that something worked.
pub fn done(title: &str, message: &str) -> Page {
    let html = DoneTemplate {
        service: SERVICE,
        title,
        message,
    }
    .render();
    Page::new(StatusCode::OK, html, csp(None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reset_page_escapes_the_token_and_posts_its_form_with_a_csrf_field() {
        let page = ResetPasswordTemplate {
            service: SERVICE,
            error: Some("<b>bad</b>"),
            csrf: "c",
            token: "\"><script>",
            min_length: 8,
        }
        .render()
        .unwrap();
        assert!(!page.contains("<script>") && !page.contains("<b>bad</b>"));
        assert!(page.contains("action=\"/auth/password-reset/form\""));
        assert!(page.contains("name=\"csrf\" value=\"c\""));
        assert!(page.contains("name=\"new_password\" type=\"password\""));
    }
}
