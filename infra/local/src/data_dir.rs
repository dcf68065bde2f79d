//! The data directory: where the embedded platform keeps everything, held by one process
//! at a time.

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
        std::fs::create_dir_all(root).with_context(|| format!("creating the data directory {}", root.display()))?;
        let root = root.canonicalize().with_context(|| format!("resolving {}", root.display()))?;
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
