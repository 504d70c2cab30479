//! The tracing subscriber: human-readable in development, JSON lines in production.
//!
//! Log lines carry what clients send (usernames, paths, methods, user agents, request ids), so no
//! field may be able to start a line of its own or drive the operator's terminal. JSON lines are
//! safe as they are: serde escapes every control character in a string. The human-readable format
//! writes values raw, so it formats fields with [`EscapedFields`], which escapes control
//! characters in every field value and in the message. Colours are used only on a terminal.

use std::fmt::{self, Write as _};
use std::io::IsTerminal;

use tracing::field::{Field, Visit};
use tracing::Subscriber;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FormatFields, MakeWriter};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

use super::config::{LogFormat, LOG_FILTER_VARIABLE};

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    /// Standard output: the server, whose only output is its log.
    Stdout,
    /// Standard error: commands whose standard output is for the user (`seed`, `migrate`).
    Stderr,
}

/// Installs the global subscriber, writing to `stream`, in colour only when that stream is a
/// terminal (never in a file or a pipe). The level comes from `RUST_LOG`, else `default_level`.
pub fn init(format: LogFormat, default_level: &str, stream: LogStream) {
    let filter = EnvFilter::try_from_env(LOG_FILTER_VARIABLE)
        .unwrap_or_else(|_| EnvFilter::new(default_level));
    // `try_init`: a second call (tests) keeps the first subscriber.
    let _ = match stream {
        LogStream::Stdout => {
            let ansi = std::io::stdout().is_terminal();
            subscriber(format, filter, ansi, std::io::stdout).try_init()
        }
        LogStream::Stderr => {
            let ansi = std::io::stderr().is_terminal();
            subscriber(format, filter, ansi, std::io::stderr).try_init()
        }
    };
}

/// The subscriber of `format`, writing to `writer`.
fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    ansi: bool,
    writer: W,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi)
        .with_writer(writer);
    match format {
        LogFormat::Json => Box::new(builder.json().flatten_event(true).finish()),
        LogFormat::Pretty => Box::new(builder.compact().fmt_fields(EscapedFields).finish()),
    }
}

/// Formats fields as the default formatter does (`message key=value ...`, string values quoted)
/// but escapes, in every value and in the message, the characters that could forge a line or
/// reach the terminal: C0 and C1 controls (`\n`, `\r`, ESC ...), DEL, the Unicode line and
/// paragraph separators and the bidirectional-text controls.
#[derive(Debug, Default, Clone, Copy)]
pub struct EscapedFields;

impl<'writer> FormatFields<'writer> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = EscapingVisitor {
            writer,
            empty: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct EscapingVisitor<'writer> {
    writer: Writer<'writer>,
    empty: bool,
    result: fmt::Result,
}

impl EscapingVisitor<'_> {
    /// Writes the separator and `name=` (nothing for the message); `false` to skip the field.
    fn begin(&mut self, field: &Field) -> bool {
        if self.result.is_err() || field.name().starts_with("log.") {
            return false;
        }
        let separator = if self.empty { "" } else { " " };
        self.empty = false;
        self.result = match field.name() {
            "message" => self.writer.write_str(separator),
            name => write!(
                self.writer,
                "{separator}{}=",
                name.strip_prefix("r#").unwrap_or(name)
            ),
        };
        self.result.is_ok()
    }
}

impl Visit for EscapingVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if !self.begin(field) {
            return;
        }
        let mut out = Escaping(&mut self.writer);
        self.result = if field.name() == "message" {
            out.write_str(value)
        } else {
            write!(out, "{value:?}")
        };
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if !self.begin(field) {
            return;
        }
        self.result = write!(Escaping(&mut self.writer), "{value:?}");
    }
}

/// A writer that escapes the characters [`EscapedFields`] names.
struct Escaping<'a, W: fmt::Write>(&'a mut W);

impl<W: fmt::Write> fmt::Write for Escaping<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s;
        while let Some(at) = rest.find(must_escape) {
            self.0.write_str(&rest[..at])?;
            let c = rest[at..].chars().next().expect("found at a character");
            match c {
                '\n' => self.0.write_str("\\n")?,
                '\r' => self.0.write_str("\\r")?,
                '\t' => self.0.write_str("\\t")?,
                c => write!(self.0, "\\u{{{:x}}}", u32::from(c))?,
            }
            rest = &rest[at + c.len_utf8()..];
        }
        self.0.write_str(rest)
    }
}

fn must_escape(c: char) -> bool {
    c.is_control() // C0, DEL, C1
        || matches!(
            c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    const FORGED: &str = "alice\nINFO forged: admin logged in\r\x1b[31mred\x1b[0m\u{9b}\u{202e}";

    /// What `log` writes through the subscriber of `format`, with colours if `ansi`.
    fn captured(format: LogFormat, ansi: bool, log: impl FnOnce()) -> String {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = buffer.clone();
        let writer = move || Sink(sink.clone());
        let subscriber = subscriber(format, EnvFilter::new("info"), ansi, writer);
        tracing::subscriber::with_default(subscriber, log);
        let bytes = buffer.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    /// Logs through `format` as the server does, in colour, with attacker text in a span field
    /// (Display), an event field (str), a Debug field and the message, and returns the output.
    fn logged(format: LogFormat) -> String {
        captured(format, true, || {
            let span = tracing::info_span!("login", username = %FORGED);
            let _entered = span.enter();
            tracing::warn!(
                user_agent = FORGED,
                detail = ?Some(FORGED),
                "audit {}",
                FORGED
            );
        })
    }

    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn pretty_lines_escape_control_characters_in_every_field_and_the_message() {
        let output = logged(LogFormat::Pretty);
        assert_eq!(output.matches('\n').count(), 1, "one line: {output:?}");
        assert!(
            !output.contains('\r') && !output.contains('\u{9b}'),
            "{output:?}"
        );
        assert!(!output.contains('\u{202e}'), "{output:?}");
        // Colours are on (ansi: true), so the only ESC bytes are the formatter's own styling;
        // none is followed by the attacker's `[31m` or sits inside a value.
        assert!(!output.contains("\x1b[31mred"), "{output:?}");
        assert!(output.contains("alice\\nINFO forged"), "{output:?}");
        assert!(output.contains("\\u{1b}[31mred"), "{output:?}");
        assert!(output.contains("username=alice\\n"), "{output:?}");
        assert!(output.contains("audit alice\\n"), "{output:?}");
    }

    #[test]
    fn pretty_lines_without_colours_hold_no_escape_byte_at_all() {
        let output = captured(LogFormat::Pretty, false, || {
            tracing::info!(path = %FORGED, "request");
        });
        assert!(!output.contains('\x1b'), "{output:?}");
        assert_eq!(output.lines().count(), 1, "{output:?}");
    }

    #[test]
    fn json_lines_are_escaped_by_serde() {
        let output = logged(LogFormat::Json);
        assert_eq!(output.matches('\n').count(), 1, "one line: {output:?}");
        assert!(
            !output.contains('\x1b') && !output.contains('\r'),
            "{output:?}"
        );
        let line: serde_json::Value = serde_json::from_str(output.trim_end()).unwrap();
        assert_eq!(line["user_agent"], FORGED, "{line}");
    }

    #[test]
    fn escaping_keeps_ordinary_text_and_marks_each_control() {
        let mut out = String::new();
        write!(Escaping(&mut out), "naïve café \u{1}\u{7f}\u{85}\u{2028}ok").unwrap();
        assert_eq!(out, "naïve café \\u{1}\\u{7f}\\u{85}\\u{2028}ok");
    }
}
