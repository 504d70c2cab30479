//! The WAL checkpointer thread.

use std::time::Duration;

use rusqlite::Connection;

use crate::domain::ports::StoreError;

/// How often the checkpointer copies the WAL back into the database file.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(100);

/// Passive checkpoints on a thread of their own, beside the writer, every
/// [`CHECKPOINT_INTERVAL`]. The writer keeps SQLite's own automatic checkpoint, which is what
/// restarts the WAL from its beginning (so it cannot grow without bound under a constant stream
/// of writes); by the time it runs, this thread has already copied nearly every frame, so the
/// writer's stall is short. Chained refreshes went from about 5,700/s to about 6,500/s.
pub(super) fn spawn_checkpointer(
    connection: Connection,
    writer_gone: std::sync::mpsc::Receiver<()>,
) -> Result<(), StoreError> {
    std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || loop {
            match writer_gone.recv_timeout(CHECKPOINT_INTERVAL) {
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                _ => return,
            }
            if let Err(error) =
                connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            {
                tracing::warn!(%error, "SQLite WAL checkpoint failed");
            }
        })
        .map(|_| ())
        .map_err(|e| StoreError::Unavailable(format!("cannot start the SQLite checkpointer: {e}")))
}
