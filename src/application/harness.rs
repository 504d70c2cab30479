//! The use cases over test doubles, for their unit tests: the in-memory storage adapter
//! ([`MemoryStore`]) and fakes of the hasher, the token codec and the clock, all fast, without
//! I/O, and with time under the test's control.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Duration, TimeZone, Utc};

use super::{
    AccountService, AuthService, AuthSettings, ClientService, MfaService, OidcPorts, OidcService,
    Ports, SecondFactors, UserService,
};
use crate::domain::ports::{
    AccessTokenCodec, Clock, HashError, LockoutPolicy, PasswordHasher, TokenError,
};
use crate::domain::token::{AccessClaims, ClientAccessClaims, VerifiedAccess};
use crate::domain::user::{Password, PasswordHash, PasswordPolicy};
use crate::infrastructure::db::memory::MemoryStore;

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
    clients: Mutex<HashMap<String, ClientAccessClaims>>,
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

    fn sign_client(&self, claims: &ClientAccessClaims) -> Result<String, TokenError> {
        let token = format!("client-token-{}", claims.token_id);
        self.clients
            .lock()
            .unwrap()
            .insert(token.clone(), claims.clone());
        Ok(token)
    }

    fn verify_any(&self, token: &str, now: DateTime<Utc>) -> Result<VerifiedAccess, TokenError> {
        let client = self.clients.lock().unwrap().get(token).cloned();
        match client {
            Some(claims) if claims.expires_at <= now => Err(TokenError::Expired),
            Some(claims) => Ok(VerifiedAccess::Client(claims)),
            None => self.verify(token, now).map(VerifiedAccess::User),
        }
    }
}

/// Seals by prefixing the user id (no secrecy, but bound to the user like the real one).
pub struct FakeSealer;

impl crate::domain::mfa::SecretSealer for FakeSealer {
    fn seal(
        &self,
        user: crate::domain::user::UserId,
        plaintext: &[u8],
    ) -> Result<crate::domain::mfa::SealedSecret, crate::domain::mfa::SealError> {
        let mut bytes = user.as_uuid().as_bytes().to_vec();
        bytes.extend_from_slice(plaintext);
        Ok(crate::domain::mfa::SealedSecret::from_bytes(bytes))
    }

    fn open(
        &self,
        user: crate::domain::user::UserId,
        sealed: &crate::domain::mfa::SealedSecret,
    ) -> Result<Vec<u8>, crate::domain::mfa::SealError> {
        sealed
            .as_bytes()
            .strip_prefix(user.as_uuid().as_bytes().as_slice())
            .map(<[u8]>::to_vec)
            .ok_or(crate::domain::mfa::SealError("another user's secret"))
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

/// The services over one set of fakes, with handles to steer them.
pub struct Harness {
    pub store: MemoryStore,
    pub hasher: Arc<FakeHasher>,
    pub clock: Arc<ManualClock>,
    pub auth: AuthService,
    pub users: UserService,
    pub clients: ClientService,
    pub oidc: OidcService,
    pub mfa: MfaService,
    pub id_tokens: Arc<FakeIdTokens>,
    pub account: AccountService,
}

/// Keeps signed ID-token claims in a map; the "token" is a key into it.
#[derive(Default)]
pub struct FakeIdTokens {
    pub issued: Mutex<HashMap<String, crate::domain::oidc::IdClaims>>,
}

impl crate::domain::ports::IdTokenCodec for FakeIdTokens {
    fn sign_id_token(&self, claims: &crate::domain::oidc::IdClaims) -> Result<String, TokenError> {
        let mut issued = self.issued.lock().unwrap();
        let token = format!("id-token-{}", issued.len());
        issued.insert(token.clone(), claims.clone());
        Ok(token)
    }

    fn read_id_token_hint(
        &self,
        token: &str,
    ) -> Result<crate::domain::ports::IdTokenHint, TokenError> {
        let issued = self.issued.lock().unwrap();
        let claims = issued.get(token).ok_or(TokenError::Invalid("unknown"))?;
        Ok(crate::domain::ports::IdTokenHint {
            subject: claims.subject,
            audience: claims.audience,
            session_id: claims.session_id,
        })
    }
}

impl Harness {
    pub fn new() -> Self {
        let store = MemoryStore::new();
        let hasher = Arc::new(FakeHasher::new());
        let clock = Arc::new(ManualClock::new());
        let shared = Arc::new(store.clone());
        let clients = ClientService::new(
            shared.clone(),
            clock.clone(),
            super::Auditor::new(shared.clone(), clock.clone()),
        );
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
        let factors =
            SecondFactors::new(Arc::new(store.clone()), Arc::new(FakeSealer), clock.clone());
        let auth = AuthService::new(
            ports.clone(),
            AuthSettings {
                access_token_ttl: Duration::minutes(15),
                refresh_token_ttl: Duration::days(14),
                session_max_lifetime: Duration::days(30),
                max_sessions_per_user: 100,
                lockout,
                refresh_reuse_grace: Duration::zero(),
                successor_key: crate::application::auth::RefreshSuccessorKey::derive_from(
                    &[42; 32],
                ),
            },
        )
        .with_second_factors(factors.clone());
        let account = AccountService::new(
            ports.clone(),
            Arc::new(store.clone()),
            factors.clone(),
            lockout,
        );
        let mfa = MfaService::new(
            ports.clone(),
            factors,
            Arc::new(store.clone()),
            lockout,
            "auth.test".into(),
        );
        let users = UserService::new(ports, PasswordPolicy::default(), true, lockout);
        let id_tokens = Arc::new(FakeIdTokens::default());
        let oidc = OidcService::new(
            auth.clone(),
            OidcPorts {
                clients: Arc::new(store.clone()),
                codes: Arc::new(store.clone()),
                id_tokens: id_tokens.clone(),
            },
        );
        Self {
            oidc,
            mfa,
            id_tokens,
            store,
            hasher,
            clock,
            auth,
            users,
            clients,
            account,
        }
    }
}
