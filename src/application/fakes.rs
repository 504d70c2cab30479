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
use crate::domain::user::{Password, PasswordHash, PasswordPolicy, User, UserId};

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

    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let state = self.state.lock().unwrap();
        Ok(state.users.iter().find(|u| u.id == id).cloned())
    }

    async fn find_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        let state = self.state.lock().unwrap();
        Ok(state
            .users
            .iter()
            .find(|u| u.username.as_str().eq_ignore_ascii_case(username))
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

    async fn update(&self, user: &User) -> Result<bool, StoreError> {
        let mut state = self.state.lock().unwrap();
        if let Some(email) = &user.email {
            let taken = state.users.iter().any(|u| {
                u.id != user.id
                    && u.email
                        .as_ref()
                        .is_some_and(|e| e.as_str().eq_ignore_ascii_case(email.as_str()))
            });
            if taken {
                return Err(StoreError::EmailTaken);
            }
        }
        Ok(match state.users.iter_mut().find(|u| u.id == user.id) {
            Some(stored) => {
                *stored = User {
                    password_hash: stored.password_hash.clone(),
                    ..user.clone()
                };
                true
            }
            None => false,
        })
    }

    async fn update_password_hash(
        &self,
        id: UserId,
        hash: &PasswordHash,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut state = self.state.lock().unwrap();
        Ok(match state.users.iter_mut().find(|u| u.id == id) {
            Some(user) => {
                user.password_hash = hash.clone();
                user.updated_at = now;
                true
            }
            None => false,
        })
    }
}

#[async_trait]
impl TokenRepository for InMemoryStore {
    async fn create_session(
        &self,
        session: &Session,
        first_token: &RefreshTokenRecord,
    ) -> Result<(), StoreError> {
        let mut state = self.state.lock().unwrap();
        state.sessions.insert(
            session.id,
            StoredSession {
                session: session.clone(),
                revoked: false,
            },
        );
        state.tokens.insert(
            first_token.hash.clone(),
            StoredToken {
                record: first_token.clone(),
                used: false,
            },
        );
        Ok(())
    }

    async fn rotate_refresh_token(
        &self,
        presented: &RefreshTokenHash,
        next: &RefreshTokenHash,
        next_expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<RotationOutcome, StoreError> {
        let mut state = self.state.lock().unwrap();
        let Some(token) = state.tokens.get(presented).cloned() else {
            return Ok(RotationOutcome::Invalid);
        };
        let stored = state.sessions.get(&token.record.session_id).cloned();
        let Some(stored) = stored else {
            return Ok(RotationOutcome::Invalid);
        };
        if token.used {
            state.sessions.get_mut(&stored.session.id).unwrap().revoked = true;
            return Ok(RotationOutcome::Reused {
                session_id: stored.session.id,
                user_id: stored.session.user_id,
            });
        }
        let user = state
            .users
            .iter()
            .find(|u| u.id == stored.session.user_id && u.is_active)
            .cloned();
        let Some(user) = user else {
            return Ok(RotationOutcome::Invalid);
        };
        if stored.revoked || token.record.expires_at <= now {
            return Ok(RotationOutcome::Invalid);
        }
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
        Ok(RotationOutcome::Rotated {
            session: session.clone(),
            user: Box::new(user),
        })
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
        let mut state = self.state.lock().unwrap();
        Ok(match state.sessions.get_mut(&id) {
            Some(s) if !s.revoked => {
                s.revoked = true;
                true
            }
            _ => false,
        })
    }

    async fn revoke_user_sessions(
        &self,
        user_id: UserId,
        except: Option<SessionId>,
        _reason: RevocationReason,
        _now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let mut state = self.state.lock().unwrap();
        let mut count = 0;
        for s in state.sessions.values_mut() {
            if s.session.user_id == user_id && !s.revoked && Some(s.session.id) != except {
                s.revoked = true;
                count += 1;
            }
        }
        Ok(count)
    }
}

#[async_trait]
impl LoginThrottle for InMemoryStore {
    async fn state(&self, key: &str, now: DateTime<Utc>) -> Result<ThrottleState, StoreError> {
        let state = self.state.lock().unwrap();
        let mut found = state.throttle.get(key).copied().unwrap_or_default();
        found.locked_until = found.locked_until.filter(|until| *until > now);
        Ok(found)
    }

    async fn record_failure(
        &self,
        key: &str,
        now: DateTime<Utc>,
        policy: &LockoutPolicy,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let mut state = self.state.lock().unwrap();
        let entry = state.throttle.entry(key.to_owned()).or_default();
        entry.failures += 1;
        if entry.failures < policy.max_failures {
            return Ok(None);
        }
        let until = now + policy.lock_length(entry.locks);
        entry.failures = 0;
        entry.locks += 1;
        entry.locked_until = Some(until);
        Ok(Some(until))
    }

    async fn record_success(&self, key: &str) -> Result<(), StoreError> {
        self.state.lock().unwrap().throttle.remove(key);
        Ok(())
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
        let auth = AuthService::new(
            ports.clone(),
            AuthSettings {
                access_token_ttl: Duration::minutes(15),
                refresh_token_ttl: Duration::days(14),
                lockout: LockoutPolicy {
                    max_failures: 3,
                    base: Duration::minutes(5),
                    max: Duration::hours(1),
                },
            },
        );
        let users = UserService::new(ports, PasswordPolicy::default(), true);
        Self {
            store,
            hasher,
            clock,
            auth,
            users,
        }
    }
}
