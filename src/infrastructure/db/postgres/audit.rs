//! [`AuditLog`], [`LoginThrottle`] and [`Purge`] on PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::PgStore;
use crate::domain::audit::{AuditEvent, AuditFilter};
use crate::domain::ports::{
    AuditLog, LockoutPolicy, LoginThrottle, Purge, StoreError, ThrottleEvent, ThrottleOutcome,
    ThrottleState,
};
use crate::domain::user::LoginKey;
use crate::infrastructure::db::records::AuditRecord;
use crate::infrastructure::db::store_error;

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

#[async_trait]
impl LoginThrottle for PgStore {
    async fn apply(
        &self,
        key: &LoginKey,
        event: ThrottleEvent,
        policy: &LockoutPolicy,
        now: DateTime<Utc>,
    ) -> Result<ThrottleOutcome, StoreError> {
        type Row = (i32, i32, i32, Option<DateTime<Utc>>, DateTime<Utc>, bool);
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        // The no-op upsert locks the key's row (creating it if absent) until commit: calls for
        // one key from every replica queue here, so read, policy and write are one step.
        let (failures, pending, locks, locked_until, updated_at, created): Row = sqlx::query_as(
            "INSERT INTO login_throttle (login_key, failures, pending, locks, updated_at)
             VALUES ($1, 0, 0, 0, $2)
             ON CONFLICT (login_key) DO UPDATE SET login_key = excluded.login_key
             RETURNING failures, pending, locks, locked_until, updated_at, (xmax = 0)",
        )
        .bind(key.as_str())
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(store_error)?;
        let count = |n: i32| u32::try_from(n).unwrap_or_default();
        let stored = (!created).then_some(ThrottleState {
            failures: count(failures),
            pending: count(pending),
            locks: count(locks),
            locked_until,
            updated_at,
        });
        let (next, outcome) = policy.apply(stored, event, now);
        if !created && next == stored {
            // Refused or busy: nothing changes.
            tx.commit().await.map_err(store_error)?;
            return Ok(outcome);
        }
        let signed = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
        match next {
            Some(state) => sqlx::query(
                "UPDATE login_throttle SET failures = $2, pending = $3, locks = $4,
                 locked_until = $5, updated_at = $6 WHERE login_key = $1",
            )
            .bind(key.as_str())
            .bind(signed(state.failures))
            .bind(signed(state.pending))
            .bind(signed(state.locks))
            .bind(state.locked_until)
            .bind(state.updated_at),
            None => {
                sqlx::query("DELETE FROM login_throttle WHERE login_key = $1").bind(key.as_str())
            }
        }
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(outcome)
    }
}

#[async_trait]
impl Purge for PgStore {
    async fn purge(
        &self,
        now: DateTime<Utc>,
        revoked_before: DateTime<Utc>,
        audit_before: DateTime<Utc>,
        throttle_before: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let statements: [(&str, Vec<DateTime<Utc>>); 4] = [
            // Refresh tokens go with their session (ON DELETE CASCADE).
            (
                "DELETE FROM sessions WHERE expires_at < $1 OR revoked_at < $2",
                vec![now, revoked_before],
            ),
            ("DELETE FROM refresh_tokens WHERE expires_at < $1", vec![now]),
            ("DELETE FROM audit_events WHERE at < $1", vec![audit_before]),
            (
                "DELETE FROM login_throttle WHERE updated_at < $1 AND (locked_until IS NULL OR locked_until < $2)",
                vec![throttle_before, now],
            ),
        ];
        let mut removed = 0;
        for (sql, binds) in statements {
            let mut query = sqlx::query(sql);
            for value in binds {
                query = query.bind(value);
            }
            removed += query
                .execute(&mut *tx)
                .await
                .map_err(store_error)?
                .rows_affected();
        }
        tx.commit().await.map_err(store_error)?;
        Ok(removed)
    }
}
