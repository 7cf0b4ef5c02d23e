//! The dead-letter store's operations, shared by `earshot dlq` and the admin server:
//! list, replay (back into the outbox, same ids, attempts reset) and purge.
//!
//! `earshot dlq` opens the outbox file itself when no earshot is running; when one is, the file
//! is locked, and the command goes through that process's admin server instead
//! (`GET /dlq`, `POST /dlq/replay`, `POST /dlq/purge`), so a replay reaches the running
//! dispatchers at once. Both paths call the functions below.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::outbox::queue::QueueShared;
use crate::outbox::store::{Selection, Store, StoreError, Stored, Table};
use crate::timestamp::rfc3339_millis;

/// Which dead letters a command applies to, as the CLI and the admin API take it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Filter {
    /// Only this queue.
    pub queue: Option<String>,
    /// Only these ids (`webhook-id`s).
    pub ids: Vec<String>,
    /// Purge: every dead letter the other fields match, even when they name nothing (a purge
    /// without a queue, ids or this is refused: it would delete every dead letter).
    pub all: bool,
}

impl Filter {
    fn selection(&self) -> Selection {
        Selection {
            queue: self.queue.clone(),
            ids: self.ids.clone(),
        }
    }
}

/// One dead letter as `earshot dlq list --json` and `GET /dlq` show it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Queue id.
    pub queue: String,
    /// The `webhook-id`.
    pub id: String,
    /// Event type.
    pub event: String,
    /// Attempts made.
    pub attempts: u32,
    /// What the last attempt ended with.
    pub last_error: Option<String>,
    /// When it was received (RFC 3339).
    pub received_at: String,
    /// When it was given up (RFC 3339).
    pub dead_at: Option<String>,
    /// The payload data.
    pub data: serde_json::Value,
}

fn at(us: u64) -> String {
    rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_micros(us))
}

impl From<Stored> for DeadLetter {
    fn from(s: Stored) -> Self {
        Self {
            queue: s.queue,
            id: s.entry.id,
            event: s.entry.event.as_str().to_string(),
            attempts: s.entry.attempts,
            last_error: s.entry.last_error,
            received_at: at(s.entry.received_us),
            dead_at: s.entry.dead_us.map(at),
            data: serde_json::from_str(s.entry.data.get()).unwrap_or(serde_json::Value::Null),
        }
    }
}

/// The dead letters `filter` matches.
pub fn list(store: &Store, filter: &Filter) -> Result<Vec<DeadLetter>, StoreError> {
    store
        .list(Table::Dead, &filter.selection())
        .map(|v| v.into_iter().map(DeadLetter::from).collect())
}

/// One page of dead letters, as `GET /dlq` answers it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Page {
    /// The letters of this page, in queue and store order.
    pub letters: Vec<DeadLetter>,
    /// Where the next page starts (`?after=`); `None` on the last page.
    pub next: Option<String>,
}

/// The most letters one page holds, whatever a caller asks for: one answer stays a few
/// megabytes at most.
pub const MAX_PAGE: usize = 1000;

/// A `?after=` cursor that is not one this server wrote.
#[derive(Debug, thiserror::Error)]
#[error("cursor `{0}` is not valid: pass the `next` value of the previous page")]
pub struct BadCursor(String);

/// The position after which a page starts: `<queue>:<key>`. Queue ids have no `:`.
fn parse_cursor(cursor: &str) -> Result<(&str, u64), BadCursor> {
    cursor
        .rsplit_once(':')
        .and_then(|(q, seq)| Some((q, seq.parse().ok()?)))
        .filter(|(q, _)| !q.is_empty())
        .ok_or_else(|| BadCursor(cursor.chars().take(64).collect()))
}

/// Up to `limit` (at most [`MAX_PAGE`]) dead letters `filter` matches, after `after` (the
/// `next` of the previous page).
pub fn list_page(
    store: &Store,
    filter: &Filter,
    after: Option<&str>,
    limit: usize,
) -> Result<Result<Page, BadCursor>, StoreError> {
    let after = match after.map(parse_cursor).transpose() {
        Ok(after) => after,
        Err(e) => return Ok(Err(e)),
    };
    let limit = limit.clamp(1, MAX_PAGE);
    let (stored, next) = store.list_page(Table::Dead, &filter.selection(), after, limit)?;
    Ok(Ok(Page {
        letters: stored.into_iter().map(DeadLetter::from).collect(),
        next: next.map(|(queue, seq)| format!("{queue}:{seq}")),
    }))
}

/// Moves the dead letters `filter` matches back into the outbox. With the running queues
/// (`live`), their counts follow, a disabled queue among them is enabled again and their
/// dispatchers are woken. Returns how many moved.
pub fn replay(
    store: &Store,
    filter: &Filter,
    live: &[Arc<QueueShared>],
) -> Result<usize, StoreError> {
    let moved = store.replay(&filter.selection())?;
    for q in live {
        let n = moved.iter().filter(|s| s.queue == q.id).count() as u64;
        if n == 0 {
            continue;
        }
        q.depth.fetch_add(n, Ordering::Relaxed);
        let _ = q
            .dead
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |d| {
                Some(d.saturating_sub(n))
            });
        q.reenable.store(true, Ordering::Relaxed);
        q.export();
        q.notify.notify_one();
    }
    Ok(moved.len())
}

/// Why a purge did not happen.
#[derive(Debug, thiserror::Error)]
pub enum PurgeError {
    /// No queue, no ids and not `all`.
    #[error("a purge deletes dead letters for good: name a queue, ids, or all")]
    Unfiltered,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Deletes the dead letters `filter` matches. Returns how many.
pub fn purge(
    store: &Store,
    filter: &Filter,
    live: &[Arc<QueueShared>],
) -> Result<usize, PurgeError> {
    if !filter.all && filter.queue.is_none() && filter.ids.is_empty() {
        return Err(PurgeError::Unfiltered);
    }
    let n = store.purge(&filter.selection())?;
    for q in live {
        q.dead.store(
            store.count(Table::Dead, &q.id).unwrap_or(0),
            Ordering::Relaxed,
        );
        q.export();
    }
    Ok(n)
}
