//! Mail: the templates ([`compose`]), the transports ([`transport`]) and the worker that sends
//! the outbox ([`worker`]).

pub mod compose;
pub mod transport;
pub mod worker;

pub use compose::TemplateComposer;
pub use transport::{FileTransport, NoTransport, Sender, SmtpTransport};
pub use worker::{MailWorker, NotifyWaker};
