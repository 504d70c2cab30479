//! [`PasskeyRepository`] on SQLite: every write runs on the single writer, so a ceremony's take,
//! a passkey's count check and its insert are steps nothing else interleaves.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, Row};

use super::{micros, store_error, time, uuid, SqliteStore};
use crate::domain::passkey::{
    AddOutcome, Ceremony, CeremonyId, CeremonyKind, Passkey, PasskeyId, PasskeyName,
    PasskeyRepository,
};
use crate::domain::ports::StoreError;
use crate::domain::user::UserId;

/// The `passkeys` columns in the order [`passkey_from_row`] reads them.
const PASSKEY_COLUMNS: &str =
    "id, user_id, name, credential_id, credential, sign_count, created_at, last_used_at";

fn passkey_from_row(row: &Row<'_>) -> rusqlite::Result<Passkey> {
    Ok(Passkey {
        id: PasskeyId::from_uuid(uuid(&row.get::<_, String>(0)?)?),
        user_id: UserId::from_uuid(uuid(&row.get::<_, String>(1)?)?),
        name: PasskeyName::from_stored(row.get(2)?),
        credential_id: row.get(3)?,
        credential: row.get(4)?,
        sign_count: u32::try_from(row.get::<_, i64>(5)?).unwrap_or(u32::MAX),
        created_at: time(row.get(6)?)?,
        last_used_at: row.get::<_, Option<i64>>(7)?.map(time).transpose()?,
    })
}

#[async_trait]
impl PasskeyRepository for SqliteStore {
    async fn insert_ceremony(&self, ceremony: &Ceremony) -> Result<(), StoreError> {
        let row = (
            ceremony.id.to_string(),
            ceremony.user_id.map(|u| u.to_string()),
            ceremony.kind.as_str(),
            ceremony.state.clone(),
            micros(ceremony.created_at),
            micros(ceremony.expires_at),
        );
        self.write(move |connection| {
            connection
                .prepare_cached(
                    "INSERT INTO webauthn_ceremonies (id, user_id, kind, state, created_at, expires_at)
                     VALUES (?, ?, ?, ?, ?, ?)",
                )
                .and_then(|mut s| s.execute(row))
                .map_err(store_error)?;
            Ok(())
        })
        .await
    }

    async fn take_ceremony(
        &self,
        id: CeremonyId,
        kind: CeremonyKind,
        user_id: Option<UserId>,
        now: DateTime<Utc>,
    ) -> Result<Option<Ceremony>, StoreError> {
        let user = user_id.map(|u| u.to_string());
        let taken: Option<(String, i64, i64)> = self
            .write(move |connection| {
                // The row goes whatever it holds: a ceremony is answered once at most.
                connection
                    .prepare_cached(
                        "DELETE FROM webauthn_ceremonies WHERE id = ?1
                         RETURNING state, expires_at, kind, user_id, created_at",
                    )
                    .and_then(|mut s| {
                        s.query_row([id.to_string()], |row| {
                            Ok((
                                row.get::<_, String>(0)?,
                                row.get::<_, i64>(1)?,
                                row.get::<_, String>(2)?,
                                row.get::<_, Option<String>>(3)?,
                                row.get::<_, i64>(4)?,
                            ))
                        })
                        .optional()
                    })
                    .map_err(store_error)
                    .map(|found| {
                        found.and_then(|(state, expires_at, stored_kind, stored_user, created)| {
                            (stored_kind == kind.as_str() && stored_user == user)
                                .then_some((state, expires_at, created))
                        })
                    })
            })
            .await?;
        let Some((state, expires_at, created_at)) = taken else {
            return Ok(None);
        };
        let expires_at = time(expires_at).map_err(store_error)?;
        let created_at = time(created_at).map_err(store_error)?;
        Ok((expires_at > now).then_some(Ceremony {
            id,
            kind,
            user_id,
            state,
            created_at,
            expires_at,
        }))
    }

    async fn add_passkey(&self, passkey: &Passkey, max: u32) -> Result<AddOutcome, StoreError> {
        let user_id = passkey.user_id;
        let row = (
            passkey.id.to_string(),
            passkey.user_id.to_string(),
            passkey.name.as_str().to_owned(),
            passkey.credential_id.clone(),
            passkey.credential.clone(),
            i64::from(passkey.sign_count),
            micros(passkey.created_at),
        );
        let outcome = self
            .write(move |connection| {
                let exists: Option<i64> = connection
                    .prepare_cached("SELECT 1 FROM passkeys WHERE credential_id = ?")
                    .and_then(|mut s| s.query_row([&row.3], |r| r.get(0)).optional())
                    .map_err(store_error)?;
                if exists.is_some() {
                    return Ok(AddOutcome::Duplicate);
                }
                let count: Option<i64> = connection
                    .prepare_cached("SELECT passkey_count FROM users WHERE id = ?")
                    .and_then(|mut s| s.query_row([&row.1], |r| r.get(0)).optional())
                    .map_err(store_error)?;
                match count {
                    None => return Ok(AddOutcome::NoSuchUser),
                    Some(count) if count >= i64::from(max) => return Ok(AddOutcome::LimitReached),
                    Some(_) => {}
                }
                connection
                    .prepare_cached(&format!(
                        "INSERT INTO passkeys ({PASSKEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)"
                    ))
                    .and_then(|mut s| s.execute(row.clone()))
                    .map_err(store_error)?;
                connection
                    .prepare_cached("UPDATE users SET passkey_count = passkey_count + 1 WHERE id = ?")
                    .and_then(|mut s| s.execute([&row.1]))
                    .map_err(store_error)?;
                Ok(AddOutcome::Added)
            })
            .await?;
        self.sessions.forget_user(user_id);
        Ok(outcome)
    }

    async fn list_passkeys(&self, user_id: UserId) -> Result<Vec<Passkey>, StoreError> {
        self.read(move |reader| {
            reader
                .prepare_cached(&format!(
                    "SELECT {PASSKEY_COLUMNS} FROM passkeys WHERE user_id = ? ORDER BY created_at, id"
                ))?
                .query_map([user_id.to_string()], passkey_from_row)?
                .collect()
        })
        .await
    }

    async fn find_by_credential_id(
        &self,
        credential_id: &str,
    ) -> Result<Option<Passkey>, StoreError> {
        let credential_id = credential_id.to_owned();
        self.read(move |reader| {
            reader
                .prepare_cached(&format!(
                    "SELECT {PASSKEY_COLUMNS} FROM passkeys WHERE credential_id = ?"
                ))?
                .query_row([credential_id], passkey_from_row)
                .optional()
        })
        .await
    }

    async fn record_use(
        &self,
        id: PasskeyId,
        credential: &str,
        sign_count: u32,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let credential = credential.to_owned();
        let changed = self
            .write(move |connection| {
                connection
                    .prepare_cached(
                        "UPDATE passkeys SET credential = ?2, sign_count = ?3, last_used_at = ?4
                         WHERE id = ?1 AND (sign_count < ?3 OR (sign_count = 0 AND ?3 = 0))",
                    )
                    .and_then(|mut s| {
                        s.execute(params![
                            id.to_string(),
                            credential,
                            i64::from(sign_count),
                            micros(now)
                        ])
                    })
                    .map_err(store_error)
            })
            .await?;
        Ok(changed == 1)
    }

    async fn delete_passkey(&self, user_id: UserId, id: PasskeyId) -> Result<bool, StoreError> {
        let deleted = self
            .write(move |connection| {
                let user = user_id.to_string();
                let deleted = connection
                    .prepare_cached("DELETE FROM passkeys WHERE id = ? AND user_id = ?")
                    .and_then(|mut s| s.execute([id.to_string(), user.clone()]))
                    .map_err(store_error)?;
                if deleted == 1 {
                    connection
                        .prepare_cached(
                            "UPDATE users SET passkey_count = max(passkey_count - 1, 0) WHERE id = ?",
                        )
                        .and_then(|mut s| s.execute([user]))
                        .map_err(store_error)?;
                }
                Ok(deleted == 1)
            })
            .await?;
        if deleted {
            self.sessions.forget_user(user_id);
        }
        Ok(deleted)
    }

    async fn purge_ceremonies(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        self.write(move |connection| {
            connection
                .prepare_cached("DELETE FROM webauthn_ceremonies WHERE expires_at <= ?")
                .and_then(|mut s| s.execute([micros(now)]))
                .map_err(store_error)
                .map(|n| n as u64)
        })
        .await
    }
}
