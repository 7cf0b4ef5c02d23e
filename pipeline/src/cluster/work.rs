//! The work role: every worker node pulls frame batches from one durable consumer of
//! [`super::FRAMES_STREAM`], runs the single node's workers on them, and publishes each routed
//! mention to its queues' subjects; a batch is acknowledged only once every one of its
//! mentions is in the queue stream.
//!
//! Input → output: stream messages → [`Batch`]es on the workers' bounded channel → one
//! [`Routed`] per batch from the workers → one queue-stream message per mention and queue
//! (`Nats-Msg-Id` = `<queue>:<mention id>`, the body an outbox [`Entry`]) → the batch's ack.
//!
//! A node that dies with batches in hand leaves them unacknowledged: the consumer gives them
//! to another node once their ack wait (the lease's time to live) has passed. What that node
//! publishes again has the same message ids, which the queue stream drops. A node that stops
//! gracefully stops pulling, finishes what it holds, and gives back (nak) what it pulled but
//! did not start, so another node takes it at once.
//!
//! Backpressure: a full queue stream refuses publishes; the publisher retries them, telling
//! the frame stream it is still working on the batch, while the workers wait behind their
//! bounded channel and the node pulls nothing more.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{pull, AckPolicy};
use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::{AckKind, Message};
use bytes::Bytes;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use futures_util::StreamExt as _;
use tokio::runtime::Handle as Runtime;
use tokio::task::JoinHandle;
use tracing::{debug, error, warn};

use super::frames;
use super::{queue_subject, Cluster, FRAMES_STREAM, QUEUES_STREAM, WORK_CONSUMER};
use crate::health::{Component, Health};
use crate::metrics::{CLUSTER_FRAMES_REFUSED, CLUSTER_PUBLISHED};
use crate::outbox::entry::{now_us, Entry, Event};
use crate::outbox::writer::Routed;
use crate::shutdown::ShutdownTrigger;
use crate::source::batch::{Batch, SourceIndex};

/// Frame batches handed to this node's workers and not yet acknowledged, by the number the
/// node gave each (the batch's `seq`).
type InHand = Arc<Mutex<HashMap<u64, Message>>>;

/// Where the work role hands batches over and takes routed mentions back.
pub struct WorkIo {
    /// The workers' frame channel.
    pub frames: Sender<Batch>,
    /// Emptied batches coming back from the workers, per source.
    pub recycled: Vec<Receiver<Batch>>,
    /// The workers' routed batches.
    pub routed: Receiver<Routed>,
}

/// The running work role: the puller task and the publisher thread.
pub struct Working {
    /// Pulls frame batches until shutdown.
    pub puller: JoinHandle<()>,
    /// Publishes routed mentions until the workers are gone.
    pub publisher: std::thread::JoinHandle<()>,
}

/// Starts pulling for this node's workers. `sources` are the config's source ids, in order:
/// a batch names its source by id, and the workers by index.
pub async fn spawn(
    cluster: &Cluster,
    sources: Vec<String>,
    max_frames: usize,
    io: WorkIo,
    trigger: &ShutdownTrigger,
    health: &Health,
) -> Result<Working, super::ClusterError> {
    let settings = &cluster.settings;
    let stream =
        cluster
            .js
            .get_stream(FRAMES_STREAM)
            .await
            .map_err(|e| super::ClusterError::Streams {
                what: format!("stream {FRAMES_STREAM}"),
                reason: e.to_string(),
            })?;
    let consumer = stream
        .get_or_create_consumer(
            WORK_CONSUMER,
            pull::Config {
                durable_name: Some(WORK_CONSUMER.into()),
                description: Some("earshot workers: frame batches to decode and route".into()),
                ack_policy: AckPolicy::Explicit,
                ack_wait: settings.lease_ttl,
                max_ack_pending: 4096,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| super::ClusterError::Streams {
            what: format!("consumer {WORK_CONSUMER}"),
            reason: e.to_string(),
        })?;
    let in_hand: InHand = Arc::default();
    let puller = Puller {
        consumer,
        sources,
        max_frames,
        io_frames: io.frames,
        recycled: io.recycled,
        in_hand: in_hand.clone(),
        next: AtomicU64::new(1),
    };
    let held = health.register(Component::Cluster, "work: frame consumer");
    let puller = tokio::spawn(held.watch(puller.run(trigger.clone())));
    let held = health.register(Component::Cluster, "work: mention publisher");
    let publisher = Publisher {
        cluster: cluster.clone(),
        in_hand,
        runtime: Runtime::current(),
    };
    let publisher = std::thread::Builder::new()
        .name("earshot-publish".into())
        .spawn(move || {
            let _held = held;
            publisher.run(io.routed)
        })
        .map_err(|e| super::ClusterError::Streams {
            what: "the publisher thread".into(),
            reason: e.to_string(),
        })?;
    Ok(Working { puller, publisher })
}

/// A thread publishing what arrives on `rx` (spike events, with no frame batch to
/// acknowledge) to the queue stream, until the senders are gone.
pub fn spawn_publisher(
    cluster: &Cluster,
    rx: Receiver<Routed>,
    name: &str,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let publisher = Publisher {
        cluster: cluster.clone(),
        in_hand: Arc::default(),
        runtime: Runtime::current(),
    };
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || publisher.run(rx))
}

struct Puller {
    consumer: async_nats::jetstream::consumer::Consumer<pull::Config>,
    sources: Vec<String>,
    max_frames: usize,
    io_frames: Sender<Batch>,
    recycled: Vec<Receiver<Batch>>,
    in_hand: InHand,
    next: AtomicU64,
}

/// Messages asked for at once: a few batches per worker keeps them busy without holding
/// much that another node could have taken.
const PULL: usize = 16;

impl Puller {
    async fn run(self, trigger: ShutdownTrigger) {
        let mut shutdown = trigger.subscribe();
        while !shutdown.is_shutdown() {
            let batch = self
                .consumer
                .batch()
                .max_messages(PULL)
                .expires(Duration::from_secs(1))
                .messages()
                .await;
            let mut messages = match batch {
                Ok(m) => m,
                Err(e) => {
                    warn!(error = %e, "cannot pull frame batches; trying again");
                    tokio::select! {
                        _ = shutdown.recv() => break,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            };
            while let Some(m) = messages.next().await {
                let m = match m {
                    Ok(m) => m,
                    Err(e) => {
                        debug!(error = %e, "a pull ended early");
                        break;
                    }
                };
                if shutdown.is_shutdown() {
                    // Pulled but not started: back to the stream for another node.
                    let _ = m.ack_with(AckKind::Nak(None)).await;
                    continue;
                }
                self.hand_over(m).await;
            }
        }
        // Dropping the sender lets the workers drain and end.
        debug!("frame consumer finished");
    }

    /// Decodes one message into a batch and gives it to the workers, blocking (off the
    /// runtime's other tasks) while their channel is full.
    async fn hand_over(&self, m: Message) {
        let headers = m.headers.as_ref();
        let header = |name: &str| headers.and_then(|h| h.get(name)).map(|v| v.as_str());
        let Some(source) =
            header(frames::SOURCE).and_then(|id| self.sources.iter().position(|s| s == id))
        else {
            self.refuse(m, "it names no source of this node's config")
                .await;
            return;
        };
        let mut batch = self.fresh_batch();
        if let Err(e) = frames::decode_into(
            &m.payload,
            source as SourceIndex,
            self.max_frames,
            &mut batch,
        ) {
            self.refuse(m, &e.to_string()).await;
            return;
        }
        // Latency starts where the frame arrived, on whichever node read it.
        if let Some(us) = header(frames::RECEIVED).and_then(|v| v.parse::<u64>().ok()) {
            let age = Duration::from_micros(now_us().saturating_sub(us));
            batch.opened = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
        }
        let token = self.next.fetch_add(1, Ordering::Relaxed);
        batch.seq = token;
        lock(&self.in_hand).insert(token, m);
        let mut batch = match self.io_frames.try_send(batch) {
            Ok(()) => return,
            Err(TrySendError::Full(b)) => b,
            Err(TrySendError::Disconnected(_)) => return,
        };
        loop {
            let tx = self.io_frames.clone();
            let sent =
                tokio::task::block_in_place(|| tx.send_timeout(batch, Duration::from_millis(200)));
            match sent {
                Ok(()) => return,
                Err(crossbeam_channel::SendTimeoutError::Timeout(b)) => {
                    batch = b;
                    // Still ours: keep the stream from handing it to another node.
                    let m = lock(&self.in_hand).get(&token).cloned();
                    if let Some(m) = m {
                        let _ = m.ack_with(AckKind::Progress).await;
                    }
                }
                Err(crossbeam_channel::SendTimeoutError::Disconnected(_)) => return,
            }
        }
    }

    async fn refuse(&self, m: Message, why: &str) {
        error!(
            reason = why,
            "a message of the frame stream is not a frame batch; it is dropped"
        );
        metrics::counter!(CLUSTER_FRAMES_REFUSED).increment(1);
        let _ = m.ack_with(AckKind::Term).await;
    }

    fn fresh_batch(&self) -> Batch {
        for r in &self.recycled {
            if let Ok(b) = r.try_recv() {
                return b;
            }
        }
        Batch::with_capacity(0, self.max_frames, 512)
    }
}

/// Publishes routed mentions and acknowledges their batches.
struct Publisher {
    cluster: Cluster,
    in_hand: InHand,
    runtime: Runtime,
}

/// One queue-stream message being published.
struct Publish {
    subject: String,
    msg_id: String,
    event: &'static str,
    body: Bytes,
    /// Acknowledged by the stream.
    done: bool,
}

impl Publisher {
    fn run(self, routed: Receiver<Routed>) {
        loop {
            let first = match routed.recv_timeout(Duration::from_millis(500)) {
                Ok(r) => r,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut batches = vec![first];
            while batches.len() < 64 {
                match routed.try_recv() {
                    Ok(r) => batches.push(r),
                    Err(_) => break,
                }
            }
            let mut publishes: Vec<Publish> = Vec::new();
            for r in &batches {
                for m in &r.mentions {
                    let received_us =
                        now_us().saturating_sub(m.received.elapsed().as_micros() as u64);
                    let data = match serde_json::to_string(&**m)
                        .ok()
                        .and_then(|s| serde_json::value::RawValue::from_string(s).ok())
                    {
                        Some(d) => d,
                        None => {
                            error!(mention_id = %m.mention_id, "cannot serialize a mention");
                            continue;
                        }
                    };
                    let entry = Entry::new(
                        m.mention_id.clone(),
                        Event::MentionCreated,
                        data,
                        received_us,
                    );
                    let body = Bytes::from(entry.to_bytes());
                    for q in &m.queues {
                        publishes.push(Publish {
                            subject: queue_subject(q),
                            msg_id: format!("{q}:{}", m.mention_id),
                            event: Event::MentionCreated.as_str(),
                            body: body.clone(),
                            done: false,
                        });
                    }
                }
            }
            for r in &batches {
                for s in &r.spikes {
                    let entry = Entry::new(s.id.clone(), s.event, s.data.clone(), now_us());
                    let body = Bytes::from(entry.to_bytes());
                    for q in &s.queues {
                        publishes.push(Publish {
                            subject: queue_subject(q),
                            msg_id: format!("{q}:{}", s.id),
                            event: s.event.as_str(),
                            body: body.clone(),
                            done: false,
                        });
                    }
                }
            }
            let tokens: Vec<u64> = batches.iter().map(|r| r.seq).filter(|&t| t > 0).collect();
            self.publish_all(&mut publishes, &tokens);
            let acks: Vec<Message> = {
                let mut held = lock(&self.in_hand);
                tokens.iter().filter_map(|t| held.remove(t)).collect()
            };
            self.runtime.block_on(async {
                for m in acks {
                    if let Err(e) = m.ack().await {
                        debug!(error = %e, "cannot acknowledge a frame batch; it will be routed again");
                    }
                }
            });
        }
        debug!("mention publisher finished");
    }

    /// Publishes every message until each is acknowledged, keeping the batches `tokens` in
    /// hand meanwhile.
    fn publish_all(&self, publishes: &mut [Publish], tokens: &[u64]) {
        let timeout = self.cluster.settings.timeout;
        let mut failures = 0u32;
        loop {
            let sent: Vec<(usize, Option<PublishAckFuture>)> = publishes
                .iter()
                .enumerate()
                .filter(|(_, p)| !p.done)
                .map(|(i, p)| (i, self.send(p)))
                .collect();
            if sent.is_empty() {
                return;
            }
            let mut acked = 0u64;
            let mut failed = 0u64;
            let mut first_error = String::new();
            self.runtime.block_on(async {
                for (i, ack) in sent {
                    let result = match ack {
                        None => Err("not sent".to_string()),
                        Some(ack) => match tokio::time::timeout(timeout, ack).await {
                            Ok(Ok(_)) => Ok(()),
                            Ok(Err(e)) => Err(e.to_string()),
                            Err(_) => Err("no acknowledgement in time".to_string()),
                        },
                    };
                    match result {
                        Ok(()) => {
                            publishes[i].done = true;
                            acked += 1;
                        }
                        Err(e) => {
                            failed += 1;
                            if first_error.is_empty() {
                                first_error = e;
                            }
                        }
                    }
                }
            });
            metrics::counter!(CLUSTER_PUBLISHED, "stream" => QUEUES_STREAM, "outcome" => "acked")
                .increment(acked);
            if failed == 0 {
                return;
            }
            metrics::counter!(CLUSTER_PUBLISHED, "stream" => QUEUES_STREAM, "outcome" => "retried")
                .increment(failed);
            warn!(failed, error = %first_error, "mentions were not stored in the queue stream; publishing them again");
            self.keep_in_hand(tokens);
            std::thread::sleep(super::retry_pause(failures));
            failures += 1;
        }
    }

    fn send(&self, p: &Publish) -> Option<PublishAckFuture> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, p.msg_id.as_str());
        headers.insert("Earshot-Event", p.event);
        let js = self.cluster.js.clone();
        self.runtime
            .block_on(js.publish_with_headers(p.subject.clone(), headers, p.body.clone()))
            .map_err(|e| debug!(error = %e, "cannot send a mention"))
            .ok()
    }

    fn keep_in_hand(&self, tokens: &[u64]) {
        let held: Vec<Message> = {
            let held = lock(&self.in_hand);
            tokens.iter().filter_map(|t| held.get(t).cloned()).collect()
        };
        self.runtime.block_on(async {
            for m in held {
                let _ = m.ack_with(AckKind::Progress).await;
            }
        });
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
