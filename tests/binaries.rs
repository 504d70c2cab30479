//! The two binaries as an operator runs them: start-up checks, signals, and the seed command.

use std::process::{Command, Output};
use std::time::Duration;

use auth_service::application::RequestContext;
use auth_service::domain::user::Password;
use auth_service::infrastructure::bootstrap::build_services;
use auth_service::infrastructure::clock::SystemClock;
use auth_service::infrastructure::config::Settings;
use tempfile::TempDir;

mod support;

use support::process::{command, ServerProcess, SERVER};

const SEED: &str = env!("CARGO_BIN_EXE_seed");

fn cheap_argon2(db: &str) -> Vec<(&'static str, &str)> {
    vec![
        ("DATABASE_URL", db),
        ("ARGON2_MEMORY_KIB", "256"),
        ("ARGON2_ITERATIONS", "1"),
        ("RUST_LOG", "info"),
        ("LOG_FORMAT", "json"),
    ]
}

#[test]
fn production_refuses_to_start_without_a_strong_secret_and_says_what_to_set() {
    let dir = TempDir::new().unwrap();
    for secret in [None, Some("too-short")] {
        let mut vars = vec![("APP_ENV", "production")];
        if let Some(secret) = secret {
            vars.push(("JWT_SECRET", secret));
        }
        let output = command(SERVER, dir.path(), &vars).output().unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("JWT_SECRET"), "{stderr}");
        assert!(stderr.contains("32"), "{stderr}");
        if let Some(secret) = secret {
            assert!(
                !stderr.contains(secret),
                "the secret itself is never printed"
            );
        }
    }
}

#[test]
fn production_refuses_to_start_without_an_mfa_encryption_key_and_says_what_to_set() {
    let dir = TempDir::new().unwrap();
    for key in [None, Some("dG9vLXNob3J0")] {
        let mut vars = vec![
            ("APP_ENV", "production"),
            ("JWT_SECRET", "a-production-secret-that-is-long-enough-1234"),
        ];
        if let Some(key) = key {
            vars.push(("MFA_ENCRYPTION_KEY", key));
        }
        let output = command(SERVER, dir.path(), &vars).output().unwrap();
        assert!(!output.status.success());
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(said.contains("MFA_ENCRYPTION_KEY"), "{said}");
        assert!(said.contains("openssl rand"), "{said}");
        assert!(
            key.is_none_or(|key| !said.contains(key)),
            "never the key itself"
        );
        assert!(!dir.path().join("auth.db").exists());
    }
}

/// A random `MFA_ENCRYPTION_KEY` for the production starts.
const MFA_KEY: &str = "Kd8LSQclKTFUGxsUBT3BFJw2zyGAPKUOrEswAwzLKN0=";

#[test]
fn production_refuses_to_start_without_an_id_token_key_and_says_what_to_set() {
    let dir = TempDir::new().unwrap();
    let vars = [
        ("APP_ENV", "production"),
        ("JWT_SECRET", "a-production-secret-that-is-long-enough-1234"),
        ("MFA_ENCRYPTION_KEY", MFA_KEY),
    ];
    let output = command(SERVER, dir.path(), &vars).output().unwrap();
    assert!(!output.status.success());
    // Reported as the server logs (standard output), before any database is created.
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(said.contains("OIDC_SIGNING_KEY_FILE"), "{said}");
    assert!(said.contains("openssl genpkey"), "{said}");
    assert!(!dir.path().join("auth.db").exists());
}

#[tokio::test]
async fn the_server_creates_its_database_serves_and_stops_cleanly_on_sigterm() {
    let dir = TempDir::new().unwrap();
    let db = format!("sqlite://{}/fresh.db", dir.path().display());
    let mut server = ServerProcess::start(dir.path(), &cheap_argon2(&db));
    let address = server.base_url.trim_start_matches("http://").to_owned();
    let health: serde_json::Value = reqwest::get(format!("http://{address}/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    assert!(
        dir.path().join("fresh.db").exists(),
        "the SQLite file was created"
    );

    // A register, a login and a refresh, whose secrets must not reach the log.
    let client = reqwest::Client::new();
    let password = "a-very-secret-passphrase";
    let created = client
        .post(format!("http://{address}/users"))
        .json(&serde_json::json!({"username": "logcheck", "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let tokens: serde_json::Value = client
        .post(format!("http://{address}/auth/token"))
        .body(format!("username=logcheck&password={password}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refreshed = client
        .post(format!("http://{address}/auth/refresh"))
        .json(&serde_json::json!({"refresh_token": refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), 200);

    let pid = server.pid().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = server.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "a graceful stop exits 0: {status:?}");
    let rest: Vec<String> = server.logs.try_iter().collect();
    let all = rest.join("\n");
    assert!(
        all.contains("login_succeeded") && all.contains("\"ip\":\"127.0.0.1\""),
        "login events carry the client IP: {all}"
    );
    for secret in [password, refresh.as_str(), access.as_str()] {
        assert!(!all.contains(secret), "a secret reached the log");
    }
    assert!(
        rest.iter().any(|l| l.contains("shutdown signal received")),
        "{rest:?}"
    );
    assert!(
        rest.iter().any(|l| l.contains("\"path\":\"/health\"")),
        "one line per request: {rest:?}"
    );
}

fn run(mut command: Command) -> (Output, String) {
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    (output, stdout)
}

async fn login_works(db: &str, username: &str, password: &str) -> bool {
    let vars = cheap_argon2(db);
    let settings = Settings::from_lookup(|key| {
        vars.iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| (*v).to_owned())
    })
    .unwrap();
    let services = build_services(&settings, std::sync::Arc::new(SystemClock))
        .await
        .unwrap();
    services
        .auth
        .login(
            username,
            &Password::candidate(password),
            None,
            &RequestContext::default(),
        )
        .await
        .is_ok()
}

#[tokio::test]
async fn seed_creates_the_demo_users_once_and_prints_generated_passwords() {
    let dir = TempDir::new().unwrap();
    let db = format!("sqlite://{}/seed.db", dir.path().display());
    let (output, stdout) = run(command(SEED, dir.path(), &cheap_argon2(&db)));
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("2 created, 0 skipped"), "{stdout}");
    let password = stdout
        .lines()
        .find_map(|l| l.strip_prefix("created admin with password: "))
        .expect("the admin password is printed once")
        .to_owned();
    assert!(login_works(&db, "admin", &password).await);

    let (output, stdout) = run(command(SEED, dir.path(), &cheap_argon2(&db)));
    assert!(output.status.success());
    assert!(stdout.contains("0 created, 2 skipped"), "{stdout}");
    assert!(
        !stdout.contains("password:"),
        "no password printed for existing users"
    );
}

#[tokio::test]
async fn seed_creates_one_user_from_flags() {
    let dir = TempDir::new().unwrap();
    let db = format!("sqlite://{}/seed.db", dir.path().display());
    let mut cmd = command(SEED, dir.path(), &cheap_argon2(&db));
    cmd.args([
        "--username",
        "carol",
        "--password",
        "carols passphrase",
        "--role",
        "admin",
    ]);
    let (output, stdout) = run(cmd);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("1 created"), "{stdout}");
    assert!(login_works(&db, "carol", "carols passphrase").await);
}

#[tokio::test]
async fn seed_imports_a_csv_file_and_reports_duplicates_and_invalid_rows() {
    let dir = TempDir::new().unwrap();
    let db = format!("sqlite://{}/seed.db", dir.path().display());
    let file = dir.path().join("users.csv");
    std::fs::write(
        &file,
        "username,password,email,full_name,roles\n\
         dora,dora passphrase,dora@example.com,Dora,user\n\
         eve,eve passphrase,,,admin\n\
         DORA,another passphrase,,,\n\
         x,short,,,\n",
    )
    .unwrap();
    let mut cmd = command(SEED, dir.path(), &cheap_argon2(&db));
    cmd.arg("--from-file").arg(&file);
    let (output, stdout) = run(cmd);
    assert!(
        !output.status.success(),
        "an invalid row makes the exit status non-zero"
    );
    assert!(
        stdout.contains("2 created, 1 skipped (already exist), 1 rejected"),
        "{stdout}"
    );
    assert!(stdout.contains("row 4 'x'"), "{stdout}");
    assert!(login_works(&db, "eve", "eve passphrase").await);

    let json = dir.path().join("users.json");
    std::fs::write(
        &json,
        r#"[{"username": "frank", "password": "franks passphrase", "roles": ["admin"]},
            {"username": "eve", "password": "eve passphrase"}]"#,
    )
    .unwrap();
    let mut cmd = command(SEED, dir.path(), &cheap_argon2(&db));
    cmd.arg("--from-file").arg(&json);
    let (output, stdout) = run(cmd);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("1 created, 1 skipped"), "{stdout}");
}

#[test]
fn seed_explains_itself() {
    let dir = TempDir::new().unwrap();
    let (output, stdout) = run({
        let mut cmd = command(SEED, dir.path(), &[]);
        cmd.arg("--help");
        cmd
    });
    assert!(output.status.success());
    for flag in ["--username", "--password", "--role", "--from-file"] {
        assert!(stdout.contains(flag), "{stdout}");
    }
}

#[tokio::test]
async fn seed_imports_existing_bcrypt_and_argon2_hashes_without_a_password_reset() {
    let dir = TempDir::new().unwrap();
    let db = format!("sqlite://{}/seed.db", dir.path().display());
    let bcrypt_hash = bcrypt::hash("poc passphrase", 4).unwrap();
    let argon2_hash = "$argon2id$v=19$m=256,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$6qCqEZ7N1VPZ6z6iGfCSK5hJcVY6ZN/5x0zOebxCPDU";
    let file = dir.path().join("poc-export.json");
    std::fs::write(
        &file,
        serde_json::json!([
            {"username": "legacy", "password_hash": bcrypt_hash, "email": "legacy@example.com"},
            {"username": "modern", "password_hash": argon2_hash},
            {"username": "broken", "password_hash": "md5:abcdef"},
            {"username": "both", "password": "some passphrase", "password_hash": bcrypt_hash},
            {"username": "neither"},
            {"password": "row without a username"}
        ])
        .to_string(),
    )
    .unwrap();
    let mut cmd = command(SEED, dir.path(), &cheap_argon2(&db));
    cmd.arg("--from-file").arg(&file);
    let (output, stdout) = run(cmd);
    assert!(!output.status.success());
    assert!(
        stdout.contains("2 created, 0 skipped (already exist), 4 rejected"),
        "{stdout}"
    );
    assert!(stdout.contains("'broken': password_hash"), "{stdout}");
    assert!(stdout.contains("row 6:"), "{stdout}");
    assert!(login_works(&db, "legacy", "poc passphrase").await);
}

#[tokio::test]
async fn seed_rejects_malformed_bcrypt_hashes_with_the_reason_and_stores_none_of_them() {
    let dir = TempDir::new().unwrap();
    let db = format!("sqlite://{}/seed.db", dir.path().display());
    let good = bcrypt::hash("poc passphrase", 4).unwrap();
    let (prefix, rest) = good.split_at(7); // "$2b$04$", salt and checksum
    let malformed = [
        ("short", good[..59].to_owned(), "60 characters"),
        ("long", format!("{good}x"), "60 characters"),
        ("costzero", format!("$2b$00${rest}"), "outside 04-31"),
        ("costhigh", format!("$2b$32${rest}"), "outside 04-31"),
        (
            "costslow",
            format!("$2b$13${rest}"),
            "above the accepted 12",
        ),
        ("costword", format!("$2b$x4${rest}"), "two-digit cost"),
        (
            "alphabet",
            format!("{prefix}{}+{}", &rest[..5], &rest[6..]),
            "bcrypt base64",
        ),
        ("variant", format!("$2x$04${rest}"), "$2a$, $2b$ or $2y$"),
    ];
    let mut rows = vec![serde_json::json!({"username": "legacy", "password_hash": good})];
    rows.extend(
        malformed
            .iter()
            .map(|(name, hash, _)| serde_json::json!({"username": name, "password_hash": hash})),
    );
    let file = dir.path().join("poc-export.json");
    std::fs::write(&file, serde_json::Value::from(rows).to_string()).unwrap();
    let seed = || {
        let mut cmd = command(SEED, dir.path(), &cheap_argon2(&db));
        cmd.arg("--from-file").arg(&file);
        run(cmd)
    };
    let (output, stdout) = seed();
    assert!(!output.status.success());
    assert!(
        stdout.contains("1 created, 0 skipped (already exist), 8 rejected"),
        "{stdout}"
    );
    for (name, hash, reason) in &malformed {
        let line = stdout
            .lines()
            .find(|line| line.contains(&format!("'{name}': password_hash: ")))
            .unwrap_or_else(|| panic!("no line for {name}: {stdout}"));
        assert!(line.contains(reason), "{line}");
        assert!(!line.contains(&hash[7..]), "the hash is not echoed: {line}");
    }
    // Nothing of the malformed rows was stored: a second run rejects them again.
    let (_, stdout) = seed();
    assert!(
        stdout.contains("0 created, 1 skipped (already exist), 8 rejected"),
        "{stdout}"
    );
    assert!(login_works(&db, "legacy", "poc passphrase").await);
}

#[test]
fn the_server_explains_itself_and_reports_its_version() {
    let dir = TempDir::new().unwrap();
    let (output, stdout) = run({
        let mut cmd = command(SERVER, dir.path(), &[]);
        cmd.arg("--help");
        cmd
    });
    assert!(output.status.success());
    for subcommand in ["serve", "migrate", "check-config", "seed"] {
        assert!(stdout.contains(subcommand), "{stdout}");
    }
    let (output, stdout) = run({
        let mut cmd = command(SERVER, dir.path(), &[]);
        cmd.arg("--version");
        cmd
    });
    assert!(output.status.success());
    assert_eq!(
        stdout.trim(),
        format!("auth-service {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn check_config_prints_every_setting_with_secrets_masked() {
    let dir = TempDir::new().unwrap();
    let secret = "a-production-secret-that-is-long-enough-1234";
    let id_key = dir.path().join("oidc.pem");
    std::fs::write(&id_key, rsa_private_pem()).unwrap();
    let id_key = id_key.to_str().unwrap().to_owned();
    let vars = [
        ("APP_ENV", "production"),
        ("JWT_SECRET", secret),
        ("MFA_ENCRYPTION_KEY", MFA_KEY),
        ("DATABASE_URL", "postgres://app:pa55word@db.internal/auth"),
        ("OIDC_SIGNING_KEY_FILE", &id_key),
    ];
    let (output, stdout) = run({
        let mut cmd = command(SERVER, dir.path(), &vars);
        cmd.arg("check-config");
        cmd
    });
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("APP_ENV=production"));
    assert!(
        stdout.contains("DATABASE_URL=postgres://app:***@db.internal/auth"),
        "{stdout}"
    );
    assert!(
        stdout.contains("JWT_SECRET=******** (44 bytes)"),
        "{stdout}"
    );
    assert!(stdout.contains("LOGIN_MAX_FAILURES=5"));
    assert!(
        stdout.contains("MFA_ENCRYPTION_KEY=******** (32 bytes)"),
        "{stdout}"
    );
    assert!(!stdout.contains(MFA_KEY), "the MFA key is masked");
    assert!(stdout.contains("configuration OK: signing with HS256"));
    assert!(stdout.contains("ID tokens with RS256"), "{stdout}");
    assert!(!stdout.contains(secret) && !stdout.contains("pa55word"));

    // Without the ID tokens' key, production is not configured.
    let output = command(SERVER, dir.path(), &vars[..3])
        .arg("check-config")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("OIDC_SIGNING_KEY_FILE"));

    let broken = [
        ("JWT_ALGORITHM", "EdDSA"),
        ("JWT_PRIVATE_KEY_FILE", "/nonexistent/key.pem"),
    ];
    let output = command(SERVER, dir.path(), &broken)
        .arg("check-config")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("/nonexistent/key.pem"), "{stderr}");
}

#[tokio::test]
async fn migrate_prepares_the_database_and_exits() {
    let dir = TempDir::new().unwrap();
    let db = format!("sqlite://{}/migrated.db", dir.path().display());
    let (output, stdout) = run({
        let mut cmd = command(SERVER, dir.path(), &[("DATABASE_URL", &db)]);
        cmd.arg("migrate");
        cmd
    });
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("migrations applied"));
    let pool = sqlx::SqlitePool::connect(&db).await.unwrap();
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .fetch_all(&pool)
            .await
            .unwrap();
    for table in [
        "audit_events",
        "login_throttle",
        "refresh_tokens",
        "sessions",
        "users",
    ] {
        assert!(tables.iter().any(|t| t == table), "{tables:?}");
    }
}

#[tokio::test]
async fn seed_reports_progress_while_importing_a_file() {
    let dir = TempDir::new().unwrap();
    let db = format!("sqlite://{}/seed.db", dir.path().display());
    let file = dir.path().join("many.csv");
    let mut csv = String::from("username,password\n");
    for i in 0..6 {
        csv.push_str(&format!("bulk{i},bulk passphrase {i}\n"));
    }
    std::fs::write(&file, csv).unwrap();
    let mut vars = cheap_argon2(&db);
    vars.push(("SEED_PROGRESS_EVERY", "2"));
    let output = command(SEED, dir.path(), &vars)
        .arg("--from-file")
        .arg(&file)
        .output()
        .unwrap();
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for line in [
        "seed: 2/6 rows",
        "seed: 4/6 rows",
        "seed: 6/6 rows (6 created, 0 skipped, 0 rejected)",
    ] {
        assert!(stderr.contains(line), "{stderr}");
    }
}

#[tokio::test]
async fn pretty_logs_escape_forged_lines_and_terminal_escapes_from_clients() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let dir = TempDir::new().unwrap();
    let db = format!("sqlite://{}/pretty.db", dir.path().display());
    let vars = [
        ("DATABASE_URL", db.as_str()),
        ("ARGON2_MEMORY_KIB", "256"),
        ("ARGON2_ITERATIONS", "1"),
        ("RUST_LOG", "info"),
        ("LOG_FORMAT", "pretty"),
        ("PORT", "0"),
    ];
    let mut child = command(SERVER, dir.path(), &vars)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let child = KillOnDrop(child);
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = Vec::new();
        while reader.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
            let _ = tx.send(std::mem::take(&mut line));
        }
    });
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let address = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the server logs that it listens");
        let text = without_colours(&String::from_utf8_lossy(&line));
        lines.push(line);
        if let Some(rest) = text.split("address=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };

    // An attacker logs in and registers with a username that would forge a line and colour
    // the terminal, and sends a 60 KB made-up method.
    let forged = "mallory\nINFO forged: root logged in as admin\x1b[31m";
    let client = reqwest::Client::new();
    let response = client
        .post(format!("http://{address}/users"))
        .json(&serde_json::json!({"username": forged, "password": "a long enough password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "password")
        .append_pair("username", forged)
        .append_pair("password", "whatever it is")
        .finish();
    let response = client
        .post(format!("http://{address}/auth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let method = format!("R1{}", "Z".repeat(60 * 1024));
    let response = client
        .request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("http://{address}/health"),
        )
        .send()
        .await
        .unwrap();
    assert!(response.status().is_client_error());
    // Wait for the request lines of both.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            lines.push(line);
        }
        let seen = |needle: &str| {
            lines
                .iter()
                .any(|l| String::from_utf8_lossy(l).contains(needle))
        };
        if seen("login_failed") && seen("R1ZZZZ") && seen("status=422") {
            break;
        }
    }
    drop(child);
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
        lines.push(line);
    }

    let text: Vec<String> = lines
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    let all = text.join("");
    assert!(all.contains("login_failed"), "the login is logged: {all}");
    assert!(all.contains("R1ZZZZ"), "the method is logged: {all}");
    for line in &text {
        assert!(
            !without_colours(line)
                .trim_start()
                .starts_with("INFO forged"),
            "a forged line: {line:?}"
        );
    }
    for line in &text {
        assert!(!line.contains('\x1b'), "a raw ESC byte: {line:?}");
        assert!(
            line.len() < 4096,
            "an unbounded line of {} bytes",
            line.len()
        );
    }
}

/// `text` without ANSI colour sequences (`ESC [ ... letter`), to find what a line says.
fn without_colours(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A child process killed when the test ends, however it ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[cfg(unix)]
#[tokio::test]
async fn with_few_file_descriptors_a_slowloris_flood_does_not_stop_health_checks() {
    use std::os::unix::process::CommandExt;
    use std::process::Stdio;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let dir = TempDir::new().unwrap();
    let db = format!("sqlite://{}/fds.db", dir.path().display());
    let mut vars = cheap_argon2(&db);
    vars.push(("PORT", "0"));
    let mut server = command(SERVER, dir.path(), &vars);
    // SAFETY: only setrlimit, async-signal-safe, runs between fork and exec.
    unsafe {
        server.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 256,
                rlim_max: 256,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let mut child = server.stdout(Stdio::piped()).spawn().unwrap();
    let (address, _logs) = support::process::follow_logs(&mut child);
    let _child = KillOnDrop(child);

    // More connections than the process has descriptors, each trickling a request head.
    let stop = Arc::new(AtomicBool::new(false));
    let mut slow = Vec::new();
    for _ in 0..320 {
        let address = address.clone();
        let stop = stop.clone();
        slow.push(tokio::spawn(async move {
            let Ok(mut stream) = tokio::net::TcpStream::connect(&address).await else {
                return;
            };
            let mut chunk = [0u8; 256];
            for byte in b"GET /health/live HTTP/1.1\r\nHost: test\r\nX-Slow: "
                .iter()
                .chain(std::iter::repeat(&b'a'))
            {
                if stop.load(Ordering::SeqCst) || stream.write_all(&[*byte]).await.is_err() {
                    return;
                }
                match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut chunk)).await {
                    Err(_) => {}
                    Ok(_) => return, // closed (or answered) by the server
                }
            }
        }));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let client = reqwest::Client::new();
    for _ in 0..3 {
        let response = tokio::time::timeout(
            Duration::from_secs(5),
            client.get(format!("http://{address}/health/live")).send(),
        )
        .await
        .expect("/health/live answers within 5 s during the flood")
        .unwrap();
        assert_eq!(response.status(), 200);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for task in slow {
        task.abort();
    }
}

/// The resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// Sends `METHOD path HTTP/1.1` on a raw connection and reads the answer's status line.
fn raw_request(address: &str, method: &str) -> String {
    use std::io::{BufRead, BufReader, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let head = format!("{method} /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    let mut status = String::new();
    let _ = BufReader::new(stream).read_line(&mut status);
    status
}

#[test]
fn made_up_methods_leave_memory_and_metrics_flat() {
    let dir = TempDir::new().unwrap();
    let db = format!("sqlite://{}/methods.db", dir.path().display());
    let server = ServerProcess::start(dir.path(), &cheap_argon2(&db));
    let address = server.base_url.trim_start_matches("http://").to_owned();
    let metrics_size = || {
        let body = raw_metrics(&address);
        assert!(!body.contains("ZZZZ"), "a made-up method reached /metrics");
        body.len()
    };
    // Warm up with the same kind of traffic, so allocator pools and the per-thread metric
    // handles exist before the baseline.
    for i in 0..50 {
        raw_request(&address, &format!("W{i}{}", "Z".repeat(60_000)));
    }
    metrics_size(); // the scrape's own series exist from here on
    let (rss_before, metrics_before) = (rss_kib(server.pid()), metrics_size());
    // What the reviewer sent: 1,000 requests, each with its own 60 KB method, to any path.
    for i in 0..1_000 {
        raw_request(&address, &format!("R{i}{}", "Z".repeat(60_000)));
    }
    let (rss_after, metrics_after) = (rss_kib(server.pid()), metrics_size());
    // Before the fix: +147 MB of RSS and a 1.2 GB /metrics.
    assert!(
        rss_after < rss_before + 16 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
    assert!(
        metrics_after < metrics_before + 1024,
        "/metrics grew from {metrics_before} to {metrics_after} bytes"
    );
}

/// `GET /metrics` over a raw connection.
fn raw_metrics(address: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    let _ = stream.read_to_string(&mut body);
    body
}

#[test]
fn check_config_refuses_invalid_values_naming_what_is_accepted() {
    let dir = TempDir::new().unwrap();
    for (name, value, accepted) in [
        ("PORT", "abc", "must be a port number from 1 to 65535"),
        ("REGISTRATION_OPEN", "yes", "must be true or false"),
        ("DATABASE_URL", "auth.db", "use sqlite://auth.db"),
        ("LOG_FORMAT", "text", "must be one of pretty, json"),
    ] {
        let output = command(SERVER, dir.path(), &[(name, value)])
            .arg("check-config")
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{name}={value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&format!(
                "auth-service: configuration error: {name}='{value}'"
            )) && stderr.contains(accepted),
            "{stderr}"
        );
        assert!(output.stdout.is_empty(), "nothing printed before the error");
    }
}

/// `seed`, through `auth-service seed` and the `seed` binary: standard output holds only the
/// report and the generated passwords; the log (here at `info`, in colourable `pretty` format)
/// goes to standard error, and without colours since it is a pipe.
#[tokio::test]
async fn seed_prints_only_its_report_on_stdout_and_logs_to_stderr_without_colours() {
    let dir = TempDir::new().unwrap();
    let db = format!("sqlite://{}/seed.db", dir.path().display());
    let mut vars = cheap_argon2(&db);
    vars.retain(|(name, _)| *name != "LOG_FORMAT");
    vars.push(("LOG_FORMAT", "pretty"));
    let mut subcommand = command(SERVER, dir.path(), &vars);
    subcommand.arg("seed");
    let (output, stdout) = run(subcommand);
    assert!(output.status.success(), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(
        lines[0].starts_with("created admin with password: "),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with("created demo with password: "),
        "{stdout}"
    );
    assert_eq!(
        lines[2],
        "seed: 2 created, 0 skipped (already exist), 0 rejected"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("user_created"), "the audit log: {stderr}");
    for (stream, bytes) in [("stdout", &output.stdout), ("stderr", &output.stderr)] {
        assert!(!bytes.contains(&0x1b), "an ESC byte on {stream}: {stderr}");
    }
    let password = lines[0].rsplit(' ').next().unwrap();
    assert!(login_works(&db, "admin", password).await);

    // The seed binary is the same command: same report, the same log on standard error.
    let mut binary = command(SEED, dir.path(), &vars);
    binary.args(["--username", "carol", "--password", "carols passphrase"]);
    let (output, stdout) = run(binary);
    assert!(output.status.success(), "{stdout}");
    assert_eq!(
        stdout,
        "seed: 1 created, 0 skipped (already exist), 0 rejected\n"
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("user_created"));
    assert!(!output.stderr.contains(&0x1b));
}

#[tokio::test]
async fn seed_registers_a_client_and_prints_its_secret_once() {
    let dir = TempDir::new().unwrap();
    let db = format!("sqlite://{}/seed.db", dir.path().display());
    let mut cmd = command(SEED, dir.path(), &cheap_argon2(&db));
    cmd.args([
        "--client-name",
        "Billing",
        "--client-type",
        "confidential",
        "--redirect-uri",
        "https://billing.example.com/cb",
        "--redirect-uri",
        "http://127.0.0.1:8080/cb",
        "--grant-type",
        "client_credentials",
    ]);
    let (output, stdout) = run(cmd);
    assert!(output.status.success(), "{stdout}");
    let id = stdout
        .lines()
        .find_map(|l| l.strip_prefix("created client "))
        .expect("the client id is printed")
        .to_owned();
    let secret = stdout
        .lines()
        .find_map(|l| l.strip_prefix("client secret (shown once): "))
        .expect("the secret is printed")
        .to_owned();
    assert_eq!(secret.len(), 43);
    let options = auth_service::infrastructure::db::DbOptions {
        max_connections: 2,
        acquire_timeout: Duration::from_secs(5),
        statement_timeout: Duration::from_secs(5),
        session_cache_bytes: 16 << 20,
    };
    let repos = auth_service::infrastructure::db::connect(&db, &options)
        .await
        .unwrap();
    let id = auth_service::domain::client::ClientId::from_uuid(id.parse().unwrap());
    let client = repos.clients.find_by_id(id).await.unwrap().expect("stored");
    assert_eq!(client.redirect_uris.len(), 2);
    assert_eq!(client.grant_types.names(), ["client_credentials"]);
    let hash = client.secret_hash.expect("a confidential client's hash");
    assert_ne!(hash.as_str(), secret);
    assert!(hash.verify(&secret));

    let mut public = command(SEED, dir.path(), &cheap_argon2(&db));
    public.args([
        "--client-name",
        "Mobile",
        "--client-type",
        "public",
        "--redirect-uri",
        "http://example.com/cb",
        "--grant-type",
        "client_credentials",
    ]);
    let (output, stdout) = run(public);
    assert!(!output.status.success(), "{stdout}");
    assert!(stdout.contains("insecure_scheme"), "{stdout}");
    assert!(stdout.contains("not_allowed_for_public_client"), "{stdout}");
    assert!(!stdout.contains("client secret"), "{stdout}");
    assert_eq!(repos.clients.list(10, 0).await.unwrap().1, 1);
}

/// A fresh RSA-2048 private key, PKCS#8 PEM (for the ID tokens).
fn rsa_private_pem() -> String {
    use rsa::pkcs8::{EncodePrivateKey, LineEnding};
    let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
    key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string()
}

/// Development without `SMTP_URL`: a reset mail lands in `MAIL_OUTBOX_DIR` as a `.eml` file and
/// the log says where, never to whom or with which token; the link's page and the token work,
/// and SIGTERM still stops the server (and its mail worker) cleanly.
#[tokio::test]
async fn without_smtp_a_reset_mail_lands_in_the_outbox_directory_and_not_in_the_log() {
    let dir = TempDir::new().unwrap();
    let db = format!("sqlite://{}/mail.db", dir.path().display());
    let outbox = dir.path().join("mail-outbox");
    let outbox_text = outbox.display().to_string();
    let mut vars = cheap_argon2(&db);
    vars.push(("MAIL_OUTBOX_DIR", &outbox_text));
    let mut server = ServerProcess::start(dir.path(), &vars);
    let client = reqwest::Client::new();
    let address = "mailcheck@example.com";
    let created = client
        .post(server.url("/users"))
        .json(&serde_json::json!({"username": "mailcheck", "password": "a-secret-passphrase", "email": address}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let asked = client
        .post(server.url("/auth/password-reset"))
        .json(&serde_json::json!({"email": address}))
        .send()
        .await
        .unwrap();
    assert_eq!(asked.status(), 202);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let file = loop {
        let found = std::fs::read_dir(&outbox).ok().and_then(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|x| x == "eml"))
        });
        if let Some(file) = found {
            break file;
        }
        assert!(std::time::Instant::now() < deadline, "no mail file");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mail = support::smtp::Received {
        from: String::new(),
        to: Vec::new(),
        data: std::fs::read_to_string(&file).unwrap(),
        at: std::time::Instant::now(),
    };
    let token = mail
        .token_for("/auth/password-reset")
        .expect("a reset link");
    let page = client
        .get(server.url(&format!("/auth/password-reset?token={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let confirmed = client
        .post(server.url("/auth/password-reset/confirm"))
        .json(&serde_json::json!({"token": token, "new_password": "another-secret-passphrase"}))
        .send()
        .await
        .unwrap();
    assert_eq!(confirmed.status(), 204);

    let pid = server.pid().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = server.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "a graceful stop exits 0: {status:?}");
    let log = server.logs.try_iter().collect::<Vec<_>>().join("\n");
    assert!(
        log.contains("mail written to the outbox directory"),
        "{log}"
    );
    assert!(log.contains("password_reset_completed"), "{log}");
    for secret in [
        address,
        token.as_str(),
        "a-secret-passphrase",
        "another-secret-passphrase",
    ] {
        assert!(!log.contains(secret), "{secret} reached the log");
    }
}
