//! Passkeys: registering, listing and deleting them (for a signed-in user), signing in with one
//! on the hosted login page (usernameless: the passkey names its user), and proving a known user
//! holds one (a second factor after the password).
//!
//! Each ceremony's state is stored in the shared store and taken once by its finish, so any
//! replica can finish it and no challenge is answered twice; a finish whose ceremony is
//! unknown, expired, already taken, of another kind or of another user fails alike.

use std::sync::Arc;

use chrono::Duration;

use super::{AppError, Auditor, AuthService, BrowserSignIn, Ports, Principal, RequestContext};
use crate::domain::audit::AuditEventKind as Event;
use crate::domain::passkey::{
    AddOutcome, Ceremony, CeremonyId, CeremonyKind, Passkey, PasskeyId, PasskeyName,
    PasskeyRepository, WebAuthn, WebAuthnError, CEREMONY_LIFETIME_SECONDS, MAX_PASSKEYS_PER_USER,
};
use crate::domain::user::{User, UserId};
use crate::domain::validation::FieldError;

/// A ceremony just started: its id (which the finish names) and the browser's options.
#[derive(Debug)]
pub struct StartedCeremony {
    pub id: CeremonyId,
    /// JSON for `navigator.credentials.create`/`get`: `{"publicKey": {...}}`.
    pub options: String,
}

/// The passkey use cases.
#[derive(Clone)]
pub struct PasskeyService {
    auth: AuthService,
    ports: Ports,
    passkeys: Arc<dyn PasskeyRepository>,
    webauthn: Arc<dyn WebAuthn>,
    audit: Auditor,
}

impl PasskeyService {
    /// The use cases over `auth`'s ports, the passkey store and the relying party.
    pub fn new(
        auth: AuthService,
        passkeys: Arc<dyn PasskeyRepository>,
        webauthn: Arc<dyn WebAuthn>,
    ) -> Self {
        let ports = auth.ports().clone();
        Self {
            audit: ports.auditor(),
            auth,
            ports,
            passkeys,
            webauthn,
        }
    }

    async fn start(
        &self,
        kind: CeremonyKind,
        user_id: Option<UserId>,
        challenge: Result<crate::domain::passkey::Challenge, WebAuthnError>,
    ) -> Result<StartedCeremony, AppError> {
        let challenge = challenge.map_err(webauthn_failure)?;
        let ceremony = Ceremony {
            id: CeremonyId::new(),
            kind,
            user_id,
            state: challenge.state,
            expires_at: self.ports.clock.now() + Duration::seconds(CEREMONY_LIFETIME_SECONDS),
        };
        self.passkeys.insert_ceremony(&ceremony).await?;
        Ok(StartedCeremony {
            id: ceremony.id,
            options: challenge.options,
        })
    }

    /// Takes the ceremony `raw_id` of `kind` for `user_id`.
    async fn take(
        &self,
        raw_id: &str,
        kind: CeremonyKind,
        user_id: Option<UserId>,
    ) -> Result<Ceremony, AppError> {
        let id = uuid::Uuid::parse_str(raw_id.trim()).map_err(|_| AppError::CeremonyInvalid)?;
        let now = self.ports.clock.now();
        self.passkeys
            .take_ceremony(CeremonyId::from_uuid(id), kind, user_id, now)
            .await?
            .ok_or(AppError::CeremonyInvalid)
    }

    /// Starts registering a passkey for the caller, excluding the ones they have.
    ///
    /// # Errors
    /// [`AppError::PasskeyLimitReached`], [`AppError::Unavailable`].
    pub async fn start_registration(
        &self,
        principal: &Principal,
    ) -> Result<StartedCeremony, AppError> {
        let user = &principal.user;
        let existing = self.passkeys.list_passkeys(user.id).await?;
        if existing.len() >= MAX_PASSKEYS_PER_USER as usize {
            return Err(AppError::PasskeyLimitReached {
                max: MAX_PASSKEYS_PER_USER,
            });
        }
        let challenge =
            self.webauthn
                .start_registration(user.id, user.username.as_str(), &existing);
        self.start(CeremonyKind::Registration, Some(user.id), challenge)
            .await
    }

    /// Finishes the caller's registration `ceremony_id` with the browser's `credential` JSON.
    ///
    /// # Errors
    /// [`AppError::Validation`] (name), [`AppError::CeremonyInvalid`],
    /// [`AppError::PasskeyRejected`], [`AppError::PasskeyAlreadyRegistered`],
    /// [`AppError::PasskeyLimitReached`], [`AppError::Unavailable`].
    pub async fn finish_registration(
        &self,
        principal: &Principal,
        ceremony_id: &str,
        credential: &str,
        name: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<Passkey, AppError> {
        let user = &principal.user;
        let name = match name {
            Some(raw) => PasskeyName::parse(raw).map_err(|(code, why)| {
                AppError::Validation(vec![FieldError::new("name", code, why)])
            })?,
            None => PasskeyName::default_name(),
        };
        let ceremony = self
            .take(ceremony_id, CeremonyKind::Registration, Some(user.id))
            .await?;
        // A credential registered already (to anyone) is told as such, before verifying it.
        if let Ok(id) = self.webauthn.registration_credential_id(credential) {
            if self.passkeys.find_by_credential_id(&id).await?.is_some() {
                return Err(AppError::PasskeyAlreadyRegistered);
            }
        }
        let verified = match self
            .webauthn
            .finish_registration(&ceremony.state, credential)
        {
            Ok(verified) => verified,
            Err(WebAuthnError::AlreadyRegistered) => {
                return Err(AppError::PasskeyAlreadyRegistered)
            }
            Err(error) => {
                let refusal = rejection(error)?;
                self.audit
                    .event(Event::PasskeyFailed, ctx)
                    .user(user)
                    .failed()
                    .detail(format!("registration refused: {refusal}"))
                    .record()
                    .await?;
                return Err(AppError::PasskeyRejected(refusal));
            }
        };
        let passkey = Passkey {
            id: PasskeyId::new(),
            user_id: user.id,
            name,
            credential_id: verified.credential_id,
            credential: verified.credential,
            sign_count: verified.sign_count,
            created_at: self.ports.clock.now(),
            last_used_at: None,
        };
        match self
            .passkeys
            .add_passkey(&passkey, MAX_PASSKEYS_PER_USER)
            .await?
        {
            AddOutcome::Added => {}
            AddOutcome::Duplicate => return Err(AppError::PasskeyAlreadyRegistered),
            AddOutcome::LimitReached => {
                return Err(AppError::PasskeyLimitReached {
                    max: MAX_PASSKEYS_PER_USER,
                })
            }
            AddOutcome::NoSuchUser => return Err(AppError::UserNotFound),
        }
        self.audit
            .event(Event::PasskeyAdded, ctx)
            .user(user)
            .detail(format!("passkey {}", passkey.id))
            .record()
            .await?;
        Ok(passkey)
    }

    /// The caller's passkeys, oldest first.
    ///
    /// # Errors
    /// [`AppError::Unavailable`].
    pub async fn list(&self, principal: &Principal) -> Result<Vec<Passkey>, AppError> {
        Ok(self.passkeys.list_passkeys(principal.user.id).await?)
    }

    /// Deletes the caller's passkey `raw_id`.
    ///
    /// # Errors
    /// [`AppError::PasskeyNotFound`] (another user's, unknown, or not an id),
    /// [`AppError::Unavailable`].
    pub async fn delete(
        &self,
        principal: &Principal,
        raw_id: &str,
        ctx: &RequestContext,
    ) -> Result<(), AppError> {
        let id = uuid::Uuid::parse_str(raw_id).map_err(|_| AppError::PasskeyNotFound)?;
        let id = PasskeyId::from_uuid(id);
        if !self.passkeys.delete_passkey(principal.user.id, id).await? {
            return Err(AppError::PasskeyNotFound);
        }
        self.audit
            .event(Event::PasskeyRemoved, ctx)
            .user(&principal.user)
            .detail(format!("passkey {id}"))
            .record()
            .await?;
        Ok(())
    }

    /// Starts a usernameless sign-in (the login page's passkey button).
    ///
    /// # Errors
    /// [`AppError::Unavailable`].
    pub async fn start_sign_in(&self) -> Result<StartedCeremony, AppError> {
        let challenge = self.webauthn.start_discoverable();
        self.start(CeremonyKind::Discoverable, None, challenge)
            .await
    }

    /// Finishes a usernameless sign-in: the assertion names its passkey, which must verify
    /// (user verification included), advance its counter and belong to an active user; then a
    /// browser sign-in starts, as after a password and a second factor.
    ///
    /// # Errors
    /// [`AppError::CeremonyInvalid`], [`AppError::PasskeyRejected`], [`AppError::Unavailable`].
    pub async fn finish_sign_in(
        &self,
        ceremony_id: &str,
        assertion: &str,
        for_client: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<BrowserSignIn, AppError> {
        let ceremony = self
            .take(ceremony_id, CeremonyKind::Discoverable, None)
            .await?;
        let (passkey, user) = self.verify(&ceremony, assertion, None, ctx).await?;
        let Some((token, session)) = self.auth.start_signin(&user).await? else {
            return Err(AppError::PasskeyRejected("this account cannot sign in"));
        };
        let client = for_client.map_or(String::new(), |c| format!(" for client {c}"));
        self.audit
            .event(Event::LoginSucceeded, ctx)
            .user(&user)
            .detail(format!(
                "browser sign-in {} with passkey {}{client}",
                session.id, passkey.id
            ))
            .record()
            .await?;
        Ok(BrowserSignIn {
            token,
            session,
            user: Arc::new(user),
        })
    }

    /// Starts proving that `user` holds one of their passkeys (a second factor after the
    /// password): the browser may answer with those passkeys only.
    ///
    /// # Errors
    /// [`AppError::PasskeyNotFound`] when the user has none, [`AppError::Unavailable`].
    pub async fn start_second_factor(&self, user: &User) -> Result<StartedCeremony, AppError> {
        let passkeys = self.passkeys.list_passkeys(user.id).await?;
        if passkeys.is_empty() {
            return Err(AppError::PasskeyNotFound);
        }
        let challenge = self.webauthn.start_for(&passkeys);
        self.start(CeremonyKind::SecondFactor, Some(user.id), challenge)
            .await
    }

    /// Finishes [`PasskeyService::start_second_factor`]: the assertion must come from one of
    /// `user`'s passkeys, verify, and advance its counter. Audited; no session is started (the
    /// caller goes on as after a good TOTP code).
    ///
    /// # Errors
    /// [`AppError::CeremonyInvalid`], [`AppError::PasskeyRejected`], [`AppError::Unavailable`].
    pub async fn verify_second_factor(
        &self,
        user: &User,
        ceremony_id: &str,
        assertion: &str,
        ctx: &RequestContext,
    ) -> Result<(), AppError> {
        let ceremony = self
            .take(ceremony_id, CeremonyKind::SecondFactor, Some(user.id))
            .await?;
        self.verify(&ceremony, assertion, Some(user.id), ctx)
            .await
            .map(|_| ())
    }

    /// Verifies an assertion under `ceremony` (of `owner`'s passkeys when given), records the
    /// use, and returns the passkey with its active user. Every refusal is audited.
    async fn verify(
        &self,
        ceremony: &Ceremony,
        assertion: &str,
        owner: Option<UserId>,
        ctx: &RequestContext,
    ) -> Result<(Passkey, User), AppError> {
        let refuse = |user_id: Option<UserId>, why: &'static str| async move {
            let mut event = self.audit.event(Event::PasskeyFailed, ctx).failed();
            if let Some(id) = user_id {
                event = event.user_id(id);
            }
            event
                .detail(format!("{} refused: {why}", ceremony.kind.as_str()))
                .record()
                .await?;
            Err::<(Passkey, User), AppError>(AppError::PasskeyRejected(why))
        };
        let (credential_id, handle) = match self.webauthn.identify(assertion) {
            Ok(found) => found,
            Err(error) => return refuse(owner, rejection(error)?).await,
        };
        let Some(passkey) = self.passkeys.find_by_credential_id(&credential_id).await? else {
            return refuse(owner, "this passkey is not registered").await;
        };
        // A usernameless answer must name its user (WebAuthn: a discoverable credential
        // returns its user handle), and that must be the passkey's.
        let named = match handle {
            Some(handle) => handle == passkey.user_id.as_uuid(),
            None => owner.is_some(),
        };
        if !named || owner.is_some_and(|owner| owner != passkey.user_id) {
            return refuse(owner, "this passkey is not registered").await;
        }
        let used = match self.webauthn.finish_authentication(
            ceremony.kind,
            &ceremony.state,
            assertion,
            &passkey,
        ) {
            Ok(used) => used,
            Err(error) => return refuse(Some(passkey.user_id), rejection(error)?).await,
        };
        let now = self.ports.clock.now();
        if !self
            .passkeys
            .record_use(passkey.id, &used.credential, used.sign_count, now)
            .await?
        {
            return refuse(
                Some(passkey.user_id),
                "its signature counter did not advance (a cloned or replayed passkey)",
            )
            .await;
        }
        let user = match self.ports.users.find_by_id(passkey.user_id).await? {
            Some(user) if user.is_active => user,
            _ => return refuse(Some(passkey.user_id), "this account cannot sign in").await,
        };
        self.audit
            .event(Event::PasskeyVerified, ctx)
            .user(&user)
            .detail(format!(
                "{} with passkey {}",
                ceremony.kind.as_str(),
                passkey.id
            ))
            .record()
            .await?;
        Ok((passkey, user))
    }
}

/// The user-facing reason of a refused WebAuthn answer; the adapter's own failures are errors.
fn rejection(error: WebAuthnError) -> Result<&'static str, AppError> {
    match error {
        WebAuthnError::Malformed(detail) => {
            tracing::debug!(%detail, "malformed WebAuthn response");
            Ok("the browser's answer is malformed")
        }
        WebAuthnError::Refused(detail) => {
            tracing::info!(%detail, "WebAuthn response refused");
            Ok("it did not verify (wrong origin, challenge, signature or user verification)")
        }
        WebAuthnError::AlreadyRegistered => Ok("this passkey is registered already"),
        WebAuthnError::Internal(detail) => Err(AppError::Internal(detail)),
    }
}

fn webauthn_failure(error: WebAuthnError) -> AppError {
    AppError::Internal(error.to_string())
}
