//! Running the real server binary as an operator would: in an empty directory, with only the
//! variables given, logging JSON lines that the test reads.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

/// The server binary under test.
pub const SERVER: &str = env!("CARGO_BIN_EXE_auth-service");

/// A command run in `dir` (no `.env*` files there) with only the given variables.
pub fn command(binary: &str, dir: &Path, vars: &[(&str, &str)]) -> Command {
    let mut command = Command::new(binary);
    command
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (key, value) in vars {
        command.env(key, value);
    }
    command
}

/// Reads the server's JSON log lines on a thread (so the pipe never fills or breaks), returning
/// the address it logged as listening on and a receiver of every later line.
pub fn follow_logs(child: &mut Child) -> (String, Receiver<String>) {
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) else {
            continue;
        };
        if let Some(rest) = line.split("\"address\":\"").nth(1) {
            return (rest.split('"').next().unwrap().to_owned(), rx);
        }
    }
    panic!("server did not log that it listens");
}

/// A running server process on a free loopback port; killed when dropped.
pub struct ServerProcess {
    pub base_url: String,
    pub logs: Receiver<String>,
    child: Child,
}

impl ServerProcess {
    /// Starts the server binary in `dir` with `vars` (PORT is set to 0: the OS picks one).
    pub fn start(dir: &Path, vars: &[(&str, &str)]) -> Self {
        let mut vars = vars.to_vec();
        vars.push(("PORT", "0"));
        vars.push(("LOG_FORMAT", "json"));
        let mut child = command(SERVER, dir, &vars)
            .stdout(Stdio::piped())
            .spawn()
            .expect("the server binary starts");
        // A server that never says it listens is killed before the test fails, not left behind.
        let followed =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| follow_logs(&mut child)));
        let (address, logs) = followed.unwrap_or_else(|panic| {
            let _ = child.kill();
            let _ = child.wait();
            std::panic::resume_unwind(panic)
        });
        Self {
            base_url: format!("http://{address}"),
            logs,
            child,
        }
    }

    /// `base_url` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// The process id, for signals.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (bounded) for the process to exit and returns its status.
    pub fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the server did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
