//! The emitter: where every source hands its frames on.
//!
//! Input → output: raw frames (one JSON document each, as bytes) and skips counted at the
//! source → [`Batch`]es on a bounded `crossbeam_channel`, and counters in [`SourceStats`].
//!
//! Invariants:
//! - A batch is sent when it is full ([`BatchLimits::is_full`]), when the source calls
//!   [`Emitter::flush`] (after [`Emitter::linger`] fires, before a reconnect's backoff, at
//!   shutdown), and never empty.
//! - `frames_received = frames in batches sent + Σ skipped{reason}`: frames and bytes are
//!   published to the shared atomics once per batch, when the channel has taken it, so the
//!   counters never claim frames the workers cannot see; skips are published at once.
//! - A full channel blocks only this source (backpressure): it stops reading, so its
//!   transport pushes back. Nothing is buffered beyond the one batch being filled.
//!
//! Why block instead of awaiting: the workers at the other end are OS threads blocked in
//! crossbeam's `recv`, and crossbeam has no async send. A plain blocking `send` on a tokio
//! worker thread would stall every other task scheduled there (other sources, timers, the
//! admin server), so the slow path goes through [`tokio::task::block_in_place`], which first
//! hands this worker's other tasks to another thread. The fast path is a `try_send`, which
//! costs no thread hand-off at all. Outside a multi-thread runtime (a current-thread runtime,
//! a plain thread) the send simply blocks the calling thread; `block_in_place` would panic
//! there.
//!
//! Shutdown: a source blocked on a full channel when shutdown comes keeps trying for
//! [`SHUTDOWN_GRACE`] (the workers are draining), then gives the batch up, counted under
//! [`SkipReason::Shutdown`], so a pipeline stuck behind a full outbox still stops.
//!
//! Reuse: a fresh batch comes from an optional recycle channel that workers return emptied
//! batches to ([`Emitter::with_recycler`]); without one, a batch is allocated per send, not per
//! frame.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_channel::{Receiver, SendError, SendTimeoutError, Sender, TrySendError};
use tokio::runtime::{Handle, RuntimeFlavor};

use super::batch::{Batch, BatchLimits, Position, SourceIndex};
use super::error::SourceError;
use crate::shutdown::Shutdown;
use crate::skip::{SkipCounts, SkipReason};

/// How long a source blocked on a full channel keeps trying once shutdown is signalled.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Counters of one source, shared with the metrics exporter and `earshot replay`.
///
/// Written by the source's task only; read by anyone. All orderings are `Relaxed`: each
/// counter is a monotonic tally read for display, never used to synchronise data.
#[derive(Debug, Default)]
pub struct SourceStats {
    /// Every frame seen, including those skipped at the source.
    pub frames_received: AtomicU64,
    /// Bytes of the frames handed on, plus those of skipped frames whose size the source
    /// knows (an oversize line discarded as it streams by is counted as a frame, not in bytes).
    pub bytes_received: AtomicU64,
    /// Frames dropped at the source, by reason (indexed by [`SkipReason::index`]).
    pub skipped: [AtomicU64; SkipReason::ALL.len()],
    /// Connections established (the first included).
    pub connects: AtomicU64,
    /// Connections lost or attempts failed, each followed by a new attempt.
    pub reconnects: AtomicU64,
    /// Whether the source is connected now (a file source: open and not at its end).
    pub connected: AtomicBool,
    /// The last cursor / offset handed to a batch ([`Position`]'s number).
    pub last_position: AtomicU64,
}

impl SourceStats {
    /// Frames skipped at the source for `reason`.
    pub fn skipped(&self, reason: SkipReason) -> u64 {
        self.skipped[reason.index()].load(Ordering::Relaxed)
    }

    /// All skips, as plain counts.
    pub fn skip_counts(&self) -> SkipCounts {
        let mut counts = SkipCounts::default();
        for (slot, atomic) in counts.0.iter_mut().zip(self.skipped.iter()) {
            *slot = atomic.load(Ordering::Relaxed);
        }
        counts
    }

    /// Frames received so far.
    pub fn frames(&self) -> u64 {
        self.frames_received.load(Ordering::Relaxed)
    }

    /// Records an established connection.
    pub fn record_connect(&self) {
        self.connects.fetch_add(1, Ordering::Relaxed);
        self.connected.store(true, Ordering::Relaxed);
    }

    /// Records a lost connection or a failed attempt that will be retried.
    pub fn record_reconnect(&self) {
        self.connected.store(false, Ordering::Relaxed);
        self.reconnects.fetch_add(1, Ordering::Relaxed);
    }

    /// Records that the source is no longer connected (shutdown, end of file).
    pub fn record_disconnect(&self) {
        self.connected.store(false, Ordering::Relaxed);
    }
}

/// Batches one source's frames and hands them to the workers.
#[derive(Debug)]
pub struct Emitter {
    tx: Sender<Batch>,
    recycle: Option<Receiver<Batch>>,
    limits: BatchLimits,
    batch: Batch,
    source: SourceIndex,
    stats: Arc<SourceStats>,
    /// Bytes in the open batch, published with it.
    pending_bytes: u64,
    /// Number of the last batch sent.
    sent_seq: u64,
    /// Ends a blocked send once shutdown has waited the grace period.
    shutdown: Option<(Shutdown, std::time::Duration)>,
}

impl Emitter {
    /// An emitter for source `source`, sending on `tx` (bounded: its capacity is the number of
    /// batches that may wait for a worker).
    pub fn new(
        source: SourceIndex,
        tx: Sender<Batch>,
        limits: BatchLimits,
        stats: Arc<SourceStats>,
    ) -> Self {
        let batch = new_batch(source, &limits);
        Self {
            tx,
            recycle: None,
            limits,
            batch,
            source,
            stats,
            pending_bytes: 0,
            sent_seq: 0,
            shutdown: None,
        }
    }

    /// Gives up a send blocked on a full channel once `shutdown` has been signalled for
    /// [`SHUTDOWN_GRACE`] (see the module docs).
    pub fn with_shutdown(self, shutdown: Shutdown) -> Self {
        self.with_shutdown_grace(shutdown, SHUTDOWN_GRACE)
    }

    /// [`Emitter::with_shutdown`] with another grace period.
    pub fn with_shutdown_grace(mut self, shutdown: Shutdown, grace: std::time::Duration) -> Self {
        self.shutdown = Some((shutdown, grace));
        self
    }

    /// Takes fresh batches from `recycle` (emptied batches the workers send back) before
    /// allocating new ones.
    pub fn with_recycler(mut self, recycle: Receiver<Batch>) -> Self {
        self.recycle = Some(recycle);
        self
    }

    /// The shared counters.
    pub fn stats(&self) -> &Arc<SourceStats> {
        &self.stats
    }

    /// The index of the source in the configuration.
    pub fn source(&self) -> SourceIndex {
        self.source
    }

    /// The batch limits.
    pub fn limits(&self) -> &BatchLimits {
        &self.limits
    }

    /// Frames in the batch being filled.
    pub fn pending(&self) -> usize {
        self.batch.len()
    }

    /// Appends one frame; `position` (when given) becomes the batch's resume position. Sends
    /// the batch when it is full, blocking this source while the channel is full.
    pub fn push(&mut self, frame: &[u8], position: Option<Position>) -> Result<(), SourceError> {
        // `Batch` stores u32 end offsets; sources bound frames far below this, so this only
        // guards the arithmetic.
        if frame.len() > u32::MAX as usize / 2 {
            self.skip_len(SkipReason::Oversize, frame.len());
            return Ok(());
        }
        if self.batch.data.len() + frame.len() > u32::MAX as usize {
            self.send_batch()?;
        }
        self.batch.push(frame);
        if position.is_some() {
            self.batch.position = position;
        }
        self.pending_bytes += frame.len() as u64;
        if self.limits.is_full(&self.batch) {
            self.send_batch()?;
        }
        Ok(())
    }

    /// Counts a frame dropped at the source: received, and skipped for `reason`.
    pub fn skip(&mut self, reason: SkipReason) {
        self.skip_len(reason, 0);
    }

    /// Like [`Emitter::skip`], also counting the `len` bytes the source read of the frame.
    pub fn skip_len(&mut self, reason: SkipReason, len: usize) {
        self.stats.frames_received.fetch_add(1, Ordering::Relaxed);
        self.stats
            .bytes_received
            .fetch_add(len as u64, Ordering::Relaxed);
        self.stats.skipped[reason.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Sends the partial batch, if any.
    pub async fn flush(&mut self) -> Result<(), SourceError> {
        self.send_batch()
    }

    /// When the open batch has waited its linger; `None` when no batch is open.
    pub fn linger_deadline(&self) -> Option<tokio::time::Instant> {
        if self.batch.is_empty() {
            return None;
        }
        Some(tokio::time::Instant::from_std(
            self.batch.opened + self.limits.linger,
        ))
    }

    /// Completes when the open batch has waited its linger; never while no batch is open.
    ///
    /// Meant as a `tokio::select!` branch beside the source's next read, followed by
    /// [`Emitter::flush`]: a quiet stream then delays a frame by at most the linger.
    pub async fn linger(&self) {
        match self.linger_deadline() {
            Some(deadline) => tokio::time::sleep_until(deadline).await,
            None => std::future::pending().await,
        }
    }

    fn send_batch(&mut self) -> Result<(), SourceError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let fresh = self.fresh_batch();
        let mut batch = std::mem::replace(&mut self.batch, fresh);
        self.sent_seq += 1;
        batch.seq = self.sent_seq;
        let frames = batch.len() as u64;
        let position = batch.position;
        let sent = match self.tx.try_send(batch) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(batch)) => blocking_send(
                &self.tx,
                batch,
                self.shutdown.as_ref().map(|(s, g)| (s, *g)),
            ),
            Err(TrySendError::Disconnected(batch)) => Err(Unsent::Closed(batch)),
        };
        match sent {
            Ok(()) => {
                self.publish_received(frames);
                if let Some(Position::Cursor(n) | Position::Offset(n)) = position {
                    self.stats.last_position.store(n, Ordering::Relaxed);
                }
                Ok(())
            }
            Err(Unsent::Closed(batch)) => {
                tracing::warn!(
                    source = self.source,
                    frames = batch.len(),
                    "batch channel closed; frames of the last batch are lost"
                );
                self.pending_bytes = 0;
                Err(SourceError::ChannelClosed)
            }
            Err(Unsent::Shutdown(batch)) => {
                let frames = batch.len() as u64;
                tracing::warn!(
                    source = self.source,
                    frames,
                    "shutdown while the pipeline is full: the frames of the last batch are not processed (a resuming source reads them again at the next start)"
                );
                self.publish_received(frames);
                self.stats.skipped[SkipReason::Shutdown.index()]
                    .fetch_add(frames, Ordering::Relaxed);
                Err(SourceError::StoppedFull)
            }
        }
    }

    /// Publishes the frames and bytes of the batch just handed on (or given up).
    fn publish_received(&mut self, frames: u64) {
        self.stats
            .frames_received
            .fetch_add(frames, Ordering::Relaxed);
        self.stats
            .bytes_received
            .fetch_add(self.pending_bytes, Ordering::Relaxed);
        self.pending_bytes = 0;
    }

    fn fresh_batch(&mut self) -> Batch {
        if let Some(mut batch) = self.recycle.as_ref().and_then(|rx| rx.try_recv().ok()) {
            batch.clear();
            batch.source = self.source;
            return batch;
        }
        new_batch(self.source, &self.limits)
    }
}

impl Drop for Emitter {
    /// A source that ends without flushing (its task was cancelled) still offers its partial
    /// batch, without blocking; what cannot be sent is logged with its size, never silently.
    fn drop(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::replace(&mut self.batch, Batch::with_capacity(self.source, 0, 0));
        let frames = batch.len() as u64;
        let taken = self.tx.try_send(batch).is_ok();
        self.publish_received(frames);
        if !taken {
            tracing::warn!(
                source = self.source,
                frames,
                "source dropped with a partial batch the channel could not take; its frames are counted as skipped at shutdown"
            );
            self.stats.skipped[SkipReason::Shutdown.index()].fetch_add(frames, Ordering::Relaxed);
        }
    }
}

/// A batch sized for `limits`: room for every frame's offset, and a data buffer that starts
/// at 1 KiB per frame (or the byte limit's share, if smaller) and grows as needed.
fn new_batch(source: SourceIndex, limits: &BatchLimits) -> Batch {
    let frames = limits.max_frames.clamp(1, 1 << 16);
    let frame_bytes = (limits.max_bytes / frames).clamp(64, 1024);
    Batch::with_capacity(source, frames, frame_bytes)
}

/// A batch the channel did not take.
enum Unsent {
    /// Every receiver is gone.
    Closed(Batch),
    /// Shutdown came and the channel stayed full past [`SHUTDOWN_GRACE`].
    Shutdown(Batch),
}

/// Sends `batch`, blocking this source only (see the module docs for why `block_in_place`),
/// and giving up once `shutdown` has waited [`SHUTDOWN_GRACE`].
fn blocking_send(
    tx: &Sender<Batch>,
    batch: Batch,
    shutdown: Option<(&Shutdown, std::time::Duration)>,
) -> Result<(), Unsent> {
    let send = || {
        let Some((shutdown, grace)) = shutdown else {
            return tx.send(batch).map_err(|SendError(b)| Unsent::Closed(b));
        };
        const STEP: std::time::Duration = std::time::Duration::from_millis(50);
        let mut batch = batch;
        let mut since: Option<std::time::Instant> = None;
        loop {
            match tx.send_timeout(batch, STEP) {
                Ok(()) => return Ok(()),
                Err(SendTimeoutError::Disconnected(b)) => return Err(Unsent::Closed(b)),
                Err(SendTimeoutError::Timeout(b)) => {
                    batch = b;
                    if shutdown.is_shutdown() {
                        let started = *since.get_or_insert_with(std::time::Instant::now);
                        if started.elapsed() >= grace {
                            return Err(Unsent::Shutdown(batch));
                        }
                    }
                }
            }
        }
    };
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(send)
        }
        _ => send(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn emitter(cap: usize, max_frames: usize) -> (Emitter, Receiver<Batch>, Arc<SourceStats>) {
        let (tx, rx) = crossbeam_channel::bounded(cap);
        let stats = Arc::new(SourceStats::default());
        let limits = BatchLimits {
            max_frames,
            max_bytes: 1 << 20,
            linger: Duration::from_millis(5),
        };
        (Emitter::new(3, tx, limits, stats.clone()), rx, stats)
    }

    fn frames(batch: &Batch) -> Vec<Vec<u8>> {
        let mut start = 0;
        batch
            .ends
            .iter()
            .map(|&end| {
                let f = batch.data[start..end as usize].to_vec();
                start = end as usize;
                f
            })
            .collect()
    }

    #[test]
    fn batches_close_by_count_and_flush() {
        // (frames pushed, max_frames) → sizes of the batches sent, after a final flush.
        let cases: &[(usize, usize, &[usize])] = &[
            (0, 4, &[]),
            (3, 4, &[3]),
            (4, 4, &[4]),
            (9, 4, &[4, 4, 1]),
            (5, 1, &[1, 1, 1, 1, 1]),
        ];
        for &(n, max, want) in cases {
            let (mut em, rx, stats) = emitter(16, max);
            for i in 0..n {
                let pos = Some(Position::Offset(i as u64 + 1));
                em.push(format!("{{\"i\":{i}}}").as_bytes(), pos)
                    .expect("push");
            }
            futures_util::FutureExt::now_or_never(em.flush())
                .expect("ready")
                .expect("flush");
            let sizes: Vec<usize> = rx.try_iter().map(|b| b.len()).collect();
            assert_eq!(sizes, want, "n={n} max={max}");
            assert_eq!(stats.frames(), n as u64);
            assert_eq!(stats.last_position.load(Ordering::Relaxed), n as u64);
        }
    }

    #[test]
    fn frames_positions_and_skips_are_accounted() {
        let (mut em, rx, stats) = emitter(4, 8);
        em.push(b"{\"a\":1}", Some(Position::Cursor(10)))
            .expect("push");
        em.skip(SkipReason::Duplicate);
        em.skip_len(SkipReason::Oversize, 100);
        em.push(b"{\"b\":2}", None).expect("push");
        // Skips are visible at once; frames once their batch is sent.
        assert_eq!(stats.frames(), 2);
        assert_eq!(em.pending(), 2);
        futures_util::FutureExt::now_or_never(em.flush())
            .expect("ready")
            .expect("flush");
        let batch = rx.try_recv().expect("one batch");
        assert_eq!(batch.source, 3);
        assert_eq!(batch.position, Some(Position::Cursor(10)));
        assert_eq!(
            frames(&batch),
            vec![b"{\"a\":1}".to_vec(), b"{\"b\":2}".to_vec()]
        );
        assert_eq!(stats.frames(), 4);
        assert_eq!(stats.bytes_received.load(Ordering::Relaxed), 114);
        assert_eq!(stats.skipped(SkipReason::Duplicate), 1);
        assert_eq!(stats.skipped(SkipReason::Oversize), 1);
        assert_eq!(stats.skip_counts().total(), 2);
    }

    #[test]
    fn closed_channel_is_an_error_not_a_panic() {
        let (mut em, rx, stats) = emitter(1, 1);
        drop(rx);
        let err = em.push(b"{}", None).expect_err("channel closed");
        assert!(matches!(err, SourceError::ChannelClosed));
        assert_eq!(
            stats.frames(),
            0,
            "lost frames are not counted as handed on"
        );
    }

    #[test]
    fn recycled_batches_are_reused() {
        let (tx, rx) = crossbeam_channel::bounded(4);
        let (back_tx, back_rx) = crossbeam_channel::bounded(4);
        let limits = BatchLimits {
            max_frames: 1,
            max_bytes: 1 << 20,
            linger: Duration::ZERO,
        };
        let mut em =
            Emitter::new(1, tx, limits, Arc::new(SourceStats::default())).with_recycler(back_rx);
        em.push(b"first", None).expect("push");
        let mut used = rx.try_recv().expect("batch");
        let ptr = used.data.as_ptr();
        used.source = 99;
        back_tx.send(used).expect("recycle");
        // The fresh batch for the next frames was taken before the recycle arrived; the one
        // after it is the recycled one.
        em.push(b"second", None).expect("push");
        em.push(b"third", None).expect("push");
        let second = rx.try_recv().expect("batch");
        let third = rx.try_recv().expect("batch");
        assert_eq!(frames(&second), vec![b"second".to_vec()]);
        assert_eq!(frames(&third), vec![b"third".to_vec()]);
        assert_eq!(third.source, 1);
        assert_eq!(
            third.data.as_ptr(),
            ptr,
            "third frame reused the recycled buffer"
        );
    }

    #[test]
    fn a_send_blocked_at_shutdown_gives_up_after_the_grace_and_counts_the_frames() {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let stats = Arc::new(SourceStats::default());
        let limits = BatchLimits {
            max_frames: 2,
            ..BatchLimits::default()
        };
        let (trigger, shutdown) = crate::shutdown::channel();
        let mut e = Emitter::new(0, tx, limits, stats.clone())
            .with_shutdown_grace(shutdown, Duration::from_millis(100));
        e.push(b"{}", None).unwrap();
        e.push(b"{}", None).unwrap(); // fills the channel
        e.push(b"{}", None).unwrap();
        trigger.trigger();
        // Nobody reads: without the shutdown this would block for ever.
        assert!(matches!(e.push(b"{}", None), Err(SourceError::StoppedFull)));
        assert_eq!(
            stats.skipped[SkipReason::Shutdown.index()].load(Ordering::Relaxed),
            2
        );
        assert_eq!(stats.frames_received.load(Ordering::Relaxed), 4);
        assert_eq!(rx.len(), 1);
    }

    #[test]
    fn drop_offers_the_partial_batch() {
        let (mut em, rx, stats) = emitter(1, 8);
        em.push(b"{}", None).expect("push");
        drop(em);
        assert_eq!(rx.try_recv().expect("partial batch sent on drop").len(), 1);
        assert_eq!(stats.frames(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn full_channel_blocks_until_drained_and_linger_fires() {
        let (mut em, rx, stats) = emitter(1, 1);
        assert!(em.linger_deadline().is_none());
        em.push(b"1", None).expect("push");
        // The channel (capacity 1) is full now: the next push blocks this task only.
        let pusher = tokio::spawn(async move {
            em.push(b"2", None).expect("push");
            em
        });
        // The runtime still runs other tasks while the pusher is blocked.
        let other = tokio::spawn(async { 7 }).await.expect("other task runs");
        assert_eq!(other, 7);
        assert_eq!(rx.recv().expect("first").len(), 1);
        let _em = pusher.await.expect("pusher finishes once drained");
        assert_eq!(rx.recv().expect("second").len(), 1);
        assert_eq!(stats.frames(), 2);
    }

    #[tokio::test]
    async fn linger_fires_only_while_a_batch_is_open() {
        let (mut em, rx, _stats) = emitter(4, 8);
        assert!(em.linger_deadline().is_none());
        em.push(b"x", None).expect("push");
        let deadline = em.linger_deadline().expect("open batch");
        em.linger().await;
        assert!(tokio::time::Instant::now() >= deadline);
        em.flush().await.expect("flush");
        assert_eq!(rx.try_recv().expect("flushed").len(), 1);
        assert!(em.linger_deadline().is_none());
        let never = tokio::time::timeout(Duration::from_millis(1), em.linger()).await;
        assert!(never.is_err(), "no batch open: linger never completes");
    }
}
