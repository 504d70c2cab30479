//! [`ClientRepository`] in memory.

use crate::domain::session::Invalidation;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{MemoryStore, State};
use crate::domain::client::{Client, ClientChanges, ClientId, ClientSecretHash};
use crate::domain::ports::{ClientRepository, StoreError};

/// Revokes every live session issued to `client`; returns how many.
fn revoke_client_sessions(state: &mut State, client: ClientId, now: DateTime<Utc>) -> u64 {
    let mut revoked = 0;
    for stored in state.sessions.values_mut() {
        if stored.session.client_id == Some(client) && stored.revoked_at.is_none() {
            stored.revoked_at = Some(now);
            revoked += 1;
        }
    }
    if revoked > 0 {
        state.publish(Invalidation::All);
    }
    revoked
}

#[async_trait]
impl ClientRepository for MemoryStore {
    async fn insert(&self, client: &Client) -> Result<(), StoreError> {
        let mut state = self.lock()?;
        if state.clients.iter().any(|c| c.id == client.id) {
            return Err(StoreError::Other(format!(
                "client {} already stored",
                client.id
            )));
        }
        state.clients.push(client.clone());
        Ok(())
    }

    async fn find_by_id(&self, id: ClientId) -> Result<Option<Client>, StoreError> {
        let state = self.lock()?;
        Ok(state.clients.iter().find(|c| c.id == id).cloned())
    }

    async fn list(&self, limit: u32, offset: u64) -> Result<(Vec<Client>, u64), StoreError> {
        let state = self.lock()?;
        let mut clients: Vec<_> = state.clients.iter().collect();
        clients.sort_by_key(|c| (c.created_at, c.id));
        let page = clients
            .into_iter()
            .skip(usize::try_from(offset).unwrap_or(usize::MAX))
            .take(limit as usize)
            .cloned()
            .collect();
        Ok((page, state.clients.len() as u64))
    }

    async fn update_fields(
        &self,
        id: ClientId,
        changes: &ClientChanges,
        now: DateTime<Utc>,
    ) -> Result<Option<(Client, u64)>, StoreError> {
        let mut state = self.lock()?;
        let Some(client) = state.clients.iter_mut().find(|c| c.id == id) else {
            return Ok(None);
        };
        if let Some(name) = &changes.name {
            client.name = name.clone();
        }
        if let Some(uris) = &changes.redirect_uris {
            client.redirect_uris = uris.clone();
        }
        if let Some(uris) = &changes.post_logout_redirect_uris {
            client.post_logout_redirect_uris = uris.clone();
        }
        if let Some(grants) = &changes.grant_types {
            client.grant_types = grants.clone();
        }
        if let Some(scope) = &changes.scope {
            client.scope = scope.clone();
        }
        if let Some(active) = changes.is_active {
            client.is_active = active;
        }
        client.updated_at = now;
        let client = client.clone();
        let revoked = match changes.is_active {
            Some(false) => revoke_client_sessions(&mut state, id, now),
            _ => 0,
        };
        Ok(Some((client, revoked)))
    }

    async fn delete(&self, id: ClientId, now: DateTime<Utc>) -> Result<Option<u64>, StoreError> {
        let mut state = self.lock()?;
        let Some(index) = state.clients.iter().position(|c| c.id == id) else {
            return Ok(None);
        };
        state.clients.remove(index);
        Ok(Some(revoke_client_sessions(&mut state, id, now)))
    }

    async fn set_secret_hash(
        &self,
        id: ClientId,
        hash: &ClientSecretHash,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut state = self.lock()?;
        let Some(client) = state.clients.iter_mut().find(|c| c.id == id) else {
            return Ok(false);
        };
        client.secret_hash = Some(hash.clone());
        client.updated_at = now;
        Ok(true)
    }
}
