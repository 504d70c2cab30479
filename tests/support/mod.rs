//! Test support shared by the test binaries: a fresh PostgreSQL database per test.
//!
//! PostgreSQL tests run when `TEST_POSTGRES_URL` names a server's maintenance database (e.g.
//! `postgres://postgres@127.0.0.1:5432/postgres`); each test creates its own database there and
//! drops it when done. Without the variable they are skipped with a message saying so.

#![allow(dead_code)] // each test binary uses part of this module

use sqlx::Connection;

pub mod process;
pub mod smtp;

/// The variable that turns the PostgreSQL tests on.
pub const POSTGRES_VAR: &str = "TEST_POSTGRES_URL";

/// The server to create test databases on, if configured.
pub fn postgres_admin_url() -> Option<String> {
    std::env::var(POSTGRES_VAR)
        .ok()
        .filter(|v| !v.trim().is_empty())
}

/// Prints why a PostgreSQL test did nothing.
pub fn skip(test: &str) {
    eprintln!("skipped {test}: PostgreSQL tests need {POSTGRES_VAR} (e.g. postgres://postgres@127.0.0.1:5432/postgres)");
}

/// The variable that turns the Redis tests on (issue 15: the shared rate limit).
pub const REDIS_VAR: &str = "TEST_REDIS_URL";

/// The Redis server to run the Redis tests on, if configured.
pub fn redis_url() -> Option<String> {
    std::env::var(REDIS_VAR)
        .ok()
        .filter(|v| !v.trim().is_empty())
}

/// Prints why a Redis test did nothing.
pub fn skip_redis(test: &str) {
    eprintln!("skipped {test}: Redis tests need {REDIS_VAR} (e.g. redis://127.0.0.1:6379)");
}

/// A database created for one test and dropped (with its connections) when the value is.
pub struct PgDatabase {
    pub url: String,
    admin_url: String,
    name: String,
}

/// `url` with its database name replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{name}", &base[..host_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

impl PgDatabase {
    /// Creates a database with a unique name on the server of `admin_url`.
    pub async fn create(admin_url: &str) -> Self {
        let name = format!("auth_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(admin_url)
            .await
            .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {POSTGRES_VAR}: {e}"));
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await
            .unwrap();
        admin.close().await.unwrap();
        Self {
            url: with_database(admin_url, &name),
            admin_url: admin_url.to_owned(),
            name,
        }
    }

    /// Runs one statement on the server's maintenance database (e.g. to cut this database off).
    pub async fn admin(&self, sql: &str) {
        let mut admin = sqlx::PgConnection::connect(&self.admin_url).await.unwrap();
        sqlx::query(&sql.replace("{db}", &self.name))
            .execute(&mut admin)
            .await
            .unwrap();
        admin.close().await.unwrap();
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop runs inside the test's runtime: use a thread with its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .execute(&mut admin)
                    .await?;
                admin.close().await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}

#[test]
fn database_names_are_replaced_in_urls() {
    assert_eq!(
        with_database("postgres://u:p@h:5432/postgres?sslmode=disable", "x"),
        "postgres://u:p@h:5432/x?sslmode=disable"
    );
    assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
}
