//! Bodies of e-mail verification and password reset.

use serde::Deserialize;
use utoipa::ToSchema;

/// A verification token from the mail.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"token": "Qk9H4N0m7yq3l6oVv1fX8cZ2bY5uT9sR0pW3eA6dL1k"}))]
pub struct EmailVerifyRequest {
    /// The `token` parameter of the mail's link.
    pub token: String,
}

/// Who forgot their password: `email` or `username`, exactly one.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"email": "alice@example.com"}))]
pub struct PasswordResetRequest {
    pub email: Option<String>,
    pub username: Option<String>,
}

/// A new password with the reset token from the mail.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"token": "Qk9H4N0m7yq3l6oVv1fX8cZ2bY5uT9sR0pW3eA6dL1k", "new_password": "a brand new passphrase"}))]
pub struct PasswordResetConfirm {
    /// The `token` parameter of the mail's link.
    pub token: String,
    /// 8–128 characters (the minimum is configurable); not one of the most common passwords.
    #[schema(value_type = String, format = Password, min_length = 8, max_length = 128)]
    pub new_password: secrecy::SecretString,
}

/// The form of the hosted new-password page (`application/x-www-form-urlencoded`).
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"csrf": "1hQv0d6mT3x8yZ2wK5nR9sL4aE7cB0fJ3gH6iM1oP8u", "token": "Qk9H4N0m7yq3l6oVv1fX8cZ2bY5uT9sR0pW3eA6dL1k", "new_password": "a brand new passphrase"}))]
#[allow(dead_code)] // documents the form; the handler reads it field by field
pub struct PasswordResetForm {
    /// The value of the page's CSRF cookie (double submit).
    pub csrf: String,
    pub token: String,
    pub new_password: String,
}

/// The form of the hosted e-mail confirmation page (`application/x-www-form-urlencoded`).
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"csrf": "1hQv0d6mT3x8yZ2wK5nR9sL4aE7cB0fJ3gH6iM1oP8u", "token": "Qk9H4N0m7yq3l6oVv1fX8cZ2bY5uT9sR0pW3eA6dL1k"}))]
#[allow(dead_code)] // documents the form; the handler reads it field by field
pub struct EmailVerifyForm {
    /// The value of the page's CSRF cookie (double submit).
    pub csrf: String,
    pub token: String,
}
