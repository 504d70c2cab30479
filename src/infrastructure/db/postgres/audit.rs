//! [`AuditLog`], [`LoginThrottle`] and [`Purge`] on PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::PgStore;
use crate::domain::audit::{AuditEvent, AuditFilter};
use crate::domain::ports::{
    AuditLog, LockoutPolicy, LoginThrottle, Purge, StoreError, ThrottleState,
};
use crate::infrastructure::db::records::AuditRecord;
use crate::infrastructure::db::store_error;

#[async_trait]
impl AuditLog for PgStore {
    async fn record(&self, event: &AuditEvent) -> Result<(), StoreError> {
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
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(())
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
    async fn state(&self, key: &str, now: DateTime<Utc>) -> Result<ThrottleState, StoreError> {
        let row: Option<(i32, i32, Option<DateTime<Utc>>)> = sqlx::query_as(
            "SELECT failures, locks, locked_until FROM login_throttle WHERE login_key = $1",
        )
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(
            row.map_or_else(ThrottleState::default, |(failures, locks, until)| {
                ThrottleState {
                    failures: u32::try_from(failures).unwrap_or_default(),
                    locks: u32::try_from(locks).unwrap_or_default(),
                    locked_until: until.filter(|until| *until > now),
                }
            }),
        )
    }

    async fn record_failure(
        &self,
        key: &str,
        now: DateTime<Utc>,
        policy: &LockoutPolicy,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        // The upsert locks the row until commit: concurrent failures on other replicas queue.
        let (failures, locks): (i32, i32) = sqlx::query_as(
            "INSERT INTO login_throttle (login_key, failures, locks, updated_at) VALUES ($1, 1, 0, $2)
             ON CONFLICT (login_key) DO UPDATE SET failures = login_throttle.failures + 1, updated_at = $2
             RETURNING failures, locks",
        )
        .bind(key)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(store_error)?;
        let locked_until = if u32::try_from(failures).unwrap_or_default() >= policy.max_failures {
            let until = now + policy.lock_length(u32::try_from(locks).unwrap_or_default());
            sqlx::query(
                "UPDATE login_throttle SET failures = 0, locks = locks + 1, locked_until = $1 WHERE login_key = $2",
            )
            .bind(until)
            .bind(key)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
            Some(until)
        } else {
            None
        };
        tx.commit().await.map_err(store_error)?;
        Ok(locked_until)
    }

    async fn record_success(&self, key: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM login_throttle WHERE login_key = $1")
            .bind(key)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(())
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
