//! Where a queue's dispatcher reads its entries from and records what became of them: the
//! local outbox ([`Store`]) of a single node, or a stream of the cluster
//! ([`crate::cluster::deliver`]).
//!
//! The dispatcher needs four things of its store, whichever it is: the entries after a key in
//! write order (and the keys of entries that no longer parse), removal of delivered ones, a
//! move to the dead letters, and a place to note an attempt. Everything else about delivery
//! (the schedule, the breaker, ordering, concurrency) stays in one place for both.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::outbox::entry::Entry;
use crate::outbox::store::{Store, StoreError, Stored, Table};

/// A future a backing returns.
pub type BackingFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, BackingError>> + Send + 'a>>;

/// Why a backing operation failed; the dispatcher logs it and tries again later.
#[derive(Debug, thiserror::Error)]
pub enum BackingError {
    /// The local outbox.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The cluster's stream.
    #[error("stream: {0}")]
    Stream(String),
}

/// Entries read: the ones that parse, in key order, and the keys of those that do not.
pub type Read = (Vec<Stored>, Vec<u64>);

/// The store behind one queue's dispatcher.
pub trait QueueBacking: Send + Sync {
    /// Up to `limit` entries of `queue` with keys above `after`, in key order.
    fn read<'a>(&'a self, queue: &'a str, after: u64, limit: usize) -> BackingFuture<'a, Read>;
    /// Removes delivered entries.
    fn ack<'a>(&'a self, queue: &'a str, seqs: &'a [u64]) -> BackingFuture<'a, ()>;
    /// Moves entries to the dead letters (`None`: an entry that no longer parses).
    fn bury<'a>(
        &'a self,
        queue: &'a str,
        items: &'a [(u64, Option<&'a Entry>)],
    ) -> BackingFuture<'a, ()>;
    /// Records an attempt on an entry that stays (its count and last error).
    fn update<'a>(&'a self, queue: &'a str, seq: u64, entry: &'a Entry) -> BackingFuture<'a, ()>;
    /// The cases ([`super::cases`]) stored under `keys` of `queue` (their stored form), in
    /// the order of `keys`.
    fn cases<'a>(
        &'a self,
        queue: &'a str,
        keys: &'a [&'a str],
    ) -> BackingFuture<'a, Vec<Option<Vec<u8>>>>;
    /// Keeps a case (its stored form) under each of `keys` of `queue`.
    fn record_case<'a>(
        &'a self,
        queue: &'a str,
        keys: &'a [&'a str],
        case: &'a [u8],
    ) -> BackingFuture<'a, ()>;
    /// Forgets the cases of `queue` older than `keep` at `now_us`; how many went.
    fn prune_cases<'a>(
        &'a self,
        queue: &'a str,
        now_us: u64,
        keep: std::time::Duration,
    ) -> BackingFuture<'a, u64>;
}

/// The local outbox of a single node.
pub struct Local(pub Arc<Store>);

impl QueueBacking for Local {
    fn read<'a>(&'a self, queue: &'a str, after: u64, limit: usize) -> BackingFuture<'a, Read> {
        Box::pin(async move { Ok(self.0.read(Table::Outbox, queue, after, limit)?) })
    }

    fn ack<'a>(&'a self, queue: &'a str, seqs: &'a [u64]) -> BackingFuture<'a, ()> {
        Box::pin(async move { Ok(self.0.ack(queue, seqs)?) })
    }

    fn bury<'a>(
        &'a self,
        queue: &'a str,
        items: &'a [(u64, Option<&'a Entry>)],
    ) -> BackingFuture<'a, ()> {
        Box::pin(async move { Ok(self.0.bury(queue, items)?) })
    }

    fn update<'a>(&'a self, queue: &'a str, seq: u64, entry: &'a Entry) -> BackingFuture<'a, ()> {
        Box::pin(async move { Ok(self.0.update(queue, seq, entry)?) })
    }

    fn cases<'a>(
        &'a self,
        queue: &'a str,
        keys: &'a [&'a str],
    ) -> BackingFuture<'a, Vec<Option<Vec<u8>>>> {
        Box::pin(async move { Ok(self.0.cases(queue, keys)?) })
    }

    fn record_case<'a>(
        &'a self,
        queue: &'a str,
        keys: &'a [&'a str],
        case: &'a [u8],
    ) -> BackingFuture<'a, ()> {
        Box::pin(async move { Ok(self.0.record_case(queue, keys, case)?) })
    }

    fn prune_cases<'a>(
        &'a self,
        queue: &'a str,
        now_us: u64,
        keep: std::time::Duration,
    ) -> BackingFuture<'a, u64> {
        Box::pin(async move {
            Ok(self
                .0
                .prune_cases(queue, &|v| super::cases::stale(v, now_us, keep))?)
        })
    }
}
