//! The invalidation feed of a PostgreSQL deployment: every replica listens on the channel the
//! migration `20261205002000_session_notify.sql` publishes on (triggers on `sessions` and
//! `users`, so that every write, an operator's SQL included, is published in its transaction
//! and delivered at its commit), and applies each notification to its live-session cache.
//!
//! The listener has its own connection (`application_name` `auth-service-listener`), outside the
//! pool. While it is down the cache is suspended (answers nothing, every request reads the
//! database); once it is connected again and `LISTEN` is in place the cache resumes, empty, as
//! notifications sent meanwhile are lost.
//!
//! A killed backend closes the socket, which the receive sees at once. A silent loss (a network
//! partition, a host gone) is found by a heartbeat: after [`HEARTBEAT_EVERY`] without a
//! notification, a `SELECT 1` on the listener's connection must answer within
//! [`HEARTBEAT_TIMEOUT`]. So a replica answers from a cache whose feed is silently gone for at
//! most `HEARTBEAT_EVERY + HEARTBEAT_TIMEOUT` (2 s).
//!
//! Cancel safety: the wait for a notification is `PgListener::try_recv` under a timeout. In
//! sqlx 0.8 its receive (`PgStream::recv_unchecked`) is cancel safe (it consumes nothing until a
//! whole message is in), but its reconnection is not (a cancelled reconnect loses the buffer of
//! notifications). So sqlx never reconnects here (`eager_reconnect(false)`, and a listener that
//! reported a loss is dropped): every reconnection builds a new listener, and a heartbeat that
//! timed out drops the listener with its connection.

use std::sync::atomic::{AtomicI8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use uuid::Uuid;

use crate::domain::session::SessionId;
use crate::domain::user::UserId;
use crate::infrastructure::db::session_cache::SessionCache;

/// The channel the triggers notify.
pub const CHANNEL: &str = "auth_sessions";
/// The listener's `application_name` (to find its backend in `pg_stat_activity`).
pub const APPLICATION_NAME: &str = "auth-service-listener";
/// Idle time after which the connection is probed.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// How long the probe may take before the connection is given up.
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(1);
/// The longest a (re)connection and its `LISTEN` may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The pause between failed reconnection attempts.
const RETRY_EVERY: Duration = Duration::from_millis(200);

/// The running listener; aborted when the store that owns it is dropped.
pub struct FeedTask(tokio::task::JoinHandle<()>);

impl Drop for FeedTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Connects the listener (once, before returning: the cache is live from the start if it
/// could) and keeps it connected in a task.
pub async fn start(options: &PgConnectOptions, cache: Arc<SessionCache>) -> FeedTask {
    let options = options.clone().application_name(APPLICATION_NAME);
    let first = match connect(&options).await {
        Ok(listener) => {
            set_gauge(true);
            Some(listener)
        }
        Err(error) => {
            tracing::warn!(%error, "session cache invalidation feed down: answering from the database");
            cache.suspend();
            set_gauge(false);
            None
        }
    };
    FeedTask(tokio::spawn(run(options, cache, first)))
}

async fn run(options: PgConnectOptions, cache: Arc<SessionCache>, first: Option<PgListener>) {
    let mut listener = first;
    loop {
        let Some(connected) = listener.as_mut() else {
            match connect(&options).await {
                Ok(connected) => {
                    listener = Some(connected);
                    cache.resume();
                    set_gauge(true);
                    tracing::warn!(
                        "session cache invalidation feed restored: cache resumed, empty"
                    );
                }
                Err(error) => {
                    tracing::debug!(%error, "session cache invalidation feed: reconnection failed");
                    tokio::time::sleep(RETRY_EVERY).await;
                }
            }
            continue;
        };
        let reason = watch(connected, &cache).await;
        listener = None;
        cache.suspend();
        set_gauge(false);
        tracing::warn!(%reason, "session cache invalidation feed lost: answering from the database until it is back");
    }
}

/// Applies notifications until the connection is lost; why it was.
async fn watch(listener: &mut PgListener, cache: &SessionCache) -> String {
    loop {
        match tokio::time::timeout(HEARTBEAT_EVERY, listener.try_recv()).await {
            Ok(Ok(Some(notification))) => apply(cache, notification.payload()),
            Ok(Ok(None)) => return "connection closed".into(),
            Ok(Err(error)) => return error.to_string(),
            Err(_idle) => {
                let probe = sqlx::query("SELECT 1").execute(&mut *listener);
                match tokio::time::timeout(HEARTBEAT_TIMEOUT, probe).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(error)) => return error.to_string(),
                    Err(_) => return "heartbeat timed out".into(),
                }
            }
        }
    }
}

/// A listener on its own one-connection pool, with `LISTEN` in place.
async fn connect(options: &PgConnectOptions) -> Result<PgListener, String> {
    let attempt = async {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .max_lifetime(None)
            .idle_timeout(None)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_with(options.clone())
            .await?;
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.eager_reconnect(false);
        listener.listen(CHANNEL).await?;
        Ok::<_, sqlx::Error>(listener)
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err("timed out".into()),
    }
}

/// One notification: `s:<session>`, `u:<user>`, or anything else (`*`): forget everything.
fn apply(cache: &SessionCache, payload: &str) {
    let parsed = payload
        .split_once(':')
        .and_then(|(kind, text)| Some((kind, Uuid::parse_str(text).ok()?)));
    match parsed {
        Some(("s", id)) => cache.forget_session(SessionId::from_uuid(id)),
        Some(("u", id)) => cache.forget_user(UserId::from_uuid(id)),
        _ => cache.clear(),
    }
}

/// The feed's state for the metrics: -1 no PostgreSQL store in this process, 0 down, 1 up.
static FEED_UP: AtomicI8 = AtomicI8::new(-1);

fn set_gauge(up: bool) {
    FEED_UP.store(i8::from(up), Ordering::SeqCst);
    record_gauge();
}

/// Sets the gauge `auth_session_cache_feed_up` (at scrape time too: the store may connect
/// before the metrics recorder is installed). Nothing without a PostgreSQL store.
pub fn record_gauge() {
    let up = FEED_UP.load(Ordering::SeqCst);
    if up >= 0 {
        metrics::gauge!("auth_session_cache_feed_up").set(f64::from(up));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::session::{Invalidation, InvalidationFeed, InvalidationListener};

    #[derive(Default)]
    struct Recorder(std::sync::Mutex<Vec<Invalidation>>);

    impl InvalidationListener for Recorder {
        fn invalidated(&self, what: &Invalidation) {
            self.0.lock().unwrap().push(*what);
        }
    }

    #[test]
    fn payloads_name_a_session_a_user_or_else_everything() {
        let cache = SessionCache::new(1 << 20);
        let recorder = Arc::new(Recorder::default());
        cache.subscribe(recorder.clone());
        let (session, user) = (Uuid::now_v7(), Uuid::now_v7());
        apply(&cache, &format!("s:{session}"));
        apply(&cache, &format!("u:{user}"));
        for unknown in ["*", "", "s:not-a-uuid", "x:1", "u:"] {
            apply(&cache, unknown);
        }
        let seen = recorder.0.lock().unwrap().clone();
        assert_eq!(
            seen[0],
            Invalidation::Session(SessionId::from_uuid(session))
        );
        assert_eq!(seen[1], Invalidation::User(UserId::from_uuid(user)));
        assert!(seen[2..].iter().all(|w| *w == Invalidation::All));
        assert_eq!(seen.len(), 7);
    }
}
