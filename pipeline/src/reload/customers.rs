//! The customer table in force, shared by every worker, and the task that reloads it.
//!
//! [`Customers`] is a cheap handle (one `Arc`) on an [`ArcSwap`]: taking the table in force is
//! an atomic load and a reference-count increment, with no lock a reload could hold up.
//! A worker takes [`Customers::current`] once per batch, so every post of a batch sees one
//! table. A replacement is built completely, off the async runtime, before it is swapped in;
//! a load that fails changes nothing.
//!
//! [`watch`] polls the file's size and modification time with [`crate::reload::fingerprint`],
//! as the rule watcher does and for the same reasons (editors and deploy tools replace files
//! by rename, network filesystems send no events), and reloads a change once it has held
//! still for one interval.
//!
//! This is the only part of the module that logs or touches metrics:
//! `earshot_customers_rows`, `earshot_customers_rows_skipped` (set at every load that takes
//! effect) and `earshot_customers_reloads_total{outcome}` (one per reload after the first
//! load).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use tracing::{error, info, warn};

use super::{fingerprint, Fingerprint};
use crate::metrics::{
    CUSTOMERS_RELOADS, CUSTOMERS_RELOAD_ERRORS, CUSTOMERS_ROWS, CUSTOMERS_ROWS_SKIPPED,
};
use crate::shutdown::Shutdown;

use crate::customers::{CustomerError, CustomerLimits, CustomerTable, CustomersConfig, Loaded};

/// Skipped rows quoted in the log at each load; the rest are counted.
const SKIPS_LOGGED: usize = 10;

/// The customer table in force: clone it into every worker.
#[derive(Debug, Clone)]
pub struct Customers(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    table: ArcSwap<CustomerTable>,
    /// 1 for the first table, one more for each table swapped in.
    generation: AtomicU64,
    /// The limits every load of this table is held to.
    limits: CustomerLimits,
    /// The file's fingerprint when it was last read (by a load that worked or not), so
    /// [`watch`] reloads what changed since and does not retry a broken file unchanged.
    read_at: Mutex<Fingerprint>,
}

impl Customers {
    /// No customers: every lookup misses.
    pub fn empty() -> Self {
        Self::with_table(CustomerTable::default(), CustomerLimits::default())
    }

    /// `table` in force; reloads are held to `limits`.
    pub fn with_table(table: CustomerTable, limits: CustomerLimits) -> Self {
        Self(Arc::new(Shared {
            table: ArcSwap::from_pointee(table),
            generation: AtomicU64::new(1),
            limits,
            read_at: Mutex::new(Vec::new()),
        }))
    }

    /// The table `config` names, loaded now (empty when it names none). At startup a missing
    /// or broken table is an error: better to refuse to start than to run without the
    /// customers an operator configured.
    pub fn load(config: &CustomersConfig, limits: &CustomerLimits) -> Result<Self, CustomerError> {
        let customers = Self::with_table(CustomerTable::default(), *limits);
        let Some(path) = &config.path else {
            metrics::gauge!(CUSTOMERS_ROWS).set(0.0);
            metrics::gauge!(CUSTOMERS_ROWS_SKIPPED).set(0.0);
            return Ok(customers);
        };
        let (read_at, loaded) = read(path, limits);
        *customers.read_at() = read_at;
        let loaded = loaded?;
        log_loaded(path, &loaded, "customer table loaded");
        customers.0.table.store(Arc::new(loaded.table));
        Ok(customers)
    }

    /// The table in force. Take it once per batch rather than once per post: it costs an
    /// atomic load and a reference count, which is nothing per batch.
    pub fn current(&self) -> Arc<CustomerTable> {
        self.0.table.load_full()
    }

    /// The generation of the table in force: it changes exactly when the table does, so a
    /// worker can keep its `Arc` and check this one atomic per batch instead.
    pub fn generation(&self) -> u64 {
        self.0.generation.load(Ordering::Acquire)
    }

    /// The limits reloads are held to.
    pub fn limits(&self) -> &CustomerLimits {
        &self.0.limits
    }

    /// Puts `table` in force; returns its generation.
    pub fn replace(&self, table: CustomerTable) -> u64 {
        self.0.table.store(Arc::new(table));
        // Bumped after the store, so a reader that sees the new generation gets the new table.
        self.0.generation.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Loads `path` again and puts it in force; on error the table in force stays. Blocking
    /// (it reads and parses the whole file); logs and counts the outcome. Returns the new
    /// generation.
    pub fn reload(&self, path: &Path) -> Result<u64, CustomerError> {
        let (read_at, loaded) = read(path, &self.0.limits);
        *self.read_at() = read_at;
        match loaded {
            Ok(loaded) => {
                log_loaded(path, &loaded, "customer table reloaded");
                let generation = self.replace(loaded.table);
                metrics::counter!(CUSTOMERS_RELOADS, "outcome" => "ok").increment(1);
                Ok(generation)
            }
            Err(e) => {
                metrics::counter!(CUSTOMERS_RELOADS, "outcome" => "error").increment(1);
                metrics::counter!(CUSTOMERS_RELOAD_ERRORS, "reason" => e.reason()).increment(1);
                error!(
                    path = %path.display(),
                    reason = e.reason(),
                    rows = self.current().len(),
                    "{e}; the customer table in force stays"
                );
                Err(e)
            }
        }
    }

    pub(super) fn read_at(&self) -> std::sync::MutexGuard<'_, Fingerprint> {
        self.0.read_at.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The file's fingerprint, taken before it is read so that a change made while it is read
/// is seen by the next poll, and the file loaded.
fn read(path: &Path, limits: &CustomerLimits) -> (Fingerprint, Result<Loaded, CustomerError>) {
    let read_at = fingerprint(&[path.to_owned()]);
    (read_at, CustomerTable::load(path, limits))
}

/// Logs a load that worked and sets the gauges.
fn log_loaded(path: &Path, loaded: &Loaded, what: &str) {
    metrics::gauge!(CUSTOMERS_ROWS).set(loaded.table.len() as f64);
    metrics::gauge!(CUSTOMERS_ROWS_SKIPPED).set(loaded.skipped as f64);
    info!(
        path = %path.display(),
        rows = loaded.table.len(),
        skipped = loaded.skipped,
        "{what}"
    );
    if loaded.skipped > 0 {
        let shown: Vec<String> = loaded
            .skips
            .iter()
            .take(SKIPS_LOGGED)
            .map(ToString::to_string)
            .collect();
        let more = loaded.skipped - shown.len();
        warn!(
            path = %path.display(),
            skipped = loaded.skipped,
            "customer table rows skipped:\n{}{}",
            shown.join("\n"),
            if more > 0 {
                format!("\n… and {more} more")
            } else {
                String::new()
            }
        );
    }
}

/// Checks `path` every `interval` and reloads `customers` from it after a change that has
/// held still for one interval. A failed reload keeps the table in force and is retried
/// only after the file changes again. A zero `interval` turns reloading off: this then only
/// waits for shutdown.
pub async fn watch(
    customers: Customers,
    path: PathBuf,
    interval: Duration,
    mut shutdown: Shutdown,
) {
    if interval.is_zero() {
        shutdown.recv().await;
        return;
    }
    let read_at = || customers.read_at().clone();
    super::poll(vec![path.clone()], interval, shutdown, read_at, || {
        let (customers, path) = (customers.clone(), path.clone());
        async move {
            // The outcome is logged and counted by `reload`.
            let _ = tokio::task::spawn_blocking(move || customers.reload(&path)).await;
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::time::{Duration, Instant};

    use super::*;
    use crate::post::Platform;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn starting_without_a_table_or_with_a_broken_one() {
        let limits = CustomerLimits::default();
        let none = Customers::load(&CustomersConfig::default(), &limits).unwrap();
        assert!(none.current().is_empty());
        let missing = CustomersConfig {
            path: Some(PathBuf::from("/nonexistent/crm.csv")),
            ..CustomersConfig::default()
        };
        assert_eq!(
            Customers::load(&missing, &limits).unwrap_err().reason(),
            "read"
        );
    }

    /// Waits, up to a bound, for `done`; the bound only fails a hung test, it times nothing.
    async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !done() {
            assert!(Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn watching_reloads_a_changed_file_and_keeps_the_table_when_it_breaks() {
        // The recorder, installed before anything counts.
        let metrics = crate::metrics::prometheus();
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "crm.csv",
            "platform,handle,customer_id\nx,a,C-1\n",
        );
        let config = CustomersConfig {
            path: Some(path.clone()),
            reload: Duration::from_millis(20),
        };
        let customers = Customers::load(&config, &CustomerLimits::default()).unwrap();
        assert_eq!(customers.generation(), 1);
        let (trigger, _) = crate::shutdown::channel();
        let task = tokio::spawn(watch(
            customers.clone(),
            path.clone(),
            config.reload,
            trigger.subscribe(),
        ));

        write(
            dir.path(),
            "crm.csv",
            "platform,handle,customer_id\nx,a,C-1\nx,b,C-2\n",
        );
        eventually("the change was never reloaded", || {
            customers.generation() == 2
        })
        .await;
        assert_eq!(customers.current().len(), 2);

        // Broken: the header lost a column. The watcher tries it, fails, and keeps the table.
        write(dir.path(), "crm.csv", "platform,handle\nx,a\n");
        let fingerprint = fingerprint(std::slice::from_ref(&path));
        eventually("the broken file was never tried", || {
            *customers.read_at() == fingerprint
        })
        .await;
        assert_eq!(customers.generation(), 2);
        let failed = metrics
            .render()
            .lines()
            .find_map(|l| {
                l.strip_prefix("earshot_customers_reload_errors_total{reason=\"missing_column\"} ")
                    .map(|n| n.trim().parse::<u64>().unwrap_or(0))
            })
            .unwrap_or(0);
        assert!(failed >= 1, "the failed reload is counted by its reason");
        assert_eq!(customers.current().len(), 2);
        assert!(customers.current().lookup(Platform::X, "b", None).is_some());

        // Fixed again: it loads.
        write(
            dir.path(),
            "crm.csv",
            "platform,handle,customer_id\nx,c,C-3\n",
        );
        eventually("the fixed file was never reloaded", || {
            customers.generation() == 3
        })
        .await;
        let table = customers.current();
        assert_eq!(table.len(), 1);
        assert!(table.lookup(Platform::X, "c", None).is_some());

        trigger.trigger();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn a_zero_interval_does_not_watch() {
        let (trigger, _) = crate::shutdown::channel();
        let task = tokio::spawn(watch(
            Customers::empty(),
            PathBuf::from("crm.csv"),
            Duration::ZERO,
            trigger.subscribe(),
        ));
        trigger.trigger();
        task.await.unwrap();
    }
}
