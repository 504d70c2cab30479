//! [`AuditLog`] on SQLite.

use async_trait::async_trait;
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, Row};

use super::{micros, store_error, time, uuid, SqliteStore};
use crate::domain::audit::{AuditEvent, AuditFilter};
use crate::domain::ports::{AuditLog, StoreError};
use crate::infrastructure::db::records::AuditRecord;

fn event_from_row(row: &Row<'_>) -> rusqlite::Result<AuditRecord> {
    Ok(AuditRecord {
        id: uuid(&row.get::<_, String>(0)?)?,
        at: time(row.get(1)?)?,
        event: row.get(2)?,
        user_id: row
            .get::<_, Option<String>>(3)?
            .map(|id| uuid(&id))
            .transpose()?,
        username: row.get(4)?,
        ip: row.get(5)?,
        user_agent: row.get(6)?,
        success: row.get(7)?,
        detail: row.get(8)?,
    })
}

/// Appends an event in the open transaction.
pub(super) fn insert_event(connection: &Connection, event: &AuditEvent) -> Result<(), StoreError> {
    connection
        .prepare_cached(
            "INSERT INTO audit_events (id, at, event, user_id, username, ip, user_agent, success, detail)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .and_then(|mut s| {
            s.execute(params![
                event.id.to_string(),
                micros(event.at),
                event.kind.as_str(),
                event.user_id.map(|id| id.to_string()),
                event.username,
                event.ip.map(|ip| ip.to_string()),
                event.user_agent,
                event.success,
                event.detail,
            ])
        })
        .map_err(store_error)?;
    Ok(())
}

#[async_trait]
impl AuditLog for SqliteStore {
    /// Written through the group-committed queue ([`SqliteStore::write`]): a burst of events,
    /// and the logins or rotations they describe, share one commit.
    async fn record(&self, event: &AuditEvent) -> Result<(), StoreError> {
        let event = event.clone();
        self.write(move |connection| insert_event(connection, &event))
            .await
    }

    async fn list(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError> {
        // Only the conditions that apply, so each filter can use its index.
        let mut sql = String::from(
            "SELECT id, at, event, user_id, username, ip, user_agent, success, detail FROM audit_events WHERE 1 = 1",
        );
        let mut values: Vec<Value> = Vec::new();
        if let Some(user_id) = filter.user_id {
            sql.push_str(" AND user_id = ?");
            values.push(Value::Text(user_id.to_string()));
        }
        if let Some(kind) = filter.kind {
            sql.push_str(" AND event = ?");
            values.push(Value::Text(kind.as_str().to_owned()));
        }
        if let Some(before) = filter.before {
            sql.push_str(" AND at < ?");
            values.push(Value::Integer(micros(before)));
        }
        sql.push_str(" ORDER BY at DESC, id DESC LIMIT ?");
        values.push(Value::Integer(i64::from(filter.limit)));
        let records = self
            .read(move |reader| {
                reader
                    .prepare_cached(&sql)?
                    .query_map(params_from_iter(values), event_from_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        records.into_iter().map(AuditRecord::into_event).collect()
    }
}
