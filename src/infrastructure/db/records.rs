//! Rows as both adapters read them, and their one conversion into domain types (which
//! re-validates what is stored, so corrupt data is reported instead of served).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::audit::AuditEvent;
use crate::domain::client::{
    join_uris, split_uris, Client, ClientId, ClientName, ClientScope, ClientSecretHash, ClientType,
    GrantTypes,
};
use crate::domain::oidc::{CodeChallenge, CodeGrant, CodeHash, Scope};
use crate::domain::ports::StoreError;
use crate::domain::session::{Session, SessionId};
use crate::domain::user::{
    EmailAddress, FullName, MfaSummary, PasswordHash, Roles, User, UserId, Username,
};
use crate::domain::validation::FieldError;

fn other(what: &str) -> impl Fn(String) -> StoreError + '_ {
    move |e| StoreError::Other(format!("stored {what} is invalid: {e}"))
}

fn corrupt(what: &str) -> impl Fn(FieldError) -> StoreError + '_ {
    move |e| StoreError::Other(format!("stored {what} is invalid: {e}"))
}

/// A `users` row.
#[derive(sqlx::FromRow)]
pub(crate) struct UserRecord {
    pub id: Uuid,
    pub username: String,
    pub email: Option<String>,
    pub full_name: Option<String>,
    pub password_hash: String,
    pub roles: String,
    pub is_active: bool,
    pub credential_version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub email_verified: bool,
    pub totp_enabled: bool,
    pub passkey_count: i32,
    pub recovery_codes_left: i32,
}

impl UserRecord {
    pub fn into_user(self) -> Result<User, StoreError> {
        Ok(User {
            id: UserId::from_uuid(self.id),
            username: Username::parse(&self.username).map_err(corrupt("username"))?,
            email: self
                .email
                .map(|e| EmailAddress::parse(&e))
                .transpose()
                .map_err(corrupt("email"))?,
            full_name: self
                .full_name
                .map(|n| FullName::parse(&n))
                .transpose()
                .map_err(corrupt("full name"))?,
            roles: Roles::parse_space_separated(&self.roles).map_err(corrupt("roles"))?,
            is_active: self.is_active,
            password_hash: PasswordHash::new(self.password_hash),
            credential_version: self.credential_version,
            email_verified: self.email_verified,
            mfa: MfaSummary {
                totp: self.totp_enabled,
                passkeys: u32::try_from(self.passkey_count)
                    .map_err(|e| other("passkey count")(e.to_string()))?,
                recovery_codes_left: u32::try_from(self.recovery_codes_left)
                    .map_err(|e| other("recovery code count")(e.to_string()))?,
            },
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// A `sessions` row (the columns the domain needs).
#[derive(sqlx::FromRow)]
pub(crate) struct SessionRecord {
    pub id: Uuid,
    pub user_id: Uuid,
    pub scope: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    pub parent_id: Option<Uuid>,
    pub client_id: Option<Uuid>,
}

impl SessionRecord {
    pub fn into_session(self) -> Result<Session, StoreError> {
        // The column holds the OpenID values and the role names of the granted scope.
        let scope = Scope::from_stored(&self.scope).map_err(other("session scope"))?;
        Ok(Session {
            id: SessionId::from_uuid(self.id),
            user_id: UserId::from_uuid(self.user_id),
            scope: scope.roles,
            oidc: scope.oidc,
            client_id: self.client_id.map(ClientId::from_uuid),
            created_at: self.created_at,
            expires_at: self.expires_at,
            not_after: self.not_after,
            parent_id: self.parent_id.map(SessionId::from_uuid),
        })
    }
}

/// An `authorization_codes` row (what the code was issued for; not its redemption).
#[derive(sqlx::FromRow)]
pub(crate) struct CodeRecord {
    pub code_hash: String,
    pub client_id: Uuid,
    pub user_id: Uuid,
    pub signin_id: Uuid,
    pub redirect_uri: String,
    pub code_challenge: Option<String>,
    pub scope: String,
    pub nonce: Option<String>,
    pub auth_time: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl CodeRecord {
    pub fn into_grant(self) -> Result<CodeGrant, StoreError> {
        Ok(CodeGrant {
            hash: CodeHash::from_hex(self.code_hash),
            client_id: ClientId::from_uuid(self.client_id),
            user_id: UserId::from_uuid(self.user_id),
            signin_id: SessionId::from_uuid(self.signin_id),
            redirect_uri: self.redirect_uri,
            challenge: self.code_challenge.map(CodeChallenge::from_stored),
            scope: Scope::from_stored(&self.scope).map_err(other("code scope"))?,
            nonce: self.nonce,
            auth_time: self.auth_time,
            created_at: self.created_at,
            expires_at: self.expires_at,
        })
    }
}

/// An `audit_events` row.
#[derive(sqlx::FromRow)]
pub(crate) struct AuditRecord {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub event: String,
    pub user_id: Option<Uuid>,
    pub username: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub success: bool,
    pub detail: Option<String>,
}

impl AuditRecord {
    pub fn into_event(self) -> Result<AuditEvent, StoreError> {
        Ok(AuditEvent {
            id: self.id,
            at: self.at,
            kind: self.event.parse().map_err(StoreError::Other)?,
            user_id: self.user_id.map(UserId::from_uuid),
            username: self.username,
            ip: self.ip.and_then(|ip| ip.parse().ok()),
            user_agent: self.user_agent,
            success: self.success,
            detail: self.detail,
        })
    }
}

/// A `clients` row.
#[derive(sqlx::FromRow)]
pub(crate) struct ClientRecord {
    pub id: Uuid,
    pub name: String,
    pub client_type: String,
    pub redirect_uris: String,
    pub post_logout_redirect_uris: String,
    pub grant_types: String,
    pub scope: String,
    pub is_active: bool,
    pub secret_hash: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl ClientRecord {
    pub fn into_client(self) -> Result<Client, StoreError> {
        Ok(Client {
            id: ClientId::from_uuid(self.id),
            name: ClientName::parse(&self.name).map_err(corrupt("client name"))?,
            client_type: ClientType::parse(&self.client_type).map_err(corrupt("client type"))?,
            redirect_uris: split_uris(&self.redirect_uris).map_err(other("redirect URIs"))?,
            post_logout_redirect_uris: split_uris(&self.post_logout_redirect_uris)
                .map_err(other("post-logout redirect URIs"))?,
            grant_types: GrantTypes::from_stored(&self.grant_types)
                .map_err(other("grant types"))?,
            scope: ClientScope::parse(&self.scope).map_err(corrupt("client scope"))?,
            is_active: self.is_active,
            secret_hash: self.secret_hash.map(ClientSecretHash::from_stored),
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// The stored text of a client's fields, in the `clients` column order after `id`.
pub(crate) struct ClientColumns {
    pub name: String,
    pub client_type: &'static str,
    pub redirect_uris: String,
    pub post_logout_redirect_uris: String,
    pub grant_types: String,
    pub scope: String,
}

impl ClientColumns {
    pub fn of(client: &Client) -> Self {
        Self {
            name: client.name.as_str().to_owned(),
            client_type: client.client_type.as_str(),
            redirect_uris: join_uris(&client.redirect_uris),
            post_logout_redirect_uris: join_uris(&client.post_logout_redirect_uris),
            grant_types: client.grant_types.to_space_separated(),
            scope: client.scope.to_space_separated(),
        }
    }
}

/// The `scope` column of a session: its OpenID values, then its role names.
pub(crate) fn stored_scope(session: &Session) -> String {
    Scope {
        oidc: session.oidc,
        roles: session.scope.clone(),
    }
    .to_space_separated()
}
