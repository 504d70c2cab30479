//! The live sessions this process has already checked, so that `GET /users/me` and every other
//! authenticated request need no SQLite read transaction once a session is known.
//!
//! Sound because this process is the only writer of sessions and users: every write that can
//! end a session or change its user (rotation, revocation, reuse detection, user updates,
//! password changes, the purge) goes through this adapter, which forgets the affected entries
//! after its commit and before it returns. A write made by another process (an operator's
//! `sqlite3`, a second server on the same file, which is not a supported deployment) is seen by
//! polling `PRAGMA data_version` on the writer connection; that empties the cache.
//!
//! The race between a reader that fills the cache from a snapshot taken before a write, and
//! that write's invalidation, is closed by an epoch: every invalidation bumps it, and a fill
//! only lands if the epoch did not move since the reader looked the entry up.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use crate::domain::session::SessionId;
use crate::domain::user::{User, UserId};

/// How many sessions are remembered; beyond it an arbitrary entry makes room.
const CAPACITY: usize = 10_000;

#[derive(Default)]
pub(super) struct SessionCache {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    epoch: u64,
    entries: HashMap<SessionId, Entry>,
}

struct Entry {
    user_id: UserId,
    expires_at: DateTime<Utc>,
    user: Arc<User>,
}

/// What a lookup found.
pub(super) enum Lookup {
    /// The session is live and this is its (active) user.
    Live(Arc<User>),
    /// Not known here: ask the database, then [`SessionCache::fill`] with this epoch.
    Miss(u64),
}

impl SessionCache {
    /// The user of session `session_id` if this process knows it to be live at `now`.
    pub(super) fn lookup(
        &self,
        user_id: UserId,
        session_id: SessionId,
        now: DateTime<Utc>,
    ) -> Lookup {
        let Ok(state) = self.state.lock() else {
            return Lookup::Miss(u64::MAX);
        };
        match state.entries.get(&session_id) {
            Some(entry) if entry.user_id == user_id && entry.expires_at > now => {
                Lookup::Live(Arc::clone(&entry.user))
            }
            _ => Lookup::Miss(state.epoch),
        }
    }

    /// Remembers that session `session_id`, expiring at `expires_at`, belongs to the active
    /// `user`, as read from the database after a [`Lookup::Miss`] at `epoch`. Dropped if anything
    /// was invalidated since: the read may predate that write.
    pub(super) fn fill(
        &self,
        epoch: u64,
        session_id: SessionId,
        expires_at: DateTime<Utc>,
        user: Arc<User>,
    ) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if state.epoch != epoch {
            return;
        }
        if state.entries.len() >= CAPACITY && !state.entries.contains_key(&session_id) {
            if let Some(victim) = state.entries.keys().next().copied() {
                state.entries.remove(&victim);
            }
        }
        let user_id = user.id;
        state.entries.insert(
            session_id,
            Entry {
                user_id,
                expires_at,
                user,
            },
        );
    }

    /// Forgets one session (rotated, revoked).
    pub(super) fn forget_session(&self, session_id: SessionId) {
        self.invalidate(|entries| {
            entries.remove(&session_id);
        });
    }

    /// Forgets every session of one user (user changed, sessions revoked).
    pub(super) fn forget_user(&self, user_id: UserId) {
        self.invalidate(|entries| entries.retain(|_, entry| entry.user_id != user_id));
    }

    /// Forgets everything (the purge, another process's write).
    pub(super) fn clear(&self) {
        self.invalidate(HashMap::clear);
    }

    fn invalidate(&self, forget: impl FnOnce(&mut HashMap<SessionId, Entry>)) {
        // A poisoned lock still holds a consistent map (every critical section is a single
        // map operation), so invalidation goes ahead regardless.
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.epoch = state.epoch.wrapping_add(1);
        forget(&mut state.entries);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.state.lock().map_or(0, |state| state.entries.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::user::{PasswordHash, Roles, Username};

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

    #[test]
    fn a_filled_session_is_live_until_it_expires_and_only_for_its_user() {
        let cache = SessionCache::default();
        let alice = user();
        let session = SessionId::new();
        let Lookup::Miss(epoch) = cache.lookup(alice.id, session, Utc::now()) else {
            panic!("empty cache hit");
        };
        cache.fill(epoch, session, later(60), alice.clone());
        assert!(
            matches!(cache.lookup(alice.id, session, Utc::now()), Lookup::Live(u) if u.id == alice.id)
        );
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
        let cache = SessionCache::default();
        let alice = user();
        let session = SessionId::new();
        let Lookup::Miss(epoch) = cache.lookup(alice.id, session, Utc::now()) else {
            panic!("empty cache hit");
        };
        // A revocation commits and invalidates while the reader is between lookup and fill.
        cache.forget_session(session);
        cache.fill(epoch, session, later(60), alice.clone());
        assert!(matches!(
            cache.lookup(alice.id, session, Utc::now()),
            Lookup::Miss(_)
        ));
    }

    #[test]
    fn invalidation_forgets_the_session_the_user_or_everything() {
        let cache = SessionCache::default();
        let (alice, bob) = (user(), user());
        let sessions: Vec<(Arc<User>, SessionId)> = [&alice, &alice, &bob]
            .into_iter()
            .map(|u| (u.clone(), SessionId::new()))
            .collect();
        let fill_all = || {
            for (u, s) in &sessions {
                let Lookup::Miss(epoch) = cache.lookup(u.id, *s, Utc::now()) else {
                    continue;
                };
                cache.fill(epoch, *s, later(60), u.clone());
            }
        };
        fill_all();
        assert_eq!(cache.len(), 3);
        cache.forget_session(sessions[0].1);
        assert!(matches!(
            cache.lookup(alice.id, sessions[0].1, Utc::now()),
            Lookup::Miss(_)
        ));
        assert!(matches!(
            cache.lookup(alice.id, sessions[1].1, Utc::now()),
            Lookup::Live(_)
        ));
        cache.forget_user(alice.id);
        assert!(matches!(
            cache.lookup(alice.id, sessions[1].1, Utc::now()),
            Lookup::Miss(_)
        ));
        assert!(matches!(
            cache.lookup(bob.id, sessions[2].1, Utc::now()),
            Lookup::Live(_)
        ));
        fill_all();
        cache.clear();
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn the_cache_stays_within_its_capacity() {
        let cache = SessionCache::default();
        let alice = user();
        for _ in 0..CAPACITY + 50 {
            let session = SessionId::new();
            if let Lookup::Miss(epoch) = cache.lookup(alice.id, session, Utc::now()) {
                cache.fill(epoch, session, later(60), alice.clone());
            }
        }
        assert_eq!(cache.len(), CAPACITY);
    }
}
