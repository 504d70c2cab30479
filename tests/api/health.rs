//! Liveness and readiness.

use std::sync::Arc;

use async_trait::async_trait;
use auth_service::domain::ports::{HealthProbe, StoreError};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn health_reports_the_database() {
    let app = spawn_app().await;
    let response = app.get("/health", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(body["checks"], json!({"database": "ok"}));
    let live: Value = app.get("/health/live", None).await.json().await.unwrap();
    assert_eq!(live, json!({"status": "ok"}));
}

struct DownProbe;

#[async_trait]
impl HealthProbe for DownProbe {
    async fn ping(&self) -> Result<(), StoreError> {
        Err(StoreError::Unavailable("connection refused".into()))
    }
}

#[tokio::test]
async fn health_is_503_when_the_database_cannot_be_reached_and_liveness_still_ok() {
    let app = spawn_app_customised(&[], |state| state.health = Arc::new(DownProbe)).await;
    let response = app.get("/health", None).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["checks"]["database"], "unavailable");
    assert!(body["version"].is_string());
    assert_eq!(app.get("/health/live", None).await.status(), StatusCode::OK);
}

/// A small file system of its own for a test's database (a tmpfs mounted on a temporary
/// directory), unmounted when dropped; `None` where this process may not mount one.
struct TinyDisk {
    dir: tempfile::TempDir,
}

impl TinyDisk {
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        mounted.then_some(Self { dir })
    }

    /// Fills the file system to the last byte; the filler's path.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.dir.path().join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        while file.write_all(&chunk).is_ok() {}
        for _ in 0..64 {
            if file.write_all(&[0u8; 512]).is_err() {
                let _ = file.write_all(&[0u8; 1]);
            }
        }
        path
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

/// `GET /health` until it answers `status` (readiness answers are reused for a second).
async fn health_until(app: &TestApp, status: StatusCode) -> reqwest::Response {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let response = app.get("/health", None).await;
        if response.status() == status || std::time::Instant::now() > deadline {
            assert_eq!(response.status(), status);
            return response;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

fn on_postgres() -> bool {
    std::env::var("TEST_API_BACKEND").as_deref() == Ok("postgres")
}

#[tokio::test]
async fn readiness_fails_while_the_disk_is_full_and_writes_answer_503_not_500() {
    if on_postgres() {
        return eprintln!("skipped: disk-full readiness is a SQLite test");
    }
    let Some(disk) = TinyDisk::mount("8m") else {
        return eprintln!("skipped: disk-full readiness needs to mount a tmpfs (root)");
    };
    let url = format!("sqlite://{}/auth.db", disk.dir.path().display());
    let app = spawn_app_on(&url, &[]).await;
    assert_eq!(app.get("/health", None).await.status(), StatusCode::OK);
    let filler = disk.fill();
    // Readiness answers are reused for a second.
    let response = health_until(&app, StatusCode::SERVICE_UNAVAILABLE).await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["checks"]["database"], "unavailable");
    for i in 0..40 {
        let status = app
            .post_json(
                "/users",
                &json!({"username": format!("full{i}"), "password": PASSWORD,
                        "full_name": "x".repeat(100)}),
            )
            .await
            .status();
        assert!(
            status == StatusCode::CREATED || status == StatusCode::SERVICE_UNAVAILABLE,
            "a write on a full disk: {status}"
        );
    }
    std::fs::remove_file(filler).unwrap();
    health_until(&app, StatusCode::OK).await;
    drop(app);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_stuck_in_the_store_does_not_stall_the_runtime() {
    if on_postgres() {
        return eprintln!("skipped: stuck reads is a SQLite test");
    }
    let app = spawn_app().await;
    let admin = app.admin_with_tokens("root").await;
    assert_eq!(
        app.get("/users", Some(&admin.access)).await.status(),
        StatusCode::OK
    );
    // Another process holds every read-mark lock of the WAL index: each read waits for it
    // (SQLite's own retries take about ten seconds before it gives up).
    use secrecy::ExposeSecret;
    let url = app.settings.database.url.expose_secret().to_owned();
    let shm = format!("{}-shm", url.trim_start_matches("sqlite://"));
    let holder = std::process::Command::new("python3")
        .args([
            "-c",
            "import fcntl,os,sys,time\n\
             fd=os.open(sys.argv[1],os.O_RDWR)\n\
             fcntl.lockf(fd,fcntl.LOCK_EX|fcntl.LOCK_NB,5,123,0)\n\
             print('held',flush=True)\n\
             sys.stdin.read()",
            &shm,
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn();
    let Ok(mut holder) = holder else {
        return eprintln!("skipped: stuck reads needs python3 to hold the locks");
    };
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "held");
    let stuck = (0..4).map(|_| app.get("/users", Some(&admin.access)));
    let live = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let started = std::time::Instant::now();
        let status = app.get("/health/live", None).await.status();
        (status, started.elapsed())
    };
    let (responses, (status, waited)) = tokio::join!(futures::future::join_all(stuck), live);
    assert_eq!(status, StatusCode::OK);
    assert!(
        waited < std::time::Duration::from_secs(2),
        "/health/live waited {waited:?} behind stuck reads"
    );
    for response in responses {
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    drop(holder.stdin.take());
    holder.wait().unwrap();
    assert_eq!(
        app.get("/users", Some(&admin.access)).await.status(),
        StatusCode::OK
    );
}
