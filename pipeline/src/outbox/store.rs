//! The on-disk store behind the outbox: pending entries per queue, dead letters, mentions held
//! for a digest, and source positions, in one file.
//!
//! Why redb: it is an embedded, pure-Rust, ACID key-value store (copy-on-write B-trees, as in
//! LMDB) with a stable file format, crash safety by default (a `kill -9` at any point leaves
//! the last committed transaction intact) and few dependencies. The outbox needs exactly that:
//! small records, ordered by key, written in group commits and deleted soon after. An LSM store
//! (fjall, RocksDB) would trade read simplicity and a single file for write throughput the
//! outbox does not need: only routed mentions (a few per thousand posts) are written.
//!
//! Durability: everything that must survive a crash is committed with an fsync (new entries
//! together with the source positions they make safe, dead letters, replays, digests). Acks of
//! delivered entries and attempt counts are committed without one ([`redb::Durability::None`]):
//! losing them to a crash only means an entry is delivered again with the same `webhook-id`,
//! which receivers deduplicate. The next durable commit (at most [`Store::flush`]'s interval
//! later) makes them permanent too.
//!
//! The file is held exclusively by one process: `earshot dlq` on a running earshot's store is
//! told so and goes through the admin server instead.
//!
//! Storage errors (disk full, an I/O error): redb refuses every operation after a failed write
//! until the database is opened again, so freeing disk space alone would not help. A write
//! that fails marks the store broken ([`Store::writable`] turns false, for `/readyz` and
//! `earshot_outbox_writable`), and the next operation first closes and reopens the file (at
//! most once per [`REOPEN_EVERY`]); the first write that succeeds again marks it writable. What
//! was committed before the failure is on disk as it was: redb's commits are atomic.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use super::entry::{now_us, Entry};
use crate::source::batch::Position;

const OUTBOX: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("outbox");
const DEAD: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("dead");
const HELD: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("held");
const POSITIONS: TableDefinition<&str, (u8, u64)> = TableDefinition::new("positions");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// State other parts of the process keep across restarts (the spike detector's baselines),
/// by name: opaque bytes.
const STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("state");
/// The cases each queue has opened ([`crate::sink::cases`]): by queue and case key (a post's
/// thread key, an author), the case as JSON.
const CASES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("cases");
/// Routed mentions by their post's thread key, for deletes: the mention, where its post was
/// and the queues it went to, as JSON ([`RoutedPost`]).
const ROUTED: TableDefinition<&str, &[u8]> = TableDefinition::new("routed");

const NEXT_SEQ: &str = "next_seq";

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process (a running earshot) has the file open.
    #[error("the outbox {path} is in use by another process (a running earshot)")]
    InUse {
        /// The store file.
        path: PathBuf,
    },
    /// The file exists but cannot be opened as an outbox: damaged, truncated, or not one.
    #[error("the outbox {path} cannot be opened: {source}. It may be damaged or not an outbox file: keep a copy of it, then restore it from a backup, or move it aside to start with an empty outbox (what it held is then not delivered, and the sources start from their configured positions)")]
    Unreadable {
        /// The store file.
        path: PathBuf,
        /// What redb said.
        source: Box<redb::Error>,
    },
    /// The database reported an error.
    #[error("the outbox {path}: {source}")]
    Db {
        /// The store file.
        path: PathBuf,
        /// What redb said.
        source: Box<redb::Error>,
    },
    /// The store is closed after a storage error and could not be opened again yet.
    #[error("the outbox {path} is closed after a storage error and cannot be opened again yet: {reason}")]
    Closed {
        /// The store file.
        path: PathBuf,
        /// Why the last reopen failed.
        reason: String,
    },
    /// The folder of the store could not be created.
    #[error("cannot create the folder of the outbox {path}: {source}")]
    Folder {
        /// The store file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Which of the two entry tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// Waiting for delivery.
    Outbox,
    /// Given up; waiting for `earshot dlq replay` or `purge`.
    Dead,
}

impl Table {
    fn def(self) -> TableDefinition<'static, (&'static str, u64), &'static [u8]> {
        match self {
            Table::Outbox => OUTBOX,
            Table::Dead => DEAD,
        }
    }
}

/// One entry read back, with where it is stored.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The queue it belongs to.
    pub queue: String,
    /// Its key within the queue (write order).
    pub seq: u64,
    /// The entry.
    pub entry: Entry,
}

/// Which dead letters an operation applies to.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Only this queue (all queues when `None`).
    pub queue: Option<String>,
    /// Only entries with these ids (all when empty).
    pub ids: Vec<String>,
}

impl Selection {
    fn matches(&self, queue: &str, entry: &Entry) -> bool {
        self.queue.as_deref().is_none_or(|q| q == queue)
            && (self.ids.is_empty() || self.ids.contains(&entry.id))
    }
}

/// What one durable commit writes.
#[derive(Debug, Default)]
pub struct Commit<'a> {
    /// New entries, by queue id.
    pub entries: Vec<(&'a str, Entry)>,
    /// New held mentions (noise control), by queue id: opaque JSON.
    pub held: Vec<(&'a str, Vec<u8>)>,
    /// Held mentions a digest in `entries` replaces, by queue id and key.
    pub release: Vec<(&'a str, u64)>,
    /// Source positions made safe by this commit.
    pub positions: Vec<(&'a str, Position)>,
    /// Routed mentions to remember for deletes, by their post's thread key.
    pub routed: Vec<(&'a str, RoutedPost)>,
    /// Thread keys of deleted posts: each one routed gets a `mention.deleted` entry in every
    /// queue it went to, and is forgotten.
    pub deletes: Vec<&'a str>,
}

/// A routed mention as kept for deletes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RoutedPost {
    /// The mention id.
    pub mention_id: String,
    /// The post, as the mention names it.
    pub post: super::entry::DeletedPost,
    /// The queues it was routed to.
    pub queues: Vec<String>,
    /// When it was routed (µs since the epoch).
    pub at_us: u64,
}

/// A `mention.deleted` entry a commit wrote: its queue and the mention it retracts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retracted {
    /// The deleted post's thread key.
    pub key: String,
    /// The queue.
    pub queue: String,
    /// The mention whose post was deleted.
    pub mention_id: String,
}

impl Commit<'_> {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
            && self.held.is_empty()
            && self.release.is_empty()
            && self.positions.is_empty()
            && self.routed.is_empty()
            && self.deletes.is_empty()
    }
}

/// How often a broken store tries to open its file again.
pub const REOPEN_EVERY: Duration = Duration::from_millis(500);

/// Opens the database file: [`Database::create`] normally, another backend in fault tests.
pub type Opener = Box<dyn Fn(&Path) -> Result<Database, redb::DatabaseError> + Send + Sync>;

/// The outbox file.
pub struct Store {
    /// `None` between closing the file after a storage error and opening it again.
    db: RwLock<Option<Database>>,
    path: PathBuf,
    opener: Opener,
    /// A non-durable commit happened since the last durable one.
    dirty: AtomicBool,
    /// A write failed and the file has not taken a write since.
    broken: AtomicBool,
    /// When the last reopen was tried, and why it failed if it did.
    last_reopen: Mutex<(Option<Instant>, String)>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating when missing) the store at `path`, and its folder.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Self::open_with(path, Box::new(|p| Database::create(p)))
    }

    /// Opens the store at `path` through `opener` (fault tests put a backend that can fail
    /// under it); `path` names the store in errors, and its folder is created.
    pub fn open_with(path: &Path, opener: Opener) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Folder {
                path: path.to_path_buf(),
                source,
            })?;
        }
        let db = open_db(path, &opener)?;
        let store = Store {
            db: RwLock::new(Some(db)),
            path: path.to_path_buf(),
            opener,
            dirty: AtomicBool::new(false),
            broken: AtomicBool::new(false),
            last_reopen: Mutex::new((None, String::new())),
        };
        // Every table exists from the start, so readers never meet a missing one.
        store.write(Durability::Immediate, |txn| {
            txn.open_table(OUTBOX)?;
            txn.open_table(DEAD)?;
            txn.open_table(HELD)?;
            txn.open_table(POSITIONS)?;
            txn.open_table(META)?;
            txn.open_table(STATE)?;
            txn.open_table(CASES)?;
            txn.open_table(ROUTED)?;
            Ok(())
        })?;
        Ok(store)
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the store takes writes: false from a failed write until one succeeds again.
    pub fn writable(&self) -> bool {
        !self.broken.load(Ordering::Relaxed)
    }

    fn err(&self, e: impl Into<redb::Error>) -> StoreError {
        db_error(&self.path, e)
    }

    /// The open database, reopened first when a write failed (see the module docs).
    fn db(&self) -> Result<RwLockReadGuard<'_, Option<Database>>, StoreError> {
        if self.broken.load(Ordering::Relaxed) {
            self.reopen();
        }
        let guard = self.db.read().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            return Err(self.closed());
        }
        Ok(guard)
    }

    /// Closes the file and opens it again, at most once per [`REOPEN_EVERY`].
    fn reopen(&self) {
        let mut last = self.last_reopen.lock().unwrap_or_else(|e| e.into_inner());
        if last.0.is_some_and(|t| t.elapsed() < REOPEN_EVERY) {
            return;
        }
        last.0 = Some(Instant::now());
        let mut db = self.db.write().unwrap_or_else(|e| e.into_inner());
        // The old handle must be gone first: it holds the file's lock.
        drop(db.take());
        match open_db(&self.path, &self.opener) {
            Ok(fresh) => {
                *db = Some(fresh);
                last.1.clear();
                metrics::counter!(crate::metrics::OUTBOX_REOPENS).increment(1);
                tracing::warn!(path = %self.path.display(), "the outbox was opened again after a storage error");
            }
            Err(e) => last.1 = e.to_string(),
        }
    }

    fn write<T>(
        &self,
        durability: Durability,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T, redb::Error>,
    ) -> Result<T, StoreError> {
        let guard = self.db()?;
        let db = self.opened(&guard)?;
        let result = (|| {
            let mut txn = db.begin_write().map_err(|e| self.err(e))?;
            txn.set_durability(durability).map_err(|e| self.err(e))?;
            let value = f(&txn).map_err(|e| self.err(e))?;
            txn.commit().map_err(|e| self.err(e))?;
            Ok(value)
        })();
        match &result {
            Ok(_) => {
                self.broken.store(false, Ordering::Relaxed);
                match durability {
                    Durability::Immediate => self.dirty.store(false, Ordering::Relaxed),
                    _ => self.dirty.store(true, Ordering::Relaxed),
                }
            }
            Err(_) => self.broken.store(true, Ordering::Relaxed),
        }
        result
    }

    /// The database behind a guard from [`Store::db`].
    fn opened<'a>(&self, guard: &'a Option<Database>) -> Result<&'a Database, StoreError> {
        guard.as_ref().ok_or_else(|| self.closed())
    }

    fn closed(&self) -> StoreError {
        let reason = self
            .last_reopen
            .lock()
            .map(|r| r.1.clone())
            .unwrap_or_default();
        StoreError::Closed {
            path: self.path.clone(),
            reason,
        }
    }

    /// Writes `commit` in one durable transaction. Returns the keys given to its entries, in
    /// order, then those given to its held mentions.
    pub fn commit(&self, commit: &Commit<'_>) -> Result<(Vec<u64>, Vec<u64>), StoreError> {
        self.commit_with_deletes(commit)
            .map(|(keys, held, _)| (keys, held))
    }

    /// [`Store::commit`], also returning the `mention.deleted` entries its deletes wrote.
    #[allow(clippy::type_complexity)]
    pub fn commit_with_deletes(
        &self,
        commit: &Commit<'_>,
    ) -> Result<(Vec<u64>, Vec<u64>, Vec<Retracted>), StoreError> {
        self.write(Durability::Immediate, |txn| {
            let mut meta = txn.open_table(META)?;
            let mut seq = meta.get(NEXT_SEQ)?.map(|v| v.value()).unwrap_or(1);
            let mut keys = Vec::with_capacity(commit.entries.len());
            {
                let mut outbox = txn.open_table(OUTBOX)?;
                for (queue, entry) in &commit.entries {
                    outbox.insert((*queue, seq), entry.to_bytes().as_slice())?;
                    keys.push(seq);
                    seq += 1;
                }
            }
            let mut held_keys = Vec::with_capacity(commit.held.len());
            {
                let mut held = txn.open_table(HELD)?;
                for (queue, bytes) in &commit.held {
                    held.insert((*queue, seq), bytes.as_slice())?;
                    held_keys.push(seq);
                    seq += 1;
                }
                for (queue, key) in &commit.release {
                    held.remove((*queue, *key))?;
                }
            }
            {
                let mut positions = txn.open_table(POSITIONS)?;
                for (source, position) in &commit.positions {
                    positions.insert(*source, encode_position(*position))?;
                }
            }
            let mut retracted = Vec::new();
            {
                let mut routed = txn.open_table(ROUTED)?;
                for (key, r) in &commit.routed {
                    let bytes = serde_json::to_vec(r).expect("a routed post serializes");
                    routed.insert(*key, bytes.as_slice())?;
                }
                let mut outbox = txn.open_table(OUTBOX)?;
                for key in &commit.deletes {
                    let Some(r) = routed.remove(*key)? else {
                        continue;
                    };
                    let Ok(r) = serde_json::from_slice::<RoutedPost>(r.value()) else {
                        continue;
                    };
                    let deletion = super::entry::Deletion {
                        mention_id: r.mention_id.clone(),
                        post: r.post.clone(),
                        deleted_at: crate::timestamp::rfc3339_millis(std::time::SystemTime::now()),
                    };
                    let data = serde_json::value::RawValue::from_string(
                        serde_json::to_string(&deletion).expect("a deletion serializes"),
                    )
                    .expect("JSON is JSON");
                    for queue in &r.queues {
                        let entry = Entry::new(
                            format!("{}.deleted", r.mention_id),
                            super::entry::Event::MentionDeleted,
                            data.clone(),
                            now_us(),
                        );
                        outbox.insert((queue.as_str(), seq), entry.to_bytes().as_slice())?;
                        seq += 1;
                        retracted.push(Retracted {
                            key: key.to_string(),
                            queue: queue.clone(),
                            mention_id: r.mention_id.clone(),
                        });
                    }
                }
            }
            meta.insert(NEXT_SEQ, seq)?;
            Ok((keys, held_keys, retracted))
        })
    }

    /// The thread keys of the routed mentions kept for deletes.
    pub fn routed_keys(&self) -> Result<Vec<String>, StoreError> {
        let guard = self.db()?;
        let txn = self.opened(&guard)?.begin_read().map_err(|e| self.err(e))?;
        let t = txn.open_table(ROUTED).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in t.iter().map_err(|e| self.err(e))? {
            let (k, _) = row.map_err(|e| self.err(e))?;
            out.push(k.value().to_string());
        }
        Ok(out)
    }

    /// Forgets routed mentions kept for deletes longer than `keep` before `now_us`; their keys.
    pub fn prune_routed(&self, now_us: u64, keep: Duration) -> Result<Vec<String>, StoreError> {
        self.write(Durability::None, |txn| {
            let mut t = txn.open_table(ROUTED)?;
            let mut gone = Vec::new();
            let keep_us = keep.as_micros() as u64;
            t.retain(|k, v| {
                let old = serde_json::from_slice::<RoutedPost>(v)
                    .map_or(true, |r| now_us.saturating_sub(r.at_us) > keep_us);
                if old {
                    gone.push(k.to_string());
                }
                !old
            })?;
            Ok(gone)
        })
    }

    /// The checkpointed position of every source.
    pub fn positions(&self) -> Result<Vec<(String, Position)>, StoreError> {
        let guard = self.db()?;
        let txn = self.opened(&guard)?.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(POSITIONS).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in table.iter().map_err(|e| self.err(e))? {
            let (k, v) = row.map_err(|e| self.err(e))?;
            if let Some(p) = decode_position(v.value()) {
                out.push((k.value().to_string(), p));
            }
        }
        Ok(out)
    }

    /// Up to `limit` entries of `queue` in `table` with keys above `after`, in key order.
    /// Entries that no longer parse are skipped and returned in the second list (their keys)
    /// so the caller can bury them instead of meeting them forever.
    pub fn read(
        &self,
        table: Table,
        queue: &str,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<Stored>, Vec<u64>), StoreError> {
        let guard = self.db()?;
        let txn = self.opened(&guard)?.begin_read().map_err(|e| self.err(e))?;
        let t = txn.open_table(table.def()).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        let mut broken = Vec::new();
        if after == u64::MAX {
            return Ok((out, broken));
        }
        for row in t
            .range((queue, after + 1)..=(queue, u64::MAX))
            .map_err(|e| self.err(e))?
        {
            let (k, v) = row.map_err(|e| self.err(e))?;
            let seq = k.value().1;
            match Entry::from_bytes(v.value()) {
                Ok(entry) => out.push(Stored {
                    queue: queue.to_string(),
                    seq,
                    entry,
                }),
                Err(_) => broken.push(seq),
            }
            if out.len() >= limit {
                break;
            }
        }
        Ok((out, broken))
    }

    /// Number of entries of `queue` in `table`.
    pub fn count(&self, table: Table, queue: &str) -> Result<u64, StoreError> {
        let guard = self.db()?;
        let txn = self.opened(&guard)?.begin_read().map_err(|e| self.err(e))?;
        let t = txn.open_table(table.def()).map_err(|e| self.err(e))?;
        let n = t
            .range((queue, 0)..=(queue, u64::MAX))
            .map_err(|e| self.err(e))?
            .count();
        Ok(n as u64)
    }

    /// Removes delivered entries (not durable by itself: see the module docs).
    pub fn ack(&self, queue: &str, seqs: &[u64]) -> Result<(), StoreError> {
        if seqs.is_empty() {
            return Ok(());
        }
        self.write(Durability::None, |txn| {
            let mut t = txn.open_table(OUTBOX)?;
            for &seq in seqs {
                t.remove((queue, seq))?;
            }
            Ok(())
        })
    }

    /// Rewrites an entry in place (its attempt count, its last error); not durable by itself.
    pub fn update(&self, queue: &str, seq: u64, entry: &Entry) -> Result<(), StoreError> {
        self.write(Durability::None, |txn| {
            let mut t = txn.open_table(OUTBOX)?;
            if t.get((queue, seq))?.is_some() {
                t.insert((queue, seq), entry.to_bytes().as_slice())?;
            }
            Ok(())
        })
    }

    /// Moves entries from the outbox to the dead letters, durably. `entry` is `None` for an
    /// entry that no longer parses: its bytes move as they are.
    pub fn bury(&self, queue: &str, items: &[(u64, Option<&Entry>)]) -> Result<(), StoreError> {
        if items.is_empty() {
            return Ok(());
        }
        self.write(Durability::Immediate, |txn| {
            let mut outbox = txn.open_table(OUTBOX)?;
            let mut dead = txn.open_table(DEAD)?;
            for (seq, entry) in items {
                let bytes = match entry {
                    Some(e) => {
                        let mut e = (*e).clone();
                        e.dead_us = Some(now_us());
                        Some(e.to_bytes())
                    }
                    None => outbox.get((queue, *seq))?.map(|v| v.value().to_vec()),
                };
                outbox.remove((queue, *seq))?;
                if let Some(bytes) = bytes {
                    dead.insert((queue, *seq), bytes.as_slice())?;
                }
            }
            Ok(())
        })
    }

    /// Makes every earlier non-durable commit durable (an empty durable commit), when there
    /// was one.
    pub fn flush(&self) -> Result<(), StoreError> {
        if self.dirty.load(Ordering::Relaxed) {
            self.write(Durability::Immediate, |_| Ok(()))?;
        }
        Ok(())
    }

    /// Every entry in `table` that `selection` matches, in queue and key order.
    pub fn list(&self, table: Table, selection: &Selection) -> Result<Vec<Stored>, StoreError> {
        let guard = self.db()?;
        let txn = self.opened(&guard)?.begin_read().map_err(|e| self.err(e))?;
        let t = txn.open_table(table.def()).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in t.iter().map_err(|e| self.err(e))? {
            let (k, v) = row.map_err(|e| self.err(e))?;
            let (queue, seq) = k.value();
            let Ok(entry) = Entry::from_bytes(v.value()) else {
                continue;
            };
            if selection.matches(queue, &entry) {
                out.push(Stored {
                    queue: queue.to_string(),
                    seq,
                    entry,
                });
            }
        }
        Ok(out)
    }

    /// One page of [`Store::list`]: up to `limit` entries in `table` that `selection`
    /// matches, in queue and key order, starting after the key `after` (queue, key). The
    /// second value is the key of the last entry returned when more entries follow, to pass
    /// as `after` for the next page; `None` on the last page. Only one page is held in memory,
    /// whatever the table holds.
    #[allow(clippy::type_complexity)]
    pub fn list_page(
        &self,
        table: Table,
        selection: &Selection,
        after: Option<(&str, u64)>,
        limit: usize,
    ) -> Result<(Vec<Stored>, Option<(String, u64)>), StoreError> {
        use std::ops::Bound;
        let guard = self.db()?;
        let txn = self.opened(&guard)?.begin_read().map_err(|e| self.err(e))?;
        let t = txn.open_table(table.def()).map_err(|e| self.err(e))?;
        // Start at the selected queue unless the cursor is already past its beginning.
        let start = match (selection.queue.as_deref(), after) {
            (Some(q), Some(a)) if a >= (q, 0) => Bound::Excluded(a),
            (Some(q), _) => Bound::Included((q, 0)),
            (None, Some(a)) => Bound::Excluded(a),
            (None, None) => Bound::Unbounded,
        };
        let mut out = Vec::new();
        let mut more = false;
        for row in t
            .range::<(&str, u64)>((start, Bound::Unbounded))
            .map_err(|e| self.err(e))?
        {
            let (k, v) = row.map_err(|e| self.err(e))?;
            let (queue, seq) = k.value();
            if selection.queue.as_deref().is_some_and(|q| queue > q) {
                break;
            }
            let Ok(entry) = Entry::from_bytes(v.value()) else {
                continue;
            };
            if !selection.matches(queue, &entry) {
                continue;
            }
            if out.len() == limit {
                more = true;
                break;
            }
            out.push(Stored {
                queue: queue.to_string(),
                seq,
                entry,
            });
        }
        let next = match out.last() {
            Some(last) if more => Some((last.queue.clone(), last.seq)),
            _ => None,
        };
        Ok((out, next))
    }

    /// Moves the dead letters `selection` matches back into the outbox with their attempts
    /// reset and their ids unchanged (so a receiver that did get one deduplicates it).
    /// Returns them with their new keys.
    pub fn replay(&self, selection: &Selection) -> Result<Vec<Stored>, StoreError> {
        let chosen = self.list(Table::Dead, selection)?;
        if chosen.is_empty() {
            return Ok(chosen);
        }
        self.write(Durability::Immediate, |txn| {
            let mut meta = txn.open_table(META)?;
            let mut seq = meta.get(NEXT_SEQ)?.map(|v| v.value()).unwrap_or(1);
            let mut dead = txn.open_table(DEAD)?;
            let mut outbox = txn.open_table(OUTBOX)?;
            let mut moved = Vec::with_capacity(chosen.len());
            for s in chosen {
                dead.remove((s.queue.as_str(), s.seq))?;
                let mut entry = s.entry;
                entry.attempts = 0;
                entry.dead_us = None;
                entry.last_error = None;
                outbox.insert((s.queue.as_str(), seq), entry.to_bytes().as_slice())?;
                moved.push(Stored {
                    queue: s.queue,
                    seq,
                    entry,
                });
                seq += 1;
            }
            meta.insert(NEXT_SEQ, seq)?;
            Ok(moved)
        })
    }

    /// Deletes the dead letters `selection` matches. Returns how many.
    pub fn purge(&self, selection: &Selection) -> Result<usize, StoreError> {
        let chosen = self.list(Table::Dead, selection)?;
        self.write(Durability::Immediate, |txn| {
            let mut dead = txn.open_table(DEAD)?;
            for s in &chosen {
                dead.remove((s.queue.as_str(), s.seq))?;
            }
            Ok(chosen.len())
        })
    }

    /// Deletes the dead letters that died before `cutoff_us` (microseconds since the epoch),
    /// durably. Returns how many per queue. A dead letter that no longer parses, or has no
    /// time of death, is kept: `earshot dlq purge` decides about it.
    pub fn expire_dead(&self, cutoff_us: u64) -> Result<Vec<(String, u64)>, StoreError> {
        self.write(Durability::Immediate, |txn| {
            let mut dead = txn.open_table(DEAD)?;
            let mut doomed: Vec<(String, u64)> = Vec::new();
            for row in dead.iter()? {
                let (k, v) = row?;
                let (queue, seq) = k.value();
                let expired = Entry::from_bytes(v.value())
                    .ok()
                    .and_then(|e| e.dead_us)
                    .is_some_and(|t| t < cutoff_us);
                if expired {
                    doomed.push((queue.to_string(), seq));
                }
            }
            let mut per_queue: Vec<(String, u64)> = Vec::new();
            for (queue, seq) in doomed {
                dead.remove((queue.as_str(), seq))?;
                match per_queue.iter_mut().find(|(q, _)| *q == queue) {
                    Some((_, n)) => *n += 1,
                    None => per_queue.push((queue, 1)),
                }
            }
            Ok(per_queue)
        })
    }

    /// Rewrites the file without its free space (redb reuses freed pages but never gives
    /// them back to the file system). Holds the store exclusively while it runs, so it is done
    /// at start, before anything else uses the store. Returns whether anything was reclaimed.
    pub fn compact(&self) -> Result<bool, StoreError> {
        let mut guard = self.db.write().unwrap_or_else(|e| e.into_inner());
        let db = guard.as_mut().ok_or_else(|| self.closed())?;
        db.compact().map_err(|e| self.err(e))
    }

    /// Saves `value` under `name` in the state table, replacing what was there. Not synced on
    /// its own: the next durable commit or flush (at most a fraction of a second away while
    /// earshot runs) makes it durable.
    pub fn save_state(&self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        self.write(Durability::None, |txn| {
            txn.open_table(STATE)?.insert(name, value)?;
            Ok(())
        })
    }

    /// What was saved under `name`, if anything.
    pub fn load_state(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let guard = self.db()?;
        let txn = self.opened(&guard)?.begin_read().map_err(|e| self.err(e))?;
        let t = txn.open_table(STATE).map_err(|e| self.err(e))?;
        let value = t.get(name).map_err(|e| self.err(e))?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    /// What `queue` keeps under each of `keys` in the case table (opaque JSON), in the order
    /// of `keys`.
    pub fn cases(&self, queue: &str, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let guard = self.db()?;
        let txn = self.opened(&guard)?.begin_read().map_err(|e| self.err(e))?;
        let t = txn.open_table(CASES).map_err(|e| self.err(e))?;
        keys.iter()
            .map(|&k| {
                let v = t.get((queue, k)).map_err(|e| self.err(e))?;
                Ok(v.map(|v| v.value().to_vec()))
            })
            .collect()
    }

    /// Keeps `value` under each of `keys` of `queue` in the case table. Not synced on its own,
    /// like an ack: a crash that loses it only makes the next mention of the thread a new
    /// ticket.
    pub fn record_case(&self, queue: &str, keys: &[&str], value: &[u8]) -> Result<(), StoreError> {
        self.write(Durability::None, |txn| {
            let mut t = txn.open_table(CASES)?;
            for &k in keys {
                t.insert((queue, k), value)?;
            }
            Ok(())
        })
    }

    /// Removes the case keys of `queue` for which `stale` says so (given the stored value);
    /// returns how many went.
    pub fn prune_cases(
        &self,
        queue: &str,
        stale: &dyn Fn(&[u8]) -> bool,
    ) -> Result<u64, StoreError> {
        self.write(Durability::None, |txn| {
            let mut t = txn.open_table(CASES)?;
            let mut gone = 0u64;
            // Keys are ASCII (`post:…`, `author:…`): the range holds all of this queue's.
            t.retain_in((queue, "")..(queue, "\u{10FFFF}"), |_, v| {
                let old = stale(v);
                gone += u64::from(old);
                !old
            })?;
            Ok(gone)
        })
    }

    /// The held mentions of `queue` (opaque JSON), in key order.
    pub fn held(&self, queue: &str) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let guard = self.db()?;
        let txn = self.opened(&guard)?.begin_read().map_err(|e| self.err(e))?;
        let t = txn.open_table(HELD).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in t
            .range((queue, 0)..=(queue, u64::MAX))
            .map_err(|e| self.err(e))?
        {
            let (k, v) = row.map_err(|e| self.err(e))?;
            out.push((k.value().1, v.value().to_vec()));
        }
        Ok(out)
    }
}

fn open_db(path: &Path, opener: &Opener) -> Result<Database, StoreError> {
    match opener(path) {
        Ok(db) => Ok(db),
        Err(redb::DatabaseError::DatabaseAlreadyOpen) => Err(StoreError::InUse {
            path: path.to_path_buf(),
        }),
        Err(e) if path.metadata().is_ok_and(|m| m.len() > 0) => Err(StoreError::Unreadable {
            path: path.to_path_buf(),
            source: Box::new(e.into()),
        }),
        Err(e) => Err(db_error(path, e)),
    }
}

fn db_error(path: &Path, e: impl Into<redb::Error>) -> StoreError {
    StoreError::Db {
        path: path.to_path_buf(),
        source: Box::new(e.into()),
    }
}

fn encode_position(p: Position) -> (u8, u64) {
    match p {
        Position::Cursor(n) => (1, n),
        Position::Offset(n) => (2, n),
    }
}

fn decode_position((kind, n): (u8, u64)) -> Option<Position> {
    match kind {
        1 => Some(Position::Cursor(n)),
        2 => Some(Position::Offset(n)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::value::RawValue;

    use super::*;
    use crate::outbox::entry::Event;

    fn entry(id: &str) -> Entry {
        let data = RawValue::from_string(format!(r#"{{"mention_id":"{id}"}}"#)).unwrap();
        Entry::new(id.into(), Event::MentionCreated, data, 1)
    }

    fn ids(v: &[Stored]) -> Vec<&str> {
        v.iter().map(|s| s.entry.id.as_str()).collect()
    }

    #[test]
    fn a_full_disk_breaks_writes_until_there_is_room_then_the_store_reopens_and_keeps_all() {
        use std::sync::Arc;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.redb");
        let full = Arc::new(AtomicBool::new(false));
        let store =
            Store::open_with(&path, crate::fault::FaultyDisk::opener(full.clone())).unwrap();
        store
            .commit(&Commit {
                entries: vec![("a", entry("before"))],
                positions: vec![("src", Position::Offset(10))],
                ..Commit::default()
            })
            .unwrap();
        assert!(store.writable());
        full.store(true, Ordering::Relaxed);
        let during = Commit {
            entries: vec![("a", entry("during"))],
            positions: vec![("src", Position::Offset(20))],
            ..Commit::default()
        };
        let err = store.commit(&during).unwrap_err();
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        assert!(!store.writable());
        // Still full: the retry fails too, and nothing of it is half written.
        std::thread::sleep(REOPEN_EVERY);
        assert!(store.commit(&during).is_err());
        assert!(!store.writable());
        // Room again: the store reopens its file before the next write, which goes through.
        full.store(false, Ordering::Relaxed);
        std::thread::sleep(REOPEN_EVERY);
        store.commit(&during).unwrap();
        assert!(store.writable());
        let (a, _) = store.read(Table::Outbox, "a", 0, 10).unwrap();
        assert_eq!(ids(&a), ["before", "during"]);
        assert_eq!(
            store.positions().unwrap(),
            vec![("src".to_string(), Position::Offset(20))]
        );
    }

    #[test]
    fn old_dead_letters_expire_and_compaction_gives_the_space_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.redb");
        let store = Store::open(&path).unwrap();
        let big = "x".repeat(2000);
        let entries: Vec<(&str, Entry)> = (0..3000)
            .map(|i| {
                let data =
                    RawValue::from_string(format!(r#"{{"mention_id":"m{i}","pad":"{big}"}}"#))
                        .unwrap();
                (
                    if i % 2 == 0 { "a" } else { "b" },
                    Entry::new(format!("m{i}"), Event::MentionCreated, data, 1),
                )
            })
            .collect();
        let (keys, _) = store
            .commit(&Commit {
                entries,
                ..Commit::default()
            })
            .unwrap();
        // Everything dies now.
        let (a, _) = store.read(Table::Outbox, "a", 0, 5000).unwrap();
        let (b, _) = store.read(Table::Outbox, "b", 0, 5000).unwrap();
        for (queue, list) in [("a", a), ("b", b)] {
            let items: Vec<(u64, Option<&Entry>)> =
                list.iter().map(|s| (s.seq, Some(&s.entry))).collect();
            store.bury(queue, &items).unwrap();
        }
        assert_eq!(keys.len(), 3000);
        let cutoff = now_us() + 1;
        assert!(
            store.expire_dead(0).unwrap().is_empty(),
            "nothing died before the epoch"
        );
        let expired = store.expire_dead(cutoff).unwrap();
        let total: u64 = expired.iter().map(|(_, n)| n).sum();
        assert_eq!(total, 3000);
        assert_eq!(store.count(Table::Dead, "a").unwrap(), 0);
        store.flush().unwrap();
        let before = std::fs::metadata(&path).unwrap().len();
        assert!(store.compact().unwrap(), "there was space to reclaim");
        let after = std::fs::metadata(&path).unwrap().len();
        assert!(after < before / 2, "{before} → {after} bytes");
        // The store works on after the compaction.
        store
            .commit(&Commit {
                entries: vec![("a", entry("fresh"))],
                ..Commit::default()
            })
            .unwrap();
        assert_eq!(store.count(Table::Outbox, "a").unwrap(), 1);
    }

    #[test]
    fn a_damaged_file_is_refused_with_its_name_and_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.redb");
        {
            let store = Store::open(&path).unwrap();
            store
                .commit(&Commit {
                    entries: vec![("a", entry("m1"))],
                    ..Commit::default()
                })
                .unwrap();
        }
        let len = std::fs::metadata(&path).unwrap().len();
        for damage in ["truncated", "garbage"] {
            match damage {
                "truncated" => {
                    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
                    f.set_len(len / 3).unwrap();
                }
                _ => std::fs::write(&path, vec![0x5a; 8192]).unwrap(),
            }
            let err = Store::open(&path).unwrap_err();
            let text = err.to_string();
            assert!(
                matches!(err, StoreError::Unreadable { .. }),
                "{damage}: {text}"
            );
            assert!(text.contains(&path.display().to_string()), "{text}");
            assert!(text.contains("move it aside"), "{text}");
            // The damaged file is left as it was, for whoever looks at it.
            assert!(std::fs::metadata(&path).unwrap().len() > 0);
        }
    }

    #[test]
    fn state_is_kept_by_name_across_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.redb");
        {
            let store = Store::open(&path).unwrap();
            assert_eq!(store.load_state("spikes").unwrap(), None);
            store.save_state("spikes", b"one").unwrap();
            store.save_state("spikes", b"two").unwrap();
            store.save_state("other", b"x").unwrap();
            store.flush().unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(
            store.load_state("spikes").unwrap().as_deref(),
            Some(&b"two"[..])
        );
        assert_eq!(
            store.load_state("other").unwrap().as_deref(),
            Some(&b"x"[..])
        );
    }

    #[test]
    fn entries_positions_ack_bury_replay_purge_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/outbox.redb");
        {
            let store = Store::open(&path).unwrap();
            let (keys, _) = store
                .commit(&Commit {
                    entries: vec![("a", entry("m1")), ("b", entry("m2")), ("a", entry("m3"))],
                    positions: vec![("bluesky", Position::Cursor(42))],
                    ..Commit::default()
                })
                .unwrap();
            assert_eq!(keys, vec![1, 2, 3]);
            let (a, broken) = store.read(Table::Outbox, "a", 0, 10).unwrap();
            assert_eq!(ids(&a), ["m1", "m3"]);
            assert!(broken.is_empty());
            let (after, _) = store.read(Table::Outbox, "a", 1, 10).unwrap();
            assert_eq!(ids(&after), ["m3"]);
            store.ack("a", &[1]).unwrap();
            let mut e3 = a[1].entry.clone();
            e3.attempts = 8;
            e3.last_error = Some("HTTP 500".into());
            store.bury("a", &[(3, Some(&e3))]).unwrap();
            assert_eq!(store.count(Table::Outbox, "a").unwrap(), 0);
            assert_eq!(store.count(Table::Dead, "a").unwrap(), 1);
            store.flush().unwrap();
            // Acks and burials survive a reopen; positions too.
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(
            store.positions().unwrap(),
            vec![("bluesky".to_string(), Position::Cursor(42))]
        );
        let dead = store.list(Table::Dead, &Selection::default()).unwrap();
        assert_eq!(ids(&dead), ["m3"]);
        assert_eq!(dead[0].entry.attempts, 8);
        assert!(dead[0].entry.dead_us.is_some());
        let replayed = store.replay(&Selection::default()).unwrap();
        assert_eq!(ids(&replayed), ["m3"]);
        assert_eq!(
            replayed[0].seq, 4,
            "a replay gets a fresh key after the others"
        );
        assert_eq!(replayed[0].entry.attempts, 0);
        let (a, _) = store.read(Table::Outbox, "a", 0, 10).unwrap();
        assert_eq!(ids(&a), ["m3"]);
        store.bury("a", &[(4, Some(&a[0].entry))]).unwrap();
        let only_b = Selection {
            queue: Some("b".into()),
            ..Selection::default()
        };
        assert_eq!(store.purge(&only_b).unwrap(), 0);
        let by_id = Selection {
            ids: vec!["m3".into()],
            ..Selection::default()
        };
        assert_eq!(store.purge(&by_id).unwrap(), 1);
        assert_eq!(store.count(Table::Dead, "a").unwrap(), 0);
    }

    #[test]
    fn a_second_open_is_refused_as_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.redb");
        let _first = Store::open(&path).unwrap();
        match Store::open(&path) {
            Err(StoreError::InUse { .. }) => {}
            other => panic!("expected InUse, got {other:?}"),
        }
    }

    #[test]
    fn held_mentions_are_released_with_their_digest() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("o.redb")).unwrap();
        let (_, held) = store
            .commit(&Commit {
                held: vec![("a", b"{\"x\":1}".to_vec()), ("a", b"{\"x\":2}".to_vec())],
                ..Commit::default()
            })
            .unwrap();
        assert_eq!(store.held("a").unwrap().len(), 2);
        store
            .commit(&Commit {
                entries: vec![("a", entry("d_1"))],
                release: held.iter().map(|&k| ("a", k)).collect(),
                ..Commit::default()
            })
            .unwrap();
        assert!(store.held("a").unwrap().is_empty());
        assert_eq!(store.count(Table::Outbox, "a").unwrap(), 1);
    }

    #[test]
    fn dead_letters_are_listed_a_page_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("outbox.redb")).unwrap();
        let mut all = Vec::new();
        for (queue, n) in [("alpha", 3), ("beta", 4)] {
            let names: Vec<String> = (0..n).map(|i| format!("{queue}{i}")).collect();
            let (keys, _) = store
                .commit(&Commit {
                    entries: names.iter().map(|id| (queue, entry(id))).collect(),
                    ..Commit::default()
                })
                .unwrap();
            let (stored, _) = store.read(Table::Outbox, queue, 0, 10).unwrap();
            let items: Vec<_> = keys
                .iter()
                .zip(&stored)
                .map(|(k, s)| (*k, Some(&s.entry)))
                .collect();
            store.bury(queue, &items).unwrap();
            all.extend(names);
        }
        let pages = |selection: &Selection, limit: usize| {
            let mut pages = Vec::new();
            let mut after: Option<(String, u64)> = None;
            loop {
                let (page, next) = store
                    .list_page(
                        Table::Dead,
                        selection,
                        after.as_ref().map(|(q, s)| (q.as_str(), *s)),
                        limit,
                    )
                    .unwrap();
                assert!(page.len() <= limit);
                pages.push(ids(&page).join(","));
                match next {
                    Some(n) => after = Some(n),
                    None => return pages,
                }
            }
        };
        assert_eq!(
            pages(&Selection::default(), 3),
            ["alpha0,alpha1,alpha2", "beta0,beta1,beta2", "beta3"]
        );
        // A last page that is exactly full says so: no empty page follows.
        assert_eq!(pages(&Selection::default(), 7).len(), 1);
        let beta = Selection {
            queue: Some("beta".into()),
            ids: Vec::new(),
        };
        assert_eq!(pages(&beta, 2), ["beta0,beta1", "beta2,beta3"]);
        let chosen = Selection {
            queue: None,
            ids: vec!["alpha1".into(), "beta2".into()],
        };
        assert_eq!(pages(&chosen, 1), ["alpha1", "beta2"]);
        let listed = ids(&store.list(Table::Dead, &Selection::default()).unwrap()).join(",");
        assert_eq!(
            listed,
            all.join(","),
            "the pages together are the whole list"
        );
    }
}
