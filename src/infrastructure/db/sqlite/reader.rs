//! The pool of read-only connections beside the writer (WAL), and [`SqliteStore::read`].

use std::path::PathBuf;
use std::sync::{Arc, Mutex as SyncMutex};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{open, store_error, SqliteStore};
use crate::domain::ports::StoreError;

/// Read-only connections, opened on demand up to a maximum.
pub(super) struct ReaderPool {
    pub(super) path: PathBuf,
    pub(super) idle: SyncMutex<Vec<Connection>>,
    pub(super) permits: Arc<Semaphore>,
    pub(super) opened: std::sync::atomic::AtomicUsize,
}

impl ReaderPool {
    /// An empty pool of at most `size` readers of the database at `path`.
    pub(super) fn new(path: PathBuf, size: usize) -> Self {
        Self {
            path,
            idle: SyncMutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(size)),
            opened: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// An idle reader, or a new one while the pool is below its size (the permit says so).
    fn checkout(self: &Arc<Self>, permit: OwnedSemaphorePermit) -> Result<Reader, StoreError> {
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let connection = match idle {
            Some(connection) => connection,
            None => {
                let connection = open(&self.path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
                self.opened
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                connection
            }
        };
        Ok(Reader {
            pool: Arc::clone(self),
            connection: Some(connection),
            _permit: permit,
        })
    }
}

/// A reader on loan; it goes back to the pool when dropped.
pub(super) struct Reader {
    pool: Arc<ReaderPool>,
    connection: Option<Connection>,
    _permit: OwnedSemaphorePermit,
}

impl std::ops::Deref for Reader {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.connection.as_ref().expect("present until dropped")
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        if let (Some(connection), Ok(mut idle)) = (self.connection.take(), self.pool.idle.lock()) {
            idle.push(connection);
        }
    }
}

impl SqliteStore {
    /// A reader slot (waiting at most the acquire timeout for one).
    async fn reader_permit(&self) -> Result<OwnedSemaphorePermit, StoreError> {
        tokio::time::timeout(
            self.acquire_timeout,
            self.readers.permits.clone().acquire_owned(),
        )
        .await
        .map_err(|_| StoreError::Unavailable("no SQLite reader free in time".into()))?
        .map_err(|_| StoreError::Unavailable("the SQLite store is closed".into()))
    }

    /// Runs the read `work` on a reader connection on the blocking pool, and gives up with
    /// [`StoreError::Unavailable`] after the acquire timeout.
    ///
    /// Reads used to run inline on the async workers (a hop to another thread costs more than
    /// an indexed point query), but a read stuck in the kernel (a frozen disk, a lock held by
    /// another process past the busy timeout) then blocked a runtime worker: with the disk
    /// frozen, `/health` and uncached `GET /users/me` hung 36 s and even the request timeout
    /// could not fire. Now a stuck read holds one reader and one blocking thread (both bounded
    /// by the reader pool), and the request answers 503. The hot path does not pay the hop:
    /// live sessions are answered from the cache.
    pub(super) async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let deadline = tokio::time::Instant::now() + self.acquire_timeout;
        let permit = self.reader_permit().await?;
        let pool = Arc::clone(&self.readers);
        // Opening a connection is file I/O too: it happens on the blocking thread as well.
        let task = tokio::task::spawn_blocking(move || {
            let reader = pool.checkout(permit)?;
            work(&reader).map_err(store_error)
        });
        match tokio::time::timeout_at(deadline, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(StoreError::Other("a SQLite read panicked".into())),
            Err(_) => Err(StoreError::Unavailable(
                "a SQLite read did not finish in time".into(),
            )),
        }
    }
}
