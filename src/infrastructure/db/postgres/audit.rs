//! [`AuditLog`] on PostgreSQL.

use async_trait::async_trait;

use super::{store_error, PgStore};
use crate::domain::audit::{AuditEvent, AuditFilter};
use crate::domain::ports::{AuditLog, StoreError};
use crate::infrastructure::db::records::AuditRecord;

/// Appends an event on `executor` (the pool, or an open transaction).
pub(super) async fn insert_event<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    event: &AuditEvent,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_events (id, at, event, user_id, username, ip, user_agent, success, detail)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(event.id)
    .bind(event.at)
    .bind(event.kind.as_str())
    .bind(event.user_id.map(|id| id.as_uuid()))
    .bind(event.username.as_deref())
    .bind(event.ip.map(|ip| ip.to_string()))
    .bind(event.user_agent.as_deref())
    .bind(event.success)
    .bind(event.detail.as_deref())
    .execute(executor)
    .await
    .map_err(store_error)?;
    Ok(())
}

#[async_trait]
impl AuditLog for PgStore {
    async fn record(&self, event: &AuditEvent) -> Result<(), StoreError> {
        insert_event(&self.pool, event).await
    }

    async fn list(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError> {
        // `$n IS NULL OR ...` keeps one statement; PostgreSQL plans each execution with the
        // values bound, so the matching index is still used.
        let records: Vec<AuditRecord> = sqlx::query_as(
            "SELECT id, at, event, user_id, username, ip, user_agent, success, detail FROM audit_events
             WHERE ($1::uuid IS NULL OR user_id = $1)
               AND ($2::text IS NULL OR event = $2)
               AND ($3::timestamptz IS NULL OR at < $3)
             ORDER BY at DESC, id DESC LIMIT $4",
        )
        .bind(filter.user_id.map(|id| id.as_uuid()))
        .bind(filter.kind.map(|kind| kind.as_str()))
        .bind(filter.before)
        .bind(i64::from(filter.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        records.into_iter().map(AuditRecord::into_event).collect()
    }
}
