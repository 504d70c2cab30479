//! `auth-service seed` (also `cargo run --bin seed`): create users idempotently.
//!
//! - no flags: the demo set, an `admin` (roles user + admin) and a `demo` user; their passwords
//!   are taken from `--admin-password` / `--demo-password` or generated and printed once;
//! - `--username U --password P [--role admin]`: one user;
//! - `--from-file users.json|users.csv`: many (see `--help` for the columns);
//! - `--client-name N --client-type T --redirect-uri U [...]`: one OAuth client (`clients.rs`),
//!   whose id, and secret when confidential, are printed once.
//!
//! A user whose username exists already is left in place ("skipped"). Invalid rows are reported
//! with their reason and make the exit status 1. Standard output carries only the report and
//! the generated passwords; logs and progress go to standard error.

mod clients;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use base64::Engine;
use serde::Deserialize;

use super::bootstrap::build_seed_services;
use super::config::{Settings, SEED_ADMIN_PASSWORD, SEED_DEMO_PASSWORD, SEED_PROGRESS_EVERY};
use super::crypto::argon2::import_problem;
use super::telemetry::{self, LogStream};
use crate::application::{AppError, ImportedUser, NewUser, RequestContext, UserService};
use crate::domain::user::{Password, PasswordHash};

/// The flags of `seed`.
#[derive(clap::Args, Debug)]
#[command(
    about = "Create users in the auth-service database, idempotently",
    long_about = "Create users in the auth-service database (DATABASE_URL, from the environment or .env.{APP_ENV}), idempotently: existing usernames are skipped.\n\nWithout flags, creates the demo set: `admin` (roles user, admin) and `demo` (role user), printing generated passwords once.\n\nThe same command is `auth-service seed` and `cargo run --bin seed`. Standard output holds only the report (and generated passwords); logs and progress go to standard error.",
    after_help = "FILES:\n  JSON: an array of objects {\"username\", \"password\" or \"password_hash\", \"email\"?, \"full_name\"?, \"roles\"?: [\"admin\"] or \"user admin\"}\n  CSV:  a header row with username,password,password_hash[,email][,full_name][,roles] (roles space-separated)\n  Each row gives a plaintext password or an existing hash (argon2 PHC, or bcrypt $2a$/$2b$/$2y$ as passlib writes it);\n  bcrypt hashes are upgraded to argon2id at the user's first login. Invalid rows are reported and skipped\n\nEXAMPLES:\n  cargo run -- seed\n  cargo run -- seed --username alice --password 'correct horse battery' --role admin\n  cargo run -- seed --from-file users.csv\n  cargo run -- seed --client-name Billing --client-type confidential --redirect-uri https://billing.example.com/cb\n  cargo run --bin seed -- --from-file users.csv"
)]
pub struct SeedArgs {
    /// Create one user with this username (needs --password).
    #[arg(long, requires = "password", conflicts_with = "from_file")]
    pub username: Option<String>,
    /// The password of --username.
    #[arg(long, requires = "username")]
    pub password: Option<String>,
    /// Extra role for --username (repeatable); `user` is always given.
    #[arg(long = "role", requires = "username")]
    pub roles: Vec<String>,
    /// Import users from a .json or .csv file.
    #[arg(long, value_name = "FILE")]
    pub from_file: Option<PathBuf>,
    /// Password for the demo `admin` (generated and printed when absent).
    #[arg(long, env = SEED_ADMIN_PASSWORD, hide_env_values = true)]
    pub admin_password: Option<String>,
    /// Password for the demo `demo` user (generated and printed when absent).
    #[arg(long, env = SEED_DEMO_PASSWORD, hide_env_values = true)]
    pub demo_password: Option<String>,
    /// Boxed: the client flags would make `seed`'s arguments the command line's one large
    /// variant.
    #[command(flatten)]
    pub client: Box<clients::ClientArgs>,
}

/// One user to create, from flags or a file row.
#[derive(Debug, Deserialize)]
struct Row {
    username: String,
    #[serde(default)]
    password: Option<String>,
    /// An existing argon2 PHC or bcrypt hash, instead of `password`.
    #[serde(default)]
    password_hash: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    full_name: Option<String>,
    #[serde(default)]
    roles: Option<RolesField>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RolesField {
    List(Vec<String>),
    Words(String),
}

/// What a row asks for, once its password column is known.
enum NewAccount {
    Plain(NewUser),
    Imported(ImportedUser),
}

impl Row {
    fn into_account(self) -> Result<NewAccount, String> {
        let mut roles: Vec<String> = match self.roles {
            Some(RolesField::List(list)) => list,
            Some(RolesField::Words(words)) => words.split_whitespace().map(String::from).collect(),
            None => Vec::new(),
        };
        roles.push("user".into());
        let blank_is_none = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        let (email, full_name) = (blank_is_none(self.email), blank_is_none(self.full_name));
        match (
            blank_is_none(self.password),
            blank_is_none(self.password_hash),
        ) {
            (Some(password), None) => Ok(NewAccount::Plain(NewUser {
                username: self.username,
                password: Password::candidate(&password),
                email,
                full_name,
                roles: Some(roles),
            })),
            (None, Some(hash)) => Ok(NewAccount::Imported(ImportedUser {
                username: self.username,
                // Hashes never contain white space; a spreadsheet may have added some.
                password_hash: PasswordHash::new(hash.trim().to_owned()),
                email,
                full_name,
                roles: Some(roles),
            })),
            _ => Err("needs exactly one of password and password_hash".into()),
        }
    }
}

/// Progress of a file import: a bar on a terminal, a line every few seconds otherwise (logs).
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    total: usize,
    done: usize,
    /// Rows between two progress lines when not on a terminal (`SEED_PROGRESS_EVERY`, 1000).
    every: usize,
    last_line: std::time::Instant,
}

impl Progress {
    fn new(total: usize) -> Self {
        use std::io::IsTerminal;
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(total as u64);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} rows, {per_sec}, eta {eta} {msg}",
            ) {
                bar.set_style(style);
            }
            bar
        });
        Self {
            bar,
            total,
            done: 0,
            every: std::env::var(SEED_PROGRESS_EVERY)
                .ok()
                .and_then(|v| v.parse().ok())
                .filter(|n| *n > 0)
                .unwrap_or(1000),
            last_line: std::time::Instant::now(),
        }
    }

    fn advance(&mut self, summary: &Summary) {
        self.done += 1;
        let counts = format!(
            "{} created, {} skipped, {} rejected",
            summary.created,
            summary.skipped,
            summary.rejected.len()
        );
        match &self.bar {
            Some(bar) => {
                bar.inc(1);
                bar.set_message(counts);
            }
            None if self.done.is_multiple_of(self.every)
                || self.last_line.elapsed() >= std::time::Duration::from_secs(5) =>
            {
                eprintln!("seed: {}/{} rows ({counts})", self.done, self.total);
                self.last_line = std::time::Instant::now();
            }
            None => {}
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[derive(Default)]
struct Summary {
    created: usize,
    skipped: usize,
    rejected: Vec<String>,
}

fn generated_password() -> String {
    let mut bytes = [0u8; 18];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The file's rows, each parsed on its own: a malformed row is reported, not fatal.
fn read_rows(path: &Path) -> Result<Vec<Result<Row, String>>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    match path.extension().and_then(|e| e.to_str()) {
        Some("json") => {
            let items: Vec<serde_json::Value> =
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(items
                .into_iter()
                .map(|item| serde_json::from_value(item).map_err(|e| e.to_string()))
                .collect())
        }
        Some("csv") => Ok(csv::Reader::from_reader(text.as_bytes())
            .deserialize()
            .map(|row| row.map_err(|e| e.to_string()))
            .collect()),
        _ => Err(format!("{}: expected a .json or .csv file", path.display())),
    }
}

async fn create(users: &UserService, row: Row, label: &str, summary: &mut Summary) -> bool {
    let username = row.username.clone();
    let hash = row.password_hash.clone();
    let ctx = RequestContext::default();
    let outcome = match row.into_account() {
        Ok(NewAccount::Plain(user)) => users.create_user(user, &ctx).await,
        Ok(NewAccount::Imported(user)) => users.import_user(user, &ctx).await,
        Err(reason) => {
            summary
                .rejected
                .push(format!("{label} '{username}': {reason}"));
            return false;
        }
    };
    match outcome {
        Ok(_) => {
            summary.created += 1;
            true
        }
        Err(AppError::UsernameTaken) => {
            summary.skipped += 1;
            false
        }
        Err(AppError::Validation(errors)) => {
            let reasons: Vec<String> = errors
                .iter()
                .map(|error| match (error.field.as_str(), &hash) {
                    // Say what exactly is wrong with the hash (never quoting it).
                    ("password_hash", Some(hash)) => match import_problem(hash.trim()) {
                        Some(problem) => format!("{error}: {problem}"),
                        None => error.to_string(),
                    },
                    _ => error.to_string(),
                })
                .collect();
            summary
                .rejected
                .push(format!("{label} '{username}': {}", reasons.join("; ")));
            false
        }
        Err(error) => {
            summary
                .rejected
                .push(format!("{label} '{username}': {error}"));
            false
        }
    }
}

/// Runs `seed` with `args` on `settings`: logs on standard error, the report on standard
/// output; the exit status is 1 when a row was rejected or the database cannot be opened.
pub async fn run(args: SeedArgs, settings: &Settings) -> ExitCode {
    telemetry::init(settings.logging.format, "warn", LogStream::Stderr);
    let (users, client_service) = match build_seed_services(settings).await {
        Ok(services) => services,
        Err(error) => {
            eprintln!("seed: {error}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(client) = (*args.client).into_new_client() {
        return clients::create(&client_service, client).await;
    }
    let users = &users;
    let mut summary = Summary::default();
    if let Some(path) = &args.from_file {
        let rows = match read_rows(path) {
            Ok(rows) => rows,
            Err(error) => {
                eprintln!("seed: {error}");
                return ExitCode::FAILURE;
            }
        };
        let mut progress = Progress::new(rows.len());
        for (i, row) in rows.into_iter().enumerate() {
            let label = format!("row {}", i + 1);
            match row {
                Ok(row) => {
                    create(users, row, &label, &mut summary).await;
                }
                Err(reason) => summary.rejected.push(format!("{label}: {reason}")),
            }
            progress.advance(&summary);
        }
        progress.finish();
    } else if let (Some(username), Some(password)) = (args.username, args.password) {
        let row = Row {
            username,
            password: Some(password),
            password_hash: None,
            email: None,
            full_name: None,
            roles: Some(RolesField::List(args.roles)),
        };
        create(users, row, "user", &mut summary).await;
    } else {
        for (username, role, given) in [
            ("admin", "admin", args.admin_password),
            ("demo", "user", args.demo_password),
        ] {
            let generated = given.is_none();
            let password = given.unwrap_or_else(generated_password);
            let row = Row {
                username: username.into(),
                password: Some(password.clone()),
                password_hash: None,
                email: None,
                full_name: None,
                roles: Some(RolesField::Words(role.into())),
            };
            if create(users, row, "demo user", &mut summary).await && generated {
                println!("created {username} with password: {password}");
            }
        }
    }
    println!(
        "seed: {} created, {} skipped (already exist), {} rejected",
        summary.created,
        summary.skipped,
        summary.rejected.len()
    );
    for reason in &summary.rejected {
        println!("  rejected {reason}");
    }
    if summary.rejected.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
