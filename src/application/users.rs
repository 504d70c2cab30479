//! Registration, the current user, password changes.

use std::sync::Arc;

use tracing::info;

use super::{AppError, Principal, RequestContext};
use crate::domain::ports::{Clock, PasswordHasher, TokenRepository, UserRepository};
use crate::domain::session::RevocationReason;
use crate::domain::user::{
    EmailAddress, FullName, Password, PasswordPolicy, Role, Roles, User, UserId, Username,
};
use crate::domain::validation::Validator;

/// A user to create, as received: every field is validated by [`UserService::create_user`].
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub password: Password,
    pub email: Option<String>,
    pub full_name: Option<String>,
    /// `None`: the default role `user`.
    pub roles: Option<Vec<String>>,
}

/// The user-account use cases.
#[derive(Clone)]
pub struct UserService {
    users: Arc<dyn UserRepository>,
    tokens: Arc<dyn TokenRepository>,
    hasher: Arc<dyn PasswordHasher>,
    clock: Arc<dyn Clock>,
    policy: PasswordPolicy,
}

impl UserService {
    /// Wires the use cases to their ports.
    pub fn new(
        users: Arc<dyn UserRepository>,
        tokens: Arc<dyn TokenRepository>,
        hasher: Arc<dyn PasswordHasher>,
        clock: Arc<dyn Clock>,
        policy: PasswordPolicy,
    ) -> Self {
        Self {
            users,
            tokens,
            hasher,
            clock,
            policy,
        }
    }

    /// Validates every field (reporting all failures at once), hashes the password and stores
    /// the user.
    ///
    /// # Errors
    /// [`AppError::Validation`], [`AppError::UsernameTaken`], [`AppError::EmailTaken`],
    /// [`AppError::Busy`], [`AppError::Unavailable`].
    #[tracing::instrument(skip_all, fields(username = %input.username, ip = ?ctx.ip))]
    pub async fn create_user(
        &self,
        input: NewUser,
        ctx: &RequestContext,
    ) -> Result<User, AppError> {
        let mut v = Validator::default();
        let username = v.check(Username::parse(&input.username));
        let password = v.check(Password::parse(input.password.expose(), &self.policy));
        let email = input
            .email
            .as_deref()
            .and_then(|raw| v.check(EmailAddress::parse(raw)));
        let full_name = input
            .full_name
            .as_deref()
            .and_then(|raw| v.check(FullName::parse(raw)));
        let roles = match &input.roles {
            None => Some(Roles::new([Role::User])),
            Some(names) => v.check(
                names
                    .iter()
                    .map(|name| name.parse::<Role>())
                    .collect::<Result<Vec<_>, _>>()
                    .map(Roles::new),
            ),
        };
        v.finish().map_err(AppError::Validation)?;
        let (Some(username), Some(password), Some(roles)) = (username, password, roles) else {
            unreachable!("a field that failed to parse was recorded by the validator");
        };
        let now = self.clock.now();
        let user = User {
            id: UserId::new(),
            username,
            email,
            full_name,
            roles,
            is_active: true,
            password_hash: self.hasher.hash(&password).await?,
            created_at: now,
            updated_at: now,
        };
        self.users.insert(&user).await?;
        info!(event = "user_created", user_id = %user.id, ip = ?ctx.ip, "user created");
        Ok(user)
    }

    /// Changes the caller's password after checking the current one, and revokes every other
    /// session of the user (the caller's own session stays).
    ///
    /// # Errors
    /// [`AppError::Validation`] (on `new_password`), [`AppError::WrongPassword`],
    /// [`AppError::Busy`], [`AppError::Unavailable`].
    #[tracing::instrument(skip_all, fields(user_id = %principal.user.id, ip = ?ctx.ip))]
    pub async fn change_password(
        &self,
        principal: &Principal,
        current: &Password,
        new: &str,
        ctx: &RequestContext,
    ) -> Result<(), AppError> {
        let new = Password::parse(new, &self.policy)
            .map_err(|error| AppError::Validation(vec![error.for_field("new_password")]))?;
        let user = &principal.user;
        if !self.hasher.verify(current, &user.password_hash).await? {
            return Err(AppError::WrongPassword);
        }
        let hash = self.hasher.hash(&new).await?;
        let now = self.clock.now();
        self.users.update_password_hash(user.id, &hash, now).await?;
        let revoked = self
            .tokens
            .revoke_user_sessions(
                user.id,
                Some(principal.claims.session_id),
                RevocationReason::PasswordChanged,
                now,
            )
            .await?;
        info!(event = "password_changed", user_id = %user.id, other_sessions_revoked = revoked, ip = ?ctx.ip, "password changed");
        Ok(())
    }
}

#[cfg(test)]
#[path = "users_tests.rs"]
mod tests;
