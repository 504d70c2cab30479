//! [`MailStore`] in memory: each method under the store's one lock.

use crate::domain::session::Invalidation;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::MemoryStore;
use crate::domain::mail::{
    AddressLimit, ClaimedMail, Issued, MailStore, MailTokenHash, NewMail, TokenGrant, TokenPurpose,
    Verification,
};
use crate::domain::ports::StoreError;
use crate::domain::user::{EmailAddress, UserId};

/// A token as stored.
#[derive(Debug, Clone)]
pub(super) struct StoredToken {
    grant: TokenGrant,
    pub(super) used: bool,
}

impl StoredToken {
    pub(super) fn expires_at(&self) -> DateTime<Utc> {
        self.grant.expires_at
    }
}

/// A mail as stored.
#[derive(Debug, Clone)]
pub(super) struct StoredMail {
    mail: NewMail,
    next_attempt_at: DateTime<Utc>,
    locked_until: Option<DateTime<Utc>>,
    attempts: u32,
    pub(super) sent_at: Option<DateTime<Utc>>,
}

fn usable(stored: &StoredToken, purpose: TokenPurpose, now: DateTime<Utc>) -> bool {
    !stored.used && stored.grant.purpose == purpose && stored.grant.expires_at > now
}

#[async_trait]
impl MailStore for MemoryStore {
    async fn issue(
        &self,
        token: &TokenGrant,
        mail: &NewMail,
        limit: AddressLimit,
    ) -> Result<Issued, StoreError> {
        let mut state = self.lock()?;
        let sent = (state.outbox.iter())
            .filter(|m| m.mail.to.eq_ignore_ascii_case(&mail.to) && m.mail.created_at > limit.since)
            .count();
        if sent >= limit.max as usize {
            return Ok(Issued::RateLimited);
        }
        state.mail_tokens.retain(|_, t| {
            t.used || t.grant.user_id != token.user_id || t.grant.purpose != token.purpose
        });
        state.mail_tokens.insert(
            token.hash.clone(),
            StoredToken {
                grant: token.clone(),
                used: false,
            },
        );
        state.outbox.push(StoredMail {
            mail: mail.clone(),
            next_attempt_at: mail.created_at,
            locked_until: None,
            attempts: 0,
            sent_at: None,
        });
        Ok(Issued::Queued)
    }

    async fn find_token(
        &self,
        hash: &MailTokenHash,
        purpose: TokenPurpose,
        now: DateTime<Utc>,
    ) -> Result<Option<TokenGrant>, StoreError> {
        let state = self.lock()?;
        Ok((state.mail_tokens.get(hash))
            .filter(|t| usable(t, purpose, now))
            .map(|t| t.grant.clone()))
    }

    async fn consume_token(
        &self,
        hash: &MailTokenHash,
        purpose: TokenPurpose,
        now: DateTime<Utc>,
    ) -> Result<Option<TokenGrant>, StoreError> {
        let mut state = self.lock()?;
        Ok(match state.mail_tokens.get_mut(hash) {
            Some(t) if usable(t, purpose, now) => {
                t.used = true;
                Some(t.grant.clone())
            }
            _ => None,
        })
    }

    async fn verify_email(
        &self,
        hash: &MailTokenHash,
        now: DateTime<Utc>,
    ) -> Result<Verification, StoreError> {
        let mut state = self.lock()?;
        let grant = match state.mail_tokens.get_mut(hash) {
            Some(t) if usable(t, TokenPurpose::EmailVerification, now) => {
                t.used = true;
                t.grant.clone()
            }
            _ => return Ok(Verification::Invalid),
        };
        let user = (state.users.iter_mut()).find(|u| {
            u.id == grant.user_id
                && u.email.as_ref().map(EmailAddress::as_str) == Some(&grant.email)
        });
        Ok(match user {
            Some(user) => {
                user.email_verified = true;
                user.updated_at = now;
                state.publish(Invalidation::User(grant.user_id));
                Verification::Verified(grant.user_id)
            }
            None => Verification::AddressChanged(grant.user_id),
        })
    }

    async fn find_user_by_email(&self, email: &EmailAddress) -> Result<Option<UserId>, StoreError> {
        let state = self.lock()?;
        Ok(state
            .users
            .iter()
            .find(|u| {
                u.email
                    .as_ref()
                    .is_some_and(|e| e.as_str().eq_ignore_ascii_case(email.as_str()))
            })
            .map(|u| u.id))
    }

    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ClaimedMail>, StoreError> {
        let mut state = self.lock()?;
        let mut due: Vec<&mut StoredMail> = (state.outbox.iter_mut())
            .filter(|m| {
                m.sent_at.is_none()
                    && m.next_attempt_at <= now
                    && m.locked_until.is_none_or(|until| until <= now)
            })
            .collect();
        due.sort_by_key(|m| m.next_attempt_at);
        Ok(due
            .into_iter()
            .take(limit as usize)
            .map(|m| {
                m.locked_until = Some(lease_until);
                ClaimedMail {
                    id: m.mail.id,
                    user_id: m.mail.user_id,
                    to: m.mail.to.clone(),
                    kind: m.mail.kind,
                    content: m.mail.content.clone(),
                    attempts: m.attempts,
                }
            })
            .collect())
    }

    async fn mark_sent(&self, id: Uuid, now: DateTime<Utc>) -> Result<(), StoreError> {
        let mut state = self.lock()?;
        if let Some(m) = state.outbox.iter_mut().find(|m| m.mail.id == id) {
            m.sent_at = Some(now);
            m.locked_until = None;
            m.mail.content.text.clear();
            m.mail.content.html.clear();
        }
        Ok(())
    }

    async fn mark_failed(
        &self,
        id: Uuid,
        _error: &str,
        retry_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut state = self.lock()?;
        if let Some(m) = (state.outbox.iter_mut()).find(|m| m.mail.id == id && m.sent_at.is_none())
        {
            m.attempts += 1;
            m.next_attempt_at = retry_at;
            m.locked_until = None;
        }
        Ok(())
    }

    async fn outbox_state(&self) -> Result<(u64, Option<DateTime<Utc>>), StoreError> {
        let state = self.lock()?;
        let unsent = state.outbox.iter().filter(|m| m.sent_at.is_none());
        let count = unsent.clone().count() as u64;
        let free_at = |m: &StoredMail| {
            m.locked_until
                .map_or(m.next_attempt_at, |l| l.max(m.next_attempt_at))
        };
        Ok((count, unsent.map(free_at).min()))
    }
}

/// Deletes tokens that expired before `now` and mails sent before `sent_before`, and mails and
/// tokens of users that no longer exist (the databases' cascade); returns how many went.
pub(super) fn purge(
    state: &mut super::State,
    now: DateTime<Utc>,
    sent_before: DateTime<Utc>,
) -> u64 {
    let before = state.mail_tokens.len() + state.outbox.len();
    state.mail_tokens.retain(|_, t| t.expires_at() >= now);
    state
        .outbox
        .retain(|m| m.sent_at.is_none_or(|at| at >= sent_before));
    (before - state.mail_tokens.len() - state.outbox.len()) as u64
}
