//! The data directory: where the embedded platform keeps everything, held by one process
//! at a time, and readable by its owner alone: the directory is 0700, and the process
//! creates files 0600 and directories 0700 (umask 077), the table, its WAL, documents,
//! generated code and indexes included.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

/// An exclusive hold on a data directory, released when dropped (or when the process
/// dies, since the operating system drops the lock with it).
pub struct DataDir {
    root: PathBuf,
    _lock: File,
}

impl DataDir {
    pub fn acquire(root: &Path) -> anyhow::Result<Self> {
        use std::os::unix::fs::PermissionsExt as _;
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
        std::fs::create_dir_all(root).with_context(|| format!("creating the data directory {}", root.display()))?;
        let root = root.canonicalize().with_context(|| format!("resolving {}", root.display()))?;
        // A directory made before (by an older version, or by hand) is closed too, and so
        // are the table's files, which other users could otherwise still open.
        let private =
            |path: &Path, mode: u32| match std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(e).with_context(|| format!("making {} private", path.display()))
                }
                _ => Ok(()),
            };
        private(&root, 0o700)?;
        for file in ["table.sqlite3", "table.sqlite3-wal", "table.sqlite3-shm"] {
            private(&root.join(file), 0o600)?;
        }
        let path = root.join("oratio.lock");
        let mut lock = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                bail!(
                    "the data directory {} is in use by another oratio process (pid {}); stop it or choose another --data-dir",
                    root.display(),
                    holder.trim()
                );
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).context("locking the data directory");
            }
        }
        lock.set_len(0)?;
        write!(lock, "{}", std::process::id())?;
        lock.sync_all()?;
        Ok(Self { root, _lock: lock })
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    pub fn table_file(&self) -> PathBuf {
        self.root.join("table.sqlite3")
    }

    pub fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs")
    }
}
