//! Fault injection for tests: built only with the `fault-injection` feature (the test command
//! turns it on; a release build never has it), so nothing here can fire in production.
//!
//! - Panics, chosen by environment variables read once: `EARSHOT_FAULT_PANIC_WORKER=N` makes
//!   a worker panic on the N-th batch it takes; `EARSHOT_FAULT_PANIC_DELIVERY=TEXT` makes a
//!   delivery attempt of an entry whose id contains `TEXT` panic.
//! - A storage backend for the outbox ([`FaultyDisk`]) that answers "no space left on device"
//!   to every write while its switch is on, as a full disk does.

use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Called by a worker for each batch it takes: panics on the configured one.
pub fn worker_batch() {
    static AT: OnceLock<Option<u64>> = OnceLock::new();
    static SEEN: AtomicU64 = AtomicU64::new(0);
    let at = *AT.get_or_init(|| var("EARSHOT_FAULT_PANIC_WORKER").and_then(|v| v.parse().ok()));
    if let Some(at) = at {
        if SEEN.fetch_add(1, Ordering::Relaxed) + 1 == at {
            panic!("injected fault: a worker panics on batch {at}");
        }
    }
}

/// Called at the start of each delivery attempt: panics for the configured entries.
pub fn delivery(entry_id: &str) {
    static TEXT: OnceLock<Option<String>> = OnceLock::new();
    if let Some(text) = TEXT.get_or_init(|| var("EARSHOT_FAULT_PANIC_DELIVERY")) {
        if entry_id.contains(text.as_str()) {
            panic!("injected fault: the delivery of {entry_id} panics");
        }
    }
}

/// A database file whose writes fail with `ENOSPC` while [`FaultyDisk::full`] is set.
#[derive(Debug)]
pub struct FaultyDisk {
    inner: FileBackend,
    full: Arc<AtomicBool>,
}

impl FaultyDisk {
    /// An outbox opener ([`crate::outbox::store::Opener`]) over files that fail while `full`.
    pub fn opener(full: Arc<AtomicBool>) -> crate::outbox::store::Opener {
        Box::new(move |path: &Path| {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .map_err(|e| redb::DatabaseError::Storage(redb::StorageError::Io(e)))?;
            let inner = FileBackend::new(file)?;
            redb::Database::builder().create_with_backend(FaultyDisk {
                inner,
                full: full.clone(),
            })
        })
    }

    fn check(&self) -> std::io::Result<()> {
        if self.full.load(Ordering::Relaxed) {
            return Err(std::io::Error::from_raw_os_error(28)); // ENOSPC
        }
        Ok(())
    }
}

impl StorageBackend for FaultyDisk {
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        self.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.check()?;
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> std::io::Result<()> {
        self.check()?;
        self.inner.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.check()?;
        self.inner.write(offset, data)
    }

    fn close(&self) -> std::io::Result<()> {
        self.inner.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.unlock_range(start, end)
    }
}
