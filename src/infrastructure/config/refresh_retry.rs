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
