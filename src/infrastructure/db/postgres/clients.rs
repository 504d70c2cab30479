//! [`ClientRepository`] on PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Postgres, Transaction};

use super::{store_error, PgStore};
use crate::domain::client::{join_uris, Client, ClientChanges, ClientId, ClientSecretHash};
use crate::domain::ports::{ClientRepository, StoreError};
use crate::domain::session::RevocationReason;
use crate::infrastructure::db::records::{ClientColumns, ClientRecord};

/// The `clients` columns a [`ClientRecord`] reads.
const CLIENT_COLUMNS: &str = "id, name, client_type, redirect_uris, post_logout_redirect_uris, grant_types, scope, is_active, secret_hash, created_at, updated_at";

/// Revokes every live session issued to the client `id`, in the caller's transaction.
async fn revoke_client_sessions(
    tx: &mut Transaction<'_, Postgres>,
    id: ClientId,
    reason: RevocationReason,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    // First wait for the sessions being started from this client's sessions (they hold their
    // parent's row `FOR SHARE` until they commit; later ones wait for this transaction and then
    // find their parent revoked). The UPDATE is a new statement, so its snapshot includes the
    // children committed meanwhile, which inherit the client id.
    sqlx::query("SELECT 1 FROM sessions WHERE client_id = $1 AND revoked_at IS NULL FOR UPDATE")
        .bind(id.as_uuid())
        .execute(&mut **tx)
        .await
        .map_err(store_error)?;
    sqlx::query(
        "UPDATE sessions SET revoked_at = $1, revoked_reason = $2
         WHERE client_id = $3 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(reason.as_str())
    .bind(id.as_uuid())
    .execute(&mut **tx)
    .await
    .map(|done| done.rows_affected())
    .map_err(store_error)
}

#[async_trait]
impl ClientRepository for PgStore {
    #[tracing::instrument(skip_all, fields(client_id = %client.id))]
    async fn insert(&self, client: &Client) -> Result<(), StoreError> {
        let c = ClientColumns::of(client);
        sqlx::query(
            "INSERT INTO clients (id, name, client_type, redirect_uris, post_logout_redirect_uris, grant_types, scope, is_active, secret_hash, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(client.id.as_uuid())
        .bind(c.name)
        .bind(c.client_type)
        .bind(c.redirect_uris)
        .bind(c.post_logout_redirect_uris)
        .bind(c.grant_types)
        .bind(c.scope)
        .bind(client.is_active)
        .bind(client.secret_hash.as_ref().map(ClientSecretHash::as_str))
        .bind(client.created_at)
        .bind(client.updated_at)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    async fn find_by_id(&self, id: ClientId) -> Result<Option<Client>, StoreError> {
        let sql = format!("SELECT {CLIENT_COLUMNS} FROM clients WHERE id = $1");
        let record: Option<ClientRecord> = sqlx::query_as(&sql)
            .bind(id.as_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        record.map(ClientRecord::into_client).transpose()
    }

    async fn list(&self, limit: u32, offset: u64) -> Result<(Vec<Client>, u64), StoreError> {
        let sql = format!(
            "SELECT {CLIENT_COLUMNS} FROM clients ORDER BY created_at, id LIMIT $1 OFFSET $2"
        );
        let records: Vec<ClientRecord> = sqlx::query_as(&sql)
            .bind(i64::from(limit))
            .bind(i64::try_from(offset).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        let total: i64 = sqlx::query_scalar("SELECT count(*) FROM clients")
            .fetch_one(&self.pool)
            .await
            .map_err(store_error)?;
        let clients = records
            .into_iter()
            .map(ClientRecord::into_client)
            .collect::<Result<_, _>>()?;
        Ok((clients, u64::try_from(total).unwrap_or_default()))
    }

    #[tracing::instrument(skip_all, fields(client_id = %id))]
    async fn update_fields(
        &self,
        id: ClientId,
        changes: &ClientChanges,
        now: DateTime<Utc>,
    ) -> Result<Option<(Client, u64)>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        // One statement naming only the changed columns' values (the row lock orders two).
        let sql = format!(
            "UPDATE clients AS c SET
                name = coalesce($1, c.name),
                redirect_uris = coalesce($2, c.redirect_uris),
                post_logout_redirect_uris = coalesce($3, c.post_logout_redirect_uris),
                grant_types = coalesce($4, c.grant_types),
                scope = coalesce($5, c.scope),
                is_active = coalesce($6, c.is_active),
                updated_at = $7
             WHERE c.id = $8 RETURNING {CLIENT_COLUMNS}"
        );
        let record: Option<ClientRecord> = sqlx::query_as(&sql)
            .bind(changes.name.as_ref().map(|n| n.as_str().to_owned()))
            .bind(changes.redirect_uris.as_deref().map(join_uris))
            .bind(changes.post_logout_redirect_uris.as_deref().map(join_uris))
            .bind(changes.grant_types.as_ref().map(|g| g.to_space_separated()))
            .bind(changes.scope.as_ref().map(|s| s.to_space_separated()))
            .bind(changes.is_active)
            .bind(now)
            .bind(id.as_uuid())
            .fetch_optional(&mut *tx)
            .await
            .map_err(store_error)?;
        let Some(record) = record else {
            return Ok(None);
        };
        let revoked = if changes.is_active == Some(false) {
            revoke_client_sessions(&mut tx, id, RevocationReason::ClientDisabled, now).await?
        } else {
            0
        };
        tx.commit().await.map_err(store_error)?;
        if revoked > 0 {
            self.sessions.clear();
        }
        Ok(Some((record.into_client()?, revoked)))
    }

    #[tracing::instrument(skip_all, fields(client_id = %id))]
    async fn delete(&self, id: ClientId, now: DateTime<Utc>) -> Result<Option<u64>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let deleted = sqlx::query("DELETE FROM clients WHERE id = $1")
            .bind(id.as_uuid())
            .execute(&mut *tx)
            .await
            .map_err(store_error)?
            .rows_affected();
        if deleted == 0 {
            return Ok(None);
        }
        let revoked =
            revoke_client_sessions(&mut tx, id, RevocationReason::ClientDeleted, now).await?;
        tx.commit().await.map_err(store_error)?;
        if revoked > 0 {
            self.sessions.clear();
        }
        Ok(Some(revoked))
    }

    async fn set_secret_hash(
        &self,
        id: ClientId,
        hash: &ClientSecretHash,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE clients SET secret_hash = $1, updated_at = $2 WHERE id = $3")
                .bind(hash.as_str())
                .bind(now)
                .bind(id.as_uuid())
                .execute(&self.pool)
                .await
                .map_err(store_error)?;
        Ok(done.rows_affected() == 1)
    }
}
