//! Request and response bodies of the HTTP API. They are not domain types: routes convert.

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
    /// RFC 3339, UTC.
    #[schema(example = "2026-11-24T10:00:00.000000Z")]
    pub created_at: String,
    #[schema(example = "2026-11-24T10:00:00.000000Z")]
    pub updated_at: String,
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
            created_at: rfc3339(user.created_at),
            updated_at: rfc3339(user.updated_at),
        }
    }
}

/// Registration.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"username": "alice", "password": "correct horse battery", "email": "alice@example.com", "full_name": "Alice Liddell"}))]
pub struct RegisterRequest {
    /// 3–32 characters of `a-z A-Z 0-9 . _ -`, unique regardless of case.
    pub username: Option<String>,
    /// 8–128 characters (the minimum is configurable); every Unicode character counts.
    #[schema(value_type = String, format = Password)]
    pub password: Option<secrecy::SecretString>,
    /// Optional; unique regardless of case.
    pub email: Option<String>,
    /// Optional; at most 100 characters.
    pub full_name: Option<String>,
}

/// A password change.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"current_password": "correct horse battery", "new_password": "a brand new passphrase"}))]
pub struct ChangePasswordRequest {
    #[schema(value_type = String, format = Password)]
    pub current_password: secrecy::SecretString,
    #[schema(value_type = String, format = Password)]
    pub new_password: secrecy::SecretString,
}

/// `POST /auth/token` form parameters (RFC 6749 §4.3 and §6).
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)] // documents the form; the handler parses it strictly by hand
pub struct TokenRequest {
    /// `password` (the default when absent) or `refresh_token`.
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
    /// For `refresh_token`.
    pub refresh_token: Option<String>,
}

/// `POST /auth/revoke` form parameters (RFC 7009).
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)] // documents the form; the handler parses it strictly by hand
pub struct RevokeRequest {
    /// A refresh token or an access token.
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
    pub refresh_token: String,
    /// Seconds until the refresh token expires.
    pub refresh_expires_in: i64,
    /// The granted roles, space-separated.
    pub scope: String,
}

impl From<&TokenPair> for TokenResponse {
    fn from(pair: &TokenPair) -> Self {
        let claims = &pair.access_token.claims;
        Self {
            access_token: pair.access_token.token.clone(),
            token_type: "Bearer",
            expires_in: (claims.expires_at - claims.issued_at).num_seconds(),
            refresh_token: pair.refresh_token.expose().to_owned(),
            refresh_expires_in: (pair.refresh_expires_at - claims.issued_at).num_seconds(),
            scope: pair.scope.to_space_separated(),
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
