//! Upgrades lose nothing: a database written by the previous release (its schema, its rows)
//! keeps working under this one. The old schema is made by the previous release's migrations
//! only; its rows are written as that release wrote them.

use std::borrow::Cow;

use reqwest::StatusCode;
use sha2::{Digest, Sha256};

use crate::helpers::{spawn_app_on, tokens_of, PASSWORD};

/// The last migration of each earlier release a database is upgraded from: the password-grant
/// release, and the previous one (second factors, recovery and sessions).
const PREVIOUS_RELEASES: [i64; 2] = [20261124000002, 20261203000004];

/// The first migration whose release writes every session with its absolute end (`not_after`).
const SESSIONS_WITH_AN_END: i64 = 20261201000001;

/// A live refresh token of the old session, as a client of the old release holds it.
const OLD_REFRESH_TOKEN: &str = "b2xkLXJlbGVhc2UtcmVmcmVzaC10b2tlbi1vZi0zMi1ieXRlcw";

fn old_password_hash() -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::encode_b64(b"previous-release").unwrap();
    argon2::Argon2::default()
        .hash_password(PASSWORD.as_bytes(), &salt)
        .unwrap()
        .to_string()
}

/// Applies the migrations up to `release` (and no later one) to `url`.
async fn previous_schema<DB>(pool: &sqlx::Pool<DB>, directory: &str, release: i64)
where
    DB: sqlx::Database,
    <DB as sqlx::Database>::Connection: sqlx::migrate::Migrate,
{
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(directory);
    let mut migrator = sqlx::migrate::Migrator::new(path).await.unwrap();
    let old: Vec<_> = migrator
        .migrations
        .iter()
        .filter(|m| m.version <= release)
        .cloned()
        .collect();
    // (SQLite has no migration newer than the previous release: its upgrade is then a start on
    // an unchanged schema.)
    assert!(
        old.last().map(|m| m.version) == Some(release),
        "{release} is the last migration of a release"
    );
    migrator.migrations = Cow::Owned(old);
    migrator.run(pool).await.unwrap();
}

/// The rows the previous release wrote: a user, a live session with its refresh token, and an
/// audit event. Times in microseconds (SQLite) or as timestamps (PostgreSQL).
const USER_ID: &str = "01938f2e-0000-7000-8000-000000000001";
const SESSION_ID: &str = "01938f2e-0000-7000-8000-000000000002";

fn token_hash() -> String {
    hex::encode(Sha256::digest(OLD_REFRESH_TOKEN.as_bytes()))
}

async fn old_sqlite_database(dir: &tempfile::TempDir, release: i64) -> String {
    let url = format!("sqlite://{}/old-{release}.db", dir.path().display());
    let options = url
        .parse::<sqlx::sqlite::SqliteConnectOptions>()
        .unwrap()
        .create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    previous_schema(&pool, "migrations/sqlite", release).await;
    let now = chrono::Utc::now().timestamp_micros();
    let day = 86_400_000_000_i64;
    sqlx::query(
        "INSERT INTO users (id, username, email, full_name, password_hash, roles, is_active, created_at, updated_at)
         VALUES (?, 'oldtimer', NULL, 'Old Timer', ?, 'user admin', 1, ?, ?)",
    )
    .bind(USER_ID)
    .bind(old_password_hash())
    .bind(now - 60 * day)
    .bind(now - 60 * day)
    .execute(&pool)
    .await
    .unwrap();
    // A session 40 days old, kept alive by rotations: past the new absolute lifetime if that
    // were counted from its login. A release that writes the absolute end wrote one.
    let sql = if release >= SESSIONS_WITH_AN_END {
        "INSERT INTO sessions (id, user_id, scope, created_at, expires_at, not_after) VALUES (?, ?, 'user admin', ?, ?, ?)"
    } else {
        "INSERT INTO sessions (id, user_id, scope, created_at, expires_at) VALUES (?, ?, 'user admin', ?, ?)"
    };
    let insert = sqlx::query(sql)
        .bind(SESSION_ID)
        .bind(USER_ID)
        .bind(now - 40 * day)
        .bind(now + 13 * day);
    let insert = if release >= SESSIONS_WITH_AN_END {
        insert.bind(now + 20 * day)
    } else {
        insert
    };
    insert.execute(&pool).await.unwrap();
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
    )
    .bind(token_hash())
    .bind(SESSION_ID)
    .bind(now - day)
    .bind(now + 13 * day)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO audit_events (id, at, event, user_id, username, ip, user_agent, success, detail)
         VALUES ('01938f2e-0000-7000-8000-000000000003', ?, 'login_succeeded', ?, 'oldtimer', '10.1.2.3', NULL, 1, 'from the old release')",
    )
    .bind(now - 40 * day)
    .bind(USER_ID)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO login_throttle (login_key, failures, locks, locked_until, updated_at) VALUES ('oldtimer', 2, 0, NULL, ?)",
    )
    .bind(now)
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    url
}

async fn old_postgres_database(url: &str, release: i64) {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    previous_schema(&pool, "migrations/postgres", release).await;
    let user_id: uuid::Uuid = USER_ID.parse().unwrap();
    let session_id: uuid::Uuid = SESSION_ID.parse().unwrap();
    sqlx::query(
        "INSERT INTO users (id, username, email, full_name, password_hash, roles, is_active, created_at, updated_at)
         VALUES ($1, 'oldtimer', NULL, 'Old Timer', $2, 'user admin', true, now() - interval '60 days', now() - interval '60 days')",
    )
    .bind(user_id)
    .bind(old_password_hash())
    .execute(&pool)
    .await
    .unwrap();
    let sql = if release >= SESSIONS_WITH_AN_END {
        "INSERT INTO sessions (id, user_id, scope, created_at, expires_at, not_after)
         VALUES ($1, $2, 'user admin', now() - interval '40 days', now() + interval '13 days',
                 now() + interval '20 days')"
    } else {
        "INSERT INTO sessions (id, user_id, scope, created_at, expires_at)
         VALUES ($1, $2, 'user admin', now() - interval '40 days', now() + interval '13 days')"
    };
    sqlx::query(sql)
        .bind(session_id)
        .bind(user_id)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at)
         VALUES ($1, $2, now() - interval '1 day', now() + interval '13 days')",
    )
    .bind(token_hash())
    .bind(session_id)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO audit_events (id, at, event, user_id, username, ip, user_agent, success, detail)
         VALUES ('01938f2e-0000-7000-8000-000000000003', now() - interval '40 days', 'login_succeeded', $1,
                 'oldtimer', '10.1.2.3', NULL, true, 'from the old release')",
    )
    .bind(user_id)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO login_throttle (login_key, failures, locks, locked_until, updated_at) VALUES ('oldtimer', 2, 0, NULL, now())",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
}

#[tokio::test]
async fn a_database_of_an_earlier_release_keeps_its_users_sessions_and_audit_trail() {
    for release in PREVIOUS_RELEASES {
        upgrade_from(release).await;
    }
}

async fn upgrade_from(release: i64) {
    // Kept alive until the end of the test.
    let dir = tempfile::tempdir().unwrap();
    let mut _pg = None;
    let url = if std::env::var("TEST_API_BACKEND").as_deref() == Ok("postgres") {
        let admin = crate::support::postgres_admin_url().expect("TEST_POSTGRES_URL");
        let database = crate::support::PgDatabase::create(&admin).await;
        old_postgres_database(&database.url, release).await;
        let url = database.url.clone();
        _pg = Some(database);
        url
    } else {
        old_sqlite_database(&dir, release).await
    };
    let app = spawn_app_on(&url, &[]).await;

    // The live refresh token of the old session still rotates, twice.
    let rotated = tokens_of(app.refresh_grant(OLD_REFRESH_TOKEN).await).await;
    assert_eq!(rotated.body["scope"], "user admin");
    let rotated = tokens_of(app.refresh_grant(&rotated.refresh).await).await;
    let me = app.get_json("/users/me", &rotated.access).await;
    assert_eq!(me["username"], "oldtimer");
    assert_eq!(me["full_name"], "Old Timer");

    // The user signs in with the same password; the old failure count is still counted.
    let login = tokens_of(app.login("OldTimer", PASSWORD).await).await;

    // The audit trail of the old release is still there, beside the new events.
    let events = app
        .get_json("/admin/audit-events?limit=100", &login.access)
        .await;
    let events = events["items"].as_array().unwrap();
    assert!(events
        .iter()
        .any(|e| e["detail"] == "from the old release" && e["ip"] == "10.1.2.3"));
    assert!(events.iter().any(|e| e["event"] == "token_refreshed"));

    // A password change works on the migrated row and ends the old session.
    let response = app
        .change_password(&login.access, PASSWORD, "a new and long secret")
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/users/me", Some(&rotated.access)).await.status(),
        StatusCode::UNAUTHORIZED
    );
}
