//! [`MailTransport`]s: SMTP with lettre (tokio, rustls), `.eml` files in a directory for
//! development, and none (production without `SMTP_URL`: mails stay queued).

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::domain::mail::{ClaimedMail, MailTransport, SendError};

/// How long one SMTP exchange may take: well within the worker's lease, so a mail is not
/// claimed again while its first attempt is still running.
const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

/// The SMTP connections kept open and reused (lettre's pool).
const SMTP_CONNECTIONS: u32 = 16;

/// The sender and the domain of `Message-ID`s.
#[derive(Clone)]
pub struct Sender {
    from: Mailbox,
    domain: String,
}

impl Sender {
    /// The sender `MAIL_FROM` names.
    ///
    /// # Errors
    /// A message naming `MAIL_FROM` when lettre does not accept it.
    pub fn parse(from: &str) -> Result<Self, String> {
        let from: Mailbox = from
            .parse()
            .map_err(|e| format!("MAIL_FROM is not a usable address: {e}"))?;
        let domain = from.email.domain().to_owned();
        Ok(Self { from, domain })
    }

    /// `mail` as a MIME message: plain text and HTML alternatives, with the outbox id as
    /// `Message-ID`, so a mail sent twice (a crash between the server's acceptance and the
    /// outbox's mark) is recognisable as one.
    fn message(&self, mail: &ClaimedMail) -> Result<Message, SendError> {
        let to: Mailbox = mail
            .to
            .parse()
            .map_err(|_| SendError("the recipient address is not accepted by lettre".into()))?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.content.subject.clone())
            .message_id(Some(format!("<{}@{}>", mail.id, self.domain)))
            .multipart(MultiPart::alternative_plain_html(
                mail.content.text.clone(),
                mail.content.html.clone(),
            ))
            .map_err(|e| SendError(format!("cannot build the message: {e}")))
    }
}

/// Sends over SMTP (`SMTP_URL`).
pub struct SmtpTransport {
    sender: Sender,
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl SmtpTransport {
    /// A transport for `url` (see `SMTP_URL`). Connects lazily: a server that is down now is
    /// retried with each mail.
    ///
    /// # Errors
    /// A message (without the URL's password) when the URL is unusable.
    pub fn new(url: &str, sender: Sender) -> Result<Self, String> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| format!("SMTP_URL is not usable: {}", describe(&e)))?
            .timeout(Some(SMTP_TIMEOUT))
            .pool_config(PoolConfig::new().max_size(SMTP_CONNECTIONS))
            .build();
        Ok(Self { sender, transport })
    }
}

/// A lettre error without what the server said (its reply may quote the address).
fn describe(error: &lettre::transport::smtp::Error) -> String {
    let kind = if error.is_permanent() {
        "permanent SMTP error"
    } else if error.is_transient() {
        "transient SMTP error"
    } else if error.is_timeout() {
        "SMTP timeout"
    } else if error.is_tls() {
        "TLS error"
    } else if error.is_client() {
        "SMTP client error"
    } else {
        "SMTP connection error"
    };
    match error.status() {
        Some(code) => format!("{kind} ({code})"),
        None => kind.to_owned(),
    }
}

#[async_trait]
impl MailTransport for SmtpTransport {
    async fn send(&self, mail: &ClaimedMail) -> Result<(), SendError> {
        let message = self.sender.message(mail)?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| SendError(describe(&e)))
    }
}

/// Writes each mail to `{dir}/{outbox id}.eml` (development without `SMTP_URL`).
pub struct FileTransport {
    sender: Sender,
    dir: PathBuf,
}

impl FileTransport {
    /// A transport writing into `dir` (created when missing).
    pub fn new(dir: PathBuf, sender: Sender) -> Self {
        Self { sender, dir }
    }
}

#[async_trait]
impl MailTransport for FileTransport {
    async fn send(&self, mail: &ClaimedMail) -> Result<(), SendError> {
        let bytes = self.sender.message(mail)?.formatted();
        let dir = self.dir.clone();
        let name = format!("{}.eml", mail.id);
        let path = tokio::task::spawn_blocking(move || -> std::io::Result<PathBuf> {
            std::fs::create_dir_all(&dir)?;
            // Written under another name and renamed: a reader never sees half a mail.
            let partial = dir.join(format!(".{name}.partial"));
            std::fs::write(&partial, bytes)?;
            let path = dir.join(name);
            std::fs::rename(&partial, &path)?;
            Ok(path)
        })
        .await
        .map_err(|e| SendError(format!("the file writer failed: {e}")))?
        .map_err(|e| SendError(format!("cannot write the mail file: {}", e.kind())))?;
        // Where, never to whom or the link it carries.
        tracing::info!(
            path = %path.display(),
            kind = mail.kind.as_str(),
            "mail written to the outbox directory (no SMTP_URL)"
        );
        Ok(())
    }
}

/// The transport of a process that sends nothing (production without `SMTP_URL`): the
/// worker is not started, so this is never asked; it refuses if it is.
pub struct NoTransport;

#[async_trait]
impl MailTransport for NoTransport {
    async fn send(&self, _: &ClaimedMail) -> Result<(), SendError> {
        Err(SendError("no SMTP_URL is configured".into()))
    }
}
