//! The ingest role: one node at a time reads each source (the holder of the lease
//! `source.<id>`), publishing its frame batches to [`super::FRAMES_STREAM`] and keeping its
//! position in [`super::POSITIONS_BUCKET`].
//!
//! Input → output: the source's frames, batched by the single node's [`Emitter`] → one stream
//! message per batch (`Nats-Msg-Id` = source, holder, hold and batch number, so a publish
//! retried after a lost acknowledgement is stored once) → the position of the newest batch
//! whose publish and every one before it were acknowledged, written at most every
//! [`POSITION_EVERY`] and when the reader stops.
//!
//! A node that takes a source over (its holder died, or let go at shutdown) starts at the
//! stored position, less the source's overlap: what the old holder published after its last
//! stored position is read again, and the mentions it yields carry the same ids, which the
//! queue stream's de-duplication drops. A holder that loses its lease (cut off from the
//! servers) stops reading and publishing at once.
//!
//! Backpressure: a full frame stream (`cluster.frames_max_bytes`, workers behind) refuses
//! publishes; the publisher retries the same batch with a growing pause while the source
//! waits behind the bounded channel, as it would behind busy workers on a single node.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::context::PublishAckFuture;
use bytes::Bytes;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use tokio::runtime::Handle as Runtime;
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

use super::frames;
use super::lease::Lease;
use super::turns::Turns;
use super::{Cluster, FRAMES_STREAM, FRAMES_SUBJECT};
use crate::config::SourceConfig;
use crate::health::{Component, Health};
use crate::metrics::CLUSTER_PUBLISHED;
use crate::outbox::entry::now_us;
use crate::shutdown::{self, Shutdown, ShutdownTrigger};
use crate::source::batch::{Batch, BatchLimits, Position, SourceIndex};
use crate::source::emit::{Emitter, SourceStats};

/// How often the position of a source being read is stored.
pub const POSITION_EVERY: Duration = Duration::from_millis(250);
/// Publishes awaiting their acknowledgement at once, per source.
const IN_FLIGHT: usize = 16;
/// Batches between a source and its publisher.
const CHANNEL: usize = 8;

/// The key of a source's position (and, with `source.`, of its lease).
pub fn position_key(source: &str) -> String {
    format!("source.{source}")
}

/// Contends for every source in `sources` (the config's, in its order) until shutdown,
/// reading each one while this node holds its lease. Returns each source's counters and
/// task.
pub fn spawn(
    cluster: &Cluster,
    sources: &[SourceConfig],
    limits: BatchLimits,
    trigger: &ShutdownTrigger,
    health: &Health,
) -> Vec<(String, Arc<SourceStats>, JoinHandle<()>)> {
    // A batch and its framing must fit a message, with room for the headers.
    let limits = BatchLimits {
        max_bytes: limits
            .max_bytes
            .min(cluster.max_payload().saturating_sub(4096).max(4096))
            .saturating_sub(frames::overhead(limits.max_frames)),
        ..limits
    };
    sources
        .iter()
        .enumerate()
        .map(|(index, s)| {
            let stats = Arc::new(SourceStats::default());
            let held = health.register(Component::Cluster, format!("ingest {}", s.id));
            let reader = Reader {
                cluster: cluster.clone(),
                index: index as SourceIndex,
                source: s.clone(),
                limits,
                stats: stats.clone(),
            };
            let task = tokio::spawn(held.watch(reader.lead(trigger.clone())));
            (s.id.clone(), stats, task)
        })
        .collect()
}

/// One source's contender and, while it holds the lease, reader.
struct Reader {
    cluster: Cluster,
    index: SourceIndex,
    source: SourceConfig,
    limits: BatchLimits,
    stats: Arc<SourceStats>,
}

/// Why a hold ended.
enum Ended {
    /// The source finished (a file read to its end): nothing more to read, ever.
    Finished,
    /// The lease ran out, or the source stopped on an error: contend again.
    Lost,
    /// The node is stopping.
    Shutdown,
}

impl Reader {
    async fn lead(self, trigger: ShutdownTrigger) {
        let id = self.source.id.clone();
        let mut turns = Turns::new(&self.cluster, position_key(&id), &trigger);
        while turns.next().await {
            let (lease, shutdown) = turns.parts();
            let ended = self.hold(lease, shutdown).await;
            turns.ended(!matches!(ended, Ended::Lost)).await;
            match ended {
                Ended::Finished => {
                    info!(source = %id, "source finished; keeping its lease so no node reads it again");
                    turns.keep_until_shutdown().await;
                    break;
                }
                Ended::Shutdown => break,
                Ended::Lost => {}
            }
        }
        turns.finish().await;
    }

    /// Reads the source from its stored position while the lease is held.
    async fn hold(&self, lease: &Lease, shutdown: &mut Shutdown) -> Ended {
        let id = &self.source.id;
        let mut source = self.source.clone();
        match self.cluster.positions.get(position_key(id)).await {
            Ok(Some(v)) => match std::str::from_utf8(&v)
                .ok()
                .and_then(frames::parse_position)
            {
                Some(p) => source.resume_at(p),
                None => {
                    warn!(source = %id, "the stored position does not parse; starting where the config says")
                }
            },
            Ok(None) => {}
            Err(e) => {
                warn!(source = %id, error = %e, "cannot read the stored position; trying again");
                return Ended::Lost;
            }
        }
        info!(source = %id, node = %self.cluster.node(), "this node reads the source");
        let (run, _) = shutdown::channel();
        let (tx, rx) = crossbeam_channel::bounded(CHANNEL);
        let (recycle_tx, recycle_rx) = crossbeam_channel::bounded(CHANNEL + IN_FLIGHT + 2);
        let emitter = Emitter::new(self.index, tx, self.limits, self.stats.clone())
            .with_recycler(recycle_rx)
            .with_shutdown(run.subscribe());
        let live = Arc::new(AtomicBool::new(true));
        let publisher = Publisher {
            cluster: self.cluster.clone(),
            source: id.clone(),
            hold: format!("{}.{}", self.cluster.node(), now_us()),
            live: live.clone(),
            runtime: Runtime::current(),
        };
        let publishing = std::thread::Builder::new()
            .name(format!("earshot-ingest-{}", self.index))
            .spawn(move || publisher.run(rx, recycle_tx));
        let publishing = match publishing {
            Ok(t) => t,
            Err(e) => {
                error!(source = %id, error = %e, "cannot start the publisher thread");
                return Ended::Lost;
            }
        };
        let mut reading = tokio::spawn(source.kind.run(emitter, run.subscribe()));
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let ended = loop {
            tokio::select! {
                r = &mut reading => {
                    break match r {
                        Ok(Ok(())) => Ended::Finished,
                        Ok(Err(e)) => {
                            error!(source = %id, error = %e, "the source stopped; letting another node try");
                            Ended::Lost
                        }
                        Err(e) => {
                            error!(source = %id, error = %e, "the source task failed");
                            Ended::Lost
                        }
                    };
                }
                _ = shutdown.recv() => {
                    run.trigger();
                    break Ended::Shutdown;
                }
                _ = tick.tick() => {
                    if !lease.holds() {
                        warn!(source = %id, "lost the source's lease; this node stops reading it");
                        live.store(false, Ordering::Relaxed);
                        run.trigger();
                        break Ended::Lost;
                    }
                }
            }
        };
        if !reading.is_finished() {
            // The source flushes its last batch and ends at the trigger.
            if tokio::time::timeout(Duration::from_secs(5), &mut reading)
                .await
                .is_err()
            {
                reading.abort();
            }
        }
        // The publisher ends once the source's sender is gone and everything is settled.
        let _ = tokio::task::spawn_blocking(move || publishing.join()).await;
        ended
    }
}

/// One message waiting for its acknowledgement.
struct Pending {
    msg_id: String,
    body: Bytes,
    source_header: String,
    position: Option<Position>,
    received_us: u64,
    ack: Option<PublishAckFuture>,
    /// Failed publishes so far: the pause before the next one grows with them.
    failures: u32,
}

/// Publishes one source's batches in order while the lease is held.
struct Publisher {
    cluster: Cluster,
    source: String,
    /// This hold's name: part of every `Nats-Msg-Id`, so batches of two holds never collide.
    hold: String,
    live: Arc<AtomicBool>,
    runtime: Runtime,
}

impl Publisher {
    fn run(self, rx: Receiver<Batch>, recycle: Sender<Batch>) {
        let mut in_flight: VecDeque<Pending> = VecDeque::new();
        let mut acked: Option<Position> = None;
        let mut stored: Option<Position> = None;
        let mut stored_at = Instant::now();
        let mut open = true;
        loop {
            if !self.live.load(Ordering::Relaxed) {
                // Lost the lease: what is not acknowledged is read again by the next holder.
                break;
            }
            if open && in_flight.len() < IN_FLIGHT {
                let next = if in_flight.is_empty() {
                    rx.recv_timeout(POSITION_EVERY)
                } else {
                    rx.try_recv().map_err(|e| match e {
                        crossbeam_channel::TryRecvError::Empty => RecvTimeoutError::Timeout,
                        crossbeam_channel::TryRecvError::Disconnected => {
                            RecvTimeoutError::Disconnected
                        }
                    })
                };
                match next {
                    Ok(mut batch) => {
                        let mut p = self.pending(&batch);
                        batch.clear();
                        let _ = recycle.try_send(batch);
                        p.ack = self.send(&p);
                        in_flight.push_back(p);
                        continue;
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => open = false,
                }
            }
            if let Some(front) = in_flight.front_mut() {
                if self.settle(front) {
                    if let Some(p) = in_flight.pop_front().and_then(|p| p.position) {
                        acked = Some(p);
                    }
                }
            } else if !open {
                break;
            }
            if acked != stored && (stored_at.elapsed() >= POSITION_EVERY || !open) {
                if let Some(p) = acked {
                    if self.store_position(p) {
                        stored = acked;
                        stored_at = Instant::now();
                    }
                }
            }
        }
        if acked != stored {
            if let Some(p) = acked {
                self.store_position(p);
            }
        }
        debug!(source = %self.source, "publisher finished");
    }

    fn pending(&self, batch: &Batch) -> Pending {
        Pending {
            msg_id: format!("{}.{}.{}", self.source, self.hold, batch.seq),
            body: Bytes::from(frames::encode(batch)),
            source_header: self.source.clone(),
            position: batch.position,
            received_us: now_us().saturating_sub(batch.opened.elapsed().as_micros() as u64),
            ack: None,
            failures: 0,
        }
    }

    /// Starts the publish of `p`; `None` when it could not even be sent (settled as a retry).
    fn send(&self, p: &Pending) -> Option<PublishAckFuture> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, p.msg_id.as_str());
        headers.insert(frames::SOURCE, p.source_header.as_str());
        headers.insert(frames::RECEIVED, p.received_us.to_string().as_str());
        if let Some(pos) = p.position {
            headers.insert(frames::POSITION, frames::position_header(pos).as_str());
        }
        let js = self.cluster.js.clone();
        let body = p.body.clone();
        self.runtime
            .block_on(js.publish_with_headers(FRAMES_SUBJECT, headers, body))
            .map_err(|e| debug!(source = %self.source, error = %e, "cannot send a frame batch"))
            .ok()
    }

    /// Waits for `p`'s acknowledgement: true once acknowledged; false after a failure, when
    /// it has been sent again (after a pause) or the lease is gone.
    fn settle(&self, p: &mut Pending) -> bool {
        let timeout = self.cluster.settings.timeout;
        let result = match p.ack.take() {
            Some(ack) => self
                .runtime
                .block_on(async { tokio::time::timeout(timeout, ack).await })
                .map_err(|_| "no acknowledgement in time".to_string())
                .and_then(|r| r.map_err(|e| e.to_string())),
            None => Err("not sent".to_string()),
        };
        match result {
            Ok(_) => {
                metrics::counter!(CLUSTER_PUBLISHED, "stream" => FRAMES_STREAM, "outcome" => "acked")
                    .increment(1);
                true
            }
            Err(e) => {
                metrics::counter!(CLUSTER_PUBLISHED, "stream" => FRAMES_STREAM, "outcome" => "retried")
                    .increment(1);
                warn!(source = %self.source, error = %e, "a frame batch was not stored; publishing it again");
                std::thread::sleep(super::retry_pause(p.failures));
                p.failures += 1;
                if self.live.load(Ordering::Relaxed) {
                    p.ack = self.send(p);
                }
                false
            }
        }
    }

    fn store_position(&self, p: Position) -> bool {
        let kv = self.cluster.positions.clone();
        let key = position_key(&self.source);
        let value = Bytes::from(frames::position_header(p));
        match self.runtime.block_on(kv.put(key, value)) {
            Ok(_) => true,
            Err(e) => {
                warn!(source = %self.source, error = %e, "cannot store the source's position; trying again");
                false
            }
        }
    }
}
