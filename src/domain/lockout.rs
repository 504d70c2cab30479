//! The brute-force policy, written once: which password checks may run for a login key and
//! when the key locks. Stores only keep the counters ([`ThrottleState`]) and apply
//! [`LockoutPolicy::apply`] to them atomically (see
//! [`crate::domain::ports::LoginThrottle::apply`]).
//!
//! A guess is counted *before* its password is checked (an [`ThrottleEvent::Attempt`] reserves
//! one of the `max_failures` guesses of the window), not after: counting afterwards let 30
//! parallel guesses all pass a "not locked yet" check before the first failure was written.
//! So whatever the concurrency, at most `max_failures` passwords are ever checked per window,
//! and one burst gives one lock.

use chrono::{DateTime, Duration, Utc};

/// How failed logins lock an account.
#[derive(Debug, Clone, Copy)]
pub struct LockoutPolicy {
    /// Failures (counting guesses still being checked) that lock the key.
    pub max_failures: u32,
    /// The first lock's length; each further lock (without a success between) doubles it.
    pub base: Duration,
    /// The longest a lock may grow to.
    pub max: Duration,
}

/// The counters of one login key, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleState {
    /// Failed guesses since the last lock or success.
    pub failures: u32,
    /// Guesses reserved and still being checked.
    pub pending: u32,
    /// Locks since the last success (each one doubles the next).
    pub locks: u32,
    /// The end of the current or last lock.
    pub locked_until: Option<DateTime<Utc>>,
    /// The last change.
    pub updated_at: DateTime<Utc>,
}

/// One event for one login key, with the policy and the time it is judged by: what a store
/// applies to the key's counters (see [`crate::domain::ports::LoginThrottle::apply`]).
#[derive(Debug, Clone, Copy)]
pub struct ThrottleChange {
    pub event: ThrottleEvent,
    pub policy: LockoutPolicy,
    pub now: DateTime<Utc>,
}

impl ThrottleChange {
    /// [`LockoutPolicy::apply`] of this event at this time to the stored counters (`None`:
    /// nothing stored): what to store (`None`: delete) and the answer.
    pub fn apply(&self, stored: Option<ThrottleState>) -> (Option<ThrottleState>, ThrottleOutcome) {
        self.policy.apply(stored, self.event, self.now)
    }
}

/// What happened to a login key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleEvent {
    /// A password is about to be checked: reserve a guess.
    Attempt,
    /// The reserved guess was wrong.
    Failure,
    /// The reserved guess was right: every counter is forgotten.
    Success,
    /// The reserved guess was never checked (the hasher was busy): give it back.
    Abandon,
}

/// The policy's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleOutcome {
    /// The attempt may check its password (or the event was counted).
    Allowed,
    /// Every guess left in the window is being checked right now: try again in a moment (one
    /// of them may lock the key, or a success may free them all).
    Busy,
    /// The key is locked until `until`.
    Refused { until: DateTime<Utc> },
    /// This failure locked the key until `until`.
    Locked { until: DateTime<Utc> },
}

impl LockoutPolicy {
    /// A reserved guess whose outcome never arrived (the process died) is given back after this
    /// long, far beyond any password check.
    pub const PENDING_TIMEOUT: Duration = Duration::seconds(60);

    /// How long the lock after `previous_locks` earlier locks lasts.
    pub fn lock_length(&self, previous_locks: u32) -> Duration {
        let factor = 1i32 << previous_locks.min(16);
        (self.base * factor).min(self.max)
    }

    /// Applies `event` at `now` to the stored counters (`None`: nothing stored) and returns what
    /// to store (`None`: delete) and the answer. Stores call this inside one atomic
    /// read-modify-write per key.
    pub fn apply(
        &self,
        stored: Option<ThrottleState>,
        event: ThrottleEvent,
        now: DateTime<Utc>,
    ) -> (Option<ThrottleState>, ThrottleOutcome) {
        let mut state = stored.unwrap_or(ThrottleState {
            failures: 0,
            pending: 0,
            locks: 0,
            locked_until: None,
            updated_at: now,
        });
        if now - state.updated_at > Self::PENDING_TIMEOUT {
            state.pending = 0;
        }
        let locked = state.locked_until.filter(|until| *until > now);
        let outcome = match event {
            ThrottleEvent::Attempt => {
                if let Some(until) = locked {
                    return (stored, ThrottleOutcome::Refused { until });
                }
                if state.failures + state.pending >= self.max_failures {
                    return (stored, ThrottleOutcome::Busy);
                }
                state.pending += 1;
                ThrottleOutcome::Allowed
            }
            ThrottleEvent::Abandon => {
                state.pending = state.pending.saturating_sub(1);
                ThrottleOutcome::Allowed
            }
            ThrottleEvent::Success => return (None, ThrottleOutcome::Allowed),
            ThrottleEvent::Failure => {
                state.pending = state.pending.saturating_sub(1);
                state.failures += 1;
                match locked {
                    // A guess reserved before the lock: counted, no second lock.
                    Some(_) => ThrottleOutcome::Allowed,
                    None if state.failures >= self.max_failures => {
                        let until = now + self.lock_length(state.locks);
                        state.failures = 0;
                        state.locks += 1;
                        state.locked_until = Some(until);
                        ThrottleOutcome::Locked { until }
                    }
                    None => ThrottleOutcome::Allowed,
                }
            }
        };
        state.updated_at = now;
        (Some(state), outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> LockoutPolicy {
        LockoutPolicy {
            max_failures: 3,
            base: Duration::seconds(300),
            max: Duration::seconds(3600),
        }
    }

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    /// Applies events in order, returning the outcomes.
    fn run(events: &[ThrottleEvent], now: DateTime<Utc>) -> Vec<ThrottleOutcome> {
        let mut state = None;
        events
            .iter()
            .map(|event| {
                let (next, outcome) = policy().apply(state, *event, now);
                state = next;
                outcome
            })
            .collect()
    }

    #[test]
    fn no_more_guesses_than_the_limit_are_checked_whatever_the_interleaving() {
        use ThrottleEvent::*;
        // Ten parallel guesses all reserve before any result arrives: three may be checked.
        let mut events = vec![Attempt; 10];
        events.extend([Failure; 3]);
        let outcomes = run(&events, t0());
        let allowed = outcomes[..10]
            .iter()
            .filter(|o| **o == ThrottleOutcome::Allowed)
            .count();
        assert_eq!(allowed, 3);
        // The third failure locks, once, for the base length.
        assert_eq!(
            outcomes[12],
            ThrottleOutcome::Locked {
                until: t0() + Duration::seconds(300)
            }
        );
        assert_eq!(outcomes[10..12], [ThrottleOutcome::Allowed; 2]);
    }

    #[test]
    fn a_burst_gives_one_lock_and_later_locks_double() {
        use ThrottleEvent::*;
        let p = policy();
        let mut state = None;
        let mut locks = Vec::new();
        for _ in 0..20 {
            let (next, outcome) = p.apply(state, Attempt, t0());
            state = next;
            if outcome == ThrottleOutcome::Allowed {
                let (next, outcome) = p.apply(state, Failure, t0());
                state = next;
                if let ThrottleOutcome::Locked { until } = outcome {
                    locks.push(until);
                }
            }
        }
        assert_eq!(locks, [t0() + Duration::seconds(300)]);
        let later = t0() + Duration::seconds(301);
        for _ in 0..3 {
            let (next, _) = p.apply(state, Attempt, later);
            let (next, outcome) = p.apply(next, Failure, later);
            state = next;
            if let ThrottleOutcome::Locked { until } = outcome {
                assert_eq!(until, later + Duration::seconds(600));
            }
        }
        assert_eq!(state.unwrap().locks, 2);
    }

    #[test]
    fn success_forgets_and_abandon_gives_the_guess_back() {
        use ThrottleEvent::*;
        let p = policy();
        let (state, _) = p.apply(None, Attempt, t0());
        let (state, _) = p.apply(state, Abandon, t0());
        assert_eq!(state.unwrap().pending, 0);
        let (state, _) = p.apply(state, Attempt, t0());
        let (state, outcome) = p.apply(state, Success, t0());
        assert_eq!((state, outcome), (None, ThrottleOutcome::Allowed));
    }

    #[test]
    fn a_reservation_that_never_reported_expires() {
        use ThrottleEvent::*;
        let p = policy();
        let mut state = None;
        for _ in 0..3 {
            state = p.apply(state, Attempt, t0()).0;
        }
        assert_eq!(p.apply(state, Attempt, t0()).1, ThrottleOutcome::Busy);
        let later = t0() + Duration::seconds(61);
        assert_eq!(p.apply(state, Attempt, later).1, ThrottleOutcome::Allowed);
    }
}
