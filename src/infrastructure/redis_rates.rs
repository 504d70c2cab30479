//! [`RateBudget`] in Redis (when `REDIS_URL` is set): the same GCRA as every store
//! ([`RateQuota::take`]), run atomically by a Lua script (`EVALSHA`, loaded on first use). Each
//! key expires once its budget is full again, so Redis needs no purge.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::domain::ports::{Grant, RateBudget, RateQuota, StoreError};
use crate::domain::rate_limit::epoch_micros;

/// KEYS[1] the key; ARGV: now, interval (both µs), burst, tokens asked for. Returns the tokens
/// granted, or minus the wait for the next one (µs) when refused. Lua numbers are doubles: microseconds since the epoch (about 2^51)
/// are exact.
const TAKE: &str = r"
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local want = tonumber(ARGV[4])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local available = math.floor((now + burst * interval - tat) / interval)
if available < 1 then return -math.max(1, tat + interval - burst * interval - now) end
local granted = math.min(want, available)
local next = tat + granted * interval
redis.call('SET', KEYS[1], string.format('%d', next), 'PX', math.ceil((next - now) / 1000) + 1)
return granted
";

/// The budgets in one Redis, under `prefix`.
pub struct RedisBudget {
    connection: ConnectionManager,
    script: redis::Script,
    prefix: String,
}

impl RedisBudget {
    /// Connects to `url` (`redis://`, `rediss://`, `unix://`); keys are `prefix` + the key.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when Redis cannot be reached.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, StoreError> {
        let unavailable = |e: redis::RedisError| StoreError::Unavailable(format!("redis: {e}"));
        let client = redis::Client::open(url).map_err(unavailable)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_millis(500)))
            .set_number_of_retries(2);
        let connection = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(unavailable)?;
        Ok(Self {
            connection,
            script: redis::Script::new(TAKE),
            prefix: prefix.to_owned(),
        })
    }
}

#[async_trait]
impl RateBudget for RedisBudget {
    async fn take(
        &self,
        key: &str,
        quota: RateQuota,
        want: u32,
        now: DateTime<Utc>,
    ) -> Result<Grant, StoreError> {
        let interval = quota.interval_micros();
        let mut connection = self.connection.clone();
        let granted: i64 = self
            .script
            .key(format!("{}{key}", self.prefix))
            .arg(epoch_micros(now))
            .arg(interval)
            .arg(quota.burst.max(1))
            .arg(want.max(1))
            .invoke_async(&mut connection)
            .await
            .map_err(|e| StoreError::Unavailable(format!("redis: {e}")))?;
        Ok(if granted > 0 {
            Grant::Granted(u32::try_from(granted).unwrap_or(1))
        } else {
            // The next token comes within one interval (see `RateQuota::take`).
            Grant::Refused {
                retry_after_micros: (-granted).clamp(1, interval),
            }
        })
    }
}
