//! [`MailStore`] on PostgreSQL, for any number of replicas on one database.
//!
//! The per-address count and the insert it allows run under a transaction-scoped advisory lock
//! on the address, so concurrent requests (from any replica) never exceed the limit together. A
//! token is used by one conditional `UPDATE` (concurrent users queue on the row lock and all
//! but the first match nothing). Claims select due mails `FOR UPDATE SKIP LOCKED` and lease them
//! in the same statement: two workers never claim one mail while its lease runs.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::{store_error, PgStore};
use crate::domain::mail::{
    AddressLimit, ClaimedMail, Issued, MailContent, MailStore, MailTokenHash, NewMail, TokenGrant,
    TokenPurpose, Verification,
};
use crate::domain::ports::StoreError;
use crate::domain::user::{EmailAddress, UserId};

/// The `mail_tokens` columns in the order [`into_grant`] reads them.
const TOKEN_COLUMNS: &str = "token_hash, purpose, user_id, email, created_at, expires_at";

fn into_grant(row: &sqlx::postgres::PgRow) -> Result<TokenGrant, StoreError> {
    let purpose: String = row.try_get(1).map_err(store_error)?;
    Ok(TokenGrant {
        hash: MailTokenHash::from_hex(row.try_get(0).map_err(store_error)?),
        purpose: TokenPurpose::parse(&purpose)
            .ok_or_else(|| StoreError::Other(format!("unknown token purpose '{purpose}'")))?,
        user_id: UserId::from_uuid(row.try_get(2).map_err(store_error)?),
        email: row.try_get(3).map_err(store_error)?,
        created_at: row.try_get(4).map_err(store_error)?,
        expires_at: row.try_get(5).map_err(store_error)?,
    })
}

async fn consume(
    connection: &mut PgConnection,
    hash: &str,
    purpose: TokenPurpose,
    now: DateTime<Utc>,
) -> Result<Option<TokenGrant>, StoreError> {
    let sql = format!(
        "UPDATE mail_tokens SET used_at = $3
         WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3
         RETURNING {TOKEN_COLUMNS}"
    );
    let row = sqlx::query(&sql)
        .bind(hash)
        .bind(purpose.as_str())
        .bind(now)
        .fetch_optional(&mut *connection)
        .await
        .map_err(store_error)?;
    row.as_ref().map(into_grant).transpose()
}

fn into_claimed(row: &sqlx::postgres::PgRow) -> Result<ClaimedMail, StoreError> {
    let kind: String = row.try_get(3).map_err(store_error)?;
    let attempts: i32 = row.try_get(7).map_err(store_error)?;
    Ok(ClaimedMail {
        id: row.try_get(0).map_err(store_error)?,
        user_id: UserId::from_uuid(row.try_get(1).map_err(store_error)?),
        to: row.try_get(2).map_err(store_error)?,
        kind: TokenPurpose::parse(&kind)
            .ok_or_else(|| StoreError::Other(format!("unknown mail kind '{kind}'")))?,
        content: MailContent {
            subject: row.try_get(4).map_err(store_error)?,
            text: row.try_get(5).map_err(store_error)?,
            html: row.try_get(6).map_err(store_error)?,
        },
        attempts: u32::try_from(attempts).unwrap_or(0),
    })
}

#[async_trait]
impl MailStore for PgStore {
    #[tracing::instrument(skip_all, fields(user_id = %mail.user_id, kind = mail.kind.as_str()))]
    async fn issue(
        &self,
        token: &TokenGrant,
        mail: &NewMail,
        limit: AddressLimit,
    ) -> Result<Issued, StoreError> {
        let key = mail.to.to_ascii_lowercase();
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        // Serialises the requests for one address until this commit (any replica).
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('mail_outbox:' || $1, 0))")
            .bind(&key)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        let sent: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM mail_outbox WHERE recipient_key = $1 AND created_at > $2",
        )
        .bind(&key)
        .bind(limit.since)
        .fetch_one(&mut *tx)
        .await
        .map_err(store_error)?;
        if sent >= i64::from(limit.max) {
            return Ok(Issued::RateLimited);
        }
        sqlx::query(
            "DELETE FROM mail_tokens WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL",
        )
        .bind(token.user_id.as_uuid())
        .bind(token.purpose.as_str())
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        sqlx::query(&format!(
            "INSERT INTO mail_tokens ({TOKEN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
        ))
        .bind(token.hash.as_str())
        .bind(token.purpose.as_str())
        .bind(token.user_id.as_uuid())
        .bind(&token.email)
        .bind(token.created_at)
        .bind(token.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        sqlx::query(
            "INSERT INTO mail_outbox (id, user_id, recipient, recipient_key, kind, subject,
             body_text, body_html, created_at, next_attempt_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
        )
        .bind(mail.id)
        .bind(mail.user_id.as_uuid())
        .bind(&mail.to)
        .bind(&key)
        .bind(mail.kind.as_str())
        .bind(&mail.content.subject)
        .bind(&mail.content.text)
        .bind(&mail.content.html)
        .bind(mail.created_at)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(Issued::Queued)
    }

    async fn find_token(
        &self,
        hash: &MailTokenHash,
        purpose: TokenPurpose,
        now: DateTime<Utc>,
    ) -> Result<Option<TokenGrant>, StoreError> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM mail_tokens
             WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3"
        );
        let row = sqlx::query(&sql)
            .bind(hash.as_str())
            .bind(purpose.as_str())
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        row.as_ref().map(into_grant).transpose()
    }

    async fn consume_token(
        &self,
        hash: &MailTokenHash,
        purpose: TokenPurpose,
        now: DateTime<Utc>,
    ) -> Result<Option<TokenGrant>, StoreError> {
        let mut connection = self.pool.acquire().await.map_err(store_error)?;
        consume(&mut connection, hash.as_str(), purpose, now).await
    }

    async fn verify_email(
        &self,
        hash: &MailTokenHash,
        now: DateTime<Utc>,
    ) -> Result<Verification, StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let purpose = TokenPurpose::EmailVerification;
        let Some(grant) = consume(&mut tx, hash.as_str(), purpose, now).await? else {
            return Ok(Verification::Invalid);
        };
        let changed = sqlx::query(
            "UPDATE users SET email_verified = true, updated_at = $3 WHERE id = $1 AND email = $2",
        )
        .bind(grant.user_id.as_uuid())
        .bind(&grant.email)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?
        .rows_affected();
        tx.commit().await.map_err(store_error)?;
        if changed == 1 {
            self.sessions.forget_user(grant.user_id);
        }
        Ok(if changed == 1 {
            Verification::Verified(grant.user_id)
        } else {
            Verification::AddressChanged(grant.user_id)
        })
    }

    async fn find_user_by_email(&self, email: &EmailAddress) -> Result<Option<UserId>, StoreError> {
        let id: Option<Uuid> = sqlx::query_scalar("SELECT id FROM users WHERE lower(email) = $1")
            .bind(email.as_str().to_ascii_lowercase())
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(id.map(UserId::from_uuid))
    }

    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ClaimedMail>, StoreError> {
        let rows = sqlx::query(
            "UPDATE mail_outbox SET locked_until = $2
             WHERE id IN (SELECT id FROM mail_outbox
                          WHERE sent_at IS NULL AND next_attempt_at <= $1
                            AND (locked_until IS NULL OR locked_until <= $1)
                          ORDER BY next_attempt_at LIMIT $3
                          FOR UPDATE SKIP LOCKED)
             RETURNING id, user_id, recipient, kind, subject, body_text, body_html, attempts",
        )
        .bind(now)
        .bind(lease_until)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        rows.iter().map(into_claimed).collect()
    }

    async fn mark_sent(&self, id: Uuid, now: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE mail_outbox SET sent_at = $2, locked_until = NULL, body_text = '',
             body_html = '' WHERE id = $1",
        )
        .bind(id)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    async fn mark_failed(
        &self,
        id: Uuid,
        error: &str,
        retry_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE mail_outbox SET attempts = attempts + 1, last_error = $2,
             next_attempt_at = $3, locked_until = NULL WHERE id = $1 AND sent_at IS NULL",
        )
        .bind(id)
        .bind(error)
        .bind(retry_at)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    async fn outbox_state(&self) -> Result<(u64, Option<DateTime<Utc>>), StoreError> {
        let (count, next): (i64, Option<DateTime<Utc>>) = sqlx::query_as(
            "SELECT count(*), min(GREATEST(next_attempt_at, locked_until))
             FROM mail_outbox WHERE sent_at IS NULL",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(store_error)?;
        Ok((u64::try_from(count).unwrap_or(0), next))
    }
}
