//! [`PasskeyRepository`] on PostgreSQL.
//!
//! A ceremony is taken by one `DELETE … RETURNING`: of concurrent takers (from any replica) the
//! row lock lets one delete it, and the others match nothing. Adding a passkey locks its user's
//! row first, so two registrations racing for the last free slot are serialised and the count
//! check holds; the unique credential id settles two users racing with one credential.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{store_error, PgStore};
use crate::domain::passkey::{
    AddOutcome, Ceremony, CeremonyId, CeremonyKind, Passkey, PasskeyId, PasskeyName,
    PasskeyRepository,
};
use crate::domain::ports::StoreError;
use crate::domain::user::UserId;

const PASSKEY_COLUMNS: &str =
    "id, user_id, name, credential_id, credential, sign_count, created_at, last_used_at";

type PasskeyRow = (
    Uuid,
    Uuid,
    String,
    String,
    String,
    i64,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
);

fn passkey(row: PasskeyRow) -> Passkey {
    let (id, user_id, name, credential_id, credential, sign_count, created_at, last_used_at) = row;
    Passkey {
        id: PasskeyId::from_uuid(id),
        user_id: UserId::from_uuid(user_id),
        name: PasskeyName::from_stored(name),
        credential_id,
        credential,
        sign_count: u32::try_from(sign_count).unwrap_or(u32::MAX),
        created_at,
        last_used_at,
    }
}

#[async_trait]
impl PasskeyRepository for PgStore {
    async fn insert_ceremony(&self, ceremony: &Ceremony) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO webauthn_ceremonies (id, user_id, kind, state, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(ceremony.id.as_uuid())
        .bind(ceremony.user_id.map(|u| u.as_uuid()))
        .bind(ceremony.kind.as_str())
        .bind(&ceremony.state)
        .bind(ceremony.created_at)
        .bind(ceremony.expires_at)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    async fn take_ceremony(
        &self,
        id: CeremonyId,
        kind: CeremonyKind,
        user_id: Option<UserId>,
        now: DateTime<Utc>,
    ) -> Result<Option<Ceremony>, StoreError> {
        // The row goes whatever it holds: a ceremony is answered once at most.
        type Taken = (String, DateTime<Utc>, String, Option<Uuid>, DateTime<Utc>);
        let taken: Option<Taken> = sqlx::query_as(
            "DELETE FROM webauthn_ceremonies WHERE id = $1
             RETURNING state, expires_at, kind, user_id, created_at",
        )
        .bind(id.as_uuid())
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        let Some((state, expires_at, stored_kind, stored_user, created_at)) = taken else {
            return Ok(None);
        };
        let fits = stored_kind == kind.as_str()
            && stored_user == user_id.map(|u| u.as_uuid())
            && expires_at > now;
        Ok(fits.then_some(Ceremony {
            id,
            kind,
            user_id,
            state,
            created_at,
            expires_at,
        }))
    }

    async fn add_passkey(&self, passkey: &Passkey, max: u32) -> Result<AddOutcome, StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let count: Option<i32> =
            sqlx::query_scalar("SELECT passkey_count FROM users WHERE id = $1 FOR UPDATE")
                .bind(passkey.user_id.as_uuid())
                .fetch_optional(&mut *tx)
                .await
                .map_err(store_error)?;
        match count {
            None => return Ok(AddOutcome::NoSuchUser),
            Some(count) if i64::from(count) >= i64::from(max) => {
                return Ok(AddOutcome::LimitReached)
            }
            Some(_) => {}
        }
        let inserted = sqlx::query(&format!(
            "INSERT INTO passkeys ({PASSKEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)
             ON CONFLICT (credential_id) DO NOTHING"
        ))
        .bind(passkey.id.as_uuid())
        .bind(passkey.user_id.as_uuid())
        .bind(passkey.name.as_str())
        .bind(&passkey.credential_id)
        .bind(&passkey.credential)
        .bind(i64::from(passkey.sign_count))
        .bind(passkey.created_at)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?
        .rows_affected();
        if inserted == 0 {
            return Ok(AddOutcome::Duplicate);
        }
        sqlx::query("UPDATE users SET passkey_count = passkey_count + 1 WHERE id = $1")
            .bind(passkey.user_id.as_uuid())
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        self.sessions.forget_user(passkey.user_id);
        Ok(AddOutcome::Added)
    }

    async fn list_passkeys(&self, user_id: UserId) -> Result<Vec<Passkey>, StoreError> {
        let rows: Vec<PasskeyRow> = sqlx::query_as(&format!(
            "SELECT {PASSKEY_COLUMNS} FROM passkeys WHERE user_id = $1 ORDER BY created_at, id"
        ))
        .bind(user_id.as_uuid())
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(rows.into_iter().map(passkey).collect())
    }

    async fn find_by_credential_id(
        &self,
        credential_id: &str,
    ) -> Result<Option<Passkey>, StoreError> {
        let row: Option<PasskeyRow> = sqlx::query_as(&format!(
            "SELECT {PASSKEY_COLUMNS} FROM passkeys WHERE credential_id = $1"
        ))
        .bind(credential_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(row.map(passkey))
    }

    async fn record_use(
        &self,
        id: PasskeyId,
        credential: &str,
        sign_count: u32,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let changed = sqlx::query(
            "UPDATE passkeys SET credential = $2, sign_count = $3, last_used_at = $4
             WHERE id = $1 AND (sign_count < $3 OR (sign_count = 0 AND $3 = 0))",
        )
        .bind(id.as_uuid())
        .bind(credential)
        .bind(i64::from(sign_count))
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(store_error)?
        .rows_affected();
        Ok(changed == 1)
    }

    async fn delete_passkey(&self, user_id: UserId, id: PasskeyId) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let deleted = sqlx::query("DELETE FROM passkeys WHERE id = $1 AND user_id = $2")
            .bind(id.as_uuid())
            .bind(user_id.as_uuid())
            .execute(&mut *tx)
            .await
            .map_err(store_error)?
            .rows_affected();
        if deleted == 0 {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE users SET passkey_count = greatest(passkey_count - 1, 0) WHERE id = $1",
        )
        .bind(user_id.as_uuid())
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        self.sessions.forget_user(user_id);
        Ok(true)
    }

    async fn purge_ceremonies(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let deleted = sqlx::query("DELETE FROM webauthn_ceremonies WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(store_error)?
            .rows_affected();
        Ok(deleted)
    }
}
