//! The open connections: the phase of each (waiting for a request head, serving, idle), its
//! deadline, and which one is shed at the cap.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::ConnectionLimits;

/// Milliseconds value meaning "not set".
pub(super) const UNSET: u64 = u64::MAX;

/// The state of one connection, shared by its task, its service and its stream.
pub(super) struct Connection {
    pub(super) id: u64,
    pub(super) epoch: Instant,
    /// Requests between a complete head and the drop of their response body.
    in_flight: AtomicU32,
    /// When the connection began waiting for a request head (ms since `epoch`): its accept, or
    /// the first byte after an idle period. [`UNSET`] while serving or idle.
    head_since: AtomicU64,
    /// When the last response body was dropped (ms since `epoch`).
    idle_since: AtomicU64,
    /// Set by the registry to close the connection.
    pub(super) shed: Notify,
}

/// What a connection is doing, for its deadline and for shedding.
pub(super) enum Phase {
    WaitingForHead { since: u64 },
    Serving,
    Idle { since: u64 },
}

impl Connection {
    pub(super) fn new(id: u64, epoch: Instant) -> Self {
        let now = millis(epoch);
        Self {
            id,
            epoch,
            in_flight: AtomicU32::new(0),
            head_since: AtomicU64::new(now),
            idle_since: AtomicU64::new(now),
            shed: Notify::new(),
        }
    }

    pub(super) fn phase(&self) -> Phase {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Phase::Serving;
        }
        match self.head_since.load(Ordering::Relaxed) {
            UNSET => Phase::Idle {
                since: self.idle_since.load(Ordering::Relaxed),
            },
            since => Phase::WaitingForHead { since },
        }
    }

    /// A complete request head was read.
    pub(super) fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_since.store(UNSET, Ordering::Relaxed);
    }

    /// A response body was dropped (sent, or the connection ended).
    pub(super) fn request_finished(&self) {
        if self.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.idle_since.store(millis(self.epoch), Ordering::Relaxed);
        }
    }

    /// Bytes arrived: when idle, they begin the next request head.
    pub(super) fn bytes_read(&self) {
        if self.in_flight.load(Ordering::Relaxed) == 0
            && self.head_since.load(Ordering::Relaxed) == UNSET
        {
            self.head_since.store(millis(self.epoch), Ordering::Relaxed);
        }
    }

    /// When the connection must be closed, in ms since `epoch`, and why; `None` while serving.
    pub(super) fn deadline(&self, limits: &ConnectionLimits) -> Option<(u64, Close)> {
        match self.phase() {
            Phase::Serving => None,
            Phase::WaitingForHead { since } => Some((
                since.saturating_add(as_millis(limits.header_read_timeout)),
                Close::HeaderTimeout,
            )),
            Phase::Idle { since } => Some((
                since.saturating_add(as_millis(limits.idle_timeout)),
                Close::IdleTimeout,
            )),
        }
    }
}

pub(super) fn millis(epoch: Instant) -> u64 {
    as_millis(epoch.elapsed())
}

fn as_millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(UNSET - 1)
}

/// Why the server closed a connection (the `reason` label: a closed set).
#[derive(Debug, Clone, Copy)]
pub(super) enum Close {
    HeaderTimeout,
    IdleTimeout,
    Shed,
    Refused,
}

impl Close {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::HeaderTimeout => "header_timeout",
            Self::IdleTimeout => "idle_timeout",
            Self::Shed => "shed",
            Self::Refused => "refused",
        }
    }

    pub(super) fn count(self) {
        metrics::counter!("http_connections_dropped_total", "reason" => self.as_str()).increment(1);
    }
}

/// The open connections, oldest first.
pub(super) struct Registry {
    pub(super) epoch: Instant,
    max: usize,
    next_id: AtomicU64,
    open: Mutex<BTreeMap<u64, Arc<Connection>>>,
    /// When the cap was last reported (ms since `epoch`), to log it once in a while only.
    last_warning: AtomicU64,
}

impl Registry {
    pub(super) fn new(max: usize) -> Self {
        Self {
            epoch: Instant::now(),
            max,
            next_id: AtomicU64::new(0),
            open: Mutex::new(BTreeMap::new()),
            last_warning: AtomicU64::new(UNSET),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Connection>>> {
        // The map stays consistent even if a holder panicked: every change is one call.
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a new connection, shedding another one at the cap; `None` when the cap is
    /// reached and every connection is serving a request.
    pub(super) fn admit(&self) -> Option<Arc<Connection>> {
        let connection = Arc::new(Connection::new(
            self.next_id.fetch_add(1, Ordering::Relaxed),
            self.epoch,
        ));
        let mut open = self.lock();
        if open.len() >= self.max {
            let shed = Self::shed_locked(&mut open);
            self.warn_at_cap(open.len() + 1);
            if !shed {
                drop(open);
                Close::Refused.count();
                return None;
            }
        }
        open.insert(connection.id, connection.clone());
        metrics::gauge!("http_connections_open").set(open.len() as f64);
        Some(connection)
    }

    /// Sheds one connection without a request in flight (see the module documentation).
    pub(super) fn shed_one(&self) -> bool {
        Self::shed_locked(&mut self.lock())
    }

    fn shed_locked(open: &mut BTreeMap<u64, Arc<Connection>>) -> bool {
        let mut waiting: Option<(u64, u64)> = None; // (since, id)
        let mut idle: Option<(u64, u64)> = None;
        for (id, connection) in open.iter() {
            match connection.phase() {
                Phase::WaitingForHead { since } => {
                    if waiting.is_none_or(|(best, _)| since < best) {
                        waiting = Some((since, *id));
                    }
                }
                Phase::Idle { since } => {
                    if idle.is_none_or(|(best, _)| since < best) {
                        idle = Some((since, *id));
                    }
                }
                Phase::Serving => {}
            }
        }
        let Some((_, id)) = waiting.or(idle) else {
            return false;
        };
        if let Some(victim) = open.remove(&id) {
            victim.shed.notify_one();
            Close::Shed.count();
        }
        true
    }

    pub(super) fn remove(&self, id: u64) {
        let mut open = self.lock();
        open.remove(&id);
        metrics::gauge!("http_connections_open").set(open.len() as f64);
    }

    fn warn_at_cap(&self, open: usize) {
        let now = millis(self.epoch);
        let last = self.last_warning.load(Ordering::Relaxed);
        if last == UNSET || now.saturating_sub(last) >= 10_000 {
            self.last_warning.store(now, Ordering::Relaxed);
            tracing::warn!(
                open,
                max = self.max,
                "connection cap reached; shedding connections without a request in flight"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shedding_prefers_the_oldest_connection_waiting_for_a_head_then_the_longest_idle() {
        let registry = Registry::new(3);
        let a = registry.admit().unwrap();
        let b = registry.admit().unwrap();
        let c = registry.admit().unwrap();
        // a serves a request, b has finished one (idle), c never sent a head.
        a.request_started();
        b.request_started();
        b.request_finished();
        let d = registry.admit().expect("c is shed");
        assert!(!registry.lock().contains_key(&c.id));
        // d is now the one waiting for a head.
        d.request_started();
        let _e = registry.admit().expect("b (idle) is shed");
        assert!(!registry.lock().contains_key(&b.id));
        // a and d serve; e waits for a head and goes.
        let f = registry.admit().expect("e is shed");
        f.request_started();
        assert!(registry.admit().is_none(), "everyone serves: refused");
        assert_eq!(registry.lock().len(), 3);
    }

    #[test]
    fn deadlines_follow_the_phase() {
        let limits = ConnectionLimits {
            header_read_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(5),
            max_connections: 1,
        };
        let connection = Connection::new(0, Instant::now());
        let (at, why) = connection.deadline(&limits).unwrap();
        assert!(matches!(why, Close::HeaderTimeout) && (1000..2000).contains(&at));
        connection.request_started();
        assert!(connection.deadline(&limits).is_none());
        connection.request_finished();
        assert!(matches!(
            connection.deadline(&limits),
            Some((_, Close::IdleTimeout))
        ));
        connection.bytes_read();
        assert!(matches!(
            connection.deadline(&limits),
            Some((_, Close::HeaderTimeout))
        ));
    }
}
