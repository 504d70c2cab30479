//! The refresh retry after a lost response (`REFRESH_REUSE_GRACE_SECONDS`).

use super::table::{row, Check, Fallback::*, Group, Var};

/// The longest grace window accepted: a retry after a lost response comes within seconds; a
/// long window only widens what a stolen, already-rotated token can still get.
pub const MAX_REFRESH_REUSE_GRACE_SECONDS: u64 = 300;

/// How long a just-rotated refresh token may be presented again and get the same successor.
#[derive(Debug, Clone, Default)]
pub struct RefreshRetrySettings {
    /// Zero: off (any reuse revokes the session).
    pub grace_seconds: u64,
}

impl Group for RefreshRetrySettings {
    const VARS: &'static [Var<Self>] = &[row!(
        "REFRESH_REUSE_GRACE_SECONDS",
        Fixed("0"),
        grace_seconds = number()
    )];

    const CHECKS: &'static [Check<Self>] = &[(
        |s| s.grace_seconds <= MAX_REFRESH_REUSE_GRACE_SECONDS,
        "REFRESH_REUSE_GRACE_SECONDS must be at most 300",
    )];
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use crate::infrastructure::config::Settings;

    fn grace(value: Option<&str>) -> Result<u64, String> {
        grace_in("development", value)
    }

    fn grace_in(env: &str, value: Option<&str>) -> Result<u64, String> {
        let mut vars: HashMap<&str, &str> = value
            .map(|v| ("REFRESH_REUSE_GRACE_SECONDS", v))
            .into_iter()
            .collect();
        vars.insert("APP_ENV", env);
        vars.insert("JWT_SECRET", "a production secret of well over 32 bytes");
        Settings::from_lookup(|key| vars.get(key).map(|v| (*v).to_owned()))
            .map(|s| s.refresh_retry.grace_seconds)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_retry_window_is_off_by_default_and_bounded() {
        assert_eq!(grace(None), Ok(0));
        assert_eq!(grace(Some("30")), Ok(30));
        assert_eq!(grace(Some("300")), Ok(300));
        for refused in ["301", "-1", "ten", "1e3"] {
            let error = grace(Some(refused)).unwrap_err();
            assert!(
                error.contains("REFRESH_REUSE_GRACE_SECONDS"),
                "{refused}: {error}"
            );
        }
    }
}
