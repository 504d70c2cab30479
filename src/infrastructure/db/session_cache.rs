//! The live sessions this process has already checked, with their users, so that `GET /users/me`
//! and every other authenticated request need no database read once a session is known. Shared
//! by the SQLite and PostgreSQL adapters.
//!
//! Bounded by memory, not by count: two `quick_cache` caches (S3-FIFO eviction, no background
//! threads), one of sessions (session id to user id and expiry) and one of users, each weighed by
//! what an entry costs (see [`SESSION_ENTRY_BYTES`] and [`user_bytes`]). A user with many
//! sessions is held once.
//!
//! Correctness rests on invalidation: every write that ends a session or changes a user calls
//! [`SessionCache::forget_session`], [`SessionCache::forget_user`] or [`SessionCache::clear`]
//! after its commit and before it returns (the adapter that made it), and, for the other
//! replicas of a PostgreSQL deployment, on receipt of the change's notification. While that
//! feed of notifications is down the cache is [suspended](SessionCache::suspend): it answers
//! nothing and keeps nothing, and it starts empty when the feed is back.
//!
//! Forgetting a user is O(1): every user entry has a generation, each session entry records the
//! generation it was filled under, and a session whose user entry is gone or newer is a miss.
//!
//! The race between a reader that fills the cache from a snapshot taken before a write, and that
//! write's invalidation, is closed by an epoch: every invalidation bumps it before it removes
//! anything, a fill only lands if the epoch did not move since the reader looked the entry up,
//! and a fill that sees the epoch move after it inserted takes its entry back out.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use quick_cache::sync::Cache;
use quick_cache::Weighter;

use crate::domain::session::{Invalidation, InvalidationFeed, InvalidationListener, SessionId};
use crate::domain::user::{User, UserId};

/// What one session entry costs: key, value and the cache's own bookkeeping (its slot and its
/// share of the index), as `session_cache_cost_per_entry` measures it, rounded up.
pub const SESSION_ENTRY_BYTES: u64 = SESSION_SLOT_BYTES;

/// The cache's slot and index share for one session entry (measured: see the cost test).
const SESSION_SLOT_BYTES: u64 = 96;

/// The cache's slot and index share for one user entry (measured: see the cost test).
const USER_SLOT_BYTES: u64 = 80;

/// The share of the budget for session entries; users get the rest.
const SESSION_SHARE: u64 = 4;

pub struct SessionCache {
    sessions: Cache<SessionId, SessionEntry, SessionWeight>,
    users: Cache<UserId, UserEntry, UserWeight>,
    epoch: AtomicU64,
    generation: AtomicU64,
    /// False while the invalidation feed is down (or with a zero budget).
    live: AtomicBool,
    /// Whether the budget lets it remember anything at all.
    enabled: bool,
    /// Told of every invalidation (the store's [`InvalidationFeed`]).
    subscribers: std::sync::RwLock<Vec<Arc<dyn InvalidationListener>>>,
}

#[derive(Clone)]
struct SessionEntry {
    user_id: UserId,
    expires_at: DateTime<Utc>,
    user_generation: u64,
}

#[derive(Clone)]
struct UserEntry {
    generation: u64,
    user: Arc<User>,
}

#[derive(Clone)]
struct SessionWeight;

impl Weighter<SessionId, SessionEntry> for SessionWeight {
    fn weight(&self, _: &SessionId, _: &SessionEntry) -> u64 {
        SESSION_ENTRY_BYTES
    }
}

#[derive(Clone)]
struct UserWeight;

impl Weighter<UserId, UserEntry> for UserWeight {
    fn weight(&self, _: &UserId, entry: &UserEntry) -> u64 {
        user_bytes(&entry.user)
    }
}

/// What one cached user costs: the entry's slot, and the heap blocks behind it.
fn user_bytes(user: &User) -> u64 {
    USER_SLOT_BYTES + user_heap_bytes(user)
}

/// The heap blocks of a cached user, as glibc allocates them: the `User` with the `Arc`'s two
/// counters, and each of its strings and its roles.
fn user_heap_bytes(user: &User) -> u64 {
    let strings = [
        Some(user.username.as_str().len()),
        user.email.as_ref().map(|e| e.as_str().len()),
        user.full_name.as_ref().map(|n| n.as_str().len()),
        Some(user.password_hash.as_str().len()),
        Some(user.roles.iter().count()),
    ];
    chunk(std::mem::size_of::<User>() + 16) + strings.into_iter().flatten().map(chunk).sum::<u64>()
}

/// What a heap block of `len` bytes takes: glibc's 8-byte header, 16-byte granules, 32 at least
/// (nothing for an empty string, which allocates nothing).
fn chunk(len: usize) -> u64 {
    if len == 0 {
        return 0;
    }
    u64::try_from((len + 8).div_ceil(16).max(2) * 16).unwrap_or(u64::MAX)
}

/// What a lookup found.
pub enum Lookup {
    /// The session is live and this is its (active) user.
    Live(Arc<User>),
    /// Not known here: ask the database, then [`SessionCache::fill`] with this epoch.
    Miss(u64),
}

impl SessionCache {
    /// A cache of at most `budget_bytes` (0: remembers nothing).
    pub fn new(budget_bytes: u64) -> Self {
        let session_budget = budget_bytes / SESSION_SHARE;
        let user_budget = budget_bytes - session_budget;
        let estimated = usize::try_from(session_budget / SESSION_ENTRY_BYTES)
            .unwrap_or(usize::MAX)
            .max(16);
        Self {
            sessions: Cache::with_weighter(estimated, session_budget.max(1), SessionWeight),
            users: Cache::with_weighter(estimated, user_budget.max(1), UserWeight),
            epoch: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            live: AtomicBool::new(budget_bytes > 0),
            enabled: budget_bytes > 0,
            subscribers: std::sync::RwLock::new(Vec::new()),
        }
    }

    /// The user of session `session_id` if this process knows it to be live at `now`.
    pub fn lookup(&self, user_id: UserId, session_id: SessionId, now: DateTime<Utc>) -> Lookup {
        let epoch = self.epoch.load(Ordering::SeqCst);
        if !self.live.load(Ordering::SeqCst) {
            return Lookup::Miss(epoch);
        }
        let Some(session) = self.sessions.get(&session_id) else {
            return Lookup::Miss(epoch);
        };
        if session.user_id != user_id || session.expires_at <= now {
            return Lookup::Miss(epoch);
        }
        match self.users.get(&user_id) {
            Some(entry) if entry.generation == session.user_generation => Lookup::Live(entry.user),
            _ => Lookup::Miss(epoch),
        }
    }

    /// Remembers that session `session_id`, expiring at `expires_at`, belongs to the active
    /// `user`, as read from the database after a [`Lookup::Miss`] at `epoch`. Dropped if anything
    /// was invalidated since (the read may predate that write) or the feed is down.
    pub fn fill(
        &self,
        epoch: u64,
        session_id: SessionId,
        expires_at: DateTime<Utc>,
        user: Arc<User>,
    ) {
        if !self.current(epoch) {
            return;
        }
        let user_id = user.id;
        let user_generation = match self.users.get(&user_id) {
            Some(entry) => entry.generation,
            None => {
                let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
                self.users.insert(user_id, UserEntry { generation, user });
                generation
            }
        };
        self.sessions.insert(
            session_id,
            SessionEntry {
                user_id,
                expires_at,
                user_generation,
            },
        );
        // An invalidation that bumped the epoch after the check above may have removed before
        // these inserts: take them back out (at worst a later miss).
        if !self.current(epoch) {
            self.sessions.remove(&session_id);
            self.users.remove(&user_id);
        }
    }

    fn current(&self, epoch: u64) -> bool {
        self.live.load(Ordering::SeqCst) && self.epoch.load(Ordering::SeqCst) == epoch
    }

    /// Forgets one session (rotated, revoked).
    pub fn forget_session(&self, session_id: SessionId) {
        self.bump();
        self.sessions.remove(&session_id);
        self.publish(&Invalidation::Session(session_id));
    }

    /// Forgets every session of one user, and the user (changed, sessions revoked, deleted).
    pub fn forget_user(&self, user_id: UserId) {
        self.bump();
        self.users.remove(&user_id);
        self.publish(&Invalidation::User(user_id));
    }

    /// Forgets everything (the purge, a client's deletion, another process's write).
    pub fn clear(&self) {
        self.empty();
        self.publish(&Invalidation::All);
    }

    fn empty(&self) {
        self.bump();
        self.sessions.clear();
        self.users.clear();
    }

    /// The invalidation feed is down: answer nothing from memory and keep nothing until
    /// [`SessionCache::resume`].
    pub fn suspend(&self) {
        self.live.store(false, Ordering::SeqCst);
        self.empty();
        self.publish(&Invalidation::FeedLost);
    }

    /// The invalidation feed is back (notifications sent while it was down are lost): start
    /// empty and answer from memory again.
    pub fn resume(&self) {
        self.empty();
        self.live.store(self.enabled, Ordering::SeqCst);
        self.publish(&Invalidation::FeedRestored);
    }

    /// Tells every subscriber.
    fn publish(&self, what: &Invalidation) {
        let subscribers = match self.subscribers.read() {
            Ok(subscribers) => subscribers,
            Err(poisoned) => poisoned.into_inner(),
        };
        for subscriber in subscribers.iter() {
            subscriber.invalidated(what);
        }
    }

    /// Whether the cache answers (the feed is up and the budget is not zero).
    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::SeqCst)
    }

    fn bump(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// Sessions remembered, users remembered.
    pub fn len(&self) -> (usize, usize) {
        (self.sessions.len(), self.users.len())
    }

    /// Bytes in use, by the weights.
    pub fn weight(&self) -> u64 {
        self.sessions.weight() + self.users.weight()
    }
}

impl InvalidationFeed for SessionCache {
    fn subscribe(&self, listener: Arc<dyn InvalidationListener>) {
        match self.subscribers.write() {
            Ok(mut subscribers) => subscribers.push(listener),
            Err(poisoned) => poisoned.into_inner().push(listener),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::user::{PasswordHash, Roles, Username};

    const BUDGET: u64 = 4 << 20;

    fn user() -> Arc<User> {
        let now = Utc::now();
        Arc::new(User {
            id: UserId::new(),
            username: Username::parse("alice").unwrap(),
            email: None,
            full_name: None,
            password_hash: PasswordHash::new(
                "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo".into(),
            ),
            roles: Roles::default(),
            is_active: true,
            credential_version: 0,
            email_verified: false,
            mfa: Default::default(),
            created_at: now,
            updated_at: now,
        })
    }

    fn later(seconds: i64) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::seconds(seconds)
    }

    fn fill(cache: &SessionCache, user: &Arc<User>, session: SessionId) {
        if let Lookup::Miss(epoch) = cache.lookup(user.id, session, Utc::now()) {
            cache.fill(epoch, session, later(60), user.clone());
        }
    }

    fn live(cache: &SessionCache, user: &Arc<User>, session: SessionId) -> bool {
        matches!(cache.lookup(user.id, session, Utc::now()), Lookup::Live(u) if u.id == user.id)
    }

    #[test]
    fn a_filled_session_is_live_until_it_expires_and_only_for_its_user() {
        let cache = SessionCache::new(BUDGET);
        let alice = user();
        let session = SessionId::new();
        let Lookup::Miss(epoch) = cache.lookup(alice.id, session, Utc::now()) else {
            panic!("empty cache hit");
        };
        cache.fill(epoch, session, later(60), alice.clone());
        assert!(live(&cache, &alice, session));
        assert!(matches!(
            cache.lookup(UserId::new(), session, Utc::now()),
            Lookup::Miss(_)
        ));
        assert!(matches!(
            cache.lookup(alice.id, session, later(61)),
            Lookup::Miss(_)
        ));
    }

    #[test]
    fn a_fill_from_before_an_invalidation_is_dropped() {
        let cache = SessionCache::new(BUDGET);
        let alice = user();
        let session = SessionId::new();
        let Lookup::Miss(epoch) = cache.lookup(alice.id, session, Utc::now()) else {
            panic!("empty cache hit");
        };
        // A revocation commits and invalidates while the reader is between lookup and fill.
        cache.forget_session(session);
        cache.fill(epoch, session, later(60), alice.clone());
        assert!(!live(&cache, &alice, session));
    }

    #[test]
    fn invalidation_forgets_the_session_the_user_or_everything() {
        let cache = SessionCache::new(BUDGET);
        let (alice, bob) = (user(), user());
        let sessions: Vec<(Arc<User>, SessionId)> = [&alice, &alice, &bob]
            .into_iter()
            .map(|u| (u.clone(), SessionId::new()))
            .collect();
        let fill_all = || {
            for (u, s) in &sessions {
                fill(&cache, u, *s);
            }
        };
        fill_all();
        assert_eq!(cache.len(), (3, 2));
        cache.forget_session(sessions[0].1);
        assert!(!live(&cache, &alice, sessions[0].1));
        assert!(live(&cache, &alice, sessions[1].1));
        cache.forget_user(alice.id);
        assert!(!live(&cache, &alice, sessions[1].1));
        assert!(live(&cache, &bob, sessions[2].1));
        fill_all();
        cache.clear();
        assert_eq!(cache.len(), (0, 0));
    }

    #[test]
    fn a_user_forgotten_then_refilled_through_another_session_does_not_revive_the_first() {
        // Logout everywhere but here: the other session must stay a miss even after this
        // session fills the user again.
        let cache = SessionCache::new(BUDGET);
        let alice = user();
        let (kept, ended) = (SessionId::new(), SessionId::new());
        fill(&cache, &alice, kept);
        fill(&cache, &alice, ended);
        cache.forget_user(alice.id);
        fill(&cache, &alice, kept);
        assert!(live(&cache, &alice, kept));
        assert!(!live(&cache, &alice, ended));
    }

    #[test]
    fn a_suspended_cache_answers_nothing_and_keeps_nothing_until_resumed_empty() {
        let cache = SessionCache::new(BUDGET);
        let alice = user();
        let session = SessionId::new();
        fill(&cache, &alice, session);
        cache.suspend();
        assert!(!live(&cache, &alice, session));
        fill(&cache, &alice, session);
        assert_eq!(cache.len(), (0, 0));
        cache.resume();
        assert!(!live(&cache, &alice, session));
        fill(&cache, &alice, session);
        assert!(live(&cache, &alice, session));
    }

    #[test]
    fn the_cache_stays_within_its_memory_budget() {
        let budget = 256 << 10;
        let cache = SessionCache::new(budget);
        for _ in 0..20_000 {
            fill(&cache, &user(), SessionId::new());
        }
        assert!(cache.weight() <= budget, "{} > {budget}", cache.weight());
        let (sessions, users) = cache.len();
        assert!(
            sessions > 100 && users > 100,
            "{sessions} sessions, {users} users"
        );
    }

    #[derive(Default)]
    struct Recorder(std::sync::Mutex<Vec<Invalidation>>);

    impl InvalidationListener for Recorder {
        fn invalidated(&self, what: &Invalidation) {
            self.0.lock().unwrap().push(*what);
        }
    }

    #[test]
    fn every_invalidation_is_published_to_every_subscriber() {
        let cache = SessionCache::new(0);
        let (one, two) = (Arc::new(Recorder::default()), Arc::new(Recorder::default()));
        cache.subscribe(one.clone());
        cache.subscribe(two.clone());
        let (session, user) = (SessionId::new(), UserId::new());
        cache.forget_session(session);
        cache.forget_user(user);
        cache.clear();
        cache.suspend();
        cache.resume();
        let expected = vec![
            Invalidation::Session(session),
            Invalidation::User(user),
            Invalidation::All,
            Invalidation::FeedLost,
            Invalidation::FeedRestored,
        ];
        assert_eq!(*one.0.lock().unwrap(), expected);
        assert_eq!(*two.0.lock().unwrap(), expected);
    }

    #[test]
    fn a_zero_budget_remembers_nothing() {
        let cache = SessionCache::new(0);
        let alice = user();
        let session = SessionId::new();
        fill(&cache, &alice, session);
        assert!(!live(&cache, &alice, session));
    }

    /// The private memory of the process, in bytes (Linux), for the cost test below.
    fn rss_anon() -> Option<u64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|l| l.starts_with("RssAnon:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib << 10)
    }

    /// The real memory of an entry against its weight: the cache's own count of its slots and
    /// index (`memory_used`) plus the heap blocks it does not see (the `User` behind its `Arc`
    /// and its strings, in glibc chunks). Prints the figures and the process's `RssAnon` growth
    /// (`cargo test --lib session_cache_cost -- --nocapture --test-threads=1`); asserts the
    /// weights neither understate nor grossly overstate it.
    #[test]
    fn session_cache_cost_per_entry() {
        let n = 50_000u64;
        let before = rss_anon();
        let cache = SessionCache::new(1 << 30);
        let mut heap = 0u64;
        for i in 0..n {
            let mut u = (*user()).clone();
            u.email = Some(
                crate::domain::user::EmailAddress::parse(&format!("user{i}@example.com")).unwrap(),
            );
            heap += user_heap_bytes(&u);
            fill(&cache, &Arc::new(u), SessionId::new());
        }
        assert_eq!(cache.len(), (n as usize, n as usize));
        let sessions = cache.sessions.memory_used().total() as u64 / n;
        let users = cache.users.memory_used().total() as u64 / n + heap / n;
        let rss = match (before, rss_anon()) {
            (Some(b), Some(a)) => format!("{} bytes", a.saturating_sub(b) / n),
            _ => "unknown".into(),
        };
        let weight_sessions = cache.sessions.weight() / n;
        let weight_users = cache.users.weight() / n;
        println!(
            "session cache per session+user: sessions {sessions} (weight {weight_sessions}), users {users} (weight {weight_users}); RssAnon growth {rss}"
        );
        assert!(weight_sessions >= sessions && weight_sessions <= 2 * sessions);
        assert!(weight_users >= users && weight_users <= 2 * users);
    }

    /// Readers that fill from a "database" racing a writer that revokes there and then
    /// invalidates, as the adapters do: once the invalidation has returned, no reader may see
    /// the session live, whatever it read before and whenever its fill lands.
    #[test]
    fn fills_racing_invalidations_never_revive_a_revoked_session() {
        use std::sync::atomic::AtomicUsize;
        let violations = AtomicUsize::new(0);
        for round in 0..200 {
            let cache = SessionCache::new(BUDGET);
            let alice = user();
            let session = SessionId::new();
            let revoked = AtomicBool::new(false);
            let invalidated = AtomicBool::new(false);
            std::thread::scope(|scope| {
                for _ in 0..3 {
                    scope.spawn(|| {
                        for _ in 0..2_000 {
                            let done = invalidated.load(Ordering::SeqCst);
                            match cache.lookup(alice.id, session, Utc::now()) {
                                Lookup::Live(_) if done => {
                                    violations.fetch_add(1, Ordering::SeqCst);
                                }
                                Lookup::Live(_) => {}
                                Lookup::Miss(epoch) => {
                                    // The database read, then the fill.
                                    if !revoked.load(Ordering::SeqCst) {
                                        std::thread::yield_now();
                                        cache.fill(epoch, session, later(60), alice.clone());
                                    }
                                }
                            }
                        }
                    });
                }
                scope.spawn(|| {
                    for _ in 0..(round % 50) * 20 {
                        std::hint::spin_loop();
                    }
                    std::thread::yield_now();
                    revoked.store(true, Ordering::SeqCst);
                    if round % 2 == 0 {
                        cache.forget_session(session);
                    } else {
                        cache.forget_user(alice.id);
                    }
                    invalidated.store(true, Ordering::SeqCst);
                });
            });
            assert!(!live(&cache, &alice, session), "round {round}");
        }
        assert_eq!(violations.load(Ordering::SeqCst), 0);
    }
}
