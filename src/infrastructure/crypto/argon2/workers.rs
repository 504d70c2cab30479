//! The hashing threads: a fixed set, at a lower priority than request handling, fed through a
//! bounded queue.

use std::sync::Arc;

use tokio::sync::Semaphore;
use tracing::Span;

use super::Argon2Hasher;
use crate::domain::ports::HashError;

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of hashing threads. Tokio's blocking pool would run successive
/// hashes on ever new threads, each with its own allocator arena keeping a freed argon2 buffer
/// (seen: 610 MiB peak under 500 concurrent logins); with fixed threads the memory held is
/// bounded by threads x argon2 memory.
pub(super) struct HashWorkers {
    jobs: std::sync::mpsc::Sender<Job>,
}

impl HashWorkers {
    pub(super) fn start(count: usize) -> Self {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let queue = Arc::new(std::sync::Mutex::new(queue));
        for i in 0..count {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        let job = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return, // the hasher was dropped
                        }
                    }
                });
            if let Err(error) = spawned {
                tracing::error!(%error, "cannot start a hashing thread");
            }
        }
        Self { jobs }
    }
}

/// How much lower than the rest of the process a hashing thread runs (a nice value).
const HASHING_NICENESS: libc::c_int = 10;

/// Lowers the calling thread's scheduling priority, so that when logins keep every core busy
/// hashing, the async workers still get a core as soon as a request arrives: `/health` and
/// token checks stay fast during a login storm, and the hashes take whatever is left, which
/// under such a storm is nearly everything. (On Linux the nice value is per thread.)
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid and setpriority take no pointers; this changes only this thread's nice
        // value, and a failure (say, a sandbox refusing it) leaves the thread as it was.
        let result = unsafe {
            let tid = libc::gettid();
            libc::setpriority(
                libc::PRIO_PROCESS,
                libc::id_t::try_from(tid).unwrap_or_default(),
                HASHING_NICENESS,
            )
        };
        if result != 0 {
            tracing::debug!("could not lower the priority of a hashing thread");
        }
    }
}

/// Twice the threads: each thread has its next job waiting when it finishes one, instead of
/// idling while the finished caller's task wakes up and the next caller gets its slot and hands
/// its job over (with the cores busy hashing, that hand-over cost about a tenth of the hash
/// rate). A queued job holds no argon2 memory, only the password.
pub(super) fn slots(concurrency: usize) -> Arc<Semaphore> {
    Arc::new(Semaphore::new(concurrency.max(1) * 2))
}

impl Argon2Hasher {
    /// Runs `work` on a hashing thread once a slot is free (or gives up after the queue
    /// timeout), inside the caller's span.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, HashError> + Send + 'static,
    ) -> Result<T, HashError> {
        let busy = || HashError::Busy {
            retry_after_secs: self.queue_timeout.as_secs().max(1),
        };
        let queued = std::time::Instant::now();
        let permit =
            match tokio::time::timeout(self.queue_timeout, self.permits.clone().acquire_owned())
                .await
            {
                Ok(Ok(permit)) => permit,
                _ => {
                    metrics::counter!("password_hash_rejected_total").increment(1);
                    return Err(busy());
                }
            };
        metrics::histogram!("password_hash_queue_wait_seconds")
            .record(queued.elapsed().as_secs_f64());
        let span = Span::current();
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _permit = permit;
            let in_flight = metrics::gauge!("password_hashes_in_flight");
            in_flight.increment(1.0);
            let outcome = span.in_scope(work);
            in_flight.decrement(1.0);
            let _ = done.send(outcome);
        });
        self.workers
            .jobs
            .send(job)
            .map_err(|_| HashError::Failed("the hashing threads are gone".into()))?;
        result
            .await
            .map_err(|_| HashError::Failed("a hashing job was dropped".into()))?
    }
}
