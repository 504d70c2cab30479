//! The system clock behind the [`Clock`] port.

use chrono::{DateTime, SubsecRound, Utc};

use crate::domain::ports::Clock;

/// Wall-clock time, truncated to microseconds (what the stores keep).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now().trunc_subsecs(6)
    }
}
