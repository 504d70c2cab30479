//! [`ClientRepository`] on SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{micros, store_error, time, uuid, SqliteStore};
use crate::domain::client::{join_uris, Client, ClientChanges, ClientId, ClientSecretHash};
use crate::domain::ports::{ClientRepository, StoreError};
use crate::domain::session::RevocationReason;
use crate::infrastructure::db::records::{ClientColumns, ClientRecord};

/// The `clients` columns in the order [`client_from_row`] reads them.
const CLIENT_COLUMNS: &str = "id, name, client_type, redirect_uris, post_logout_redirect_uris, grant_types, scope, is_active, secret_hash, created_at, updated_at";

fn client_from_row(row: &Row<'_>) -> rusqlite::Result<ClientRecord> {
    Ok(ClientRecord {
        id: uuid(&row.get::<_, String>(0)?)?,
        name: row.get(1)?,
        client_type: row.get(2)?,
        redirect_uris: row.get(3)?,
        post_logout_redirect_uris: row.get(4)?,
        grant_types: row.get(5)?,
        scope: row.get(6)?,
        is_active: row.get(7)?,
        secret_hash: row.get(8)?,
        created_at: time(row.get(9)?)?,
        updated_at: time(row.get(10)?)?,
    })
}

/// The client `id` as stored, inside a read or the write transaction.
fn select_client(connection: &Connection, id: &str) -> rusqlite::Result<Option<ClientRecord>> {
    let sql = format!("SELECT {CLIENT_COLUMNS} FROM clients WHERE id = ?");
    connection
        .prepare_cached(&sql)?
        .query_row([id], client_from_row)
        .optional()
}

/// Revokes every live session issued to the client `id`, in the caller's transaction.
fn revoke_client_sessions(
    connection: &Connection,
    id: &str,
    reason: RevocationReason,
    now: i64,
) -> Result<u64, StoreError> {
    connection
        .prepare_cached(
            "UPDATE sessions SET revoked_at = ?, revoked_reason = ?
             WHERE client_id = ? AND revoked_at IS NULL",
        )
        .and_then(|mut s| s.execute(params![now, reason.as_str(), id]))
        .map(|changed| changed as u64)
        .map_err(store_error)
}

#[async_trait]
impl ClientRepository for SqliteStore {
    #[tracing::instrument(skip_all, fields(client_id = %client.id))]
    async fn insert(&self, client: &Client) -> Result<(), StoreError> {
        let c = ClientColumns::of(client);
        let row = (
            client.id.to_string(),
            c.name,
            c.client_type,
            c.redirect_uris,
            c.post_logout_redirect_uris,
            c.grant_types,
            c.scope,
            client.is_active,
            client.secret_hash.as_ref().map(|h| h.as_str().to_owned()),
            micros(client.created_at),
            micros(client.updated_at),
        );
        self.write(move |connection| {
            connection
                .prepare_cached(
                    "INSERT INTO clients (id, name, client_type, redirect_uris, post_logout_redirect_uris, grant_types, scope, is_active, secret_hash, created_at, updated_at)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                )
                .and_then(|mut statement| statement.execute(row))
                .map_err(store_error)?;
            Ok(())
        })
        .await
    }

    async fn find_by_id(&self, id: ClientId) -> Result<Option<Client>, StoreError> {
        let id = id.to_string();
        let record = self.read(move |reader| select_client(reader, &id)).await?;
        record.map(ClientRecord::into_client).transpose()
    }

    async fn list(&self, limit: u32, offset: u64) -> Result<(Vec<Client>, u64), StoreError> {
        let sql = format!(
            "SELECT {CLIENT_COLUMNS} FROM clients ORDER BY created_at, id LIMIT ? OFFSET ?"
        );
        let (records, total) = self
            .read(move |reader| {
                let records = reader
                    .prepare_cached(&sql)?
                    .query_map(
                        params![i64::from(limit), i64::try_from(offset).unwrap_or(i64::MAX)],
                        client_from_row,
                    )?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                let total: i64 = reader
                    .prepare_cached("SELECT count(*) FROM clients")?
                    .query_row([], |row| row.get(0))?;
                Ok((records, total))
            })
            .await?;
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
        // One statement: each column is either the one named by the change or itself.
        let row = (
            changes.name.as_ref().map(|n| n.as_str().to_owned()),
            changes.redirect_uris.as_deref().map(join_uris),
            changes.post_logout_redirect_uris.as_deref().map(join_uris),
            changes.grant_types.as_ref().map(|g| g.to_space_separated()),
            changes.scope.as_ref().map(|s| s.to_space_separated()),
            changes.is_active,
            micros(now),
            id.to_string(),
        );
        let disable = changes.is_active == Some(false);
        let updated = self
            .write(move |connection| {
                let changed = connection
                    .prepare_cached(
                        "UPDATE clients SET
                            name = coalesce(?1, name),
                            redirect_uris = coalesce(?2, redirect_uris),
                            post_logout_redirect_uris = coalesce(?3, post_logout_redirect_uris),
                            grant_types = coalesce(?4, grant_types),
                            scope = coalesce(?5, scope),
                            is_active = coalesce(?6, is_active),
                            updated_at = ?7
                         WHERE id = ?8",
                    )
                    .and_then(|mut s| s.execute(row.clone()))
                    .map_err(store_error)?;
                if changed == 0 {
                    return Ok(None);
                }
                let record = select_client(connection, &row.7).map_err(store_error)?;
                let revoked = if disable {
                    revoke_client_sessions(
                        connection,
                        &row.7,
                        RevocationReason::ClientDisabled,
                        row.6,
                    )?
                } else {
                    0
                };
                Ok(record.map(|record| (record, revoked)))
            })
            .await?;
        if updated.as_ref().is_some_and(|(_, revoked)| *revoked > 0) {
            self.sessions.clear();
        }
        updated
            .map(|(record, revoked)| Ok((record.into_client()?, revoked)))
            .transpose()
    }

    #[tracing::instrument(skip_all, fields(client_id = %id))]
    async fn delete(&self, id: ClientId, now: DateTime<Utc>) -> Result<Option<u64>, StoreError> {
        let id = id.to_string();
        let revoked = self
            .write(move |connection| {
                let deleted = connection
                    .prepare_cached("DELETE FROM clients WHERE id = ?")
                    .and_then(|mut s| s.execute([&id]))
                    .map_err(store_error)?;
                if deleted == 0 {
                    return Ok(None);
                }
                let reason = RevocationReason::ClientDeleted;
                revoke_client_sessions(connection, &id, reason, micros(now)).map(Some)
            })
            .await?;
        if revoked.is_some_and(|revoked| revoked > 0) {
            self.sessions.clear();
        }
        Ok(revoked)
    }

    async fn set_secret_hash(
        &self,
        id: ClientId,
        hash: &ClientSecretHash,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let row = (hash.as_str().to_owned(), micros(now), id.to_string());
        let changed = self
            .write(move |connection| {
                connection
                    .prepare_cached(
                        "UPDATE clients SET secret_hash = ?, updated_at = ? WHERE id = ?",
                    )
                    .and_then(|mut s| s.execute(row))
                    .map_err(store_error)
            })
            .await?;
        Ok(changed == 1)
    }
}
