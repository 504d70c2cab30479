//! The permissions of the SQLite database files.
//!
//! The database holds password hashes and refresh-token hashes, so only the service's own user
//! may read it: the file is created `0600` before SQLite opens it, and an existing file readable
//! or writable by others is tightened at start (with a warning). SQLite's unix VFS creates the
//! `-wal`, `-shm` and `-journal` files with the permissions of the database file (not from the
//! umask), so they follow; any left over from a run with looser permissions are tightened
//! too.

use std::path::{Path, PathBuf};

use crate::domain::ports::StoreError;

/// The suffixes of the files SQLite keeps beside the database.
const COMPANIONS: [&str; 3] = ["-wal", "-shm", "-journal"];

/// Creates the database file at `path` readable and writable by its owner only when it is
/// missing, and removes every group and other permission from it and its companion files
/// when they exist.
///
/// # Errors
/// [`StoreError::Unavailable`] when the file cannot be created, naming it (and its directory
/// when that is what is missing).
pub(super) fn restrict_to_owner(path: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(error) => {
                // "No such file or directory" does not say which is missing: the directory.
                let reason = match path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
                    Some(dir) if error.kind() == std::io::ErrorKind::NotFound && !dir.is_dir() => {
                        format!("directory {} does not exist", dir.display())
                    }
                    _ => error.to_string(),
                };
                return Err(StoreError::Unavailable(format!(
                    "cannot create SQLite database {}: {reason}",
                    path.display()
                )));
            }
        }
        tighten(path);
        for suffix in COMPANIONS {
            let mut companion = path.as_os_str().to_owned();
            companion.push(suffix);
            let companion = PathBuf::from(companion);
            if companion.exists() {
                tighten(&companion);
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Clears the group and other bits of `path` (creating it 0600 under a umask such as 0277 may
/// also have left it without the owner's write bit: that is restored). Failures are logged.
#[cfg(unix)]
fn tighten(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = match std::fs::metadata(path) {
        Ok(metadata) => metadata.permissions().mode() & 0o7777,
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "cannot read the permissions of a SQLite file");
            return;
        }
    };
    if mode == 0o600 {
        return;
    }
    match std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
        Ok(()) if mode & 0o077 != 0 => tracing::warn!(
            path = %path.display(),
            was = format!("{mode:04o}"),
            "the SQLite file was readable or writable by other users; its mode is now 0600"
        ),
        Ok(()) => {}
        Err(error) => tracing::warn!(
            path = %path.display(),
            was = format!("{mode:04o}"),
            %error,
            "cannot restrict the SQLite file to its owner (mode 0600); it holds password hashes"
        ),
    }
}

/// Below this much free space beside the database the store is not ready: a WAL checkpoint
/// alone may need several pages, and a batch of writes a few more.
pub(super) const MIN_FREE_BYTES: u64 = 1024 * 1024;

/// Free bytes (for unprivileged users) on the file system holding `directory`.
pub(super) fn free_bytes(directory: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(directory.as_os_str().as_bytes()).ok()?;
    let mut stats = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a valid NUL-terminated string and `stats` is written by the call
    // before it is read (only when it returns 0).
    let stats = unsafe {
        if libc::statvfs(path.as_ptr(), stats.as_mut_ptr()) != 0 {
            return None;
        }
        stats.assume_init()
    };
    Some(stats.f_bavail.saturating_mul(stats.f_frsize))
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn a_missing_file_is_created_0600_and_loose_ones_are_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("fresh.db");
        restrict_to_owner(&fresh).unwrap();
        assert_eq!(mode(&fresh), 0o600);
        let old = dir.path().join("old.db");
        let wal = dir.path().join("old.db-wal");
        for file in [&old, &wal] {
            std::fs::write(file, b"").unwrap();
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        restrict_to_owner(&old).unwrap();
        assert_eq!(mode(&old), 0o600);
        assert_eq!(mode(&wal), 0o600);
        assert!(!dir.path().join("old.db-shm").exists());
        assert!(restrict_to_owner(&dir.path().join("missing/dir/x.db")).is_err());
    }

    #[tokio::test]
    async fn a_database_in_a_missing_directory_fails_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no/such/dir");
        let url = format!("sqlite://{}/auth.db", missing.display());
        let options = crate::infrastructure::db::DbOptions {
            max_connections: 1,
            acquire_timeout: std::time::Duration::from_secs(1),
            statement_timeout: std::time::Duration::from_secs(1),
            session_cache_bytes: 16 << 20,
        };
        let error = match super::super::SqliteStore::connect(&url, &options).await {
            Ok(_) => panic!("connected to a database in a missing directory"),
            Err(error) => error.to_string(),
        };
        let expected = format!(
            "cannot create SQLite database {}/auth.db: directory {} does not exist",
            missing.display(),
            missing.display()
        );
        assert!(error.ends_with(&expected), "{error}");
        assert!(!missing.exists(), "nothing was created");
    }
}
