//! The durable outbox: every routed mention is on disk before its source position is
//! checkpointed, and stays there until its queue has delivered it.
//!
//! Data flow: workers send one [`writer::Routed`] per batch (its mentions, its source, its
//! number and position) to the outbox writer thread. The writer runs noise control per queue
//! ([`crate::noise`]), writes the mentions to deliver, the ones held for a digest, and
//! the source positions that are now safe in one durable commit ([`store::Store::commit`]),
//! then wakes the queues' dispatchers ([`crate::sink::dispatch`]), which read their entries
//! back from the store, deliver them, and remove them.
//!
//! Guarantees:
//! - A position is checkpointed only after every batch of that source up to it has been
//!   committed ([`checkpoint`]), so a restart from the checkpoint never skips a mention.
//! - A crash after a commit and before delivery loses nothing: the entry is still there after
//!   the restart, with the same id.
//! - A crash after a delivery and before its ack repeats that delivery with the same
//!   `webhook-id` (at-least-once; receivers deduplicate on the id).
//! - The outbox is bounded ([`OutboxSettings::max_entries`]): past it, the writer waits, the
//!   workers wait behind it, and the sources stop reading. Nothing is dropped.

pub mod checkpoint;
pub mod deletes;
pub mod entry;
pub mod queue;
pub mod store;
pub mod writer;

use std::path::PathBuf;

use serde::Deserialize;

/// `[outbox]`: where the outbox lives and how big it may grow.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxSettings {
    /// The store file (relative paths: to the config file's folder). It also holds the
    /// sources' checkpointed positions, so a restart resumes where the last run left off.
    pub path: PathBuf,
    /// Entries waiting across all queues before the pipeline pushes back on the sources.
    /// One million entries is about 2 GB of disk at typical mention sizes: hours of a
    /// busy brand's mentions while an endpoint is down.
    pub max_entries: u64,
    /// Dead letters older than this are deleted (checked at start and every hour), and the
    /// file is compacted at start, so a store nobody looks after does not grow for ever.
    /// `"0"`: keep them until `earshot dlq purge`.
    #[serde(with = "crate::duration")]
    pub dead_letter_ttl: std::time::Duration,
    /// How long a routed mention is remembered for deletes of its post ([`deletes`]): a
    /// delete that comes later finds nothing to retract.
    #[serde(with = "crate::duration")]
    pub deletes_keep: std::time::Duration,
}

impl Default for OutboxSettings {
    fn default() -> Self {
        Self {
            path: PathBuf::from("earshot-state/outbox.redb"),
            max_entries: 1_000_000,
            dead_letter_ttl: std::time::Duration::from_secs(30 * 24 * 3600),
            deletes_keep: std::time::Duration::from_secs(30 * 24 * 3600),
        }
    }
}
