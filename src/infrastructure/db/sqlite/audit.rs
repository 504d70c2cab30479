//! [`AuditLog`], [`LoginThrottle`] and [`Purge`] on SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::{micros, store_error, time, uuid, SqliteStore};
use crate::domain::audit::{AuditEvent, AuditFilter};
use crate::domain::ports::{
    AuditLog, LockoutPolicy, LoginThrottle, Purge, StoreError, ThrottleState,
};
use uuid::Uuid;

use crate::infrastructure::db::records::AuditRecord;

fn event_from_row(row: &SqliteRow) -> Result<AuditEvent, StoreError> {
    let get = |column: &str| -> Result<Option<String>, StoreError> {
        row.try_get(column).map_err(store_error)
    };
    AuditRecord {
        id: uuid(row, "id")?,
        at: time(row, "at")?,
        event: get("event")?.unwrap_or_default(),
        user_id: get("user_id")?
            .map(|id| Uuid::parse_str(&id))
            .transpose()
            .map_err(|e| StoreError::Other(format!("bad audit user_id: {e}")))?,
        username: get("username")?,
        ip: get("ip")?,
        user_agent: get("user_agent")?,
        success: row.try_get("success").map_err(store_error)?,
        detail: get("detail")?,
    }
    .into_event()
}

#[async_trait]
impl AuditLog for SqliteStore {
    async fn record(&self, event: &AuditEvent) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_events (id, at, event, user_id, username, ip, user_agent, success, detail)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(event.id.to_string())
        .bind(micros(event.at))
        .bind(event.kind.as_str())
        .bind(event.user_id.map(|id| id.to_string()))
        .bind(event.username.as_deref())
        .bind(event.ip.map(|ip| ip.to_string()))
        .bind(event.user_agent.as_deref())
        .bind(event.success)
        .bind(event.detail.as_deref())
        .execute(&self.writer)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    async fn list(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError> {
        // Only the conditions that apply, so each filter can use its index.
        let mut sql = String::from(
            "SELECT id, at, event, user_id, username, ip, user_agent, success, detail FROM audit_events WHERE 1 = 1",
        );
        if filter.user_id.is_some() {
            sql.push_str(" AND user_id = ?");
        }
        if filter.kind.is_some() {
            sql.push_str(" AND event = ?");
        }
        if filter.before.is_some() {
            sql.push_str(" AND at < ?");
        }
        sql.push_str(" ORDER BY at DESC, id DESC LIMIT ?");
        let mut query = sqlx::query(&sql);
        if let Some(user_id) = filter.user_id {
            query = query.bind(user_id.to_string());
        }
        if let Some(kind) = filter.kind {
            query = query.bind(kind.as_str());
        }
        if let Some(before) = filter.before {
            query = query.bind(micros(before));
        }
        let rows = query
            .bind(i64::from(filter.limit))
            .fetch_all(&self.reader)
            .await
            .map_err(store_error)?;
        rows.iter().map(event_from_row).collect()
    }
}

#[async_trait]
impl LoginThrottle for SqliteStore {
    async fn state(&self, key: &str, now: DateTime<Utc>) -> Result<ThrottleState, StoreError> {
        let row = sqlx::query(
            "SELECT failures, locks, locked_until FROM login_throttle WHERE login_key = ?",
        )
        .bind(key)
        .fetch_optional(&self.reader)
        .await
        .map_err(store_error)?;
        let Some(row) = row else {
            return Ok(ThrottleState::default());
        };
        let locked_until: Option<i64> = row.try_get("locked_until").map_err(store_error)?;
        Ok(ThrottleState {
            failures: row.try_get("failures").map_err(store_error)?,
            locks: row.try_get("locks").map_err(store_error)?,
            locked_until: locked_until
                .filter(|until| *until > micros(now))
                .and_then(DateTime::from_timestamp_micros),
        })
    }

    async fn record_failure(
        &self,
        key: &str,
        now: DateTime<Utc>,
        policy: &LockoutPolicy,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let mut tx = self.writer.begin().await.map_err(store_error)?;
        let row = sqlx::query(
            "INSERT INTO login_throttle (login_key, failures, locks, updated_at) VALUES (?1, 1, 0, ?2)
             ON CONFLICT (login_key) DO UPDATE SET failures = failures + 1, updated_at = ?2
             RETURNING failures, locks",
        )
        .bind(key)
        .bind(micros(now))
        .fetch_one(&mut *tx)
        .await
        .map_err(store_error)?;
        let failures: u32 = row.try_get("failures").map_err(store_error)?;
        let locks: u32 = row.try_get("locks").map_err(store_error)?;
        let locked_until = if failures >= policy.max_failures {
            let until = now + policy.lock_length(locks);
            sqlx::query(
                "UPDATE login_throttle SET failures = 0, locks = locks + 1, locked_until = ? WHERE login_key = ?",
            )
            .bind(micros(until))
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
        sqlx::query("DELETE FROM login_throttle WHERE login_key = ?")
            .bind(key)
            .execute(&self.writer)
            .await
            .map_err(store_error)?;
        Ok(())
    }
}

#[async_trait]
impl Purge for SqliteStore {
    async fn purge(
        &self,
        now: DateTime<Utc>,
        revoked_before: DateTime<Utc>,
        audit_before: DateTime<Utc>,
        throttle_before: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let mut tx = self.writer.begin().await.map_err(store_error)?;
        let mut removed = 0;
        let statements: [(&str, Vec<i64>); 4] = [
            // Refresh tokens go with their session (ON DELETE CASCADE).
            (
                "DELETE FROM sessions WHERE expires_at < ? OR revoked_at < ?",
                vec![micros(now), micros(revoked_before)],
            ),
            ("DELETE FROM refresh_tokens WHERE expires_at < ?", vec![micros(now)]),
            ("DELETE FROM audit_events WHERE at < ?", vec![micros(audit_before)]),
            (
                "DELETE FROM login_throttle WHERE updated_at < ? AND (locked_until IS NULL OR locked_until < ?)",
                vec![micros(throttle_before), micros(now)],
            ),
        ];
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
