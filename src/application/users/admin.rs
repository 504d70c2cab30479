//! User administration: listing, reading and changing users. Admins only.

use super::parse_roles;
use super::{
    check_limit, AppError, Event, Principal, RequestContext, UserPage, UserPatch, UserService,
};
use crate::domain::user::{EmailAddress, FullName, Role, User, UserChanges, UserId};
use crate::domain::validation::{FieldError, Validator};

impl UserService {
    /// One page of users, oldest first. Admins only.
    ///
    /// # Errors
    /// [`AppError::Forbidden`], [`AppError::Validation`] (limit out of 1..=100),
    /// [`AppError::Unavailable`].
    pub async fn list_users(
        &self,
        principal: &Principal,
        limit: u32,
        offset: u64,
    ) -> Result<UserPage, AppError> {
        principal.require_admin()?;
        check_limit(limit, Self::MAX_PAGE)?;
        let (items, total) = self.ports.users.list(limit, offset).await?;
        Ok(UserPage {
            items,
            total,
            limit,
            offset,
        })
    }

    /// One user by id. Admins only.
    ///
    /// # Errors
    /// [`AppError::Forbidden`], [`AppError::UserNotFound`], [`AppError::Unavailable`].
    pub async fn get_user(&self, principal: &Principal, id: UserId) -> Result<User, AppError> {
        principal.require_admin()?;
        self.ports
            .users
            .find_by_id(id)
            .await?
            .ok_or(AppError::UserNotFound)
    }

    /// Applies an administrator's change. Disabling a user revokes every session at once. An
    /// admin cannot disable themself or drop their own admin role (so the last admin cannot lock
    /// everybody out by accident).
    ///
    /// # Errors
    /// [`AppError::Forbidden`], [`AppError::UserNotFound`], [`AppError::Validation`],
    /// [`AppError::EmailTaken`], [`AppError::Unavailable`].
    #[tracing::instrument(skip_all, fields(admin = %principal.user.id, user_id = %id))]
    pub async fn update_user(
        &self,
        principal: &Principal,
        id: UserId,
        patch: UserPatch,
        ctx: &RequestContext,
    ) -> Result<User, AppError> {
        principal.require_admin()?;
        let mut v = Validator::default();
        let roles = patch
            .roles
            .as_deref()
            .and_then(|names| v.check(parse_roles(names)));
        let email = patch.email.as_ref().map(|e| {
            e.as_deref()
                .and_then(|raw| v.check(EmailAddress::parse(raw)))
        });
        let full_name = patch
            .full_name
            .as_ref()
            .map(|n| n.as_deref().and_then(|raw| v.check(FullName::parse(raw))));
        if id == principal.user.id {
            if patch.is_active == Some(false) {
                v.check::<()>(Err(FieldError::new(
                    "is_active",
                    "self_lockout",
                    "an admin cannot disable their own account",
                )));
            }
            if roles.as_ref().is_some_and(|r| !r.contains(Role::Admin)) {
                v.check::<()>(Err(FieldError::new(
                    "roles",
                    "self_lockout",
                    "an admin cannot remove their own admin role",
                )));
            }
        }
        v.finish().map_err(AppError::Validation)?;
        let mut changed = Vec::new();
        if let Some(active) = patch.is_active {
            changed.push(format!("is_active={active}"));
        }
        if let Some(roles) = &roles {
            changed.push(format!("roles={}", roles.to_space_separated()));
        }
        if email.is_some() {
            changed.push("email".to_owned());
        }
        if full_name.is_some() {
            changed.push("full_name".to_owned());
        }
        let changes = UserChanges {
            is_active: patch.is_active,
            roles,
            email,
            full_name,
        };
        let (user, revoked) = self
            .ports
            .users
            .update_fields(id, &changes, self.ports.clock.now())
            .await?
            .ok_or(AppError::UserNotFound)?;
        if revoked > 0 {
            changed.push(format!("{revoked} sessions revoked"));
        }
        let detail = format!(
            "{}{}",
            crate::domain::account::updated_by_prefix(principal.user.username.as_str()),
            changed.join(", ")
        );
        self.audit
            .event(Event::UserUpdated, ctx)
            .user(&user)
            .detail(detail)
            .record()
            .await?;
        Ok(user)
    }
}
