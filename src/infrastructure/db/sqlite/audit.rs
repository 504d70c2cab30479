//! [`AuditLog`], [`LoginThrottle`] and [`Purge`] on SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};

use super::{micros, store_error, time, uuid, SqliteStore};
use crate::domain::audit::{AuditEvent, AuditFilter};
use crate::domain::ports::{
    AuditLog, LockoutPolicy, LoginThrottle, Purge, StoreError, ThrottleEvent, ThrottleOutcome,
    ThrottleState,
};
use crate::domain::user::LoginKey;
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

#[async_trait]
impl LoginThrottle for SqliteStore {
    async fn apply(
        &self,
        key: &LoginKey,
        event: ThrottleEvent,
        policy: &LockoutPolicy,
        now: DateTime<Utc>,
    ) -> Result<ThrottleOutcome, StoreError> {
        let (key, policy) = (key.as_str().to_owned(), *policy);
        // On the writer thread, one job at a time: the read, the policy and the write are one
        // atomic step.
        self.write(move |tx| {
            let stored = tx
                .prepare_cached(
                    "SELECT failures, pending, locks, locked_until, updated_at
                     FROM login_throttle WHERE login_key = ?",
                )
                .and_then(|mut s| {
                    s.query_row([&key], |row| {
                        Ok(ThrottleState {
                            failures: row.get(0)?,
                            pending: row.get(1)?,
                            locks: row.get(2)?,
                            locked_until: row.get::<_, Option<i64>>(3)?.map(time).transpose()?,
                            updated_at: time(row.get(4)?)?,
                        })
                    })
                    .optional()
                })
                .map_err(store_error)?;
            let (next, outcome) = policy.apply(stored, event, now);
            if next == stored {
                return Ok(outcome);
            }
            match next {
                Some(state) => tx
                    .prepare_cached(
                        "INSERT INTO login_throttle (login_key, failures, pending, locks, locked_until, updated_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                         ON CONFLICT (login_key) DO UPDATE SET failures = ?2, pending = ?3, locks = ?4,
                             locked_until = ?5, updated_at = ?6",
                    )
                    .and_then(|mut s| {
                        s.execute(params![
                            key,
                            state.failures,
                            state.pending,
                            state.locks,
                            state.locked_until.map(micros),
                            micros(state.updated_at),
                        ])
                    }),
                None => tx
                    .prepare_cached("DELETE FROM login_throttle WHERE login_key = ?")
                    .and_then(|mut s| s.execute([&key])),
            }
            .map_err(store_error)?;
            Ok(outcome)
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
