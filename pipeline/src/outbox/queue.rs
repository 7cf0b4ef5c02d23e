//! What the outbox writer, a queue's dispatcher and the admin server share about one queue:
//! its wake-up, its depth and dead-letter counts (exported as gauges), and the flags that
//! close, stop, re-enable or mark it disabled. It lives with the outbox because the writer
//! fills the queue and the dispatcher ([`crate::sink::dispatch`]) empties it; both sides of
//! the delivery subsystem see one value.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

use super::store::{Store, Table};
use crate::metrics::{QUEUE_DEAD_LETTERS, QUEUE_DEPTH};

/// What the writer, the dispatcher and the admin server share about one queue.
#[derive(Debug, Default)]
pub struct QueueShared {
    /// Queue id.
    pub id: String,
    /// Woken when new entries are in the store (a commit, a replay).
    pub notify: Notify,
    /// Entries in the outbox (kept by the writer and the dispatcher; exported as a gauge).
    pub depth: AtomicU64,
    /// Entries in the dead-letter store.
    pub dead: AtomicU64,
    /// No new entries will come (the writer has finished): deliver what is left, then stop.
    pub closed: AtomicBool,
    /// Stop now, leaving what is undelivered in the store (the drain deadline passed).
    pub stop: AtomicBool,
    /// A replay asked a disabled queue to deliver again.
    pub reenable: AtomicBool,
    /// 1 while disabled (for `/readyz` and the admin API).
    pub disabled: AtomicBool,
    /// The endpoint or its token endpoint refuses the queue's credentials: its entries wait
    /// (for `/readyz`). A flag beside [`QueueShared::refusal`] so that every delivery can
    /// check it without taking a lock.
    pub credentials_refused: AtomicBool,
    /// How they were last refused (a status and an OAuth error code, never a secret).
    pub refusal: std::sync::Mutex<String>,
    /// Mentions whose post was deleted, told by the writer as it writes their
    /// `mention.deleted` entries: the dispatcher drops them if they are still waiting.
    pub retracted: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl QueueShared {
    /// Shared state of queue `id`, with the counts found in `store`.
    pub fn new(id: &str, store: &Store) -> Arc<Self> {
        let s = Self {
            id: id.to_string(),
            ..Self::default()
        };
        s.depth.store(
            store.count(Table::Outbox, id).unwrap_or(0),
            Ordering::Relaxed,
        );
        s.dead
            .store(store.count(Table::Dead, id).unwrap_or(0), Ordering::Relaxed);
        let s = Arc::new(s);
        s.export();
        s
    }

    /// Records how the queue's credentials were last refused.
    pub fn set_refusal(&self, detail: &str) {
        let mut r = self.refusal.lock().unwrap_or_else(|p| p.into_inner());
        detail.clone_into(&mut r);
    }

    /// How the queue's credentials were last refused, while they are.
    pub fn refused(&self) -> Option<String> {
        self.credentials_refused.load(Ordering::Relaxed).then(|| {
            self.refusal
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
        })
    }

    /// Says that `mention_id`'s post was deleted.
    pub fn retract(&self, mention_id: &str) {
        self.retracted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(mention_id.to_string());
    }

    /// Whether `mention_id`'s post was deleted.
    pub fn is_retracted(&self, mention_id: &str) -> bool {
        self.retracted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(mention_id)
    }

    /// Forgets a retraction once its `mention.deleted` entry is done.
    pub fn forget_retraction(&self, mention_id: &str) {
        self.retracted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(mention_id);
    }

    /// Publishes the depth and dead-letter gauges.
    pub fn export(&self) {
        let q = self.id.clone();
        metrics::gauge!(QUEUE_DEPTH, "queue" => q.clone())
            .set(self.depth.load(Ordering::Relaxed) as f64);
        metrics::gauge!(QUEUE_DEAD_LETTERS, "queue" => q)
            .set(self.dead.load(Ordering::Relaxed) as f64);
    }

    /// Asks the dispatcher to stop now.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        self.notify.notify_one();
    }

    pub(crate) fn sub_depth(&self, n: u64) {
        let _ = self
            .depth
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |d| {
                Some(d.saturating_sub(n))
            });
    }
}
