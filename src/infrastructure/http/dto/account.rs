//! The bodies of the account routes: the session list and the deletion request.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::rfc3339;
use crate::application::ListedSession;

/// One live session of the caller.
#[derive(Serialize, ToSchema)]
pub struct SessionBody {
    pub id: Uuid,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// When the session started or last rotated its refresh token (access-token use is not
    /// counted), RFC 3339 UTC.
    pub last_used_at: String,
    /// When it ends unless refreshed, RFC 3339 UTC.
    pub expires_at: String,
    /// The client address that started it, if known.
    pub ip: Option<String>,
    /// The `User-Agent` that started it (at most 256 characters), if any.
    pub user_agent: Option<String>,
    /// The OAuth client its tokens were issued to; `null` for the password grant and for
    /// browser sign-ins of the hosted login page.
    pub client_id: Option<Uuid>,
    /// Whether the caller's access token belongs to this session.
    pub current: bool,
}

impl From<&ListedSession> for SessionBody {
    fn from(listed: &ListedSession) -> Self {
        let s = &listed.summary;
        Self {
            id: s.id.as_uuid(),
            created_at: rfc3339(s.created_at),
            last_used_at: rfc3339(s.last_used_at),
            expires_at: rfc3339(s.expires_at),
            ip: s.origin.ip.map(|ip| ip.to_string()),
            user_agent: s.origin.user_agent.clone(),
            client_id: s.client_id.map(|id| id.as_uuid()),
            current: listed.current,
        }
    }
}

/// The caller's live sessions, newest first.
#[derive(Serialize, ToSchema)]
pub struct SessionListBody {
    pub items: Vec<SessionBody>,
}

/// A self-service account deletion.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"password": "correct horse battery"}))]
pub struct DeleteAccountRequest {
    /// The account's password.
    #[schema(value_type = String, format = Password)]
    pub password: Option<secrecy::SecretString>,
    /// A TOTP or recovery code; required when the account has a second factor.
    #[schema(value_type = Option<String>)]
    pub otp: Option<secrecy::SecretString>,
}
