//! The outbox writer: one thread that turns the workers' routed mentions into durable outbox
//! entries, applies noise control, and checkpoints source positions.
//!
//! Input → output: [`Routed`] batches on a bounded channel → group commits to the
//! [`Store`] (entries to deliver, mentions held for a digest, digests that are due, positions
//! that became safe) → a wake-up for each queue's dispatcher.
//!
//! Why one thread: noise control needs one view of each queue (a repost on one worker must
//! collapse onto an original seen by another), and the store takes one writer at a time
//! anyway. The work here is per routed mention, not per post, and one commit covers every
//! batch that arrived while the previous one was being synced, so the fsync cost is shared
//! by all of them.
//!
//! Failure: a commit that fails (disk full, I/O error) is retried with the same contents,
//! after a pause that doubles up to 5 s; the store reopens its file before the retry (see
//! [`super::store`]), so the commit goes through as soon as there is room again. Meanwhile the
//! workers wait behind the bounded channel, no position advances, `/readyz` names the failure
//! and `earshot_outbox_writable` is 0.
//!
//! Shutdown: once it is signalled the writer no longer waits for room in a full outbox. What
//! the workers still hand over is bounded by the channels in front of it, and committing it is
//! the only way to keep it without holding shutdown up for as long as the endpoint is down.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use serde_json::value::RawValue;
use tracing::{debug, error, info, warn};

use super::checkpoint::Checkpoints;
use super::deletes::RoutedIndex;
use super::entry::DeletedPost;
use super::entry::{now_us, Entry, Event};
use super::store::{Commit, Retracted, RoutedPost, Store};
use crate::health::Handle;
use crate::mention::Mention;
use crate::metrics::{
    DELETED_POSTS, NOISE_DIGESTS, NOISE_HELD, OUTBOX_COMMITS, OUTBOX_ERRORS, OUTBOX_WRITABLE,
};
use crate::noise::{Digest, Held, NoiseConfig, NoiseGate, Verdict};
use crate::outbox::queue::QueueShared;
use crate::shutdown::Shutdown;
use crate::source::batch::Position;

/// What a worker hands over for one batch: always sent, even without mentions, so the
/// batch's position can be checkpointed.
#[derive(Debug)]
pub struct Routed {
    /// Source index.
    pub source: u16,
    /// The batch's number within its source (0: unnumbered, never checkpointed).
    pub seq: u64,
    /// Where the source resumes after this batch.
    pub position: Option<Position>,
    /// Mentions routed to at least one queue.
    pub mentions: Vec<Arc<Mention>>,
    /// Spike events for their queues (sent by the spike monitor, with `seq` 0).
    pub spikes: Vec<SpikeOut>,
    /// Thread keys of routed posts whose authors deleted them ([`super::deletes`]).
    pub deleted: Vec<String>,
}

impl Routed {
    /// A worker's batch: its mentions and where its source resumes after it.
    pub fn batch(
        source: u16,
        seq: u64,
        position: Option<Position>,
        mentions: Vec<Arc<Mention>>,
    ) -> Self {
        Self {
            source,
            seq,
            position,
            mentions,
            spikes: Vec::new(),
            deleted: Vec::new(),
        }
    }
}

/// A spike event on its way to the queues that take spike events. Noise control does not
/// apply: each event is one message per spike phase, already rare by construction.
#[derive(Debug, Clone)]
pub struct SpikeOut {
    /// The event's id (`{spike_id}.started`, …): its `webhook-id`.
    pub id: String,
    /// `spike.started`, `spike.updated` or `spike.ended`.
    pub event: Event,
    /// The spike document.
    pub data: Box<RawValue>,
    /// Queue ids to deliver it to.
    pub queues: Vec<String>,
}

/// One queue as the writer sees it.
pub struct WriterQueue {
    /// Shared with the dispatcher.
    pub shared: Arc<QueueShared>,
    /// Noise control settings.
    pub noise: NoiseConfig,
}

struct QueueState {
    shared: Arc<QueueShared>,
    gate: NoiseGate,
    digest_every: Duration,
    /// Held mentions not yet in a digest: their keys in the store and themselves.
    held: Vec<(u64, Held)>,
}

/// The writer, built before its thread starts.
pub struct Writer {
    store: Arc<Store>,
    queues: Vec<QueueState>,
    index: HashMap<String, usize>,
    sources: Vec<String>,
    checkpoints: Checkpoints,
    max_entries: u64,
    /// Since when the outbox has been full, while it is.
    full_since: Option<Instant>,
    /// Posts routed lately, shared with the workers (`None`: deletes are not followed).
    routed_posts: Option<Arc<RoutedIndex>>,
    /// How long routed posts are kept for deletes.
    deletes_keep: Duration,
    /// Deletes whose mention was not in the store yet (its commit may come after the
    /// delete's, from another worker): tried again with each commit for a minute.
    waiting_deletes: Vec<(String, Instant)>,
    /// When routed posts past `deletes_keep` were last forgotten.
    last_prune: Instant,
}

/// How long a delete waits for the commit of the mention it deletes.
const DELETE_WAIT: Duration = Duration::from_secs(60);
/// Most deletes waiting at once; past it the newest are given up.
const MAX_WAITING_DELETES: usize = 10_000;
/// How often routed posts past `deletes_keep` are forgotten.
const PRUNE_ROUTED_EVERY: Duration = Duration::from_secs(3600);

/// How long the writer waits for work before it looks at digests and flushes acks.
const TICK: Duration = Duration::from_millis(100);
/// How often acks (non-durable) are made durable: the acks of at most this much delivery are
/// lost to a crash and delivered again (with the same ids). Five fsyncs a second cost
/// nothing next to one per delivery.
const FLUSH_EVERY: Duration = Duration::from_millis(200);
/// Most routed batches in one commit.
const MAX_BATCHES: usize = 1024;

impl Writer {
    /// A writer over `store` for `queues` (in router order) and `sources` (their ids, in
    /// config order). Mentions held before a restart are read back from the store.
    pub fn new(
        store: Arc<Store>,
        queues: Vec<WriterQueue>,
        sources: Vec<String>,
        max_entries: u64,
    ) -> Self {
        let mut index = HashMap::new();
        let states = queues
            .into_iter()
            .enumerate()
            .map(|(i, q)| {
                index.insert(q.shared.id.clone(), i);
                let held: Vec<(u64, Held)> = store
                    .held(&q.shared.id)
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|(k, bytes)| {
                        serde_json::from_slice::<Held>(&bytes).ok().map(|h| (k, h))
                    })
                    .collect();
                // A wave being held before a restart goes on being held after it.
                let mut gate = NoiseGate::new(&q.noise);
                for (_, h) in &held {
                    gate.restore(h);
                }
                QueueState {
                    gate,
                    digest_every: q.noise.digest_every,
                    shared: q.shared,
                    held,
                }
            })
            .collect();
        Self {
            checkpoints: Checkpoints::new(sources.len()),
            store,
            queues: states,
            index,
            sources,
            max_entries,
            full_since: None,
            routed_posts: None,
            deletes_keep: Duration::from_secs(30 * 24 * 3600),
            waiting_deletes: Vec::new(),
            last_prune: Instant::now(),
        }
    }

    /// Follows deletes: remembers routed posts for `keep` in the store and in `index` (shared
    /// with the workers), and retracts them when their authors delete them.
    pub fn with_deletes(mut self, index: Arc<RoutedIndex>, keep: Duration) -> Self {
        self.routed_posts = Some(index);
        self.deletes_keep = keep;
        self
    }

    /// Runs until the channel closes and everything received is committed, or `stop` is set
    /// while a commit keeps failing. `health` is the writer's entry in the pipeline's health
    /// registry: a failing commit is reported there until one succeeds.
    pub fn run(
        mut self,
        rx: Receiver<Routed>,
        stop: Arc<AtomicBool>,
        shutdown: Shutdown,
        health: Handle,
    ) {
        let mut last_flush = Instant::now();
        let mut open = true;
        while open {
            let mut batches = Vec::new();
            match rx.recv_timeout(TICK) {
                Ok(r) => batches.push(r),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => open = false,
            }
            while batches.len() < MAX_BATCHES {
                match rx.try_recv() {
                    Ok(r) => batches.push(r),
                    Err(_) => break,
                }
            }
            self.wait_for_room(&stop, open, &shutdown);
            if !self.write(batches, &stop, &health) {
                break;
            }
            if last_flush.elapsed() >= FLUSH_EVERY || !open {
                if let Err(e) = self.store.flush() {
                    metrics::counter!(OUTBOX_ERRORS).increment(1);
                    warn!(error = %e, "cannot make acks durable; retrying later");
                }
                last_flush = Instant::now();
            }
        }
        for q in &self.queues {
            q.shared.closed.store(true, Ordering::Relaxed);
            q.shared.notify.notify_one();
        }
        debug!("outbox writer finished");
    }

    /// Blocks while the outbox is full (backpressure), unless shutting down. Says so once
    /// when it fills and once when there is room again, however often it is called between.
    fn wait_for_room(&mut self, stop: &AtomicBool, open: bool, shutdown: &Shutdown) {
        while open && !stop.load(Ordering::Relaxed) && !shutdown.is_shutdown() {
            let total: u64 = self
                .queues
                .iter()
                .map(|q| q.shared.depth.load(Ordering::Relaxed))
                .sum();
            if total < self.max_entries {
                if let Some(since) = self.full_since.take() {
                    info!(
                        full_s = since.elapsed().as_secs(),
                        "the outbox has room again; the sources go on"
                    );
                }
                return;
            }
            if self.full_since.is_none() {
                warn!(
                    entries = total,
                    max = self.max_entries,
                    "the outbox is full; the sources wait until deliveries make room"
                );
                self.full_since = Some(Instant::now());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Builds and writes one commit. False when `stop` ended a failing commit.
    fn write(&mut self, batches: Vec<Routed>, stop: &AtomicBool, health: &Handle) -> bool {
        let now_ms = now_us() / 1000;
        let mut entries: Vec<(usize, Entry)> = Vec::new();
        let mut held: Vec<(usize, Held)> = Vec::new();
        let mut positions: HashMap<usize, Position> = HashMap::new();
        let mut routed: Vec<(String, RoutedPost)> = Vec::new();
        let mut deletes: Vec<String> = Vec::new();
        for r in batches {
            for m in &r.mentions {
                self.admit(m, now_ms, &mut entries, &mut held);
                if self.routed_posts.is_some() {
                    routed.push((
                        m.post.thread.key.clone(),
                        RoutedPost {
                            mention_id: m.mention_id.clone(),
                            post: DeletedPost {
                                id: m.post.id.clone(),
                                platform: m.post.platform.as_str().to_string(),
                                url: m.post.url.clone(),
                                thread_key: m.post.thread.key.clone(),
                            },
                            queues: m.queues.clone(),
                            at_us: now_ms * 1000,
                        },
                    ));
                }
            }
            deletes.extend(r.deleted);
            for s in r.spikes {
                for q in &s.queues {
                    if let Some(&qi) = self.index.get(q) {
                        entries.push((
                            qi,
                            Entry::new(s.id.clone(), s.event, s.data.clone(), now_ms * 1000),
                        ));
                    }
                }
            }
            if r.seq > 0 {
                if let Some(p) = self
                    .checkpoints
                    .complete(r.source as usize, r.seq, r.position)
                {
                    positions.insert(r.source as usize, p);
                }
            }
        }
        let mut release: Vec<(usize, u64)> = Vec::new();
        let mut digested: Vec<usize> = Vec::new();
        for (qi, q) in self.queues.iter_mut().enumerate() {
            let first = q.held.first().map(|(_, h)| h.at_ms);
            let Some(start) = first else { continue };
            if now_ms.saturating_sub(start) < q.digest_every.as_millis() as u64 {
                continue;
            }
            let items: Vec<Held> = q.held.iter().map(|(_, h)| h.clone()).collect();
            let digest = Digest::build(&q.shared.id, start, now_ms, &items);
            match digest_entry(&digest, start) {
                Some(e) => {
                    entries.push((qi, e));
                    release.extend(q.held.iter().map(|(k, _)| (qi, *k)));
                    digested.push(qi);
                }
                None => error!(queue = %q.shared.id, "cannot serialize a digest"),
            }
        }
        let waiting_before = self.waiting_deletes.len();
        deletes.extend(self.waiting_deletes.iter().map(|(k, _)| k.clone()));
        if entries.is_empty()
            && held.is_empty()
            && positions.is_empty()
            && release.is_empty()
            && routed.is_empty()
            && deletes.is_empty()
        {
            return true;
        }
        let held_bytes: Vec<(usize, Vec<u8>)> = held
            .iter()
            .map(|(qi, h)| (*qi, serde_json::to_vec(h).unwrap_or_default()))
            .collect();
        let ids: Vec<String> = self.queues.iter().map(|q| q.shared.id.clone()).collect();
        let commit = Commit {
            entries: entries
                .iter()
                .map(|(qi, e)| (ids[*qi].as_str(), e.clone()))
                .collect(),
            held: held_bytes
                .iter()
                .map(|(qi, b)| (ids[*qi].as_str(), b.clone()))
                .collect(),
            release: release
                .iter()
                .map(|(qi, k)| (ids[*qi].as_str(), *k))
                .collect(),
            positions: positions
                .iter()
                .map(|(s, p)| (self.sources[*s].as_str(), *p))
                .collect(),
            routed: routed
                .iter()
                .map(|(k, r)| (k.as_str(), r.clone()))
                .collect(),
            deletes: deletes.iter().map(String::as_str).collect(),
        };
        let mut delay = Duration::from_millis(100);
        let mut failed = false;
        let (held_keys, retracted) = loop {
            match self.store.commit_with_deletes(&commit) {
                Ok((_, held_keys, retracted)) => {
                    if failed {
                        warn!("the outbox takes writes again");
                        health.recovered();
                        metrics::gauge!(OUTBOX_WRITABLE).set(1.0);
                    }
                    break (held_keys, retracted);
                }
                Err(e) => {
                    metrics::counter!(OUTBOX_ERRORS).increment(1);
                    metrics::gauge!(OUTBOX_WRITABLE).set(0.0);
                    if !failed {
                        error!(error = %e, "cannot write to the outbox; retrying (sources wait meanwhile)");
                        health.failing(format!("cannot write to the outbox: {e}"));
                        failed = true;
                    } else {
                        debug!(error = %e, "the outbox still cannot write");
                    }
                    if stop.load(Ordering::Relaxed) {
                        error!("giving up at shutdown: the uncommitted batches will be read again after a restart");
                        return false;
                    }
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        };
        metrics::counter!(OUTBOX_COMMITS).increment(1);
        for qi in digested {
            let q = &mut self.queues[qi];
            q.held.clear();
            q.gate.digest_sent(now_ms);
            metrics::counter!(NOISE_DIGESTS, "queue" => q.shared.id.clone()).increment(1);
        }
        for ((qi, h), key) in held.into_iter().zip(held_keys) {
            self.queues[qi].held.push((key, h));
        }
        let mut woken = vec![false; self.queues.len()];
        for (qi, _) in &entries {
            self.queues[*qi]
                .shared
                .depth
                .fetch_add(1, Ordering::Relaxed);
            woken[*qi] = true;
        }
        self.settle_deletes(&deletes, waiting_before, &retracted, &mut woken);
        for (qi, q) in self.queues.iter().enumerate() {
            if woken[qi] {
                q.shared.export();
                q.shared.notify.notify_one();
            }
        }
        true
    }

    /// After a commit: tells each queue which mentions it retracts, keeps the deletes that
    /// found nothing yet waiting for a minute, and forgets routed posts past `deletes_keep`.
    fn settle_deletes(
        &mut self,
        deletes: &[String],
        waiting_before: usize,
        retracted: &[Retracted],
        woken: &mut [bool],
    ) {
        let Some(index) = self.routed_posts.clone() else {
            return;
        };
        let mut found: std::collections::HashSet<&str> = std::collections::HashSet::new();
        for r in retracted {
            found.insert(r.key.as_str());
            if let Some(&qi) = self.index.get(&r.queue) {
                let q = &self.queues[qi].shared;
                q.retract(&r.mention_id);
                q.depth.fetch_add(1, Ordering::Relaxed);
                woken[qi] = true;
            }
        }
        if !found.is_empty() {
            metrics::counter!(DELETED_POSTS).increment(found.len() as u64);
            index.remove(found.iter().copied());
        }
        // The new deletes come first in `deletes`, the waiting ones after.
        let fresh = deletes.len() - waiting_before;
        let now = Instant::now();
        let mut waiting: Vec<(String, Instant)> = Vec::new();
        for (i, key) in deletes.iter().enumerate() {
            if found.contains(key.as_str()) {
                continue;
            }
            let since = if i < fresh {
                now
            } else {
                self.waiting_deletes[i - fresh].1
            };
            if now.duration_since(since) < DELETE_WAIT && waiting.len() < MAX_WAITING_DELETES {
                waiting.push((key.clone(), since));
            }
        }
        self.waiting_deletes = waiting;
        if self.last_prune.elapsed() >= PRUNE_ROUTED_EVERY {
            self.last_prune = Instant::now();
            match self.store.prune_routed(now_us(), self.deletes_keep) {
                Ok(gone) => index.remove(gone.iter().map(String::as_str)),
                Err(e) => warn!(error = %e, "cannot forget old routed posts; trying again later"),
            }
        }
    }

    fn admit(
        &mut self,
        m: &Arc<Mention>,
        now_ms: u64,
        entries: &mut Vec<(usize, Entry)>,
        held: &mut Vec<(usize, Held)>,
    ) {
        let mut data: Option<Box<RawValue>> = None;
        let received_us = now_us().saturating_sub(m.received.elapsed().as_micros() as u64);
        for q in &m.queues {
            let Some(&qi) = self.index.get(q) else {
                continue;
            };
            match self.queues[qi].gate.admit(m, now_ms) {
                Verdict::Deliver => {
                    if data.is_none() {
                        data = serde_json::to_string(&**m)
                            .ok()
                            .and_then(|s| RawValue::from_string(s).ok());
                    }
                    let Some(d) = data.clone() else {
                        error!(mention_id = %m.mention_id, "cannot serialize a mention");
                        continue;
                    };
                    entries.push((
                        qi,
                        Entry::new(m.mention_id.clone(), Event::MentionCreated, d, received_us),
                    ));
                }
                Verdict::Hold(h) => {
                    metrics::counter!(NOISE_HELD, "queue" => q.clone(), "reason" => h.reason.as_str())
                        .increment(1);
                    held.push((qi, h));
                }
            }
        }
    }
}

/// The outbox entry of a digest: its id is the digest's own (stable for its window).
/// A digest as an outbox entry (its id the digest's, received at the window's start).
pub(crate) fn digest_entry(digest: &Digest, start_ms: u64) -> Option<Entry> {
    let value = serde_json::to_value(digest).ok()?;
    let id = value.get("digest_id")?.as_str()?.to_string();
    let raw = RawValue::from_string(value.to_string()).ok()?;
    Some(Entry::new(id, Event::MentionDigest, raw, start_ms * 1000))
}
