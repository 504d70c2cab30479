//! The writer thread: batches whose jobs fail alone, and a panic that does not stop it.

use rusqlite::Connection;

use super::super::{store_error, test_store, SqliteStore};
use crate::domain::ports::StoreError;

fn insert_key(connection: &Connection, key: &str) -> Result<usize, StoreError> {
    connection
        .execute(
            "INSERT INTO login_throttle (login_key, failures, locks, updated_at) VALUES (?, 1, 0, 0)",
            [key],
        )
        .map_err(store_error)
}

async fn keys(store: &SqliteStore) -> Vec<String> {
    store
        .read(|reader| {
            reader
                .prepare("SELECT login_key FROM login_throttle ORDER BY login_key")?
                .query_map([], |row| row.get(0))?
                .collect()
        })
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_in_one_batch_fail_alone_and_a_panic_does_not_stop_the_writer() {
    let (store, _dir) = test_store().await;
    // Queued together, so most likely one batch: the failing one (a duplicate key after a
    // first insert of its own) is rolled back to its savepoint, the others commit.
    let (a, failing, b) = tokio::join!(
        store.write(|c| insert_key(c, "a")),
        store.write(|c| {
            insert_key(c, "partial")?;
            insert_key(c, "partial")
        }),
        store.write(|c| insert_key(c, "b")),
    );
    assert_eq!(a.unwrap(), 1);
    assert_eq!(b.unwrap(), 1);
    assert!(failing.is_err());
    assert_eq!(keys(&store).await, ["a", "b"]);

    let panicked = store
        .write(|c| -> Result<usize, StoreError> {
            insert_key(c, "before-the-panic")?;
            panic!("a bug inside a write")
        })
        .await;
    assert!(panicked.is_err());
    assert_eq!(store.write(|c| insert_key(c, "c")).await.unwrap(), 1);
    assert_eq!(keys(&store).await, ["a", "b", "c"]);
}
