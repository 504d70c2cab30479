//! [`AuthorizationCodeRepository`] on SQLite: codes are written and redeemed on the single
//! writer, so a redemption's check and its mark are one step that nothing else interleaves.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{micros, store_error, time, uuid, SqliteStore};
use crate::domain::oidc::{CodeChallenge, CodeGrant, CodeHash, Redemption};
use crate::domain::ports::{AuthorizationCodeRepository, StoreError};
use crate::domain::session::SessionId;
use crate::infrastructure::db::records::CodeRecord;

/// The `authorization_codes` columns in the order [`code_from_row`] reads them.
macro_rules! code_columns {
    () => {
        "code_hash, client_id, user_id, signin_id, redirect_uri, code_challenge, scope, nonce, auth_time, created_at, expires_at"
    };
}

/// An `authorization_codes` row in `code_columns!()` order.
fn code_from_row(row: &Row<'_>) -> rusqlite::Result<CodeRecord> {
    Ok(CodeRecord {
        code_hash: row.get(0)?,
        client_id: uuid(&row.get::<_, String>(1)?)?,
        user_id: uuid(&row.get::<_, String>(2)?)?,
        signin_id: uuid(&row.get::<_, String>(3)?)?,
        redirect_uri: row.get(4)?,
        code_challenge: row.get(5)?,
        scope: row.get(6)?,
        nonce: row.get(7)?,
        auth_time: time(row.get(8)?)?,
        created_at: time(row.get(9)?)?,
        expires_at: time(row.get(10)?)?,
    })
}

#[async_trait]
impl AuthorizationCodeRepository for SqliteStore {
    #[tracing::instrument(skip_all, fields(client_id = %grant.client_id))]
    async fn insert(&self, grant: &CodeGrant) -> Result<(), StoreError> {
        let row = (
            grant.hash.as_str().to_owned(),
            grant.client_id.to_string(),
            grant.user_id.to_string(),
            grant.signin_id.to_string(),
            grant.redirect_uri.clone(),
            grant
                .challenge
                .as_ref()
                .map(|c| CodeChallenge::as_str(c).to_owned()),
            grant.scope.to_space_separated(),
            grant.nonce.clone(),
            micros(grant.auth_time),
            micros(grant.created_at),
            micros(grant.expires_at),
        );
        self.write(move |connection| {
            connection
                .prepare_cached(concat!(
                    "INSERT INTO authorization_codes (",
                    code_columns!(),
                    ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                ))
                .and_then(|mut s| s.execute(row))
                .map_err(store_error)?;
            Ok(())
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn redeem(
        &self,
        hash: &CodeHash,
        session_id: SessionId,
        now: DateTime<Utc>,
    ) -> Result<Redemption, StoreError> {
        let hash = hash.as_str().to_owned();
        self.write(move |connection| redeem(connection, &hash, session_id, micros(now)))
            .await
    }

    async fn was_replayed(&self, hash: &CodeHash) -> Result<bool, StoreError> {
        let hash = hash.as_str().to_owned();
        let replayed: Option<bool> = self
            .read(move |reader| {
                reader
                    .prepare_cached(
                        "SELECT replayed_at IS NOT NULL FROM authorization_codes WHERE code_hash = ?",
                    )?
                    .query_row([hash], |row| row.get(0))
                    .optional()
            })
            .await?;
        Ok(replayed.unwrap_or(false))
    }
}

/// The redemption inside a write transaction: only a redemption that flips `redeemed_by` from
/// NULL gets the grant; one that finds it set records the replay. A stored row that does not
/// decode fails the job, so its savepoint is rolled back and the code stays unused.
fn redeem(
    connection: &Connection,
    hash: &str,
    session_id: SessionId,
    now: i64,
) -> Result<Redemption, StoreError> {
    let fresh = connection
        .prepare_cached(concat!(
            "UPDATE authorization_codes SET redeemed_by = ?2
             WHERE code_hash = ?1 AND redeemed_by IS NULL AND expires_at > ?3
             RETURNING ",
            code_columns!()
        ))
        .and_then(|mut s| {
            s.query_row(params![hash, session_id.to_string(), now], code_from_row)
                .optional()
        })
        .map_err(store_error)?;
    if let Some(record) = fresh {
        return Ok(Redemption::Fresh(Box::new(record.into_grant()?)));
    }
    let first: Option<String> = connection
        .prepare_cached(
            "UPDATE authorization_codes SET replayed_at = coalesce(replayed_at, ?2)
             WHERE code_hash = ?1 AND redeemed_by IS NOT NULL
             RETURNING redeemed_by",
        )
        .and_then(|mut s| s.query_row(params![hash, now], |row| row.get(0)).optional())
        .map_err(store_error)?;
    match first {
        Some(first) => Ok(Redemption::Replayed {
            session_id: SessionId::from_uuid(uuid(&first).map_err(store_error)?),
        }),
        None => Ok(Redemption::Unknown),
    }
}
