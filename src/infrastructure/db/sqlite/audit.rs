//! [`AuditLog`], [`LoginThrottle`] and [`Purge`] on SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, OptionalExtension, Row};

use super::{micros, store_error, time, uuid, SqliteStore};
use crate::domain::audit::{AuditEvent, AuditFilter};
use crate::domain::ports::{
    AuditLog, LockoutPolicy, LoginThrottle, Purge, StoreError, ThrottleState,
};
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

#[async_trait]
impl AuditLog for SqliteStore {
    /// Written through the group-committed queue ([`SqliteStore::write`]): a burst of events,
    /// and the logins or rotations they describe, share one commit.
    async fn record(&self, event: &AuditEvent) -> Result<(), StoreError> {
        let row = (
            event.id.to_string(),
            micros(event.at),
            event.kind.as_str(),
            event.user_id.map(|id| id.to_string()),
            event.username.clone(),
            event.ip.map(|ip| ip.to_string()),
            event.user_agent.clone(),
            event.success,
            event.detail.clone(),
        );
        self.write(move |connection| {
            connection
                .prepare_cached(
                    "INSERT INTO audit_events (id, at, event, user_id, username, ip, user_agent, success, detail)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                )
                .and_then(|mut s| s.execute(row))
                .map_err(store_error)?;
            Ok(())
        })
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
        let reader = self.reader().await?;
        let records = reader
            .prepare_cached(&sql)
            .and_then(|mut s| {
                s.query_map(params_from_iter(values), event_from_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(store_error)?;
        records.into_iter().map(AuditRecord::into_event).collect()
    }
}

#[async_trait]
impl LoginThrottle for SqliteStore {
    async fn state(&self, key: &str, now: DateTime<Utc>) -> Result<ThrottleState, StoreError> {
        let reader = self.reader().await?;
        let row: Option<(u32, u32, Option<i64>)> = reader
            .prepare_cached(
                "SELECT failures, locks, locked_until FROM login_throttle WHERE login_key = ?",
            )
            .and_then(|mut s| {
                s.query_row([key], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
                    .optional()
            })
            .map_err(store_error)?;
        Ok(
            row.map_or_else(ThrottleState::default, |(failures, locks, until)| {
                ThrottleState {
                    failures,
                    locks,
                    locked_until: until
                        .filter(|until| *until > micros(now))
                        .and_then(DateTime::from_timestamp_micros),
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
        let (key, policy) = (key.to_owned(), *policy);
        self.write(move |tx| {
            let key = key.as_str();
        let (failures, locks): (u32, u32) = tx
            .prepare_cached(
                "INSERT INTO login_throttle (login_key, failures, locks, updated_at) VALUES (?1, 1, 0, ?2)
                 ON CONFLICT (login_key) DO UPDATE SET failures = failures + 1, updated_at = ?2
                 RETURNING failures, locks",
            )
            .and_then(|mut s| s.query_row(params![key, micros(now)], |row| Ok((row.get(0)?, row.get(1)?))))
            .map_err(store_error)?;
        let locked_until = if failures >= policy.max_failures {
            let until = now + policy.lock_length(locks);
            tx.prepare_cached(
                "UPDATE login_throttle SET failures = 0, locks = locks + 1, locked_until = ? WHERE login_key = ?",
            )
            .and_then(|mut s| s.execute(params![micros(until), key]))
            .map_err(store_error)?;
            Some(until)
        } else {
            None
        };
        Ok(locked_until)
        })
        .await
    }

    async fn record_success(&self, key: &str) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.write(move |connection| {
            connection
                .prepare_cached("DELETE FROM login_throttle WHERE login_key = ?")
                .and_then(|mut s| s.execute([key]))
                .map_err(store_error)?;
            Ok(())
        })
        .await
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
        let (now, revoked_before, audit_before, throttle_before) = (
            micros(now),
            micros(revoked_before),
            micros(audit_before),
            micros(throttle_before),
        );
        // On the writer thread, never on the async workers: possibly millions of rows.
        let removed = self.write(move |tx| {
            let statements: [(&str, Vec<i64>); 4] = [
                // Refresh tokens go with their session (ON DELETE CASCADE).
                (
                    "DELETE FROM sessions WHERE expires_at < ? OR revoked_at < ?",
                    vec![now, revoked_before],
                ),
                ("DELETE FROM refresh_tokens WHERE expires_at < ?", vec![now]),
                ("DELETE FROM audit_events WHERE at < ?", vec![audit_before]),
                (
                    "DELETE FROM login_throttle WHERE updated_at < ? AND (locked_until IS NULL OR locked_until < ?)",
                    vec![throttle_before, now],
                ),
            ];
            let mut removed = 0;
            for (sql, values) in statements {
                removed += tx
                    .execute(sql, params_from_iter(values))
                    .map_err(store_error)? as u64;
            }
            Ok(removed)
        })
        .await;
        // Only expired or long-revoked sessions go, which the cache would not answer for
        // anyway; emptied regardless, as the purge is rare.
        self.sessions.clear();
        removed
    }
}
