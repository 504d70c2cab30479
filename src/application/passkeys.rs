//! Passkeys: registering, listing and deleting them (for a signed-in user), signing in with one
//! on the hosted login page (usernameless: the passkey names its user), and proving a known user
//! holds one (a second factor after the password).
//!
//! Each ceremony's state is stored in the shared store and taken once by its finish, so any
//! replica can finish it and no challenge is answered twice; a finish whose ceremony is
//! unknown, expired, already taken, of another kind or of another user fails alike.

use std::sync::Arc;

use chrono::Duration;

mod authentication;

use super::{AppError, Auditor, AuthService, Ports, Principal, RequestContext};
use crate::domain::audit::AuditEventKind as Event;
use crate::domain::passkey::{
    AddOutcome, Ceremony, CeremonyId, CeremonyKind, Passkey, PasskeyId, PasskeyName,
    PasskeyRepository, WebAuthn, WebAuthnError, CEREMONY_LIFETIME_SECONDS, MAX_PASSKEYS_PER_USER,
};
use crate::domain::user::UserId;
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

    pub(super) async fn start(
        &self,
        kind: CeremonyKind,
        user_id: Option<UserId>,
        challenge: Result<crate::domain::passkey::Challenge, WebAuthnError>,
    ) -> Result<StartedCeremony, AppError> {
        let challenge = challenge.map_err(webauthn_failure)?;
        let now = self.ports.clock.now();
        let ceremony = Ceremony {
            id: CeremonyId::new(),
            kind,
            user_id,
            state: challenge.state,
            created_at: now,
            expires_at: now + Duration::seconds(CEREMONY_LIFETIME_SECONDS),
        };
        self.passkeys.insert_ceremony(&ceremony).await?;
        Ok(StartedCeremony {
            id: ceremony.id,
            options: challenge.options,
        })
    }

    /// Takes the ceremony `raw_id` of `kind` for `user_id`.
    pub(super) async fn take(
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
}

/// The user-facing reason of a refused WebAuthn answer; the adapter's own failures are errors.
pub(super) fn rejection(error: WebAuthnError) -> Result<&'static str, AppError> {
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
        WebAuthnError::Off => Err(AppError::PasskeysOff),
    }
}

fn webauthn_failure(error: WebAuthnError) -> AppError {
    match error {
        WebAuthnError::Off => AppError::PasskeysOff,
        error => AppError::Internal(error.to_string()),
    }
}
