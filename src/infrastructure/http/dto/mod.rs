//! Request and response bodies of the HTTP API. They are not domain types: routes convert.
//! The client-registration bodies are in `clients.rs`, the OpenID Connect forms in `oidc.rs`.

mod account;
mod clients;
mod mfa;
mod oidc;
mod passkeys;
mod recovery;

pub use account::*;
pub use clients::*;
pub use mfa::*;
pub use oidc::*;
pub use passkeys::*;
pub use recovery::*;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::token::TokenPair;
use crate::domain::user::User;

/// A user as clients see it: never a password or a hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserBody {
    #[schema(example = "01932c07-6a4e-7c3a-9d1e-3f2b5c4a1e00")]
    pub id: Uuid,
    #[schema(example = "alice")]
    pub username: String,
    #[schema(example = "alice@example.com")]
    pub email: Option<String>,
    #[schema(example = "Alice Liddell")]
    pub full_name: Option<String>,
    #[schema(example = json!(["user"]))]
    pub roles: Vec<String>,
    pub is_active: bool,
    /// Whether the user proved they receive mail at `email`; a new address resets it.
    pub email_verified: bool,
    pub mfa: MfaBody,
    /// RFC 3339, UTC.
    #[schema(example = "2026-11-24T10:00:00.000000Z")]
    pub created_at: String,
    #[schema(example = "2026-11-24T10:00:00.000000Z")]
    pub updated_at: String,
}

/// The user's second factors.
#[derive(Debug, Serialize, ToSchema)]
pub struct MfaBody {
    /// A confirmed TOTP authenticator.
    pub totp: bool,
    /// Registered passkeys.
    pub passkeys: u32,
    /// Unused recovery codes.
    pub recovery_codes_left: u32,
}

impl From<&crate::domain::user::MfaSummary> for MfaBody {
    fn from(mfa: &crate::domain::user::MfaSummary) -> Self {
        Self {
            totp: mfa.totp,
            passkeys: mfa.passkeys,
            recovery_codes_left: mfa.recovery_codes_left,
        }
    }
}

/// RFC 3339 in UTC with microseconds and a `Z`.
pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

impl From<&User> for UserBody {
    fn from(user: &User) -> Self {
        Self {
            id: user.id.as_uuid(),
            username: user.username.as_str().to_owned(),
            email: user.email.as_ref().map(|e| e.as_str().to_owned()),
            full_name: user.full_name.as_ref().map(|n| n.as_str().to_owned()),
            roles: user.roles.names(),
            is_active: user.is_active,
            email_verified: user.email_verified,
            mfa: MfaBody::from(&user.mfa),
            created_at: rfc3339(user.created_at),
            updated_at: rfc3339(user.updated_at),
        }
    }
}

/// [`UserBody`]'s JSON written straight from a [`User`], without copying its fields into
/// strings first, for `GET /users/me`, the hottest authenticated endpoint. A unit test holds the
/// two to the same JSON; the OpenAPI document describes [`UserBody`].
pub struct UserJson(pub std::sync::Arc<User>);

impl Serialize for UserJson {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeSeq, SerializeStruct};

        struct RoleNames<'a>(&'a crate::domain::user::Roles);
        impl Serialize for RoleNames<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut seq = serializer.serialize_seq(None)?;
                for role in self.0.iter() {
                    seq.serialize_element(role.as_str())?;
                }
                seq.end()
            }
        }

        let user = &*self.0;
        let mut body = serializer.serialize_struct("UserBody", 10)?;
        body.serialize_field("id", &user.id.as_uuid())?;
        body.serialize_field("username", user.username.as_str())?;
        body.serialize_field("email", &user.email.as_ref().map(|e| e.as_str()))?;
        body.serialize_field("full_name", &user.full_name.as_ref().map(|n| n.as_str()))?;
        body.serialize_field("roles", &RoleNames(&user.roles))?;
        body.serialize_field("is_active", &user.is_active)?;
        body.serialize_field("email_verified", &user.email_verified)?;
        body.serialize_field("mfa", &MfaBody::from(&user.mfa))?;
        body.serialize_field("created_at", &rfc3339(user.created_at))?;
        body.serialize_field("updated_at", &rfc3339(user.updated_at))?;
        body.end()
    }
}

/// Registration.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"username": "alice", "password": "correct horse battery", "email": "alice@example.com", "full_name": "Alice Liddell"}))]
pub struct RegisterRequest {
    /// 3–32 characters of `a-z A-Z 0-9 . _ -`, unique regardless of case.
    #[schema(value_type = String, required = true, nullable = false, min_length = 3, max_length = 32, pattern = r"^[A-Za-z0-9._-]+$")]
    pub username: Option<String>,
    /// 8–128 characters (the minimum is configurable); every Unicode character counts; not one
    /// of the 10,000 most common passwords.
    #[schema(value_type = String, format = Password, required = true, nullable = false, min_length = 8, max_length = 128)]
    pub password: Option<secrecy::SecretString>,
    /// Optional; unique regardless of case.
    #[schema(
        max_length = 254,
        pattern = r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
    )]
    pub email: Option<String>,
    /// Optional; at most 100 characters, no control characters.
    #[schema(max_length = 100, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
    pub full_name: Option<String>,
}

/// A password change.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"current_password": "correct horse battery", "new_password": "a brand new passphrase"}))]
pub struct ChangePasswordRequest {
    #[schema(value_type = String, format = Password)]
    pub current_password: secrecy::SecretString,
    /// 8–128 characters (the minimum is configurable); not one of the most common passwords.
    #[schema(value_type = String, format = Password, min_length = 8, max_length = 128)]
    pub new_password: secrecy::SecretString,
}

/// `POST /auth/token` form parameters (RFC 6749 §4.3 and §6).
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"grant_type": "password", "username": "alice", "password": "correct horse battery", "scope": "user"}))]
#[allow(dead_code)] // documents the form; the handler parses it strictly by hand
pub struct TokenRequest {
    /// `password` (the default when absent), `refresh_token`, `authorization_code` or
    /// `client_credentials`.
    #[schema(example = "password")]
    pub grant_type: Option<String>,
    /// For `password`.
    #[schema(example = "alice")]
    pub username: Option<String>,
    /// For `password`.
    #[schema(format = Password, example = "correct horse battery")]
    pub password: Option<String>,
    /// For `password`: space-separated roles to narrow the token to.
    #[schema(example = "user")]
    pub scope: Option<String>,
    /// For `password`, when the user has a second factor: a TOTP code (6 digits) or a
    /// recovery code (`xxxx-xxxx-xxxx-xxxx`, dashes and case optional).
    #[schema(format = Password, example = "492039")]
    pub otp: Option<String>,
    /// For `refresh_token`.
    pub refresh_token: Option<String>,
    /// For `authorization_code`: the code of the redirect.
    pub code: Option<String>,
    /// For `authorization_code`: exactly the authorization request's.
    pub redirect_uri: Option<String>,
    /// For `authorization_code`: the PKCE verifier (43-128 characters).
    pub code_verifier: Option<String>,
    /// `client_secret_post` (with `client_secret`), or `none` for a public client.
    pub client_id: Option<String>,
    /// `client_secret_post`; or send both in an `Authorization: Basic` header.
    #[schema(format = Password)]
    pub client_secret: Option<String>,
}

/// `POST /auth/revoke` form parameters (RFC 7009).
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"token": "k3Jz...base64url", "token_type_hint": "refresh_token"}))]
#[allow(dead_code)] // documents the form; the handler parses it strictly by hand
pub struct RevokeRequest {
    /// A refresh token or an access token.
    #[schema(min_length = 1)]
    pub token: String,
    /// `refresh_token` or `access_token`; a hint only.
    pub token_type_hint: Option<String>,
}

/// `POST /auth/refresh` body.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"refresh_token": "k3Jz...base64url"}))]
pub struct RefreshRequest {
    #[schema(value_type = String)]
    pub refresh_token: secrecy::SecretString,
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"access_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6ImF0K2p3dCJ9...", "token_type": "Bearer", "expires_in": 900, "refresh_token": "k3Jz...", "refresh_expires_in": 1209600, "scope": "user"}))]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Absent for `client_credentials`, and for the code flow unless `offline_access` was
    /// granted or the client is registered for `refresh_token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Seconds until the refresh token expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_expires_in: Option<i64>,
    /// The granted scope, space-separated: OpenID values, then role names.
    pub scope: String,
    /// The ID token, when `openid` was granted in the code flow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

impl From<&TokenPair> for TokenResponse {
    fn from(pair: &TokenPair) -> Self {
        let claims = &pair.access_token.claims;
        Self {
            access_token: pair.access_token.token.clone(),
            token_type: "Bearer",
            expires_in: (claims.expires_at - claims.issued_at).num_seconds(),
            refresh_token: Some(pair.refresh_token.expose().to_owned()),
            refresh_expires_in: Some((pair.refresh_expires_at - claims.issued_at).num_seconds()),
            scope: pair.scope.to_space_separated(),
            id_token: pair.id_token.clone(),
        }
    }
}

/// A refresh token for a new session, issued to a bearer.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedRefreshToken {
    pub refresh_token: String,
    /// Seconds until it expires.
    #[schema(example = 1209600)]
    pub refresh_expires_in: i64,
    /// The new session's id.
    pub session_id: Uuid,
}

/// The demo endpoint's greeting.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"message": "Hello, alice!", "username": "alice", "user_id": "01932c07-6a4e-7c3a-9d1e-3f2b5c4a1e00"}))]
pub struct ProtectedBody {
    pub message: String,
    pub username: String,
    pub user_id: Uuid,
}

/// Readiness: the service and its database.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"status": "ok", "version": "0.1.0", "checks": {"database": "ok"}}))]
pub struct HealthBody {
    /// `ok` or `unavailable`.
    pub status: &'static str,
    pub version: &'static str,
    pub checks: HealthChecks,
}

/// The dependencies `/health` checked.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthChecks {
    /// `ok` or `unavailable`.
    pub database: &'static str,
}

/// Liveness: the process answers.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"status": "ok"}))]
pub struct LiveBody {
    pub status: &'static str,
}

/// One page of users.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserPageBody {
    pub items: Vec<UserBody>,
    /// All users, across pages.
    #[schema(example = 42)]
    pub total: u64,
    #[schema(example = 20)]
    pub limit: u32,
    #[schema(example = 0)]
    pub offset: u64,
}

/// Paging of `GET /users`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1–100, default 20.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// Users to skip, default 0.
    #[param(minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    pub offset: Option<u64>,
}

fn double_option<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// An administrator's change to a user: absent fields stay as they are; `null` clears `email`
/// or `full_name`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"is_active": false}))]
pub struct UserPatchRequest {
    /// `false` disables the user and revokes every session at once.
    pub is_active: Option<bool>,
    /// The complete new set of roles (at least one).
    #[schema(value_type = Option<Vec<RoleName>>, min_items = 1, example = json!(["user", "admin"]))]
    pub roles: Option<Vec<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 254, pattern = r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 100, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
    pub full_name: Option<Option<String>>,
}

/// A string schema whose values are `names`: the domain's lists, so the document cannot drift
/// from what the service accepts.
fn name_schema(
    description: &str,
    names: Vec<&'static str>,
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .enum_values(Some(names))
        .into()
}

/// A role name (`Role::ALL`).
pub struct RoleName;

impl utoipa::PartialSchema for RoleName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let names = crate::domain::user::Role::ALL
            .iter()
            .map(|r| r.as_str())
            .collect();
        name_schema("A role name.", names)
    }
}

impl ToSchema for RoleName {}

/// An audit event name (`AuditEventKind::ALL`).
pub struct AuditEventName;

impl utoipa::PartialSchema for AuditEventName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let names = crate::domain::audit::AuditEventKind::ALL
            .iter()
            .map(|k| k.as_str())
            .collect();
        name_schema("An audit event name.", names)
    }
}

impl ToSchema for AuditEventName {}

/// Filters of `GET /admin/audit-events`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only events about this user.
    pub user_id: Option<Uuid>,
    /// Only this kind of event.
    #[param(value_type = Option<AuditEventName>)]
    pub event: Option<String>,
    /// 1–200, default 50.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// Only events strictly before this RFC 3339 time (for paging: the `at` of the last item).
    #[param(value_type = Option<String>, format = DateTime)]
    pub before: Option<String>,
}

/// One audit event.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventBody {
    pub id: Uuid,
    /// RFC 3339, UTC.
    #[schema(example = "2026-11-24T10:00:00.000000Z")]
    pub at: String,
    #[schema(example = "login_failed")]
    pub event: String,
    pub user_id: Option<Uuid>,
    /// The user's name, or the name attempted in a failed login.
    #[schema(example = "alice")]
    pub username: Option<String>,
    #[schema(example = "203.0.113.7")]
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub success: bool,
    #[schema(example = "wrong password")]
    pub detail: Option<String>,
}

impl From<&crate::domain::audit::AuditEvent> for AuditEventBody {
    fn from(e: &crate::domain::audit::AuditEvent) -> Self {
        Self {
            id: e.id,
            at: rfc3339(e.at),
            event: e.kind.as_str().to_owned(),
            user_id: e.user_id.map(|id| id.as_uuid()),
            username: e.username.clone(),
            ip: e.ip.map(|ip| ip.to_string()),
            user_agent: e.user_agent.clone(),
            success: e.success,
            detail: e.detail.clone(),
        }
    }
}

/// A page of audit events, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPageBody {
    pub items: Vec<AuditEventBody>,
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::domain::user::{
        EmailAddress, FullName, PasswordHash, Role, Roles, UserId, Username,
    };

    #[test]
    fn user_json_is_user_body_without_the_copies() {
        let now = Utc::now();
        let mut user = User {
            id: UserId::new(),
            username: Username::parse("alice").unwrap(),
            email: Some(EmailAddress::parse("alice@example.com").unwrap()),
            full_name: Some(FullName::parse("Alice \"Quote\" Liddell").unwrap()),
            password_hash: PasswordHash::new("$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA".into()),
            credential_version: 0,
            email_verified: false,
            mfa: Default::default(),
            roles: Roles::new([Role::User, Role::Admin]),
            is_active: true,
            created_at: now,
            updated_at: now + chrono::Duration::seconds(1),
        };
        let same = |user: &User| {
            assert_eq!(
                serde_json::to_value(UserBody::from(user)).unwrap(),
                serde_json::to_value(UserJson(Arc::new(user.clone()))).unwrap()
            );
        };
        same(&user);
        user.email = None;
        user.full_name = None;
        user.roles = Roles::new([Role::User]);
        same(&user);
        let json = serde_json::to_string(&UserJson(Arc::new(user))).unwrap();
        assert!(!json.contains("argon2"), "never the hash");
    }
}
