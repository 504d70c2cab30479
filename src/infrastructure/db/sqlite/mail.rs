//! [`MailStore`] on SQLite: every write is one job of the single writer, so the per-address
//! count and the insert it allows, a token's check and its use, and a claim's select and its
//! lease are each one step that nothing else interleaves. Replicas do not share a SQLite file.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row};
use uuid::Uuid;

use super::{micros, store_error, time, uuid, SqliteStore};
use crate::domain::mail::{
    AddressLimit, ClaimedMail, Issued, MailContent, MailStore, MailTokenHash, NewMail, TokenGrant,
    TokenPurpose, Verification,
};
use crate::domain::ports::StoreError;
use crate::domain::user::{EmailAddress, UserId};

/// The `mail_tokens` columns in the order [`token_from_row`] reads them.
const TOKEN_COLUMNS: &str = "token_hash, purpose, user_id, email, created_at, expires_at";

fn token_from_row(row: &Row<'_>) -> rusqlite::Result<(String, String, Uuid, String, i64, i64)> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        uuid(&row.get::<_, String>(2)?)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
    ))
}

fn into_grant(
    (hash, purpose, user_id, email, created_at, expires_at): (
        String,
        String,
        Uuid,
        String,
        i64,
        i64,
    ),
) -> Result<TokenGrant, StoreError> {
    Ok(TokenGrant {
        hash: MailTokenHash::from_hex(hash),
        purpose: TokenPurpose::parse(&purpose)
            .ok_or_else(|| StoreError::Other(format!("unknown token purpose '{purpose}'")))?,
        user_id: UserId::from_uuid(user_id),
        email,
        created_at: time(created_at).map_err(store_error)?,
        expires_at: time(expires_at).map_err(store_error)?,
    })
}

/// Uses the token inside a write job.
fn consume(
    connection: &Connection,
    hash: &str,
    purpose: &str,
    now: i64,
) -> Result<Option<TokenGrant>, StoreError> {
    let sql = format!(
        "UPDATE mail_tokens SET used_at = ?3
         WHERE token_hash = ?1 AND purpose = ?2 AND used_at IS NULL AND expires_at > ?3
         RETURNING {TOKEN_COLUMNS}"
    );
    connection
        .prepare_cached(&sql)
        .and_then(|mut s| {
            s.query_row(params![hash, purpose, now], token_from_row)
                .optional()
        })
        .map_err(store_error)?
        .map(into_grant)
        .transpose()
}

type MailRow = (String, String, String, String, String, String, String, u32);

fn mail_from_row(row: &Row<'_>) -> rusqlite::Result<MailRow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
    ))
}

fn into_claimed(
    (id, user_id, to, kind, subject, text, html, attempts): MailRow,
) -> Result<ClaimedMail, StoreError> {
    Ok(ClaimedMail {
        id: uuid(&id).map_err(store_error)?,
        user_id: UserId::from_uuid(uuid(&user_id).map_err(store_error)?),
        to,
        kind: TokenPurpose::parse(&kind)
            .ok_or_else(|| StoreError::Other(format!("unknown mail kind '{kind}'")))?,
        content: MailContent {
            subject,
            text,
            html,
        },
        attempts,
    })
}

#[async_trait]
impl MailStore for SqliteStore {
    #[tracing::instrument(skip_all, fields(user_id = %mail.user_id, kind = mail.kind.as_str()))]
    async fn issue(
        &self,
        token: &TokenGrant,
        mail: &NewMail,
        limit: AddressLimit,
    ) -> Result<Issued, StoreError> {
        let token = token.clone();
        let mail = mail.clone();
        self.write(move |connection| {
            let key = mail.to.to_ascii_lowercase();
            let sent: i64 = connection
                .prepare_cached(
                    "SELECT count(*) FROM mail_outbox WHERE recipient_key = ? AND created_at > ?",
                )
                .and_then(|mut s| s.query_row(params![key, micros(limit.since)], |r| r.get(0)))
                .map_err(store_error)?;
            if sent >= i64::from(limit.max) {
                return Ok(Issued::RateLimited);
            }
            let user_id = token.user_id.to_string();
            connection
                .prepare_cached(
                    "DELETE FROM mail_tokens WHERE user_id = ? AND purpose = ? AND used_at IS NULL",
                )
                .and_then(|mut s| s.execute(params![user_id, token.purpose.as_str()]))
                .map_err(store_error)?;
            connection
                .prepare_cached(&format!(
                    "INSERT INTO mail_tokens ({TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
                ))
                .and_then(|mut s| {
                    s.execute(params![
                        token.hash.as_str(),
                        token.purpose.as_str(),
                        user_id,
                        token.email,
                        micros(token.created_at),
                        micros(token.expires_at)
                    ])
                })
                .map_err(store_error)?;
            connection
                .prepare_cached(
                    "INSERT INTO mail_outbox (id, user_id, recipient, recipient_key, kind, subject,
                     body_text, body_html, created_at, next_attempt_at)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        mail.id.to_string(),
                        mail.user_id.to_string(),
                        mail.to,
                        key,
                        mail.kind.as_str(),
                        mail.content.subject,
                        mail.content.text,
                        mail.content.html,
                        micros(mail.created_at),
                        micros(mail.created_at)
                    ])
                })
                .map_err(store_error)?;
            Ok(Issued::Queued)
        })
        .await
    }

    async fn find_token(
        &self,
        hash: &MailTokenHash,
        purpose: TokenPurpose,
        now: DateTime<Utc>,
    ) -> Result<Option<TokenGrant>, StoreError> {
        let hash = hash.as_str().to_owned();
        let row = self
            .read(move |reader| {
                reader
                    .prepare_cached(&format!(
                        "SELECT {TOKEN_COLUMNS} FROM mail_tokens
                         WHERE token_hash = ?1 AND purpose = ?2 AND used_at IS NULL AND expires_at > ?3"
                    ))?
                    .query_row(params![hash, purpose.as_str(), micros(now)], token_from_row)
                    .optional()
            })
            .await?;
        row.map(into_grant).transpose()
    }

    async fn consume_token(
        &self,
        hash: &MailTokenHash,
        purpose: TokenPurpose,
        now: DateTime<Utc>,
    ) -> Result<Option<TokenGrant>, StoreError> {
        let hash = hash.as_str().to_owned();
        self.write(move |connection| consume(connection, &hash, purpose.as_str(), micros(now)))
            .await
    }

    async fn verify_email(
        &self,
        hash: &MailTokenHash,
        now: DateTime<Utc>,
    ) -> Result<Verification, StoreError> {
        let hash = hash.as_str().to_owned();
        let outcome = self
            .write(move |connection| {
                let purpose = TokenPurpose::EmailVerification.as_str();
                let Some(grant) = consume(connection, &hash, purpose, micros(now))? else {
                    return Ok(Verification::Invalid);
                };
                let changed = connection
                    .prepare_cached(
                        "UPDATE users SET email_verified = 1, updated_at = ?3
                         WHERE id = ?1 AND email = ?2",
                    )
                    .and_then(|mut s| {
                        s.execute(params![grant.user_id.to_string(), grant.email, micros(now)])
                    })
                    .map_err(store_error)?;
                Ok(if changed == 1 {
                    Verification::Verified(grant.user_id)
                } else {
                    Verification::AddressChanged(grant.user_id)
                })
            })
            .await?;
        if let Verification::Verified(id) = &outcome {
            // The cache holds users with their sessions: the flag must show at once.
            self.sessions.forget_user(*id);
        }
        Ok(outcome)
    }

    async fn find_user_by_email(&self, email: &EmailAddress) -> Result<Option<UserId>, StoreError> {
        let key = email.as_str().to_ascii_lowercase();
        let id: Option<String> = self
            .read(move |reader| {
                reader
                    .prepare_cached("SELECT id FROM users WHERE lower(email) = ?")?
                    .query_row([key], |row| row.get(0))
                    .optional()
            })
            .await?;
        id.map(|id| uuid(&id).map(UserId::from_uuid).map_err(store_error))
            .transpose()
    }

    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ClaimedMail>, StoreError> {
        let rows = self
            .write(move |connection| {
                connection
                    .prepare_cached(
                        "UPDATE mail_outbox SET locked_until = ?2
                         WHERE id IN (SELECT id FROM mail_outbox
                                      WHERE sent_at IS NULL AND next_attempt_at <= ?1
                                        AND (locked_until IS NULL OR locked_until <= ?1)
                                      ORDER BY next_attempt_at LIMIT ?3)
                         RETURNING id, user_id, recipient, kind, subject, body_text, body_html, attempts",
                    )
                    .and_then(|mut s| {
                        s.query_map(params![micros(now), micros(lease_until), limit], mail_from_row)?
                            .collect::<Result<Vec<_>, _>>()
                    })
                    .map_err(store_error)
            })
            .await?;
        rows.into_iter().map(into_claimed).collect()
    }

    async fn mark_sent(&self, id: Uuid, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.write(move |connection| {
            connection
                .prepare_cached(
                    "UPDATE mail_outbox SET sent_at = ?2, locked_until = NULL, body_text = '',
                     body_html = '' WHERE id = ?1",
                )
                .and_then(|mut s| s.execute(params![id.to_string(), micros(now)]))
                .map_err(store_error)
                .map(|_| ())
        })
        .await
    }

    async fn mark_failed(
        &self,
        id: Uuid,
        error: &str,
        retry_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let error = error.to_owned();
        self.write(move |connection| {
            connection
                .prepare_cached(
                    "UPDATE mail_outbox SET attempts = attempts + 1, last_error = ?2,
                     next_attempt_at = ?3, locked_until = NULL WHERE id = ?1 AND sent_at IS NULL",
                )
                .and_then(|mut s| s.execute(params![id.to_string(), error, micros(retry_at)]))
                .map_err(store_error)
                .map(|_| ())
        })
        .await
    }

    async fn outbox_state(&self) -> Result<(u64, Option<DateTime<Utc>>), StoreError> {
        let (count, next): (i64, Option<i64>) = self
            .read(|reader| {
                reader
                    .prepare_cached(
                        "SELECT count(*), min(max(next_attempt_at, coalesce(locked_until, 0)))
                         FROM mail_outbox WHERE sent_at IS NULL",
                    )?
                    .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))
            })
            .await?;
        let next = next.map(time).transpose().map_err(store_error)?;
        Ok((u64::try_from(count).unwrap_or(0), next))
    }
}
