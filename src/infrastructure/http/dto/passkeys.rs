//! The passkey bodies: ceremonies, registration, the list.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::rfc3339;
use crate::domain::passkey::Passkey;

/// The start of a WebAuthn ceremony: pass `{"publicKey": …}` (its binary fields decoded from
/// base64url) to `navigator.credentials.create` or `.get`, and send `ceremony_id` back with the
/// browser's answer.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "ceremony_id": "0193a1c2-7d4e-7a10-9b2c-5d6e7f8a9b0c",
    "publicKey": {"challenge": "oH1cK6b5…", "rp": {"id": "auth.example.com", "name": "auth-service"},
        "user": {"id": "AZOhwn1Oehib…", "name": "alice", "displayName": "alice"},
        "pubKeyCredParams": [{"type": "public-key", "alg": -7}], "timeout": 300000,
        "authenticatorSelection": {"residentKey": "required", "requireResidentKey": true, "userVerification": "required"},
        "attestation": "none"}
}))]
pub struct CeremonyBody {
    /// Names this ceremony in the finish request (single use, valid 5 minutes).
    pub ceremony_id: Uuid,
    /// WebAuthn `PublicKeyCredentialCreationOptions` (registration) or
    /// `PublicKeyCredentialRequestOptions` (sign-in); binary values are base64url.
    #[serde(rename = "publicKey")]
    #[schema(value_type = Object)]
    pub public_key: serde_json::Value,
}

/// The end of a registration.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({
    "ceremony_id": "0193a1c2-7d4e-7a10-9b2c-5d6e7f8a9b0c",
    "credential": {"id": "…", "rawId": "…", "type": "public-key",
        "response": {"attestationObject": "…", "clientDataJSON": "…"}},
    "name": "Work laptop"
}))]
pub struct RegisterPasskeyRequest {
    /// The `ceremony_id` of the start.
    pub ceremony_id: String,
    /// The browser's `PublicKeyCredential` as JSON (`credential.toJSON()`, or its fields
    /// base64url-encoded: `id`, `rawId`, `type`, `response.attestationObject`,
    /// `response.clientDataJSON`).
    #[schema(value_type = Object)]
    pub credential: serde_json::Value,
    /// 1–64 characters (trimmed, no control characters); `Passkey` when absent.
    #[schema(max_length = 64)]
    pub name: Option<String>,
}

/// A registered passkey (never its key material).
#[derive(Serialize, ToSchema)]
pub struct PasskeyBody {
    #[schema(example = "0193a1c2-7d4e-7a10-9b2c-5d6e7f8a9b0c")]
    pub id: Uuid,
    #[schema(example = "Work laptop")]
    pub name: String,
    #[schema(example = "2026-12-03T10:00:00.000000Z")]
    pub created_at: String,
    /// The last sign-in or second-factor check with it; null until then.
    #[schema(example = "2026-12-03T11:00:00.000000Z")]
    pub last_used_at: Option<String>,
}

impl From<&Passkey> for PasskeyBody {
    fn from(passkey: &Passkey) -> Self {
        Self {
            id: passkey.id.as_uuid(),
            name: passkey.name.as_str().to_owned(),
            created_at: rfc3339(passkey.created_at),
            last_used_at: passkey.last_used_at.map(rfc3339),
        }
    }
}

/// The caller's passkeys, oldest first.
#[derive(Serialize, ToSchema)]
pub struct PasskeyList {
    pub items: Vec<PasskeyBody>,
}

/// `POST /auth/passkey/start` form: the login page's CSRF token and the authorization request
/// the page serves.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({
    "csrf": "Q2hhbmdlZCBldmVyeSB0aW1l", "response_type": "code",
    "client_id": "0193a1c2-7d4e-7a10-9b2c-5d6e7f8a9b0c", "redirect_uri": "https://app.example/callback",
    "scope": "openid profile", "state": "af0ifjsldkj",
    "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "code_challenge_method": "S256"
}))]
#[allow(dead_code)] // documents the form; the handler parses it strictly by hand
pub struct PasskeyStartForm {
    /// The value of the page's CSRF cookie (double submit).
    pub csrf: String,
    pub response_type: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
}

/// `POST /auth/passkey/finish` form: the browser's assertion, with the start's fields.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({
    "csrf": "Q2hhbmdlZCBldmVyeSB0aW1l", "ceremony_id": "0193a1c2-7d4e-7a10-9b2c-5d6e7f8a9b0c",
    "credential": "{\"id\":\"…\",\"rawId\":\"…\",\"type\":\"public-key\",\"response\":{\"authenticatorData\":\"…\",\"clientDataJSON\":\"…\",\"signature\":\"…\",\"userHandle\":\"…\"}}",
    "response_type": "code", "client_id": "0193a1c2-7d4e-7a10-9b2c-5d6e7f8a9b0c",
    "redirect_uri": "https://app.example/callback", "scope": "openid profile", "state": "af0ifjsldkj",
    "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "code_challenge_method": "S256"
}))]
#[allow(dead_code)] // documents the form; the handler parses it strictly by hand
pub struct PasskeyFinishForm {
    /// The value of the page's CSRF cookie (double submit).
    pub csrf: String,
    /// The `ceremony_id` of `POST /auth/passkey/start`.
    pub ceremony_id: String,
    /// The browser's assertion (`PublicKeyCredential`) as JSON text, binary fields base64url.
    pub credential: String,
    pub response_type: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
}
