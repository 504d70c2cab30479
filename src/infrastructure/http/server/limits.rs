//! The deadlines and the cap on client connections, and the cap's bound: the process's
//! open-files limit.

use std::time::Duration;

/// Deadlines and the cap on open client connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Longest a connection may take to send a complete request head.
    pub header_read_timeout: Duration,
    /// Longest a keep-alive connection may stay idle between requests.
    pub idle_timeout: Duration,
    /// Open connections at most (lowered below the file-descriptor limit at start).
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
        }
    }
}

/// Descriptors kept free for everything that is not a client connection (the listener, the
/// database, log files, the runtime): an eighth of the limit, at least 64, at most 1024.
fn reserved_descriptors(limit: u64) -> u64 {
    (limit / 8).clamp(64, 1024)
}

/// `configured`, lowered so that client connections cannot use up the process's soft limit
/// of open files (`ulimit -n`).
pub fn effective_max_connections(configured: usize) -> usize {
    match descriptor_limit() {
        Some(limit) => {
            let room = limit.saturating_sub(reserved_descriptors(limit)).max(1);
            configured.min(usize::try_from(room).unwrap_or(usize::MAX))
        }
        None => configured,
    }
}

/// The soft `RLIMIT_NOFILE`; `None` when unlimited or unknown.
#[cfg(unix)]
#[allow(clippy::useless_conversion)] // rlim_t is u64 on Linux, not everywhere
fn descriptor_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    if limit.rlim_cur == libc::RLIM_INFINITY {
        return None;
    }
    u64::try_from(limit.rlim_cur).ok()
}

#[cfg(not(unix))]
fn descriptor_limit() -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_stays_below_the_descriptor_limit() {
        assert_eq!(reserved_descriptors(256), 64);
        assert_eq!(reserved_descriptors(1024), 128);
        assert_eq!(reserved_descriptors(1 << 20), 1024);
        let limit = descriptor_limit().unwrap_or(u64::MAX);
        let max = effective_max_connections(usize::MAX);
        assert!((max as u64) < limit, "{max} < {limit}");
        assert_eq!(effective_max_connections(3), 3);
    }
}
