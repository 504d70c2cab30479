//! OAuth client registration: creating, listing, reading, changing and deleting clients, and
//! rotating a confidential client's secret. Admins only. Deleting or disabling a client revokes
//! every session issued to it at once.

use std::sync::Arc;

use super::{check_limit, AppError, Auditor, Principal, RequestContext};
use crate::domain::audit::AuditEventKind as Event;
use crate::domain::client::{
    Client, ClientChanges, ClientId, ClientName, ClientScope, ClientSecret, ClientType, GrantTypes,
    RedirectUris,
};
use crate::domain::ports::{ClientRepository, Clock};
use crate::domain::user::User;
use crate::domain::validation::Validator;

/// A client to register, as received: every field is validated by
/// [`ClientService::create_client`].
#[derive(Debug, Clone, Default)]
pub struct NewClient {
    pub client_name: String,
    pub client_type: String,
    pub redirect_uris: Vec<String>,
    /// `None`: no post-logout redirect URI.
    pub post_logout_redirect_uris: Option<Vec<String>>,
    /// `None`: `authorization_code`.
    pub grant_types: Option<Vec<String>>,
    /// `None`: `openid`.
    pub scope: Option<String>,
}

/// An administrator's change to a client. `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct ClientPatch {
    pub client_name: Option<String>,
    pub redirect_uris: Option<Vec<String>>,
    pub post_logout_redirect_uris: Option<Vec<String>>,
    pub grant_types: Option<Vec<String>>,
    pub scope: Option<String>,
    pub is_active: Option<bool>,
}

/// A client just registered, with its secret (confidential clients only) to show once.
#[derive(Debug)]
pub struct RegisteredClient {
    pub client: Client,
    pub secret: Option<ClientSecret>,
}

/// One page of clients.
#[derive(Debug, Clone)]
pub struct ClientPage {
    pub items: Vec<Client>,
    pub total: u64,
    pub limit: u32,
    pub offset: u64,
}

/// The client-registration use cases.
#[derive(Clone)]
pub struct ClientService {
    clients: Arc<dyn ClientRepository>,
    clock: Arc<dyn Clock>,
    audit: Auditor,
}

impl ClientService {
    /// The largest page of [`ClientService::list_clients`].
    pub const MAX_PAGE: u32 = 100;

    /// The use cases over `clients`, recording through `audit`.
    pub fn new(clients: Arc<dyn ClientRepository>, clock: Arc<dyn Clock>, audit: Auditor) -> Self {
        Self {
            clients,
            clock,
            audit,
        }
    }

    /// Registers a client; a confidential one gets a fresh secret, returned once and stored
    /// only as its hash.
    ///
    /// # Errors
    /// [`AppError::Forbidden`], [`AppError::Validation`] (every broken rule at once),
    /// [`AppError::Unavailable`].
    #[tracing::instrument(skip_all, fields(admin = %principal.user.id))]
    pub async fn create_client(
        &self,
        principal: &Principal,
        new: NewClient,
        ctx: &RequestContext,
    ) -> Result<RegisteredClient, AppError> {
        principal.require_admin()?;
        self.register(new, Some(&principal.user), ctx).await
    }

    /// Registers a client for an operator with database access (`auth-service seed`), without
    /// an admin's token; otherwise as [`ClientService::create_client`].
    ///
    /// # Errors
    /// [`AppError::Validation`], [`AppError::Unavailable`].
    pub async fn seed_client(
        &self,
        new: NewClient,
        ctx: &RequestContext,
    ) -> Result<RegisteredClient, AppError> {
        self.register(new, None, ctx).await
    }

    async fn register(
        &self,
        new: NewClient,
        admin: Option<&User>,
        ctx: &RequestContext,
    ) -> Result<RegisteredClient, AppError> {
        let mut v = Validator::default();
        let name = v.check(ClientName::parse(&new.client_name));
        let client_type = v.check(ClientType::parse(&new.client_type));
        let redirect_uris = v.check(RedirectUris::parse(
            "redirect_uris",
            &new.redirect_uris,
            true,
        ));
        let post_logout = v.check(RedirectUris::parse(
            "post_logout_redirect_uris",
            new.post_logout_redirect_uris.as_deref().unwrap_or_default(),
            false,
        ));
        let grant_types = match (&new.grant_types, client_type) {
            (None, _) => Some(GrantTypes::default_for_new()),
            (Some(names), Some(client_type)) => v.check(GrantTypes::parse(names, client_type)),
            // Checked once the type is known; the type's own error is reported meanwhile.
            (Some(_), None) => None,
        };
        let scope = match &new.scope {
            None => Some(ClientScope::default_for_new()),
            Some(raw) => v.check(ClientScope::parse(raw)),
        };
        v.finish().map_err(AppError::Validation)?;
        let (
            Some(name),
            Some(client_type),
            Some(redirect_uris),
            Some(post_logout_redirect_uris),
            Some(grant_types),
            Some(scope),
        ) = (
            name,
            client_type,
            redirect_uris,
            post_logout,
            grant_types,
            scope,
        )
        else {
            return Err(AppError::Internal(
                "a validated client field is missing".into(),
            ));
        };
        let secret = (client_type == ClientType::Confidential).then(ClientSecret::generate);
        let now = self.clock.now();
        let client = Client {
            id: ClientId::new(),
            name,
            client_type,
            redirect_uris,
            post_logout_redirect_uris,
            grant_types,
            scope,
            is_active: true,
            secret_hash: secret.as_ref().map(ClientSecret::hash),
            created_at: now,
            updated_at: now,
        };
        self.clients.insert(&client).await?;
        let mut entry = self.audit.event(Event::ClientCreated, ctx).detail(format!(
            "client {} ({}, {}){}",
            client.id,
            client.client_type.as_str(),
            client.name.as_str(),
            if admin.is_some() { "" } else { " by seed" }
        ));
        if let Some(admin) = admin {
            entry = entry.user(admin);
        }
        entry.record().await?;
        Ok(RegisteredClient { client, secret })
    }

    /// One page of clients, oldest first. Admins only.
    ///
    /// # Errors
    /// [`AppError::Forbidden`], [`AppError::Validation`] (limit out of 1..=100),
    /// [`AppError::Unavailable`].
    pub async fn list_clients(
        &self,
        principal: &Principal,
        limit: u32,
        offset: u64,
    ) -> Result<ClientPage, AppError> {
        principal.require_admin()?;
        check_limit(limit, Self::MAX_PAGE)?;
        let (items, total) = self.clients.list(limit, offset).await?;
        Ok(ClientPage {
            items,
            total,
            limit,
            offset,
        })
    }

    /// One client by id. Admins only.
    ///
    /// # Errors
    /// [`AppError::Forbidden`], [`AppError::ClientNotFound`], [`AppError::Unavailable`].
    pub async fn get_client(
        &self,
        principal: &Principal,
        id: ClientId,
    ) -> Result<Client, AppError> {
        principal.require_admin()?;
        self.clients
            .find_by_id(id)
            .await?
            .ok_or(AppError::ClientNotFound)
    }

    /// Applies an administrator's change; disabling the client revokes every session issued to
    /// it at once.
    ///
    /// # Errors
    /// [`AppError::Forbidden`], [`AppError::ClientNotFound`], [`AppError::Validation`],
    /// [`AppError::Unavailable`].
    #[tracing::instrument(skip_all, fields(admin = %principal.user.id, client_id = %id))]
    pub async fn update_client(
        &self,
        principal: &Principal,
        id: ClientId,
        patch: ClientPatch,
        ctx: &RequestContext,
    ) -> Result<Client, AppError> {
        principal.require_admin()?;
        // The type never changes, so the grant types can be checked against the stored one.
        let current = self.get_client(principal, id).await?;
        let mut v = Validator::default();
        let changes = ClientChanges {
            name: (patch.client_name.as_deref()).and_then(|n| v.check(ClientName::parse(n))),
            redirect_uris: (patch.redirect_uris.as_deref())
                .and_then(|u| v.check(RedirectUris::parse("redirect_uris", u, true))),
            post_logout_redirect_uris: (patch.post_logout_redirect_uris.as_deref())
                .and_then(|u| v.check(RedirectUris::parse("post_logout_redirect_uris", u, false))),
            grant_types: (patch.grant_types.as_deref())
                .and_then(|g| v.check(GrantTypes::parse(g, current.client_type))),
            scope: (patch.scope.as_deref()).and_then(|s| v.check(ClientScope::parse(s))),
            is_active: patch.is_active,
        };
        v.finish().map_err(AppError::Validation)?;
        let mut changed = Vec::new();
        if let Some(active) = changes.is_active {
            changed.push(format!("is_active={active}"));
        }
        for (field, named) in [
            ("client_name", changes.name.is_some()),
            ("redirect_uris", changes.redirect_uris.is_some()),
            (
                "post_logout_redirect_uris",
                changes.post_logout_redirect_uris.is_some(),
            ),
            ("grant_types", changes.grant_types.is_some()),
            ("scope", changes.scope.is_some()),
        ] {
            if named {
                changed.push(field.to_owned());
            }
        }
        let (client, revoked) = self
            .clients
            .update_fields(id, &changes, self.clock.now())
            .await?
            .ok_or(AppError::ClientNotFound)?;
        if revoked > 0 {
            changed.push(format!("{revoked} sessions revoked"));
        }
        self.audit
            .event(Event::ClientUpdated, ctx)
            .user(&principal.user)
            .detail(format!("client {id}: {}", changed.join(", ")))
            .record()
            .await?;
        Ok(client)
    }

    /// Deletes a client; every session issued to it is revoked in the same commit.
    ///
    /// # Errors
    /// [`AppError::Forbidden`], [`AppError::ClientNotFound`], [`AppError::Unavailable`].
    #[tracing::instrument(skip_all, fields(admin = %principal.user.id, client_id = %id))]
    pub async fn delete_client(
        &self,
        principal: &Principal,
        id: ClientId,
        ctx: &RequestContext,
    ) -> Result<(), AppError> {
        principal.require_admin()?;
        let revoked = self
            .clients
            .delete(id, self.clock.now())
            .await?
            .ok_or(AppError::ClientNotFound)?;
        self.audit
            .event(Event::ClientDeleted, ctx)
            .user(&principal.user)
            .detail(format!("client {id}: {revoked} sessions revoked"))
            .record()
            .await
    }

    /// Gives a confidential client a new secret (returned once); the old one stops working at
    /// once.
    ///
    /// # Errors
    /// [`AppError::Forbidden`], [`AppError::ClientNotFound`], [`AppError::PublicClient`],
    /// [`AppError::Unavailable`].
    #[tracing::instrument(skip_all, fields(admin = %principal.user.id, client_id = %id))]
    pub async fn rotate_secret(
        &self,
        principal: &Principal,
        id: ClientId,
        ctx: &RequestContext,
    ) -> Result<ClientSecret, AppError> {
        let client = self.get_client(principal, id).await?;
        if client.client_type == ClientType::Public {
            return Err(AppError::PublicClient);
        }
        let secret = ClientSecret::generate();
        let stored = self
            .clients
            .set_secret_hash(id, &secret.hash(), self.clock.now())
            .await?;
        if !stored {
            return Err(AppError::ClientNotFound);
        }
        self.audit
            .event(Event::ClientSecretRotated, ctx)
            .user(&principal.user)
            .detail(format!("client {id}"))
            .record()
            .await?;
        Ok(secret)
    }
}

#[cfg(test)]
#[path = "clients_tests.rs"]
mod tests;
