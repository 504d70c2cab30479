//! The [`WebAuthn`] port on `webauthn-rs` (the kanidm project's relying-party library): the
//! relying party id and origin from configuration, passkeys that must be discoverable (resident)
//! and user-verified, and every ceremony state serialised so that the shared store can carry it
//! from the replica that started a ceremony to the one that finishes it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, Passkey as WebauthnPasskey, PasskeyAuthentication,
    PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential, Url, Uuid, Webauthn,
    WebauthnBuilder, WebauthnError,
};

use crate::domain::passkey::{
    CeremonyKind, Challenge, NewCredential, Passkey, VerifiedUse, WebAuthn, WebAuthnError,
};
use crate::domain::user::UserId;

/// The relying party.
pub struct WebAuthnRp {
    webauthn: Webauthn,
}

impl WebAuthnRp {
    /// A relying party `rp_id` for pages served at `origin`.
    ///
    /// # Errors
    /// A message when `rp_id` is not the origin's host or a registrable suffix of it (an IP
    /// address never is: browsers refuse one as RP id).
    pub fn new(rp_id: &str, origin: &Url, rp_name: &str) -> Result<Self, String> {
        let webauthn = WebauthnBuilder::new(rp_id, origin)
            .map_err(|_| {
                format!(
                    "WEBAUTHN_RP_ID '{rp_id}' is not the host of WEBAUTHN_ORIGIN '{origin}' or a suffix of it (an IP address cannot be an RP id: use localhost or a name)"
                )
            })?
            .rp_name(rp_name)
            .build()
            .map_err(|e| format!("WebAuthn configuration refused: {e}"))?;
        Ok(Self { webauthn })
    }
}

fn internal(error: impl std::fmt::Display) -> WebAuthnError {
    WebAuthnError::Internal(error.to_string())
}

fn malformed(error: impl std::fmt::Display) -> WebAuthnError {
    WebAuthnError::Malformed(error.to_string())
}

/// A verification failure, named without anything the browser sent.
fn refused(error: WebauthnError) -> WebAuthnError {
    match error {
        WebauthnError::CredentialExcludedFromRequest => WebAuthnError::AlreadyRegistered,
        other => WebAuthnError::Refused(format!("{other:?}")),
    }
}

fn options(value: &impl serde::Serialize) -> Result<String, WebAuthnError> {
    serde_json::to_string(value).map_err(internal)
}

fn state<T: serde::de::DeserializeOwned>(raw: &str) -> Result<T, WebAuthnError> {
    serde_json::from_str(raw).map_err(internal)
}

fn stored(passkey: &Passkey) -> Result<WebauthnPasskey, WebAuthnError> {
    serde_json::from_str(&passkey.credential).map_err(internal)
}

impl WebAuthn for WebAuthnRp {
    fn start_registration(
        &self,
        user_id: UserId,
        username: &str,
        existing: &[Passkey],
    ) -> Result<Challenge, WebAuthnError> {
        let exclude = existing
            .iter()
            .map(|p| stored(p).map(|k| k.cred_id().clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let (ccr, registration) = self
            .webauthn
            .start_passkey_registration(user_id.as_uuid(), username, username, Some(exclude))
            .map_err(internal)?;
        // Sign-in on the login page is usernameless: the credential must be discoverable.
        // webauthn-rs leaves that to the authenticator; the browser is asked for it here (it
        // cannot be verified at the finish, as no authenticator attests to it).
        let mut ccr = serde_json::to_value(&ccr).map_err(internal)?;
        ccr["publicKey"]["authenticatorSelection"] = serde_json::json!({
            "residentKey": "required",
            "requireResidentKey": true,
            "userVerification": "required",
        });
        Ok(Challenge {
            options: options(&ccr)?,
            state: serde_json::to_string(&registration).map_err(internal)?,
        })
    }

    fn finish_registration(
        &self,
        state_json: &str,
        response: &str,
    ) -> Result<NewCredential, WebAuthnError> {
        let registration: PasskeyRegistration = state(state_json)?;
        let credential: RegisterPublicKeyCredential =
            serde_json::from_str(response).map_err(malformed)?;
        let passkey = self
            .webauthn
            .finish_passkey_registration(&credential, &registration)
            .map_err(refused)?;
        Ok(NewCredential {
            credential_id: URL_SAFE_NO_PAD.encode(passkey.cred_id().as_slice()),
            credential: serde_json::to_string(&passkey).map_err(internal)?,
            sign_count: counter_of(&passkey)?,
        })
    }

    fn registration_credential_id(&self, response: &str) -> Result<String, WebAuthnError> {
        let credential: RegisterPublicKeyCredential =
            serde_json::from_str(response).map_err(malformed)?;
        Ok(URL_SAFE_NO_PAD.encode(&credential.raw_id))
    }

    fn start_discoverable(&self) -> Result<Challenge, WebAuthnError> {
        let (mut rcr, authentication) = self
            .webauthn
            .start_discoverable_authentication()
            .map_err(internal)?;
        // A button click, not the autofill (conditional) mediation webauthn-rs asks for.
        rcr.mediation = None;
        Ok(Challenge {
            options: options(&rcr)?,
            state: serde_json::to_string(&authentication).map_err(internal)?,
        })
    }

    fn start_for(&self, passkeys: &[Passkey]) -> Result<Challenge, WebAuthnError> {
        let keys = passkeys.iter().map(stored).collect::<Result<Vec<_>, _>>()?;
        let (rcr, authentication) = self
            .webauthn
            .start_passkey_authentication(&keys)
            .map_err(internal)?;
        Ok(Challenge {
            options: options(&rcr)?,
            state: serde_json::to_string(&authentication).map_err(internal)?,
        })
    }

    fn identify(&self, response: &str) -> Result<(String, Option<Uuid>), WebAuthnError> {
        let credential: PublicKeyCredential = serde_json::from_str(response).map_err(malformed)?;
        let id = URL_SAFE_NO_PAD.encode(credential.get_credential_id());
        let handle = credential
            .get_user_unique_id()
            .and_then(|b| Uuid::from_slice(b).ok());
        Ok((id, handle))
    }

    fn finish_authentication(
        &self,
        kind: CeremonyKind,
        state_json: &str,
        response: &str,
        passkey: &Passkey,
    ) -> Result<VerifiedUse, WebAuthnError> {
        let credential: PublicKeyCredential = serde_json::from_str(response).map_err(malformed)?;
        let mut key = stored(passkey)?;
        let result = match kind {
            CeremonyKind::Discoverable => {
                let authentication: DiscoverableAuthentication = state(state_json)?;
                self.webauthn.finish_discoverable_authentication_v2(
                    &credential,
                    authentication,
                    &key,
                )
            }
            CeremonyKind::SecondFactor => {
                let authentication: PasskeyAuthentication = state(state_json)?;
                self.webauthn
                    .finish_passkey_authentication(&credential, &authentication)
            }
            CeremonyKind::Registration => {
                return Err(internal("a registration is not an authentication"))
            }
        }
        .map_err(refused)?;
        if !result.user_verified() {
            return Err(WebAuthnError::Refused("user not verified".into()));
        }
        key.update_credential(&result);
        Ok(VerifiedUse {
            credential: serde_json::to_string(&key).map_err(internal)?,
            sign_count: result.counter(),
        })
    }
}

/// The signature counter of a credential (read from its serialised form: webauthn-rs keeps it
/// private).
fn counter_of(passkey: &WebauthnPasskey) -> Result<u32, WebAuthnError> {
    let value = serde_json::to_value(passkey).map_err(internal)?;
    Ok(value
        .pointer("/cred/counter")
        .and_then(serde_json::Value::as_u64)
        .and_then(|c| u32::try_from(c).ok())
        .unwrap_or(0))
}

/// The relying party of a server whose passkeys are off (an IP-address issuer and no
/// `WEBAUTHN_ORIGIN`): every ceremony is refused with [`WebAuthnError::Off`].
pub struct PasskeysOff;

impl WebAuthn for PasskeysOff {
    fn start_registration(
        &self,
        _: UserId,
        _: &str,
        _: &[Passkey],
    ) -> Result<Challenge, WebAuthnError> {
        Err(WebAuthnError::Off)
    }

    fn finish_registration(&self, _: &str, _: &str) -> Result<NewCredential, WebAuthnError> {
        Err(WebAuthnError::Off)
    }

    fn registration_credential_id(&self, _: &str) -> Result<String, WebAuthnError> {
        Err(WebAuthnError::Off)
    }

    fn start_discoverable(&self) -> Result<Challenge, WebAuthnError> {
        Err(WebAuthnError::Off)
    }

    fn start_for(&self, _: &[Passkey]) -> Result<Challenge, WebAuthnError> {
        Err(WebAuthnError::Off)
    }

    fn identify(&self, _: &str) -> Result<(String, Option<uuid::Uuid>), WebAuthnError> {
        Err(WebAuthnError::Off)
    }

    fn finish_authentication(
        &self,
        _: CeremonyKind,
        _: &str,
        _: &str,
        _: &Passkey,
    ) -> Result<VerifiedUse, WebAuthnError> {
        Err(WebAuthnError::Off)
    }
}
