//! [`Purge`] on PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{store_error, PgStore};
use crate::domain::ports::{Purge, StoreError};

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
