//! Signing in with a passkey: usernameless on the login page, and a known user's passkey as a
//! second factor; both verify an assertion the same way.

use std::sync::Arc;

use super::{rejection, PasskeyService, StartedCeremony};
use crate::application::{AppError, BrowserSignIn, RequestContext};
use crate::domain::audit::AuditEventKind as Event;
use crate::domain::passkey::{Ceremony, CeremonyKind, Passkey};
use crate::domain::user::{User, UserId};

impl PasskeyService {
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
        let Some((token, session)) = self.auth.start_signin(&user, ctx).await? else {
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
