//! [`MailComposer`] with askama templates (`templates/mail/`): a plain-text and an HTML body
//! per mail, with links to the configured public URL (the issuer), never to a request's `Host`.

use askama::Template;

use crate::domain::mail::{MailComposer, MailContent, MailMessage};

#[derive(Template)]
#[template(path = "mail/verification.txt")]
struct VerificationText<'a> {
    username: &'a str,
    link: &'a str,
}

#[derive(Template)]
#[template(path = "mail/verification.html")]
struct VerificationHtml<'a> {
    username: &'a str,
    link: &'a str,
}

#[derive(Template)]
#[template(path = "mail/password_reset.txt")]
struct ResetText<'a> {
    username: &'a str,
    link: &'a str,
}

#[derive(Template)]
#[template(path = "mail/password_reset.html")]
struct ResetHtml<'a> {
    username: &'a str,
    link: &'a str,
}

/// Writes mails whose links start with `public_url`.
pub struct TemplateComposer {
    public_url: String,
}

impl TemplateComposer {
    /// A composer linking to `public_url` (the issuer: `JWT_ISSUER`).
    pub fn new(public_url: &str) -> Self {
        Self {
            public_url: public_url.trim_end_matches('/').to_owned(),
        }
    }
}

fn rendered(result: Result<String, askama::Error>) -> String {
    result.unwrap_or_else(|error| {
        // The templates are compiled in: a failure is a bug, and the mail still goes out.
        tracing::error!(%error, "mail template failed");
        String::new()
    })
}

impl MailComposer for TemplateComposer {
    fn compose(&self, message: MailMessage<'_>) -> MailContent {
        match message {
            MailMessage::Verification { username, token } => {
                let link = format!(
                    "{}/auth/email/verify?token={}",
                    self.public_url,
                    token.expose()
                );
                MailContent {
                    subject: "Confirm your e-mail address".into(),
                    text: rendered(
                        VerificationText {
                            username,
                            link: &link,
                        }
                        .render(),
                    ),
                    html: rendered(
                        VerificationHtml {
                            username,
                            link: &link,
                        }
                        .render(),
                    ),
                }
            }
            MailMessage::PasswordReset { username, token } => {
                let link = format!(
                    "{}/auth/password-reset?token={}",
                    self.public_url,
                    token.expose()
                );
                MailContent {
                    subject: "Reset your password".into(),
                    text: rendered(
                        ResetText {
                            username,
                            link: &link,
                        }
                        .render(),
                    ),
                    html: rendered(
                        ResetHtml {
                            username,
                            link: &link,
                        }
                        .render(),
                    ),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::mail::MailToken;

    #[test]
    fn links_point_at_the_public_url_and_the_html_body_is_escaped() {
        let composer = TemplateComposer::new("https://auth.example/");
        let token = MailToken::generate();
        let mail = composer.compose(MailMessage::PasswordReset {
            username: "<b>x</b>",
            token: &token,
        });
        let link = format!(
            "https://auth.example/auth/password-reset?token={}",
            token.expose()
        );
        assert!(mail.text.contains(&link));
        assert!(mail.html.contains(&link));
        assert!(mail.text.contains("<b>x</b>"), "plain text is not escaped");
        assert!(!mail.html.contains("<b>x</b>"), "HTML is escaped");
        let mail = composer.compose(MailMessage::Verification {
            username: "x",
            token: &token,
        });
        assert!(mail
            .text
            .contains("https://auth.example/auth/email/verify?token="));
    }
}
