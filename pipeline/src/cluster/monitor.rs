//! The monitor role: spike detection over the whole cluster's mentions, by one node at a
//! time (the holder of the lease `monitor`), with the live page and the spike flags on every
//! node.
//!
//! - Every worker node sends what the detector reads of its mentions ([`Sighting`]s, a few
//!   hundred bytes each, only for matched posts) to [`SIGHTINGS_SUBJECT`], in small batches.
//! - The holder runs the single node's [`Monitor`] on them: its spike events go to the queue
//!   stream like mentions (`Nats-Msg-Id` = queue and event id, so an event repeated after a
//!   takeover is stored once), the brands in a spike to [`FLAGS_SUBJECT`] once a second, and
//!   its live page (snapshots, mentions, spikes) to `earshot.live.<event>`.
//! - Every node applies the flags to its workers' scorer and feeds its own live page from
//!   those subjects, so the dashboard shows the whole cluster on whichever node it is opened.
//! - The detector's baselines and active spikes are saved in [`super::STATE_BUCKET`] once a
//!   minute and when the holder lets go, and the next holder starts from them: a takeover
//!   neither blinds the detector for its warmup nor loses a spike in progress.
//!
//! Sightings go over plain NATS, not a stream: a count is worth having now or not at all. A
//! holder that dies loses the sightings of the seconds until the next one takes over, which
//! a detector judging minutes of traffic against a half-hour baseline absorbs; mentions are
//! never carried this way. A holder that cannot keep up drops sightings (counted) rather than
//! slowing the worker nodes.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use crossbeam_channel::{Receiver, RecvTimeoutError, TrySendError};
use futures_util::StreamExt as _;
use tokio::runtime::Handle as Runtime;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::lease::Lease;
use super::turns::Turns;
use super::{work, Cluster};
use crate::health::{Component, Health};
use crate::live::{LiveHub, LiveKind};
use crate::mention::Mention;
use crate::metrics::CLUSTER_SIGHTINGS_DROPPED;
use crate::monitor::{BrandInfo, Monitor, MonitorClock, Sighting, SpikeFlags, StateKeeper};
use crate::shutdown::{Shutdown, ShutdownTrigger};
use crate::spike::SpikeSettings;

/// Where worker nodes send their sightings.
pub const SIGHTINGS_SUBJECT: &str = "earshot.sightings";
/// Where the detector's node says which brands are in a spike.
pub const FLAGS_SUBJECT: &str = "earshot.spikes.flags";
/// The prefix of the live page's subjects (`earshot.live.snapshot`, `.mention`, `.spike`).
pub const LIVE_PREFIX: &str = "earshot.live";
/// The key of the detector's state.
const STATE_KEY: &str = "spikes";
/// Sightings per message: a few hundred KB at most, well under a server's payload limit.
const PER_MESSAGE: usize = 128;
/// How long a worker node collects sightings before sending them.
const SEND_EVERY: Duration = Duration::from_millis(200);

/// Sends the workers' mentions as sightings until the workers are gone.
pub fn spawn_sightings(
    cluster: &Cluster,
    rx: Receiver<Vec<Arc<Mention>>>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let client = cluster.client.clone();
    let runtime = Runtime::current();
    std::thread::Builder::new()
        .name("earshot-sightings".into())
        .spawn(move || {
            let mut pending: Vec<Sighting> = Vec::new();
            let mut since = Instant::now();
            let send = |pending: &mut Vec<Sighting>| {
                for chunk in pending.chunks(PER_MESSAGE) {
                    if let Ok(body) = serde_json::to_vec(chunk) {
                        let client = client.clone();
                        if let Err(e) =
                            runtime.block_on(client.publish(SIGHTINGS_SUBJECT, body.into()))
                        {
                            debug!(error = %e, "cannot send sightings");
                        }
                    }
                }
                pending.clear();
            };
            loop {
                match rx.recv_timeout(SEND_EVERY) {
                    Ok(batch) => {
                        if pending.is_empty() {
                            since = Instant::now();
                        }
                        pending.extend(batch.iter().map(|m| Sighting::of(m, true)));
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => break,
                }
                if !pending.is_empty()
                    && (pending.len() >= PER_MESSAGE || since.elapsed() >= SEND_EVERY)
                {
                    send(&mut pending);
                }
            }
            send(&mut pending);
            debug!("sightings sender finished");
        })
}

/// Applies the detector node's flags to `flags` and its live events to `hub`, until shutdown.
pub fn spawn_follow(
    cluster: &Cluster,
    flags: Arc<SpikeFlags>,
    hub: Option<Arc<LiveHub>>,
    mut shutdown: Shutdown,
) -> JoinHandle<()> {
    let client = cluster.client.clone();
    tokio::spawn(async move {
        let subscribed = async {
            let f = client.subscribe(FLAGS_SUBJECT).await?;
            let l = client.subscribe(format!("{LIVE_PREFIX}.*")).await?;
            Ok::<_, async_nats::SubscribeError>((f, l))
        };
        let (mut flag_msgs, mut live_msgs) = match subscribed.await {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "cannot follow the cluster's spike flags and live page");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = shutdown.recv() => return,
                Some(m) = flag_msgs.next() => {
                    if let Ok(brands) = serde_json::from_slice::<Vec<String>>(&m.payload) {
                        flags.set(brands);
                    }
                }
                Some(m) = live_msgs.next() => {
                    let (Some(hub), Ok(text)) = (&hub, std::str::from_utf8(&m.payload)) else {
                        continue;
                    };
                    match m.subject.as_str().strip_prefix(LIVE_PREFIX).unwrap_or("") {
                        ".snapshot" => hub.set_snapshot(text.to_string()),
                        ".mention" => hub.publish(LiveKind::Mention, text.to_string()),
                        ".spike" => hub.publish(LiveKind::Spike, text.to_string()),
                        _ => {}
                    }
                }
                else => return,
            }
        }
    })
}

/// What the detector's node runs with.
#[derive(Clone)]
pub struct Detecting {
    /// `[spikes]`.
    pub settings: SpikeSettings,
    /// The rule set's brands.
    pub brands: Vec<BrandInfo>,
    /// Every queue id (the live page's filter).
    pub queues: Vec<String>,
}

/// Contends for the detector's lease until shutdown, running the detector while it holds it.
pub fn spawn(
    cluster: &Cluster,
    detecting: Detecting,
    trigger: &ShutdownTrigger,
    health: &Health,
) -> JoinHandle<()> {
    let held = health.register(Component::Cluster, "monitor");
    let cluster = cluster.clone();
    let trigger = trigger.clone();
    tokio::spawn(held.watch(async move {
        let mut turns = Turns::new(&cluster, "monitor".into(), &trigger);
        while turns.next().await {
            let (lease, shutdown) = turns.parts();
            let stopping = detect(&cluster, &detecting, lease, shutdown).await;
            turns.ended(stopping).await;
            if stopping {
                break;
            }
        }
        turns.finish().await;
    }))
}

/// Runs the detector while the lease is held; true when the node is stopping.
async fn detect(cluster: &Cluster, d: &Detecting, lease: &Lease, shutdown: &mut Shutdown) -> bool {
    let mut sightings = match cluster.client.subscribe(SIGHTINGS_SUBJECT).await {
        Ok(s) => s,
        Err(e) => {
            warn!(error = %e, "cannot subscribe to the sightings; trying again");
            return false;
        }
    };
    info!(node = %cluster.node(), "this node runs the spike detector");
    let flags = SpikeFlags::new();
    let hub = LiveHub::new();
    let (events_tx, events_rx) = crossbeam_channel::bounded(64);
    let publisher = match work::spawn_publisher(cluster, events_rx, "earshot-spike-events") {
        Ok(p) => p,
        Err(e) => {
            warn!(error = %e, "cannot start the spike events' publisher");
            return false;
        }
    };
    let monitor = Monitor::new(
        d.settings.clone(),
        &d.brands,
        d.queues.clone(),
        flags.clone(),
        MonitorClock::starting_at(SystemTime::now()),
    )
    .live(hub.clone())
    .outbox(events_tx)
    .keep_state(Box::new(KvState {
        // Read here, on the runtime: the detector's thread saves, this task loads.
        loaded: cluster
            .state
            .get(STATE_KEY)
            .await
            .map(|v| v.map(|b| b.to_vec()))
            .map_err(|e| e.to_string()),
        kv: cluster.state.clone(),
        runtime: Runtime::current(),
    }));
    let (tx, rx) = crossbeam_channel::bounded::<Vec<Sighting>>(crate::monitor::CHANNEL_BATCHES);
    let thread = std::thread::Builder::new()
        .name("earshot-spikes".into())
        .spawn(move || monitor.run(rx));
    let thread = match thread {
        Ok(t) => t,
        Err(e) => {
            warn!(error = %e, "cannot start the spike detector's thread");
            return false;
        }
    };
    let forward = tokio::spawn(forward_live(cluster.client.clone(), hub.clone()));
    let dropped = metrics::counter!(CLUSTER_SIGHTINGS_DROPPED);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let stopping = loop {
        tokio::select! {
            _ = shutdown.recv() => break true,
            Some(m) = sightings.next() => {
                match serde_json::from_slice::<Vec<Sighting>>(&m.payload) {
                    Ok(batch) => match tx.try_send(batch) {
                        Ok(()) => {}
                        Err(TrySendError::Full(b)) => dropped.increment(b.len() as u64),
                        Err(TrySendError::Disconnected(_)) => break false,
                    },
                    Err(e) => debug!(error = %e, "a sightings message does not parse"),
                }
            }
            _ = tick.tick() => {
                if !lease.holds() {
                    warn!("lost the detector's lease; this node stops detecting");
                    break false;
                }
                if let Ok(body) = serde_json::to_vec(&flags.brands()) {
                    let _ = cluster.client.publish(FLAGS_SUBJECT, body.into()).await;
                }
            }
        }
    };
    // The detector saves its state and sends its last events as it ends.
    drop(tx);
    let _ = tokio::task::spawn_blocking(move || {
        let _ = thread.join();
        let _ = publisher.join();
    })
    .await;
    hub.close();
    let _ = tokio::time::timeout(Duration::from_secs(1), forward).await;
    stopping
}

/// Sends every event of the detector's live page to the cluster's live subjects.
async fn forward_live(client: async_nats::Client, hub: Arc<LiveHub>) {
    let mut viewer = hub.subscribe();
    while let Some(m) = viewer.next().await {
        if m.event == "lagged" {
            continue;
        }
        let subject = format!("{LIVE_PREFIX}.{}", m.event);
        let body = Bytes::copy_from_slice(m.data.as_bytes());
        if client.publish(subject, body).await.is_err() {
            return;
        }
    }
}

/// The detector's state in the cluster's state bucket: read when the holder starts, saved
/// from the detector's thread.
struct KvState {
    loaded: Result<Option<Vec<u8>>, String>,
    kv: async_nats::jetstream::kv::Store,
    runtime: Runtime,
}

impl StateKeeper for KvState {
    fn load(&self) -> Result<Option<Vec<u8>>, String> {
        self.loaded.clone()
    }

    fn save(&self, bytes: &[u8]) -> Result<(), String> {
        self.runtime
            .block_on(self.kv.put(STATE_KEY, Bytes::copy_from_slice(bytes)))
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}
