//! In-memory fakes of every port, for the use-case unit tests: fast, no I/O, and time under the
//! test's control.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Duration, TimeZone, Utc};

use super::{AuthService, AuthSettings, Ports, UserService};
use crate::domain::audit::{AuditEvent, AuditEventKind, AuditFilter};
use crate::domain::ports::*;
use crate::domain::session::*;
use crate::domain::token::AccessClaims;
use crate::domain::user::{
    LoginKey, Password, PasswordHash, PasswordPolicy, User, UserChanges, UserId,
};

#[derive(Debug, Clone)]
struct StoredSession {
    session: Session,
    revoked: bool,
}

#[derive(Debug, Clone)]
struct StoredToken {
    record: RefreshTokenRecord,
    used: bool,
}

#[derive(Default)]
struct State {
    users: Vec<User>,
    sessions: HashMap<SessionId, StoredSession>,
    tokens: HashMap<RefreshTokenHash, StoredToken>,
    throttle: HashMap<String, ThrottleState>,
    audit: Vec<AuditEvent>,
}

/// Users, sessions and refresh tokens in one mutex, so rotation is atomic as the port demands.
#[derive(Default, Clone)]
pub struct InMemoryStore {
    state: Arc<Mutex<State>>,
}

impl InMemoryStore {
    /// How many sessions of the user are not revoked.
    pub fn live_sessions(&self, user_id: UserId) -> usize {
        let state = self.state.lock().unwrap();
        state
            .sessions
            .values()
            .filter(|s| s.session.user_id == user_id && !s.revoked)
            .count()
    }

    /// The kinds of the audit events recorded so far, oldest first.
    pub fn audit_kinds(&self) -> Vec<AuditEventKind> {
        let state = self.state.lock().unwrap();
        state.audit.iter().map(|e| e.kind).collect()
    }

    /// Sets a user's `is_active` flag.
    pub fn set_active(&self, user_id: UserId, active: bool) {
        let mut state = self.state.lock().unwrap();
        if let Some(user) = state.users.iter_mut().find(|u| u.id == user_id) {
            user.is_active = active;
        }
    }
}

#[async_trait]
impl UserRepository for InMemoryStore {
    async fn insert(&self, user: &User) -> Result<(), StoreError> {
        let mut state = self.state.lock().unwrap();
        let same = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
        if state
            .users
            .iter()
            .any(|u| same(u.username.as_str(), user.username.as_str()))
        {
            return Err(StoreError::UsernameTaken);
        }
        if let Some(email) = &user.email {
            if state.users.iter().any(|u| {
                u.email
                    .as_ref()
                    .is_some_and(|e| same(e.as_str(), email.as_str()))
            }) {
                return Err(StoreError::EmailTaken);
            }
        }
        state.users.push(user.clone());
        Ok(())
    }

    async fn has_password_hash_with_prefix(&self, prefix: &str) -> Result<bool, StoreError> {
        let state = self.state.lock().unwrap();
        Ok(state
            .users
            .iter()
            .any(|u| u.password_hash.as_str().starts_with(prefix)))
    }

    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let state = self.state.lock().unwrap();
        Ok(state.users.iter().find(|u| u.id == id).cloned())
    }

    async fn find_by_username(&self, key: &LoginKey) -> Result<Option<User>, StoreError> {
        let state = self.state.lock().unwrap();
        Ok(state
            .users
            .iter()
            .find(|u| u.username.login_key() == *key)
            .cloned())
    }

    async fn find_active_by_session(
        &self,
        user_id: UserId,
        session_id: SessionId,
        now: DateTime<Utc>,
    ) -> Result<Option<Arc<User>>, StoreError> {
        let state = self.state.lock().unwrap();
        let live = state.sessions.get(&session_id).is_some_and(|s| {
            !s.revoked && s.session.user_id == user_id && s.session.expires_at > now
        });
        Ok(state
            .users
            .iter()
            .find(|u| live && u.id == user_id && u.is_active)
            .cloned()
            .map(Arc::new))
    }

    async fn list(&self, limit: u32, offset: u64) -> Result<(Vec<User>, u64), StoreError> {
        let state = self.state.lock().unwrap();
        let page = state
            .users
            .iter()
            .skip(usize::try_from(offset).unwrap_or(usize::MAX))
            .take(limit as usize)
            .cloned()
            .collect();
        Ok((page, state.users.len() as u64))
    }

    async fn update_fields(
        &self,
        id: UserId,
        changes: &UserChanges,
        now: DateTime<Utc>,
    ) -> Result<Option<(User, u64)>, StoreError> {
        let mut state = self.state.lock().unwrap();
        if let Some(Some(email)) = &changes.email {
            let taken = state.users.iter().any(|u| {
                u.id != id
                    && u.email
                        .as_ref()
                        .is_some_and(|e| e.as_str().eq_ignore_ascii_case(email.as_str()))
            });
            if taken {
                return Err(StoreError::EmailTaken);
            }
        }
        let Some(user) = state.users.iter_mut().find(|u| u.id == id) else {
            return Ok(None);
        };
        if let Some(active) = changes.is_active {
            user.is_active = active;
        }
        if let Some(roles) = &changes.roles {
            user.roles = roles.clone();
        }
        if let Some(email) = &changes.email {
            user.email = email.clone();
        }
        if let Some(full_name) = &changes.full_name {
            user.full_name = full_name.clone();
        }
        user.updated_at = now;
        let user = user.clone();
        let mut revoked = 0;
        if changes.is_active == Some(false) {
            revoked = revoke_all(&mut state, id, None);
        }
        Ok(Some((user, revoked)))
    }

    async fn change_password(
        &self,
        id: UserId,
        hash: &PasswordHash,
        keep: Option<SessionId>,
        now: DateTime<Utc>,
    ) -> Result<Option<u64>, StoreError> {
        let mut state = self.state.lock().unwrap();
        let Some(user) = state.users.iter_mut().find(|u| u.id == id) else {
            return Ok(None);
        };
        user.password_hash = hash.clone();
        user.credential_version += 1;
        user.updated_at = now;
        Ok(Some(revoke_all(&mut state, id, keep)))
    }

    async fn upgrade_password_hash(
        &self,
        id: UserId,
        old: &PasswordHash,
        new: &PasswordHash,
    ) -> Result<bool, StoreError> {
        let mut state = self.state.lock().unwrap();
        Ok(
            match state
                .users
                .iter_mut()
                .find(|u| u.id == id && u.password_hash == *old)
            {
                Some(user) => {
                    user.password_hash = new.clone();
                    true
                }
                None => false,
            },
        )
    }
}

/// Revokes every live session of the user but `except`; returns how many.
fn revoke_all(state: &mut State, user_id: UserId, except: Option<SessionId>) -> u64 {
    let mut count = 0;
    for s in state.sessions.values_mut() {
        if s.session.user_id == user_id && !s.revoked && Some(s.session.id) != except {
            s.revoked = true;
            count += 1;
        }
    }
    count
}

/// Revokes a session and the sessions started from it; whether the session itself was live.
fn revoke_family(state: &mut State, id: SessionId) -> bool {
    let mut root = false;
    for s in state.sessions.values_mut() {
        if !s.revoked && (s.session.id == id || s.session.parent_id == Some(id)) {
            s.revoked = true;
            root |= s.session.id == id;
        }
    }
    root
}

#[async_trait]
impl TokenRepository for InMemoryStore {
    async fn create_session(&self, new: &NewSession) -> Result<Option<DateTime<Utc>>, StoreError> {
        let mut state = self.state.lock().unwrap();
        let mut session = new.session.clone();
        let current = state
            .users
            .iter()
            .find(|u| u.id == session.user_id)
            .map(|u| (u.credential_version, u.is_active));
        if current != Some((new.credential_version, true)) {
            return Ok(None);
        }
        if let Some(parent) = session.parent_id {
            let parent = state.sessions.get(&parent).filter(|p| {
                !p.revoked
                    && p.session.user_id == session.user_id
                    && p.session.expires_at > session.created_at
            });
            let Some(parent) = parent else {
                return Ok(None);
            };
            session.not_after = session.not_after.min(parent.session.not_after);
        }
        session.expires_at = session.expires_at.min(session.not_after);
        let mut token = new.first_token.clone();
        token.expires_at = token.expires_at.min(session.not_after);
        let now = session.created_at;
        let expires_at = session.expires_at;
        let user_id = session.user_id;
        state.sessions.insert(
            session.id,
            StoredSession {
                session,
                revoked: false,
            },
        );
        state.tokens.insert(
            token.hash.clone(),
            StoredToken {
                record: token,
                used: false,
            },
        );
        let mut live: Vec<_> = state
            .sessions
            .values()
            .filter(|s| s.session.user_id == user_id && !s.revoked && s.session.expires_at > now)
            .map(|s| (s.session.created_at, s.session.id.as_uuid()))
            .collect();
        live.sort_unstable_by(|a, b| b.cmp(a));
        for (_, id) in live.into_iter().skip(new.max_live_sessions as usize) {
            state
                .sessions
                .get_mut(&SessionId::from_uuid(id))
                .unwrap()
                .revoked = true;
        }
        Ok(Some(expires_at))
    }

    async fn rotate_refresh_token(
        &self,
        rotation: &Rotation,
    ) -> Result<RotationOutcome, StoreError> {
        let mut state = self.state.lock().unwrap();
        let outcome = rotate(&mut state, rotation);
        if let Some(event) = outcome.audit_event(&rotation.audit) {
            state.audit.push(event);
        }
        Ok(outcome)
    }

    async fn find_session_of_refresh_token(
        &self,
        hash: &RefreshTokenHash,
    ) -> Result<Option<SessionId>, StoreError> {
        let state = self.state.lock().unwrap();
        Ok(state.tokens.get(hash).map(|t| t.record.session_id))
    }

    async fn revoke_session(
        &self,
        id: SessionId,
        _reason: RevocationReason,
        _now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        Ok(revoke_family(&mut self.state.lock().unwrap(), id))
    }

    async fn revoke_user_sessions(
        &self,
        user_id: UserId,
        except: Option<SessionId>,
        _reason: RevocationReason,
        _now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        Ok(revoke_all(&mut self.state.lock().unwrap(), user_id, except))
    }
}

/// The rotation under the store's lock.
fn rotate(state: &mut State, rotation: &Rotation) -> RotationOutcome {
    let (presented, next, now) = (&rotation.presented, &rotation.next, rotation.now);
    let Some(token) = state.tokens.get(presented).cloned() else {
        return RotationOutcome::Invalid;
    };
    let stored = state.sessions.get(&token.record.session_id).cloned();
    let Some(stored) = stored else {
        return RotationOutcome::Invalid;
    };
    if token.used {
        revoke_family(state, stored.session.id);
        return RotationOutcome::Reused {
            session_id: stored.session.id,
            user_id: stored.session.user_id,
        };
    }
    let user = state
        .users
        .iter()
        .find(|u| u.id == stored.session.user_id && u.is_active)
        .cloned();
    let Some(user) = user else {
        return RotationOutcome::Invalid;
    };
    if stored.revoked || token.record.expires_at <= now {
        return RotationOutcome::Invalid;
    }
    let next_expires_at = rotation.next_expires_at.min(stored.session.not_after);
    state.tokens.get_mut(presented).unwrap().used = true;
    state.tokens.insert(
        next.clone(),
        StoredToken {
            record: RefreshTokenRecord {
                hash: next.clone(),
                session_id: stored.session.id,
                created_at: now,
                expires_at: next_expires_at,
            },
            used: false,
        },
    );
    let session = &mut state.sessions.get_mut(&stored.session.id).unwrap().session;
    session.expires_at = next_expires_at;
    RotationOutcome::Rotated {
        session: session.clone(),
        user: Box::new(user),
    }
}

#[async_trait]
impl LoginThrottle for InMemoryStore {
    async fn apply(
        &self,
        key: &LoginKey,
        event: ThrottleEvent,
        policy: &LockoutPolicy,
        now: DateTime<Utc>,
    ) -> Result<ThrottleOutcome, StoreError> {
        let mut state = self.state.lock().unwrap();
        let stored = state.throttle.get(key.as_str()).copied();
        let (next, outcome) = policy.apply(stored, event, now);
        match next {
            Some(next) => state.throttle.insert(key.as_str().to_owned(), next),
            None => state.throttle.remove(key.as_str()),
        };
        Ok(outcome)
    }
}

#[async_trait]
impl AuditLog for InMemoryStore {
    async fn record(&self, event: &AuditEvent) -> Result<(), StoreError> {
        self.state.lock().unwrap().audit.push(event.clone());
        Ok(())
    }

    async fn list(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError> {
        let state = self.state.lock().unwrap();
        Ok(state
            .audit
            .iter()
            .rev()
            .filter(|e| filter.user_id.is_none_or(|id| e.user_id == Some(id)))
            .filter(|e| filter.kind.is_none_or(|kind| e.kind == kind))
            .filter(|e| filter.before.is_none_or(|before| e.at < before))
            .take(filter.limit as usize)
            .cloned()
            .collect())
    }
}

/// "Hashes" by prefixing; counts nothing, but can be made busy.
#[derive(Default)]
pub struct FakeHasher {
    pub busy: AtomicBool,
    /// How many verifications ran (the dummy one included).
    pub verifications: AtomicUsize,
    dummy: Option<PasswordHash>,
}

impl FakeHasher {
    pub fn new() -> Self {
        Self {
            busy: AtomicBool::new(false),
            verifications: AtomicUsize::new(0),
            dummy: Some(PasswordHash::new("fake:\u{0}dummy".into())),
        }
    }
}

#[async_trait]
impl PasswordHasher for FakeHasher {
    async fn hash(&self, password: &Password) -> Result<PasswordHash, HashError> {
        if self.busy.load(Ordering::SeqCst) {
            return Err(HashError::Busy {
                retry_after_secs: 1,
            });
        }
        Ok(PasswordHash::new(format!("fake:{}", password.expose())))
    }

    async fn verify(&self, password: &Password, hash: &PasswordHash) -> Result<bool, HashError> {
        self.verifications.fetch_add(1, Ordering::SeqCst);
        if self.busy.load(Ordering::SeqCst) {
            return Err(HashError::Busy {
                retry_after_secs: 1,
            });
        }
        Ok(hash.as_str() == format!("fake:{}", password.expose())
            || hash.as_str() == format!("old:{}", password.expose()))
    }

    fn dummy_hash(&self) -> &PasswordHash {
        self.dummy.as_ref().expect("built with FakeHasher::new")
    }

    fn is_supported(&self, hash: &PasswordHash) -> bool {
        hash.as_str().starts_with("fake:") || hash.as_str().starts_with("old:")
    }

    fn needs_rehash(&self, hash: &PasswordHash) -> bool {
        hash.as_str().starts_with("old:")
    }
}

/// Keeps signed claims in a map; the "token" is a key into it.
#[derive(Default)]
pub struct FakeCodec {
    issued: Mutex<HashMap<String, AccessClaims>>,
}

impl AccessTokenCodec for FakeCodec {
    fn sign(&self, claims: &AccessClaims) -> Result<String, TokenError> {
        let token = format!("token-{}", claims.token_id);
        self.issued
            .lock()
            .unwrap()
            .insert(token.clone(), claims.clone());
        Ok(token)
    }

    fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<AccessClaims, TokenError> {
        let claims = self
            .issued
            .lock()
            .unwrap()
            .get(token)
            .cloned()
            .ok_or(TokenError::Invalid("unknown token"))?;
        if claims.expires_at <= now {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

/// A clock that moves only when told to.
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new() -> Self {
        Self(Mutex::new(
            Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap(),
        ))
    }
    pub fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

/// Both services over one set of fakes, with handles to steer them.
pub struct Harness {
    pub store: InMemoryStore,
    pub hasher: Arc<FakeHasher>,
    pub clock: Arc<ManualClock>,
    pub auth: AuthService,
    pub users: UserService,
}

impl Harness {
    pub fn new() -> Self {
        let store = InMemoryStore::default();
        let hasher = Arc::new(FakeHasher::new());
        let clock = Arc::new(ManualClock::new());
        let shared = Arc::new(store.clone());
        let ports = Ports {
            users: shared.clone(),
            tokens: shared.clone(),
            throttle: shared.clone(),
            audit: shared,
            hasher: hasher.clone(),
            codec: Arc::new(FakeCodec::default()),
            clock: clock.clone(),
        };
        let lockout = LockoutPolicy {
            max_failures: 3,
            base: Duration::minutes(5),
            max: Duration::hours(1),
        };
        let auth = AuthService::new(
            ports.clone(),
            AuthSettings {
                access_token_ttl: Duration::minutes(15),
                refresh_token_ttl: Duration::days(14),
                session_max_lifetime: Duration::days(30),
                max_sessions_per_user: 100,
                lockout,
            },
        );
        let users = UserService::new(ports, PasswordPolicy::default(), true, lockout);
        Self {
            store,
            hasher,
            clock,
            auth,
            users,
        }
    }
}
