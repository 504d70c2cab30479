//! The cache-invalidation port (issue 15): every revocation path publishes an invalidation
//! covering the session or its user to the store's subscribers, on every backend; on PostgreSQL
//! another replica (a second store on the same database) hears it too, through NOTIFY, and a
//! replica whose listener is killed reports the loss and the recovery and meanwhile never
//! answers from memory.

use std::sync::Mutex;

use sqlx::Connection;
use std::time::{Duration as StdDuration, Instant};

use auth_service::domain::client::ClientType;
use auth_service::domain::session::{Invalidation, InvalidationListener};

use super::clients::{client, client_session};
use super::*;

/// How long a published invalidation may take to arrive (generous: the bound the bench
/// measures is 100 ms).
const BOUND: StdDuration = StdDuration::from_secs(2);

#[derive(Default)]
struct Recorder(Mutex<Vec<Invalidation>>);

impl InvalidationListener for Recorder {
    fn invalidated(&self, what: &Invalidation) {
        self.0.lock().unwrap().push(*what);
    }
}

impl Recorder {
    fn take(&self) -> Vec<Invalidation> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }

    /// Waits (up to `BOUND`) until an invalidation `seen` accepts has been recorded.
    async fn saw(&self, seen: impl Fn(&Invalidation) -> bool) -> bool {
        let start = Instant::now();
        loop {
            if self.0.lock().unwrap().iter().any(&seen) {
                return true;
            }
            if start.elapsed() > BOUND {
                return false;
            }
            tokio::time::sleep(StdDuration::from_millis(5)).await;
        }
    }
}

/// This store, and on PostgreSQL a second replica of it, each with a recorder.
async fn replicas(b: &Backend) -> Vec<(Repositories, Arc<Recorder>)> {
    let mut replicas = vec![b.repos.clone()];
    if let Some(url) = &b.url {
        replicas.push(db::connect(url, &options()).await.unwrap());
    }
    replicas
        .into_iter()
        .map(|repos| {
            let recorder = Arc::new(Recorder::default());
            repos.invalidations.subscribe(recorder.clone());
            (repos, recorder)
        })
        .collect()
}

async fn live_on(repos: &Repositories, user: &User, session: &Session) -> bool {
    repos
        .users
        .find_active_by_session(user.id, session.id, now())
        .await
        .unwrap()
        .is_some()
}

/// Checks `session` live on every replica (a caching one remembers it), runs `revoke`, then
/// requires every replica to hear an invalidation covering it and to refuse it.
async fn revoked_everywhere<F>(
    replicas: &[(Repositories, Arc<Recorder>)],
    path: &str,
    user: &User,
    session: &Session,
    revoke: F,
) where
    F: std::future::Future<Output = ()>,
{
    for (i, (repos, recorder)) in replicas.iter().enumerate() {
        assert!(
            live_on(repos, user, session).await,
            "{path}: live on replica {i} before"
        );
        recorder.take();
    }
    revoke.await;
    for (i, (repos, recorder)) in replicas.iter().enumerate() {
        assert!(
            recorder.saw(|what| what.covers(user.id, session.id)).await,
            "{path}: replica {i} heard no invalidation covering the session: {:?}",
            recorder.take()
        );
        assert!(
            !live_on(repos, user, session).await,
            "{path}: still live on replica {i}"
        );
    }
}

pub async fn every_revocation_path_publishes_an_invalidation_on_every_replica(b: Backend) {
    let replicas = replicas(&b).await;
    // `user()` makes admins: one stays, so that the others can be deleted.
    stored_user(&b, "keeper").await;
    let at = now();
    let (tokens, users, account) = (&b.repos.tokens, &b.repos.users, &b.repos.account);

    let alice = stored_user(&b, "alice").await;
    let (s, _) = session_for(&b, &alice, at).await;
    revoked_everywhere(&replicas, "logout", &alice, &s, async {
        assert!(tokens
            .revoke_session(s.id, RevocationReason::Logout, at)
            .await
            .unwrap());
    })
    .await;

    let (s, _) = session_for(&b, &alice, at).await;
    revoked_everywhere(&replicas, "logout-all", &alice, &s, async {
        tokens
            .revoke_user_sessions(alice.id, None, RevocationReason::Logout, at)
            .await
            .unwrap();
    })
    .await;

    let (s, token) = session_for(&b, &alice, at).await;
    let expiry = at + Duration::days(14);
    rotate(
        &b,
        &token.hash(),
        &RefreshToken::generate().hash(),
        expiry,
        at,
    )
    .await;
    revoked_everywhere(&replicas, "refresh-token reuse", &alice, &s, async {
        let reused = rotate(
            &b,
            &token.hash(),
            &RefreshToken::generate().hash(),
            expiry,
            at,
        )
        .await;
        assert!(matches!(reused, RotationOutcome::Reused { .. }));
    })
    .await;

    let (s, _) = session_for(&b, &alice, at).await;
    revoked_everywhere(&replicas, "password change", &alice, &s, async {
        let hash = PasswordHash::new("$argon2id$v=19$m=8,t=1,p=1$bmV3c2FsdA$bmV3aGFzaA".into());
        users
            .change_password(alice.id, &hash, None, at)
            .await
            .unwrap()
            .unwrap();
    })
    .await;
    let alice = users.find_by_id(alice.id).await.unwrap().unwrap();

    let (s, _) = session_for(&b, &alice, at).await;
    revoked_everywhere(&replicas, "session end", &alice, &s, async {
        assert!(account.end_session(alice.id, s.id, at).await.unwrap());
    })
    .await;

    let (oidc_client, _) = client("Deleted", ClientType::Public);
    b.repos.clients.insert(&oidc_client).await.unwrap();
    let s = client_session(&b, &alice, Some(oidc_client.id)).await;
    revoked_everywhere(&replicas, "client deletion", &alice, &s, async {
        assert_eq!(
            b.repos.clients.delete(oidc_client.id, at).await.unwrap(),
            Some(1)
        );
    })
    .await;

    let (s, _) = session_for(&b, &alice, at).await;
    revoked_everywhere(&replicas, "disable", &alice, &s, async {
        let disable = UserChanges {
            is_active: Some(false),
            ..UserChanges::default()
        };
        users
            .update_fields(alice.id, &disable, at)
            .await
            .unwrap()
            .unwrap();
    })
    .await;

    let bob = stored_user(&b, "bob").await;
    let (s, _) = session_for(&b, &bob, at).await;
    revoked_everywhere(&replicas, "delete", &bob, &s, async {
        let mut deleted = audit_template(at);
        deleted.kind = AuditEventKind::AccountDeleted;
        deleted.user_id = Some(bob.id);
        assert_eq!(
            account.delete_user(bob.id, &deleted).await.unwrap(),
            auth_service::domain::account::Deletion::Deleted
        );
    })
    .await;
}

/// PostgreSQL only (the other backends have no feed of other processes' writes): a replica
/// whose listener backend is killed reports `FeedLost` then `FeedRestored`, answers nothing
/// from memory from the loss on, and comes back with an empty cache (a revocation it never
/// heard of is not answered from memory).
pub async fn a_replica_whose_listener_is_killed_reports_it_and_never_answers_from_memory(
    b: Backend,
) {
    let Some(url) = &b.url else {
        return;
    };
    let replicas = replicas(&b).await;
    let (other, recorder) = &replicas[1];
    let alice = stored_user(&b, "alice").await;
    let (s, _) = session_for(&b, &alice, now()).await;
    assert!(live_on(other, &alice, &s).await);

    // A revocation the feed never publishes (triggers off for this connection): the replica
    // keeps answering from memory, which shows it has the session cached.
    let mut sql = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query("SET session_replication_role = replica")
        .execute(&mut sql)
        .await
        .unwrap();
    sqlx::query("UPDATE sessions SET revoked_at = now() WHERE id = $1")
        .bind(s.id.as_uuid())
        .execute(&mut sql)
        .await
        .unwrap();
    assert!(
        live_on(other, &alice, &s).await,
        "answered from memory while the feed is up"
    );

    recorder.take();
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE application_name = 'auth-service-listener' AND datname = current_database()",
    )
    .fetch_all(&mut sql)
    .await
    .unwrap();
    assert!(!killed.is_empty(), "no listener backend found");
    assert!(
        recorder.saw(|what| *what == Invalidation::FeedLost).await,
        "no FeedLost: {:?}",
        recorder.take()
    );
    // From the loss on, never from memory: the database says it is revoked.
    assert!(
        !live_on(other, &alice, &s).await,
        "answered from memory after the loss"
    );
    assert!(
        recorder
            .saw(|what| *what == Invalidation::FeedRestored)
            .await,
        "no FeedRestored: {:?}",
        recorder.take()
    );
    let seen = recorder.take();
    let lost = seen.iter().position(|w| *w == Invalidation::FeedLost);
    let restored = seen.iter().rposition(|w| *w == Invalidation::FeedRestored);
    assert!(lost < restored, "lost then restored: {seen:?}");
    assert!(!live_on(other, &alice, &s).await, "after the feed is back");

    // And the restored feed works: a new session revoked on this store is refused there.
    let (s, _) = session_for(&b, &alice, now()).await;
    revoked_everywhere(&replicas, "logout after reconnect", &alice, &s, async {
        b.repos
            .tokens
            .revoke_session(s.id, RevocationReason::Logout, now())
            .await
            .unwrap();
    })
    .await;
}

/// PostgreSQL only: a plain refresh rotation (the hot write path) publishes nothing to the other
/// replicas. Notifications arrive in commit order, so a later revocation of another session
/// marks the point by which the rotation's would have arrived.
pub async fn a_rotation_publishes_nothing_to_other_replicas(b: Backend) {
    if b.url.is_none() {
        return;
    }
    let replicas = replicas(&b).await;
    let (other, recorder) = &replicas[1];
    let (alice, bob) = (stored_user(&b, "alice").await, stored_user(&b, "bob").await);
    let at = now();
    let (rotated, token) = session_for(&b, &alice, at).await;
    let (marker, _) = session_for(&b, &bob, at).await;
    assert!(live_on(other, &alice, &rotated).await);
    recorder.take();
    let next = RefreshToken::generate();
    let outcome = rotate(&b, &token.hash(), &next.hash(), at + Duration::days(14), at).await;
    assert!(matches!(outcome, RotationOutcome::Rotated { .. }));
    b.repos
        .tokens
        .revoke_session(marker.id, RevocationReason::Logout, at)
        .await
        .unwrap();
    assert!(
        recorder
            .saw(|what| *what == Invalidation::Session(marker.id))
            .await
    );
    let seen = recorder.take();
    assert!(
        !seen.iter().any(|what| what.covers(alice.id, rotated.id)),
        "a rotation was published: {seen:?}"
    );
    assert!(live_on(other, &alice, &rotated).await);
}
