//! The deliver role: one node at a time delivers each queue (the holder of the lease
//! `queue.<id>`), running the single node's dispatcher over the queue's subject of
//! [`super::QUEUES_STREAM`] instead of the local outbox.
//!
//! Why one owner per queue rather than shared state: a queue's ordering, its breaker, its
//! concurrency limit and its retry schedule are decisions about one endpoint made from one
//! view of it; splitting them across nodes would mean a round trip to shared state per
//! attempt, and two nodes could still open the same endpoint's breaker at different times.
//! A lease keeps every decision local and fast, at the cost of a takeover (about the lease's
//! time to live) when the owner dies.
//!
//! [`StreamQueue`] is the dispatcher's store ([`QueueBacking`]): a durable consumer per queue
//! whose unacknowledged messages are the window. A message is acknowledged when its entry was
//! delivered, or after it was published to the queue's dead-letter subject. While an entry
//! waits for its retry, the holder tells the stream it is still working on it (every
//! `lease_renew`); a holder that dies stops doing so, and the stream hands its messages to
//! the next holder within the ack wait (the lease's time to live). Attempt counts live in the
//! holder's memory: after a takeover an entry starts its schedule again, which can only delay
//! a dead letter, never lose a mention. A delivery that reached the endpoint just before its
//! holder died is delivered again by the next one, with the same `webhook-id`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, Consumer};
use async_nats::jetstream::{AckKind, Message};
use bytes::Bytes;
use futures_util::StreamExt as _;
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

mod noise;

use self::noise::{Admitted, QueueNoise};
use super::lease::Lease;
use super::turns::Turns;
use super::{dlq_subject, queue_subject, Cluster, QUEUES_STREAM};
use crate::health::{Component, Health};
use crate::metrics::Latencies;
use crate::outbox::entry::{now_us, Entry};
use crate::outbox::queue::QueueShared;
use crate::outbox::store::Stored;
use crate::shutdown::{Shutdown, ShutdownTrigger};
use crate::sink::backing::{BackingError, BackingFuture, QueueBacking, Read};
use crate::sink::{dispatch, setup, QueueConfig};

/// The header `earshot dlq replay` puts on an entry it sends back: noise control lets it
/// through.
pub const REPLAY_HEADER: &str = "Earshot-Replay";

/// How long a graceful stop lets the dispatcher finish the attempts it has started.
pub const DRAIN: Duration = Duration::from_secs(5);

/// The durable consumer of a queue's subject.
pub fn consumer_name(queue: &str) -> String {
    format!("earshot-deliver-{queue}")
}

/// Contends for every queue until shutdown, delivering each while this node holds its lease.
pub fn spawn(
    cluster: &Cluster,
    queues: &[QueueConfig],
    latencies: &Latencies,
    trigger: &ShutdownTrigger,
    health: &Health,
) -> Vec<(String, JoinHandle<()>)> {
    queues
        .iter()
        .map(|q| {
            crate::metrics::register_queue(&q.id);
            let held = health.register(Component::Cluster, format!("deliver {}", q.id));
            let owner = Owner {
                cluster: cluster.clone(),
                queue: q.clone(),
                latencies: latencies.clone(),
                credentials: health.register(Component::Cluster, format!("queue `{}`", q.id)),
            };
            (
                q.id.clone(),
                tokio::spawn(held.watch(owner.lead(trigger.clone()))),
            )
        })
        .collect()
}

struct Owner {
    cluster: Cluster,
    queue: QueueConfig,
    latencies: Latencies,
    /// Says in `/readyz` when the queue's credentials are refused while this node delivers it.
    credentials: crate::health::Handle,
}

impl Owner {
    async fn lead(self, trigger: ShutdownTrigger) {
        let mut turns = Turns::new(&self.cluster, format!("queue.{}", self.queue.id), &trigger);
        while turns.next().await {
            let (lease, shutdown) = turns.parts();
            let stopping = self.hold(lease, shutdown).await;
            turns.ended(stopping).await;
            if stopping {
                break;
            }
        }
        turns.finish().await;
    }

    /// Delivers the queue while the lease is held; true when the node is stopping.
    async fn hold(&self, lease: &Lease, shutdown: &mut Shutdown) -> bool {
        let id = &self.queue.id;
        let settings = setup::dispatch_settings(&self.queue);
        let deliverer = match setup::deliverer(&self.queue).await {
            Ok(d) => d,
            Err(e) => {
                error!(queue = %id, error = %e, "cannot set the queue's sink up; letting another node try");
                return false;
            }
        };
        let window = settings.window();
        let consumer = match self.consumer(window).await {
            Ok(c) => c,
            Err(e) => {
                warn!(queue = %id, error = %e, "cannot open the queue's consumer; trying again");
                return false;
            }
        };
        info!(queue = %id, node = %self.cluster.node(), "this node delivers the queue");
        let shared = Arc::new(QueueShared {
            id: id.clone(),
            ..QueueShared::default()
        });
        let timeout = self.cluster.settings.timeout;
        let noise = match QueueNoise::restore(id, &self.queue.noise, &self.cluster.js, timeout)
            .await
        {
            Ok(n) => n,
            Err(e) => {
                warn!(queue = %id, error = %e, "cannot read the mentions held for the queue's digest; trying again");
                return false;
            }
        };
        let store = Arc::new(StreamQueue::new(&self.cluster, id, timeout, noise));
        let prefetch = tokio::spawn(store.clone().prefetch(consumer, window, shared.clone()));
        let mut dispatcher = tokio::spawn(dispatch::run_on(
            store.clone(),
            shared.clone(),
            deliverer,
            settings,
            self.latencies.clone(),
        ));
        let renew = self.cluster.settings.lease_renew;
        let mut keep = tokio::time::interval(renew);
        let mut check = tokio::time::interval(Duration::from_millis(100));
        let mut ended = false;
        let stopping = loop {
            tokio::select! {
                _ = &mut dispatcher => {
                    error!(queue = %id, "the dispatcher ended; letting another node try");
                    ended = true;
                    break false;
                }
                _ = shutdown.recv() => break true,
                _ = keep.tick() => store.keep_alive().await,
                _ = check.tick() => {
                    match shared.refused() {
                        Some(how) => self.credentials.failing(format!(
                            "its credentials are refused ({how}); its entries wait"
                        )),
                        None => self.credentials.recovered(),
                    }
                    if !lease.holds() {
                        warn!(queue = %id, "lost the queue's lease; this node stops delivering it");
                        break false;
                    }
                }
            }
        };
        prefetch.abort();
        if stopping && !ended {
            // Finish what was started; read nothing more.
            store.draining.store(true, Ordering::Relaxed);
            shared.closed.store(true, Ordering::Relaxed);
            shared.notify.notify_one();
            ended = tokio::time::timeout(DRAIN, &mut dispatcher).await.is_ok();
        }
        if !ended {
            shared.stop();
            if tokio::time::timeout(Duration::from_secs(2), &mut dispatcher)
                .await
                .is_err()
            {
                dispatcher.abort();
            }
        }
        store.release().await;
        self.credentials.recovered();
        stopping
    }

    async fn consumer(&self, window: usize) -> Result<Consumer<pull::Config>, String> {
        let stream = self
            .cluster
            .js
            .get_stream(QUEUES_STREAM)
            .await
            .map_err(|e| e.to_string())?;
        let name = consumer_name(&self.queue.id);
        stream
            .get_or_create_consumer(
                &name,
                pull::Config {
                    durable_name: Some(name.clone()),
                    description: Some(format!("earshot: deliveries of queue {}", self.queue.id)),
                    filter_subject: queue_subject(&self.queue.id),
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: self.cluster.settings.lease_ttl,
                    max_ack_pending: window as i64,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| e.to_string())
    }
}

/// A queue's entries in the cluster's stream, as the dispatcher's store.
pub struct StreamQueue {
    queue: String,
    js: async_nats::jetstream::Context,
    timeout: Duration,
    /// Pulled, not yet read by the dispatcher.
    incoming: Mutex<VecDeque<Message>>,
    /// Read by the dispatcher and not yet acknowledged, by stream sequence.
    held: Mutex<BTreeMap<u64, Message>>,
    /// Stopping: hand the dispatcher nothing more.
    draining: AtomicBool,
    /// The queue's noise control.
    noise: tokio::sync::Mutex<QueueNoise>,
    /// The cluster's cases.
    cases: async_nats::jetstream::kv::Store,
}

impl StreamQueue {
    fn new(cluster: &Cluster, queue: &str, timeout: Duration, noise: QueueNoise) -> Self {
        Self {
            queue: queue.to_string(),
            js: cluster.js.clone(),
            timeout,
            incoming: Mutex::default(),
            held: Mutex::default(),
            draining: AtomicBool::new(false),
            noise: tokio::sync::Mutex::new(noise),
            cases: cluster.cases.clone(),
        }
    }

    /// Pulls the queue's messages as they come (at most `window` unacknowledged, the
    /// consumer's limit), waking the dispatcher for each.
    async fn prefetch(
        self: Arc<Self>,
        consumer: Consumer<pull::Config>,
        window: usize,
        shared: Arc<QueueShared>,
    ) {
        loop {
            let messages = consumer
                .stream()
                .max_messages_per_batch(window.max(1))
                .heartbeat(Duration::from_secs(5))
                .expires(Duration::from_secs(30))
                .messages()
                .await;
            let mut messages = match messages {
                Ok(m) => m,
                Err(e) => {
                    debug!(queue = %self.queue, error = %e, "cannot pull; trying again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            while let Some(m) = messages.next().await {
                match m {
                    Ok(m) => {
                        lock(&self.incoming).push_back(m);
                        shared.notify.notify_one();
                    }
                    Err(e) => {
                        debug!(queue = %self.queue, error = %e, "a pull failed; pulling again");
                        break;
                    }
                }
            }
        }
    }

    /// Tells the stream every held entry is still being worked on.
    async fn keep_alive(&self) {
        let held: Vec<Message> = lock(&self.held).values().cloned().collect();
        for m in held {
            let _ = m.ack_with(AckKind::Progress).await;
        }
    }

    /// Gives every entry this node still has back to the stream, for the next holder.
    async fn release(&self) {
        let mut all: Vec<Message> = lock(&self.held).values().cloned().collect();
        all.extend(lock(&self.incoming).drain(..));
        lock(&self.held).clear();
        for m in all {
            let _ = m.ack_with(AckKind::Nak(None)).await;
        }
    }

    async fn dead_letter(&self, seq: u64, entry: Option<&Entry>) -> Result<(), BackingError> {
        let message = lock(&self.held).get(&seq).cloned();
        let (id, body) = match (entry, &message) {
            (Some(e), _) => {
                let mut e = e.clone();
                e.dead_us = Some(now_us());
                (e.id.clone(), Bytes::from(e.to_bytes()))
            }
            (None, Some(m)) => (format!("unreadable-{seq}"), m.payload.clone()),
            (None, None) => return Ok(()),
        };
        let mut headers = async_nats::HeaderMap::new();
        let msg_id = format!("{}:{id}:{seq}", self.queue);
        headers.insert(async_nats::header::NATS_MESSAGE_ID, msg_id.as_str());
        let publish = async {
            self.js
                .publish_with_headers(dlq_subject(&self.queue), headers, body)
                .await?
                .await
        };
        match tokio::time::timeout(self.timeout, publish).await {
            Ok(Ok(_)) => {
                if QueueNoise::is_digest(seq) {
                    self.noise.lock().await.settled(seq).await;
                }
                let message = lock(&self.held).remove(&seq);
                if let Some(m) = message {
                    let _ = m.ack().await;
                }
                Ok(())
            }
            Ok(Err(e)) => Err(BackingError::Stream(e.to_string())),
            Err(_) => Err(BackingError::Stream(
                "no acknowledgement from the dead-letter stream in time".into(),
            )),
        }
    }
}

impl QueueBacking for StreamQueue {
    fn read<'a>(&'a self, queue: &'a str, _after: u64, limit: usize) -> BackingFuture<'a, Read> {
        Box::pin(async move {
            let mut out = Vec::new();
            let mut broken = Vec::new();
            if self.draining.load(Ordering::Relaxed) {
                return Ok((out, broken));
            }
            let taken: Vec<Message> = {
                let mut incoming = lock(&self.incoming);
                let n = limit.min(incoming.len());
                incoming.drain(..n).collect()
            };
            let mut noise = self.noise.lock().await;
            for m in taken {
                let Ok(seq) = m.info().map(|i| i.stream_sequence) else {
                    continue;
                };
                let entry = match serde_json::from_slice::<Entry>(&m.payload) {
                    Ok(entry) => entry,
                    Err(_) => {
                        broken.push(seq);
                        lock(&self.held).insert(seq, m);
                        continue;
                    }
                };
                // A replay (`earshot dlq replay`) is someone's decision to deliver it: not
                // noise, as on a single node.
                let replayed = m
                    .headers
                    .as_ref()
                    .is_some_and(|h| h.get(REPLAY_HEADER).is_some());
                let admitted = if replayed {
                    Admitted::Deliver
                } else {
                    noise.admit(&entry).await
                };
                match admitted {
                    Admitted::Held => {
                        let _ = m.ack().await;
                    }
                    Admitted::Deliver => {
                        out.push(Stored {
                            queue: queue.to_string(),
                            seq,
                            entry,
                        });
                        lock(&self.held).insert(seq, m);
                    }
                }
            }
            if let Some((seq, entry)) = noise.due_digest() {
                out.push(Stored {
                    queue: queue.to_string(),
                    seq,
                    entry,
                });
            }
            out.sort_by_key(|s| s.seq);
            Ok((out, broken))
        })
    }

    fn ack<'a>(&'a self, _queue: &'a str, seqs: &'a [u64]) -> BackingFuture<'a, ()> {
        Box::pin(async move {
            let done: Vec<Message> = {
                let mut held = lock(&self.held);
                seqs.iter().filter_map(|s| held.remove(s)).collect()
            };
            for m in done {
                if let Err(e) = m.ack().await {
                    debug!(queue = %self.queue, error = %e, "an acknowledgement was not sent; the entry may be delivered again");
                }
            }
            for &seq in seqs.iter().filter(|&&s| QueueNoise::is_digest(s)) {
                self.noise.lock().await.settled(seq).await;
            }
            Ok(())
        })
    }

    fn bury<'a>(
        &'a self,
        _queue: &'a str,
        items: &'a [(u64, Option<&'a Entry>)],
    ) -> BackingFuture<'a, ()> {
        Box::pin(async move {
            for (seq, entry) in items {
                if let Err(e) = self.dead_letter(*seq, *entry).await {
                    // Back to the stream: it is tried again rather than held here forever.
                    let m = lock(&self.held).remove(seq);
                    if let Some(m) = m {
                        let _ = m.ack_with(AckKind::Nak(Some(Duration::from_secs(5)))).await;
                    }
                    return Err(e);
                }
            }
            Ok(())
        })
    }

    fn update<'a>(
        &'a self,
        _queue: &'a str,
        _seq: u64,
        _entry: &'a Entry,
    ) -> BackingFuture<'a, ()> {
        // Attempt counts stay in the holder's memory (see the module docs).
        Box::pin(async { Ok(()) })
    }

    fn cases<'a>(
        &'a self,
        queue: &'a str,
        keys: &'a [&'a str],
    ) -> BackingFuture<'a, Vec<Option<Vec<u8>>>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(keys.len());
            for key in keys {
                let got = tokio::time::timeout(self.timeout, self.cases.get(case_key(queue, key)))
                    .await
                    .map_err(|_| BackingError::Stream("case lookup: timed out".into()))?
                    .map_err(|e| BackingError::Stream(format!("case lookup: {e}")))?;
                out.push(got.map(|b| b.to_vec()));
            }
            Ok(out)
        })
    }

    fn record_case<'a>(
        &'a self,
        queue: &'a str,
        keys: &'a [&'a str],
        case: &'a [u8],
    ) -> BackingFuture<'a, ()> {
        Box::pin(async move {
            for key in keys {
                let put = self
                    .cases
                    .put(case_key(queue, key), Bytes::copy_from_slice(case));
                tokio::time::timeout(self.timeout, put)
                    .await
                    .map_err(|_| BackingError::Stream("case record: timed out".into()))?
                    .map_err(|e| BackingError::Stream(format!("case record: {e}")))?;
            }
            Ok(())
        })
    }

    fn prune_cases<'a>(
        &'a self,
        _queue: &'a str,
        _now_us: u64,
        _keep: Duration,
    ) -> BackingFuture<'a, u64> {
        // The bucket forgets keys past its age ([`crate::cluster::CASES_BUCKET`]); a case
        // older than the queue's `keep` is not continued ([`crate::sink::cases::choose`]).
        Box::pin(async { Ok(0) })
    }
}

/// The bucket key of a case key of `queue`: the queue and a digest of the key, since a key
/// (a URI) holds characters bucket keys cannot.
fn case_key(queue: &str, key: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(key.as_bytes());
    let mut out = String::with_capacity(queue.len() + 1 + 40);
    out.push_str(queue);
    out.push('.');
    for b in &digest[..20] {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
