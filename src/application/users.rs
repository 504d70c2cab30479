//! Registration, the current user, password changes, and user administration.

mod admin;

use super::guard::{Check, PasswordGuard};
use super::{check_limit, AppError, Auditor, Ports, Principal, RequestContext};
use crate::domain::audit::AuditEventKind as Event;
use crate::domain::ports::LockoutPolicy;
use crate::domain::user::{
    EmailAddress, FullName, Password, PasswordHash, PasswordPolicy, Role, Roles, User, UserId,
    Username,
};
use crate::domain::validation::{FieldError, Validator};

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

/// A user imported with an existing password hash (see [`UserService::import_user`]).
#[derive(Debug, Clone)]
pub struct ImportedUser {
    pub username: String,
    pub password_hash: PasswordHash,
    pub email: Option<String>,
    pub full_name: Option<String>,
    /// `None`: the default role `user`.
    pub roles: Option<Vec<String>>,
}

/// The fields every new user has, before validation.
struct Profile {
    username: String,
    email: Option<String>,
    full_name: Option<String>,
    roles: Option<Vec<String>>,
}

/// How a new user's password arrives, already checked against the rules.
enum Credential {
    Plain(Result<Password, FieldError>),
    Hashed(Result<PasswordHash, FieldError>),
}

/// A credential that passed its checks.
enum Checked {
    Plain(Password),
    Hashed(PasswordHash),
}

/// An administrator's change to a user. `None` leaves a field alone; `Some(None)` clears an
/// optional one.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub is_active: Option<bool>,
    pub roles: Option<Vec<String>>,
    pub email: Option<Option<String>>,
    pub full_name: Option<Option<String>>,
}

/// One page of users.
#[derive(Debug, Clone)]
pub struct UserPage {
    pub items: Vec<User>,
    pub total: u64,
    pub limit: u32,
    pub offset: u64,
}

/// The user-account use cases.
#[derive(Clone)]
pub struct UserService {
    ports: Ports,
    audit: Auditor,
    guard: PasswordGuard,
    policy: PasswordPolicy,
    registration_open: bool,
}

fn parse_roles(names: &[String]) -> Result<Roles, FieldError> {
    let roles = names
        .iter()
        .map(|name| name.parse::<Role>())
        .collect::<Result<Vec<_>, _>>()
        .map(Roles::new)?;
    if roles.is_empty() {
        return Err(FieldError::new(
            "roles",
            "empty",
            "must name at least one role",
        ));
    }
    Ok(roles)
}

impl UserService {
    /// The most users one page may hold.
    pub const MAX_PAGE: u32 = 100;

    /// Wires the use cases to their ports. With `registration_open` false, only admins may
    /// register users. `lockout` guards the current-password check of a password change,
    /// sharing its counters with the logins of the same account.
    pub fn new(
        ports: Ports,
        policy: PasswordPolicy,
        registration_open: bool,
        lockout: LockoutPolicy,
    ) -> Self {
        Self {
            audit: ports.auditor(),
            guard: PasswordGuard::new(ports.clone(), lockout),
            ports,
            policy,
            registration_open,
        }
    }

    /// Self-service registration (role `user`): open to anybody while registration is open,
    /// to admins only when it is closed.
    ///
    /// # Errors
    /// [`AppError::AuthenticationRequired`] or [`AppError::Forbidden`] when registration is
    /// closed and the caller is not an admin; otherwise as [`UserService::create_user`].
    pub async fn register(
        &self,
        mut input: NewUser,
        caller: Option<&Principal>,
        ctx: &RequestContext,
    ) -> Result<User, AppError> {
        self.authorize_registration(caller)?;
        input.roles = None;
        self.create_user(input, ctx).await
    }

    /// Whether `caller` may register users now (anybody while registration is open).
    ///
    /// # Errors
    /// [`AppError::AuthenticationRequired`] or [`AppError::Forbidden`].
    pub fn authorize_registration(&self, caller: Option<&Principal>) -> Result<(), AppError> {
        if self.registration_open {
            return Ok(());
        }
        caller
            .ok_or(AppError::AuthenticationRequired)?
            .require_admin()
    }

    /// Validates every field (reporting all failures at once), hashes the password and stores
    /// the user.
    ///
    /// # Errors
    /// [`AppError::Validation`], [`AppError::UsernameTaken`], [`AppError::EmailTaken`],
    /// [`AppError::Busy`], [`AppError::Unavailable`].
    #[tracing::instrument(skip_all, fields(username = %input.username, ip = ctx.ip.map(tracing::field::display)))]
    pub async fn create_user(
        &self,
        input: NewUser,
        ctx: &RequestContext,
    ) -> Result<User, AppError> {
        let password = Password::parse(input.password.expose(), &self.policy);
        let profile = Profile {
            username: input.username,
            email: input.email,
            full_name: input.full_name,
            roles: input.roles,
        };
        self.create(profile, Credential::Plain(password), ctx).await
    }

    /// Stores a user whose password hash comes from elsewhere (an export of the proof of
    /// concept): argon2 PHC strings or bcrypt (`$2a$`, `$2b$`, `$2y$`). A bcrypt hash is
    /// upgraded to argon2id at the user's first successful login. The hash is checked
    /// completely by the hasher ([`PasswordHasher::is_supported`]: format, encoding and
    /// parameters) and never stored when it fails, so an import cannot leave a user whose every
    /// login fails inside the hasher.
    ///
    /// [`PasswordHasher::is_supported`]: crate::domain::ports::PasswordHasher::is_supported
    ///
    /// # Errors
    /// [`AppError::Validation`] (an unusable hash on `password_hash`), otherwise as
    /// [`UserService::create_user`].
    pub async fn import_user(
        &self,
        input: ImportedUser,
        ctx: &RequestContext,
    ) -> Result<User, AppError> {
        let hash = if self.ports.hasher.is_supported(&input.password_hash) {
            Ok(input.password_hash)
        } else {
            Err(FieldError::new(
                "password_hash",
                "unsupported_hash",
                "is neither a usable argon2 PHC string nor a usable bcrypt hash ($2a$, $2b$ or $2y$, a two-digit cost the service accepts, then 53 characters of bcrypt base64)",
            ))
        };
        let profile = Profile {
            username: input.username,
            email: input.email,
            full_name: input.full_name,
            roles: input.roles,
        };
        let legacy = match (&hash, self.ports.hasher.legacy_hash_prefix()) {
            (Ok(hash), Some(prefix)) => hash.as_str().starts_with(prefix),
            _ => false,
        };
        let user = self.create(profile, Credential::Hashed(hash), ctx).await?;
        if legacy {
            self.ports.hasher.set_legacy_hashes_present(true);
        }
        Ok(user)
    }

    async fn create(
        &self,
        profile: Profile,
        credential: Credential,
        ctx: &RequestContext,
    ) -> Result<User, AppError> {
        let mut v = Validator::default();
        let username = v.check(Username::parse(&profile.username));
        let credential = match credential {
            Credential::Plain(password) => v.check(password).map(Checked::Plain),
            Credential::Hashed(hash) => v.check(hash).map(Checked::Hashed),
        };
        let email = profile
            .email
            .as_deref()
            .and_then(|raw| v.check(EmailAddress::parse(raw)));
        let full_name = profile
            .full_name
            .as_deref()
            .and_then(|raw| v.check(FullName::parse(raw)));
        let roles = match &profile.roles {
            None => Some(Roles::new([Role::User])),
            Some(names) => v.check(parse_roles(names)),
        };
        v.finish().map_err(AppError::Validation)?;
        let (Some(username), Some(credential), Some(roles)) = (username, credential, roles) else {
            unreachable!("a field that failed to parse was recorded by the validator");
        };
        let password_hash = match credential {
            Checked::Plain(password) => self.ports.hasher.hash(&password).await?,
            Checked::Hashed(hash) => hash,
        };
        let now = self.ports.clock.now();
        let user = User {
            id: UserId::new(),
            username,
            email,
            full_name,
            roles,
            is_active: true,
            password_hash,
            credential_version: 0,
            email_verified: false,
            mfa: Default::default(),
            created_at: now,
            updated_at: now,
        };
        self.ports.users.insert(&user).await?;
        self.audit
            .event(Event::UserCreated, ctx)
            .user(&user)
            .detail(format!("roles: {}", user.roles.to_space_separated()))
            .record()
            .await?;
        Ok(user)
    }

    /// Changes the caller's password after checking the current one, and revokes every other
    /// session of the user (the caller's own session stays) in the same commit. The current
    /// password check counts toward the account's lockout exactly like a login, so a stolen
    /// access token is no unlimited oracle for the password. Once this returns, no session
    /// started with the old password works, however the logins raced with it.
    ///
    /// # Errors
    /// [`AppError::Validation`] (on `new_password`), [`AppError::WrongPassword`],
    /// [`AppError::AccountLocked`], [`AppError::Busy`], [`AppError::Unavailable`].
    #[tracing::instrument(skip_all, fields(user_id = %principal.user.id, ip = ctx.ip.map(tracing::field::display)))]
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
        let key = self
            .guard
            .check_own_password(
                user,
                current,
                Check::PasswordChange,
                Event::PasswordChanged,
                "wrong current password",
                ctx,
            )
            .await?;
        self.guard.succeeded(&key).await?;
        let hash = match self.ports.hasher.hash(&new).await {
            Ok(hash) => hash,
            Err(error) => return Err(error.into()),
        };
        let now = self.ports.clock.now();
        let revoked = self
            .ports
            .users
            .change_password(user.id, &hash, Some(principal.claims.session_id), now)
            .await?
            .ok_or(AppError::UserNotFound)?;
        self.audit
            .event(Event::PasswordChanged, ctx)
            .user(user)
            .detail(format!("{revoked} other sessions revoked"))
            .record()
            .await
    }
}

#[cfg(test)]
#[path = "users_tests.rs"]
mod tests;
