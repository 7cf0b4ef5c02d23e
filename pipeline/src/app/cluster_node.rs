//! Wiring of a cluster node (`[cluster]`): the roles it takes, around the same workers,
//! admin server and reloads as a single node.
//!
//! Start order is the single node's, back to front: the queue owners, then the workers and
//! the frame consumer feeding them, then the sources' contenders. Stop order too: the
//! sources' readers publish what they read and let go of their leases, the frame consumer
//! stops pulling and the workers drain, the mention publisher stores what they routed, and
//! the queue owners finish their attempts and hand the rest back to the stream.

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::{AppError, RunOptions, StartedSources};
use crate::cluster::{deliver, ingest, monitor, rules, work, Cluster};
use crate::compile::Compiled;
use crate::config::cluster::Role;
use crate::config::Config;
use crate::health::{Component, Handle, Health};
use crate::live::LiveHub;
use crate::mention::Mention;
use crate::metrics::Latencies;
use crate::monitor::{BrandInfo, SpikeFlags};
use crate::outbox::writer::Routed;
use crate::reload::Reloader;
use crate::shutdown::{Shutdown, ShutdownTrigger};
use crate::source::batch::Batch;

/// What a cluster node runs besides the workers.
pub(super) struct ClusterParts {
    node: Cluster,
    /// Each source's contender (and reader while it holds the lease).
    ingest: Vec<(String, JoinHandle<()>)>,
    /// The frame consumer and the mention publisher.
    working: Option<work::Working>,
    /// The workers' routed batches, until the work role takes them.
    routed: Option<Receiver<Routed>>,
    /// Each queue's contender (and owner while it holds the lease).
    deliver: Vec<(String, JoinHandle<()>)>,
    /// Watches the connection to the servers.
    link: JoinHandle<()>,
    /// Sends the workers' sightings to the detector's node.
    sightings: Option<std::thread::JoinHandle<()>>,
    /// Tasks that run until shutdown: the detector's contender, the follower of its flags
    /// and live page, the follower of the cluster's rules generation.
    background: Vec<JoinHandle<()>>,
}

/// The queue owners (when the node delivers and `options` deliver), and the channel the
/// workers hand routed batches to (when the node works). Every queue's sink is set up once
/// here, so a node whose secrets are missing stops at start rather than at its first lease.
#[allow(clippy::too_many_arguments)]
pub(super) async fn start_delivery(
    config: &Config,
    node: &Cluster,
    options: &RunOptions,
    reloader: Option<&Arc<Reloader>>,
    latencies: &Latencies,
    trigger: &ShutdownTrigger,
    health: &Health,
) -> Result<(ClusterParts, Option<Sender<Routed>>), AppError> {
    let settings = &node.settings;
    info!(node = %node.node(), roles = ?settings.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>(), "joined the cluster");
    let mut deliver = Vec::new();
    if options.deliver && settings.has(Role::Deliver) {
        for q in &config.queues {
            drop(
                crate::sink::setup::deliverer(q)
                    .await
                    .map_err(|source| AppError::Queue {
                        queue: q.id.clone(),
                        source,
                    })?,
            );
        }
        deliver = deliver::spawn(node, &config.queues, latencies, trigger, health);
    }
    let (routed_tx, routed) = if settings.has(Role::Work) {
        // The publisher stores every batch that arrived while it waited for the stream's
        // acknowledgements in one round: room for as many batches as the frame channel
        // holds keeps the workers busy through that wait (a single node's outbox writer
        // has an fsync in the same place, and a smaller channel).
        let room = config
            .pipeline
            .channel_batches
            .max(config.pipeline.worker_count() * 2 + 2);
        let (tx, rx) = crossbeam_channel::bounded(room);
        (Some(tx), Some(rx))
    } else {
        (None, None)
    };
    let held = health.register(Component::Cluster, "cluster link");
    let link = tokio::spawn(watch_link(node.client.clone(), held, trigger.subscribe()));
    Ok((
        ClusterParts {
            node: node.clone(),
            ingest: Vec::new(),
            working: None,
            routed,
            deliver,
            link,
            sightings: None,
            background: reloader
                .map(|r| rules::spawn(node, r.clone(), health, trigger.subscribe()))
                .into_iter()
                .collect(),
        },
        routed_tx,
    ))
}

/// Where the workers hand their mentions for the spike detector.
type SightingsTx = Sender<Vec<Arc<Mention>>>;

/// Spike detection on a cluster: the follower applying the detector node's flags (returned,
/// for the workers) and live page (to `hub`), the sender of this node's sightings (its
/// channel returned, for the workers) when it works, and the detector's contender when it
/// monitors.
#[allow(clippy::too_many_arguments)]
pub(super) fn start_spikes(
    config: &Config,
    node: &Cluster,
    parts: &mut ClusterParts,
    compiled: &Compiled,
    queue_ids: &[String],
    hub: &Arc<LiveHub>,
    trigger: &ShutdownTrigger,
    health: &Health,
) -> Result<(Option<SightingsTx>, Arc<SpikeFlags>), AppError> {
    let flags = SpikeFlags::new();
    parts.background.push(monitor::spawn_follow(
        node,
        flags.clone(),
        Some(hub.clone()),
        trigger.subscribe(),
    ));
    let mut tx = None;
    if node.settings.has(Role::Work) {
        let (sightings_tx, rx) = crossbeam_channel::bounded(crate::monitor::CHANNEL_BATCHES);
        parts.sightings =
            Some(
                monitor::spawn_sightings(node, rx).map_err(|source| AppError::Io {
                    context: "spawning the sightings sender".into(),
                    source,
                })?,
            );
        tx = Some(sightings_tx);
    }
    if node.settings.has(Role::Monitor) {
        let detecting = monitor::Detecting {
            settings: config.spikes.clone(),
            brands: compiled.rules.brands().iter().map(BrandInfo::of).collect(),
            queues: queue_ids.to_vec(),
        };
        parts
            .background
            .push(monitor::spawn(node, detecting, trigger, health));
    }
    Ok((tx, flags))
}

/// The frame consumer feeding `frames` (when the node works) and the sources' contenders
/// (when it ingests).
pub(super) async fn start_sources(
    config: &Config,
    node: &Cluster,
    parts: &mut ClusterParts,
    frames: Sender<Batch>,
    recycled: Vec<Receiver<Batch>>,
    trigger: &ShutdownTrigger,
    health: &Health,
) -> Result<StartedSources, AppError> {
    if let (true, Some(routed)) = (node.settings.has(Role::Work), parts.routed.take()) {
        let io = work::WorkIo {
            frames,
            recycled,
            routed,
        };
        let ids = config.sources.iter().map(|s| s.id.clone()).collect();
        let max_frames = config.pipeline.batch_limits().max_frames;
        parts.working = Some(
            work::spawn(node, ids, max_frames, io, trigger, health)
                .await
                .map_err(AppError::Cluster)?,
        );
    }
    let mut stats = Vec::new();
    if node.settings.has(Role::Ingest) {
        for (id, s, task) in ingest::spawn(
            node,
            &config.sources,
            config.pipeline.batch_limits(),
            trigger,
            health,
        ) {
            stats.push((id.clone(), s));
            parts.ingest.push((id, task));
        }
    }
    Ok(StartedSources {
        stats,
        tasks: Vec::new(),
        connected: Vec::new(),
    })
}

impl ClusterParts {
    /// Waits until shutdown is signalled: a cluster node runs until it is told to stop,
    /// whatever its sources do.
    pub(super) async fn until_shutdown(&self, shutdown: &mut Shutdown) {
        if !shutdown.is_shutdown() {
            shutdown.recv().await;
        }
    }

    /// Stops the readers (each publishes what it read) within `limit`.
    pub(super) async fn stop_ingest(&mut self, limit: Duration) {
        for (id, task) in self.ingest.drain(..) {
            if tokio::time::timeout(limit, task).await.is_err() {
                warn!(source = %id, "the source's reader is still publishing at the drain deadline");
            }
        }
        if let Some(w) = &mut self.working {
            let _ = tokio::time::timeout(limit, &mut w.puller).await;
        }
    }

    /// After the workers: the publisher stores what they routed, then the queue owners
    /// finish and let go, within `limit` each.
    pub(super) async fn stop_rest(self, limit: Duration) {
        if let Some(w) = self.working {
            let publisher = w.publisher;
            let joined = tokio::task::spawn_blocking(move || publisher.join());
            if tokio::time::timeout(limit, joined).await.is_err() {
                warn!("the mention publisher is still storing mentions at the drain deadline");
            }
        }
        if let Some(sightings) = self.sightings {
            let joined = tokio::task::spawn_blocking(move || sightings.join());
            let _ = tokio::time::timeout(limit, joined).await;
        }
        for task in self.background {
            if tokio::time::timeout(limit, task).await.is_err() {
                warn!("a cluster task is still stopping at the drain deadline");
            }
        }
        for (id, task) in self.deliver {
            if tokio::time::timeout(limit + deliver::DRAIN, task)
                .await
                .is_err()
            {
                warn!(queue = %id, "the queue's owner is still stopping at the drain deadline");
            }
        }
        self.link.abort();
        // Acknowledgements and releases go out before the connection closes.
        let _ = tokio::time::timeout(Duration::from_secs(2), self.node.client.flush()).await;
    }
}

/// Marks the node failing while it is cut off from every server (the client reconnects on
/// its own), so `/readyz` says so.
async fn watch_link(client: async_nats::Client, health: Handle, mut shutdown: Shutdown) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut down = false;
    loop {
        tokio::select! {
            _ = shutdown.recv() => return,
            _ = tick.tick() => {}
        }
        let connected = client.connection_state() == async_nats::connection::State::Connected;
        if connected && down {
            info!("connected to the cluster's servers again");
            health.recovered();
            down = false;
        } else if !connected && !down {
            warn!("cut off from every cluster server; reconnecting");
            health.failing("not connected to any NATS server of the cluster");
            down = true;
        }
    }
}
