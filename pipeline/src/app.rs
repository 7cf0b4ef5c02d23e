//! Wiring: config → compiled stages → sinks, workers, sources, admin server → a running
//! pipeline, and its orderly end.
//!
//! Start order is back to front (sinks, then workers, then sources) so nothing produces into a
//! channel without a consumer. Stop order is front to back (STYLE: shutdown by closing
//! channels): the shutdown signal reaches only sources and the admin server; each source
//! flushes its partial batch and drops its sender; workers end when the frame channel drains
//! and drop their queue senders; sinks end when their queues drain. [`Running::wait`] joins in
//! that order and names whatever is still running past the drain deadline.

mod cluster_node;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::admin::ReloadAccess;
use crate::compile::Compiled;
use crate::compile::Shared;
use crate::config::{Config, SourceKind};
use crate::customers::CustomerLimits;
use crate::health::{Component, Health};
use crate::mention::Mention;
use crate::metrics::{
    DropCounters, Latencies, SourceCounters, CHANNEL_FRAMES_DEPTH, DEAD_LETTERS_EXPIRED,
    SOURCE_ERRORS,
};
use crate::monitor::{BrandInfo, Monitor, MonitorClock, SpikeFlags};
use crate::outbox::queue::QueueShared;
use crate::outbox::store::Store;
use crate::outbox::writer::{Routed, Writer, WriterQueue};
use crate::reload::customers::Customers;
use crate::reload::{self, Reloader};
use crate::shutdown::{Shutdown, ShutdownTrigger};
use crate::sink::dispatch::{self, Deliverer};
use crate::sink::QueueConfig;
use crate::skip::SkipCounts;
use crate::source::batch::Batch;
use crate::source::emit::{Emitter, SourceStats};
use crate::source::error::SourceError;
use crate::worker::{self, Outputs, Totals, Worker};

pub use crate::sink::setup::QueueSetupError;

/// Why the pipeline could not start.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The rules, routes, scoring or payload templates do not compile.
    #[error(transparent)]
    Compile(#[from] crate::compile::CompileError),
    /// The CRM customer table does not load.
    #[error("customers: {0}")]
    Customers(#[from] crate::customers::CustomerError),
    /// A webhook queue cannot be set up.
    #[error("queue `{queue}`: {source}")]
    Queue {
        /// Queue id.
        queue: String,
        /// What is wrong.
        source: QueueSetupError,
    },
    /// The node cannot join its cluster.
    #[error("cluster: {0}")]
    Cluster(crate::cluster::ClusterError),
    /// The outbox cannot be opened.
    #[error("outbox: {0}")]
    Outbox(#[from] crate::outbox::store::StoreError),
    /// The admin server did not start.
    #[error("admin server: {0}")]
    Admin(#[from] crate::admin::ServeError),
    /// An OS-level failure (binding a port, spawning a thread).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
}

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Deliver to the configured queues (false for `earshot replay`: route, but send nothing).
    pub deliver: bool,
    /// Receives every mention (routed or not).
    pub tap: Option<mpsc::Sender<Arc<Mention>>>,
    /// Serve the admin endpoints (overrides `admin.enabled` when false).
    pub admin: bool,
    /// Reload the rules on `SIGHUP`, `POST /rules/reload` and changes on disk (false for
    /// `earshot replay`, whose run is one pass over fixed input).
    pub reload: bool,
    /// The spike monitor's clock (None: the wall clock at start, then monotonic time); tests
    /// of the whole pipeline pass a [`crate::monitor::DrivenClock`].
    pub spike_clock: Option<MonitorClock>,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            deliver: true,
            tap: None,
            admin: true,
            reload: true,
            spike_clock: None,
        }
    }
}

/// Counts at the end of a run (or now, for a running pipeline).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Frames received by all sources.
    pub frames_received: u64,
    /// Bytes received by all sources.
    pub bytes_received: u64,
    /// Frames the workers finished.
    pub frames_processed: u64,
    /// Posts decoded.
    pub posts: u64,
    /// Posts matching at least one rule.
    pub matched: u64,
    /// Mentions routed to at least one queue.
    pub routed: u64,
    /// Frames skipped, at the source and in decode, by reason.
    pub skipped: SkipCounts,
    /// Mentions routed per queue id.
    pub per_queue: Vec<(String, u64)>,
    /// Sources that stopped on an error (`id: error`); empty after a clean run.
    pub source_errors: Vec<String>,
    /// Entries still in the outbox at the end, per queue (queues with none left out).
    pub left_in_outbox: Vec<(String, u64)>,
    /// The run ended by a forced shutdown (a second signal): it did not drain.
    pub forced: bool,
}

/// A running pipeline.
pub struct Running {
    /// Totals of the workers.
    pub totals: Arc<Totals>,
    /// Latency histograms.
    pub latencies: Latencies,
    /// Each source's id and counters.
    pub sources: Vec<(String, Arc<SourceStats>)>,
    /// Queue ids, in router order.
    pub queues: Vec<String>,
    /// Where the admin server listens, when it does.
    pub admin_addr: Option<SocketAddr>,
    /// A one-time link that opens the live dashboard in a browser (valid for
    /// `admin.login_code_ttl`), when the admin server runs. Printed at start, never logged:
    /// it is a credential.
    pub admin_login: Option<String>,
    /// The admin server's gatekeeper, for more login links.
    pub admin_access: Option<Arc<crate::admin::Access>>,
    /// Reloads the rules, when [`RunOptions::reload`] is on.
    pub reloader: Option<Arc<Reloader>>,
    /// The outbox and the queues' dispatchers (none for `earshot replay`).
    pub delivery: Option<Delivery>,
    /// The live dashboard's feed, while the spike monitor runs.
    pub live: Option<Arc<crate::live::LiveHub>>,
    /// Which parts run and what keeps the pipeline from being ready (what `/readyz` answers).
    pub health: Arc<Health>,
    monitor: Option<std::thread::JoinHandle<()>>,
    /// The cluster roles' tasks, on a cluster node.
    cluster: Option<cluster_node::ClusterParts>,
    source_tasks: Vec<(String, JoinHandle<Result<(), SourceError>>)>,
    worker_threads: Vec<std::thread::JoinHandle<usize>>,
    background: Vec<JoinHandle<()>>,
    workers_running: Arc<AtomicBool>,
    trigger: ShutdownTrigger,
}

/// Starts the pipeline described by `config` with compiled stages.
pub async fn start(
    config: &Config,
    compiled: Compiled,
    options: RunOptions,
    trigger: &ShutdownTrigger,
) -> Result<Running, AppError> {
    let _ = crate::metrics::prometheus();
    crate::metrics::register_process();
    crate::tls::ensure_crypto_provider();
    let compiled = Arc::new(compiled);
    let shared = Shared::new(compiled.clone());
    let reloader = options
        .reload
        .then(|| Reloader::new(config.clone(), shared.clone()));
    let customers = Customers::load(&config.customers, &CustomerLimits::default())?;
    let latencies = Latencies::new();
    let health = Health::new();
    let queue_ids: Vec<String> = compiled.router.queues().to_vec();

    // A cluster node joins first: every role works through the cluster's streams.
    let node = match &config.cluster {
        Some(settings) => Some(
            crate::cluster::join(settings, config.outbox.dead_letter_ttl)
                .await
                .map_err(AppError::Cluster)?,
        ),
        None => None,
    };

    // The outbox and its dispatchers first, so workers always have somewhere to send.
    let mut sources_config = config.sources.clone();
    let mut delivery = None;
    let mut routed_tx = None;
    let mut cluster_parts = None;
    if let Some(node) = &node {
        let (parts, tx) = cluster_node::start_delivery(
            config,
            node,
            &options,
            reloader.as_ref(),
            &latencies,
            trigger,
            &health,
        )
        .await?;
        routed_tx = tx;
        cluster_parts = Some(parts);
    } else if options.deliver {
        let (started, tx) =
            start_delivery(config, &mut sources_config, &health, &latencies, trigger).await?;
        routed_tx = Some(tx);
        delivery = Some(started);
    }

    // The spike monitor, between the workers and the outbox writer: it ends after the
    // workers, and the writer after it (it holds a sender of the writer's channel).
    let mut spikes_tx = None;
    let mut spike_flags = None;
    let mut monitor = None;
    let live = (options.deliver && config.spikes.enabled).then(crate::live::LiveHub::new);
    if let (Some(hub), Some(node), Some(parts)) = (&live, &node, cluster_parts.as_mut()) {
        let (tx, flags) = cluster_node::start_spikes(
            config, node, parts, &compiled, &queue_ids, hub, trigger, &health,
        )?;
        spikes_tx = tx;
        spike_flags = Some(flags);
    } else if let Some(hub) = &live {
        let started = start_monitor(
            config,
            &compiled,
            &queue_ids,
            hub,
            routed_tx.as_ref(),
            delivery.as_ref(),
            &health,
            options.spike_clock.clone(),
        )?;
        spikes_tx = Some(started.tx);
        spike_flags = Some(started.flags);
        monitor = Some(started.thread);
    }

    let workers = start_workers(
        config,
        &compiled,
        &shared,
        &customers,
        Outputs {
            routed: routed_tx,
            tap: options.tap.clone(),
            spikes: spikes_tx,
            recycle: Vec::new(),
            routed_posts: delivery.as_ref().map(|d| d.routed_posts.clone()),
            profiles: match (options.deliver, config.enrichment.enabled) {
                (true, true) => Some(
                    crate::enrich::Profiles::start(
                        &config.enrichment,
                        &tokio::runtime::Handle::current(),
                    )
                    .map_err(|e| AppError::Io {
                        context: "building the profile lookup client".into(),
                        source: std::io::Error::other(e),
                    })?,
                ),
                _ => None,
            },
        },
        spike_flags,
        &latencies,
        &health,
    )?;
    let totals = workers.totals.clone();
    let worker_threads = workers.threads;
    let workers_running = Arc::new(AtomicBool::new(true));
    let sources = match (&node, cluster_parts.as_mut()) {
        (Some(node), Some(parts)) => {
            cluster_node::start_sources(
                config,
                node,
                parts,
                workers.frame_tx,
                workers.recycled,
                trigger,
                &health,
            )
            .await?
        }
        _ => start_sources(
            config,
            &sources_config,
            workers.frame_tx,
            workers.recycled,
            trigger,
            &health,
        ),
    };

    let mut background = start_background(
        config,
        &options,
        delivery.as_ref(),
        &customers,
        reloader.as_ref(),
        &sources.stats,
        workers.frame_depth,
        trigger,
    );
    let mut admin = None;
    if options.admin && config.admin.enabled {
        let (flags_tx, flags) = connected_mirror(&sources.connected, trigger.subscribe());
        background.push(flags_tx);
        let mut state = crate::admin::AdminState::new(
            &config.admin,
            std::env::var(&config.admin.token_env).ok(),
        );
        state.latencies = latencies.clone();
        state.workers_running = workers_running.clone();
        state.health = health.clone();
        state.sources_connected = flags;
        state.reload = reloader.clone().map(|reloader| ReloadAccess { reloader });
        state.dlq = delivery.as_ref().map(|d| crate::admin::DlqAccess {
            store: d.store.clone(),
            queues: d.queues.clone(),
        });
        state.live = live.clone();
        state.cluster = node.is_some();
        let (started, task) = start_admin(config, state, trigger).await?;
        background.push(task);
        admin = Some(started);
    }
    let (admin_addr, admin_login, admin_access) = match admin {
        Some(a) => (Some(a.addr), Some(a.login), Some(a.access)),
        None => (None, None, None),
    };
    Ok(Running {
        totals,
        latencies,
        sources: sources.stats,
        queues: queue_ids,
        admin_addr,
        admin_login,
        admin_access,
        reloader,
        delivery,
        live,
        health,
        monitor,
        cluster: cluster_parts,
        source_tasks: sources.tasks,
        worker_threads,
        background,
        workers_running,
        trigger: trigger.clone(),
    })
}

/// The outbox and the delivery side of a running pipeline.
pub struct Delivery {
    /// The store (also read by the admin server's dead-letter endpoints).
    pub store: Arc<Store>,
    /// Posts routed lately, for deletes (shared by the writer and the workers).
    pub routed_posts: Arc<crate::outbox::deletes::RoutedIndex>,
    /// Each queue's shared state, in router order.
    pub queues: Vec<Arc<QueueShared>>,
    writer: Option<std::thread::JoinHandle<()>>,
    writer_stop: Arc<AtomicBool>,
    dispatchers: Vec<(String, JoinHandle<()>)>,
}

/// Running worker threads: where sources send frame batches and take emptied ones back.
struct StartedWorkers {
    threads: Vec<std::thread::JoinHandle<usize>>,
    totals: Arc<Totals>,
    frame_tx: crossbeam_channel::Sender<Batch>,
    /// A receiver only to read the channel's depth: it does not keep the channel open.
    frame_depth: crossbeam_channel::Receiver<Batch>,
    /// Per source, in config order: the batches the workers have emptied.
    recycled: Vec<crossbeam_channel::Receiver<Batch>>,
}

/// Builds every worker, then spawns their threads on one bounded frame channel. `outputs`
/// says where mentions go; its recycle senders are made here, one per source.
#[allow(clippy::too_many_arguments)]
fn start_workers(
    config: &Config,
    compiled: &Arc<Compiled>,
    shared: &Arc<Shared>,
    customers: &Customers,
    mut outputs: Outputs,
    spike_flags: Option<Arc<SpikeFlags>>,
    latencies: &Latencies,
    health: &Health,
) -> Result<StartedWorkers, AppError> {
    let workers_n = config.pipeline.worker_count();
    let (frame_tx, frame_rx) = crossbeam_channel::bounded::<Batch>(config.pipeline.channel_batches);
    let totals = Arc::new(Totals::new(compiled.router.queues().len()));
    let formats: Vec<_> = config.sources.iter().map(|s| s.format.clone()).collect();
    // Emptied batches return to their source: as many as can be in flight, so a source in the
    // steady state never allocates a batch.
    let (recycle_txs, recycled): (Vec<_>, Vec<_>) = config
        .sources
        .iter()
        .map(|_| {
            crossbeam_channel::bounded::<Batch>(config.pipeline.channel_batches + workers_n + 1)
        })
        .unzip();
    outputs.recycle = recycle_txs;
    let workers: Vec<Worker> = (0..workers_n)
        .map(|i| {
            let w = Worker::new(
                i,
                compiled.clone(),
                &formats,
                config.limits.decode_limits(),
                outputs.clone(),
                totals.clone(),
                latencies.clone(),
            )
            .follow(shared.clone())
            .customers(customers.clone());
            match &spike_flags {
                Some(flags) => w.spike_flags(flags.clone()),
                None => w,
            }
        })
        .collect();
    drop(outputs);
    let frame_depth = frame_rx.clone();
    let threads = worker::spawn(workers, frame_rx, health).map_err(|source| AppError::Io {
        context: "spawning worker threads".into(),
        source,
    })?;
    Ok(StartedWorkers {
        threads,
        totals,
        frame_tx,
        frame_depth,
        recycled,
    })
}

/// Running sources: each one's counters and task, and the ones whose connection state the
/// admin server reports (every source but files).
struct StartedSources {
    stats: Vec<(String, Arc<SourceStats>)>,
    tasks: Vec<(String, JoinHandle<Result<(), SourceError>>)>,
    connected: Vec<(String, Arc<SourceStats>)>,
}

/// One task per source of `sources` (the config's, with start positions from the outbox's
/// checkpoints), each emitting batches on `frame_tx` and reusing the ones in `recycled`.
fn start_sources(
    config: &Config,
    sources: &[crate::config::SourceConfig],
    frame_tx: crossbeam_channel::Sender<Batch>,
    recycled: Vec<crossbeam_channel::Receiver<Batch>>,
    trigger: &ShutdownTrigger,
    health: &Health,
) -> StartedSources {
    let mut started = StartedSources {
        stats: Vec::new(),
        tasks: Vec::new(),
        connected: Vec::new(),
    };
    for ((index, s), recycled) in sources.iter().enumerate().zip(recycled) {
        let stats = Arc::new(SourceStats::default());
        let emitter = Emitter::new(
            index as u16,
            frame_tx.clone(),
            config.pipeline.batch_limits(),
            stats.clone(),
        )
        .with_recycler(recycled)
        .with_shutdown(trigger.subscribe());
        let task = spawn_source(
            s.id.clone(),
            s.kind.clone(),
            emitter,
            trigger.subscribe(),
            health,
        );
        if !matches!(s.kind, SourceKind::File(_)) {
            started.connected.push((s.id.clone(), stats.clone()));
        }
        started.tasks.push((s.id.clone(), task));
        started.stats.push((s.id.clone(), stats));
    }
    started
}

/// The background tasks: dead-letter expiry, the once-a-second export of source counters and
/// channel depths, and the reloads of the customer table and the rules.
#[allow(clippy::too_many_arguments)]
fn start_background(
    config: &Config,
    options: &RunOptions,
    delivery: Option<&Delivery>,
    customers: &Customers,
    reloader: Option<&Arc<Reloader>>,
    sources: &[(String, Arc<SourceStats>)],
    frame_depth: crossbeam_channel::Receiver<Batch>,
    trigger: &ShutdownTrigger,
) -> Vec<JoinHandle<()>> {
    let mut background = Vec::new();
    if let (Some(d), false) = (delivery, config.outbox.dead_letter_ttl.is_zero()) {
        background.push(tokio::spawn(expire_dead_letters(
            d.store.clone(),
            d.queues.clone(),
            config.outbox.dead_letter_ttl,
            trigger.subscribe(),
        )));
    }
    background.push(tokio::spawn(export_loop(
        sources.to_vec(),
        frame_depth,
        trigger.subscribe(),
    )));
    if let (true, Some(path)) = (options.reload, &config.customers.path) {
        background.push(tokio::spawn(crate::reload::customers::watch(
            customers.clone(),
            path.clone(),
            config.customers.reload,
            trigger.subscribe(),
        )));
    }
    if let Some(reloader) = reloader {
        background.push(tokio::spawn(reload::on_sighup(
            reloader.clone(),
            trigger.subscribe(),
        )));
        if !config.rules.watch.is_zero() {
            background.push(tokio::spawn(reload::watch(
                reloader.clone(),
                config.rules.watch,
                trigger.subscribe(),
            )));
        }
    }
    background
}

/// The admin server, serving: where it listens, the one-time login link printed at start,
/// and its gatekeeper.
struct StartedAdmin {
    addr: SocketAddr,
    login: String,
    access: Arc<crate::admin::Access>,
}

/// Serves the admin endpoints with `state` until shutdown.
async fn start_admin(
    config: &Config,
    state: crate::admin::AdminState,
    trigger: &ShutdownTrigger,
) -> Result<(StartedAdmin, JoinHandle<()>), AppError> {
    let access = state.access.clone();
    let (addr, task) = crate::admin::serve(&config.admin, state, trigger.subscribe()).await?;
    let login = access.login_url(&crate::admin::base_url(&config.admin, addr));
    Ok((
        StartedAdmin {
            addr,
            login,
            access,
        },
        task,
    ))
}

/// A running spike monitor: where the workers send their mentions, the flags they read, and
/// its thread.
struct StartedMonitor {
    tx: crossbeam_channel::Sender<Vec<Arc<Mention>>>,
    flags: Arc<SpikeFlags>,
    thread: std::thread::JoinHandle<()>,
}

/// The spike monitor's thread, fed by the workers, feeding the live page and (when delivering)
/// the outbox writer with spike events, its state kept in the outbox's store. Its clock is
/// `clock`, else the wall clock at start, then monotonic time ([`MonitorClock`]).
fn start_monitor(
    config: &Config,
    compiled: &Compiled,
    queue_ids: &[String],
    hub: &Arc<crate::live::LiveHub>,
    routed_tx: Option<&crossbeam_channel::Sender<Routed>>,
    delivery: Option<&Delivery>,
    health: &Health,
    clock: Option<MonitorClock>,
) -> Result<StartedMonitor, AppError> {
    let flags = SpikeFlags::new();
    let brands: Vec<_> = compiled.rules.brands().iter().map(BrandInfo::of).collect();
    let mut m = Monitor::new(
        config.spikes.clone(),
        &brands,
        queue_ids.to_vec(),
        flags.clone(),
        clock.unwrap_or_else(|| MonitorClock::starting_at(std::time::SystemTime::now())),
    )
    .live(hub.clone());
    if let Some(tx) = routed_tx {
        m = m.outbox(tx.clone());
    }
    if let Some(d) = delivery {
        m = m.store(d.store.clone());
    }
    let (tx, rx) = crossbeam_channel::bounded(crate::monitor::CHANNEL_BATCHES);
    let held = health.register(Component::Monitor, "spike monitor");
    let thread = std::thread::Builder::new()
        .name("earshot-spikes".into())
        .spawn(move || {
            let _held = held;
            m.run(rx)
        })
        .map_err(|source| AppError::Io {
            context: "spawning the spike monitor".into(),
            source,
        })?;
    Ok(StartedMonitor { tx, flags, thread })
}

/// Runs one source on the runtime until it ends. A source that stops on an error retrying
/// cannot fix is logged and counted by reason (the counter's series are registered at 0 here,
/// so an alert on it has something to read from the start); stopping because shutdown found
/// the pipeline full is not an error.
fn spawn_source(
    id: String,
    kind: SourceKind,
    emitter: Emitter,
    shutdown: Shutdown,
    health: &Health,
) -> JoinHandle<Result<(), SourceError>> {
    for reason in SourceError::REASONS.iter().chain(&["panicked"]) {
        metrics::counter!(SOURCE_ERRORS, "source" => id.clone(), "reason" => *reason).increment(0);
    }
    let held = health.register(Component::Source, format!("source {id}"));
    tokio::spawn(held.watch_result(async move {
        match kind.run(emitter, shutdown).await {
            Ok(()) => {
                info!(source = %id, "source finished");
                Ok(())
            }
            Err(SourceError::StoppedFull) => {
                warn!(source = %id, "source stopped at shutdown with the pipeline full");
                Ok(())
            }
            Err(e) => {
                error!(source = %id, error = %e, reason = e.reason(), "source stopped");
                metrics::counter!(SOURCE_ERRORS, "source" => id.clone(), "reason" => e.reason())
                    .increment(1);
                Err(e)
            }
        }
    }))
}

/// The outbox, its writer thread and one dispatcher per queue, started before anything that
/// produces into them. Opens the store, expires old dead letters and compacts it, and sets
/// each source's start position from its checkpoint in `sources`. Returns the running
/// delivery and the sender the workers and the monitor hand routed batches to.
async fn start_delivery(
    config: &Config,
    sources: &mut [crate::config::SourceConfig],
    health: &Health,
    latencies: &Latencies,
    trigger: &ShutdownTrigger,
) -> Result<(Delivery, crossbeam_channel::Sender<Routed>), AppError> {
    let store = Arc::new(Store::open(&config.outbox.path)?);
    maintain_at_start(&store, config.outbox.dead_letter_ttl)?;
    resume_positions(&store, sources)?;
    let mut dispatchers = Vec::new();
    let mut shared_queues = Vec::new();
    let mut writer_queues = Vec::new();
    for q in &config.queues {
        crate::metrics::register_queue(&q.id);
        let shared = QueueShared::new(&q.id, &store);
        let deliverer = deliverer(q).await?;
        let held = health.register(Component::Dispatcher, format!("queue {}", q.id));
        dispatchers.push((
            q.id.clone(),
            tokio::spawn(held.watch(dispatch::run(
                store.clone(),
                shared.clone(),
                deliverer,
                crate::sink::setup::dispatch_settings(q),
                latencies.clone(),
            ))),
        ));
        writer_queues.push(WriterQueue {
            shared: shared.clone(),
            noise: q.noise.clone(),
        });
        shared_queues.push(shared);
    }
    let routed_posts = Arc::new(crate::outbox::deletes::RoutedIndex::new(
        store.routed_keys()?,
    ));
    let writer = Writer::new(
        store.clone(),
        writer_queues,
        config.sources.iter().map(|s| s.id.clone()).collect(),
        config.outbox.max_entries,
    )
    .with_deletes(routed_posts.clone(), config.outbox.deletes_keep);
    // Room for every worker's batch and as many again: the writer takes them all in one
    // commit, so a deeper channel would only add latency.
    let (tx, rx) = crossbeam_channel::bounded(config.pipeline.worker_count() * 2 + 2);
    let stop = Arc::new(AtomicBool::new(false));
    let writer_stop = stop.clone();
    let writer_shutdown = trigger.subscribe();
    let held = health.register(Component::Outbox, "outbox writer");
    let thread = std::thread::Builder::new()
        .name("earshot-outbox".into())
        .spawn(move || writer.run(rx, writer_stop, writer_shutdown, held))
        .map_err(|source| AppError::Io {
            context: "spawning the outbox writer".into(),
            source,
        })?;
    let delivery = Delivery {
        store,
        routed_posts,
        queues: shared_queues,
        writer: Some(thread),
        writer_stop: stop,
        dispatchers,
    };
    Ok((delivery, tx))
}

/// Before anything else uses the outbox: expired dead letters go, then the file is compacted
/// (see [`Store::compact`]).
fn maintain_at_start(store: &Store, ttl: Duration) -> Result<(), AppError> {
    let started = Instant::now();
    if !ttl.is_zero() {
        let cutoff = crate::outbox::entry::now_us().saturating_sub(ttl.as_micros() as u64);
        for (queue, n) in store.expire_dead(cutoff)? {
            info!(queue = %queue, expired = n, "dead letters older than dead_letter_ttl deleted");
            metrics::counter!(DEAD_LETTERS_EXPIRED, "queue" => queue).increment(n);
        }
    }
    if store.compact()? {
        info!(
            ms = started.elapsed().as_millis() as u64,
            "the outbox was compacted"
        );
    }
    Ok(())
}

/// Deletes dead letters older than `ttl` every hour while earshot runs.
async fn expire_dead_letters(
    store: Arc<Store>,
    queues: Vec<Arc<QueueShared>>,
    ttl: Duration,
    mut shutdown: Shutdown,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    tick.tick().await; // the first tick is now: the start already expired what was due.
    loop {
        tokio::select! {
            _ = shutdown.recv() => return,
            _ = tick.tick() => {}
        }
        let cutoff = crate::outbox::entry::now_us().saturating_sub(ttl.as_micros() as u64);
        let s = store.clone();
        match tokio::task::spawn_blocking(move || s.expire_dead(cutoff)).await {
            Ok(Ok(expired)) => {
                for (queue, n) in expired {
                    info!(queue = %queue, expired = n, "dead letters older than dead_letter_ttl deleted");
                    metrics::counter!(DEAD_LETTERS_EXPIRED, "queue" => queue.clone()).increment(n);
                    if let Some(q) = queues.iter().find(|q| q.id == queue) {
                        let _ = q
                            .dead
                            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |d| {
                                Some(d.saturating_sub(n))
                            });
                        q.export();
                    }
                }
            }
            Ok(Err(e)) => {
                warn!(error = %e, "cannot delete expired dead letters; trying again in an hour")
            }
            Err(e) => warn!(error = %e, "the dead-letter expiry failed"),
        }
    }
}

/// Starts each source where the last run's checkpoint says, when there is one
/// ([`crate::config::SourceConfig::resume_at`]).
fn resume_positions(
    store: &Store,
    sources: &mut [crate::config::SourceConfig],
) -> Result<(), AppError> {
    let positions = store.positions()?;
    for s in sources {
        if let Some((_, p)) = positions.iter().find(|(id, _)| *id == s.id) {
            s.resume_at(*p);
        }
    }
    Ok(())
}

async fn deliverer(q: &QueueConfig) -> Result<Deliverer, AppError> {
    crate::sink::setup::deliverer(q)
        .await
        .map_err(|source| AppError::Queue {
            queue: q.id.clone(),
            source,
        })
}

/// Mirrors each network source's `connected` flag into a plain `AtomicBool` for `/readyz`.
fn connected_mirror(
    sources: &[(String, Arc<SourceStats>)],
    mut shutdown: Shutdown,
) -> (JoinHandle<()>, Vec<(String, Arc<AtomicBool>)>) {
    let flags: Vec<(String, Arc<AtomicBool>)> = sources
        .iter()
        .map(|(id, _)| (id.clone(), Arc::new(AtomicBool::new(false))))
        .collect();
    let pairs: Vec<_> = sources
        .iter()
        .zip(flags.iter())
        .map(|((_, s), (_, f))| (s.clone(), f.clone()))
        .collect();
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            for (s, f) in &pairs {
                f.store(s.connected.load(Ordering::Relaxed), Ordering::Relaxed);
            }
            tokio::select! {
                _ = shutdown.recv() => return,
                _ = tick.tick() => {}
            }
        }
    });
    (task, flags)
}

async fn export_loop(
    sources: Vec<(String, Arc<SourceStats>)>,
    frames: crossbeam_channel::Receiver<Batch>,
    mut shutdown: Shutdown,
) {
    let depth = metrics::gauge!(CHANNEL_FRAMES_DEPTH);
    let handles: Vec<(SourceCounters, Arc<SourceStats>)> = sources
        .iter()
        .map(|(id, s)| (SourceCounters::register(id), s.clone()))
        .collect();
    let drops = DropCounters::register("source");
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let mut skipped = SkipCounts::default();
        for (h, s) in &handles {
            h.frames.absolute(s.frames_received.load(Ordering::Relaxed));
            h.bytes.absolute(s.bytes_received.load(Ordering::Relaxed));
            h.reconnects.absolute(s.reconnects.load(Ordering::Relaxed));
            h.connected.set(if s.connected.load(Ordering::Relaxed) {
                1.0
            } else {
                0.0
            });
            for (i, n) in s.skipped.iter().enumerate() {
                skipped.0[i] += n.load(Ordering::Relaxed);
            }
        }
        for (reason, n) in skipped.nonzero() {
            drops.absolute(reason, n);
        }
        // Batches waiting for a worker: near the channel's size, the workers are the limit.
        depth.set(frames.len() as f64);
        tokio::select! {
            _ = shutdown.recv() => return,
            _ = tick.tick() => {}
        }
    }
}

impl Running {
    /// Counts so far.
    pub fn report(&self) -> Report {
        Running::report_from(&self.totals, &self.sources, &self.queues)
    }

    /// Signals shutdown to sources and the admin server.
    pub fn shutdown(&self) {
        self.trigger.trigger();
    }

    /// Whether every source has finished (file sources at end of input).
    pub fn sources_done(&self) -> bool {
        self.source_tasks.iter().all(|(_, t)| t.is_finished())
    }

    /// Waits for sources (until they end, or until `deadline` after shutdown is signalled),
    /// then workers, the spike monitor, the outbox writer and the queues, each within
    /// `deadline` after the sources are done; names whatever is still running past it. A
    /// forced shutdown ([`ShutdownTrigger::force`]) stops waiting at once: every queue stops
    /// where it is, and what is undelivered stays in the outbox (named in the log and in
    /// [`Report::left_in_outbox`]) for the next start.
    pub async fn wait(self, deadline: Duration) -> Report {
        let mut shutdown = self.trigger.subscribe();
        let mut force = self.trigger.subscribe();
        let mut forced = false;
        let mut source_errors = Vec::new();
        let mut cluster = self.cluster;
        if let Some(parts) = &mut cluster {
            parts.until_shutdown(&mut shutdown).await;
            forced |= shutdown.is_forced();
            parts.stop_ingest(deadline).await;
        }
        let mut sources_left = self.source_tasks;
        // Sources: until they end by themselves, or shutdown + deadline.
        let mut drain_by: Option<tokio::time::Instant> = None;
        while !sources_left.is_empty() {
            let (id, task) = &mut sources_left[0];
            let by =
                drain_by.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                joined = &mut *task => {
                    match joined {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => source_errors.push(format!("{id}: {e}")),
                        Err(e) => {
                            error!(source = %id, error = %e, "source task panicked");
                            metrics::counter!(SOURCE_ERRORS, "source" => id.clone(), "reason" => "panicked")
                                .increment(1);
                            source_errors.push(format!("{id}: the source task panicked"));
                        }
                    }
                    sources_left.remove(0);
                }
                _ = shutdown.recv(), if drain_by.is_none() => {
                    drain_by = Some(tokio::time::Instant::now() + deadline);
                }
                _ = tokio::time::sleep_until(by), if drain_by.is_some() => {
                    for (id, task) in &sources_left {
                        warn!(source = %id, "source still running at the drain deadline; stopped");
                        task.abort();
                    }
                    sources_left.clear();
                }
                _ = force.forced() => {
                    forced = true;
                    for (_, task) in &sources_left {
                        task.abort();
                    }
                    sources_left.clear();
                }
            }
        }
        let started = Instant::now();
        let totals = self.totals.clone();
        let sources = self.sources.clone();
        let queues = self.queues.clone();
        let threads = self.worker_threads;
        let joined = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        });
        if !forced && !until(&mut shutdown, deadline, joined).await {
            warn!(
                deadline_s = deadline.as_secs(),
                "workers still running at the drain deadline"
            );
        }
        forced |= shutdown.is_forced();
        self.workers_running.store(false, Ordering::Relaxed);
        if let Some(parts) = cluster {
            parts.stop_rest(deadline).await;
        }
        // The monitor ends once the workers' senders are gone; its last events reach the
        // writer before the writer's channel closes.
        if let Some(monitor) = self.monitor {
            let joined = tokio::task::spawn_blocking(move || {
                let _ = monitor.join();
            });
            let left = deadline.saturating_sub(started.elapsed());
            if !forced && !until(&mut shutdown, left, joined).await {
                warn!("the spike monitor is still running at the drain deadline");
            }
            forced |= shutdown.is_forced();
        }
        if let Some(hub) = &self.live {
            hub.close();
        }
        let mut left_in_outbox = Vec::new();
        if let Some(mut d) = self.delivery {
            // The writer ends when the workers' senders are gone and it has committed all.
            if let Some(writer) = d.writer.take() {
                let joined = tokio::task::spawn_blocking(move || {
                    let _ = writer.join();
                });
                let left = deadline.saturating_sub(started.elapsed());
                if forced || !until(&mut shutdown, left, joined).await {
                    if !forced {
                        warn!("the outbox writer is still committing at the drain deadline");
                    }
                    d.writer_stop.store(true, Ordering::Relaxed);
                }
                forced |= shutdown.is_forced();
            }
            // Dispatchers deliver what is left until the deadline; the rest stays in the
            // outbox for the next start.
            for (queue, mut task) in d.dispatchers {
                let left = deadline.saturating_sub(started.elapsed());
                if forced || !until(&mut shutdown, left, &mut task).await {
                    if let Some(q) = d.queues.iter().find(|q| q.id == queue) {
                        if !forced {
                            let depth = q.depth.load(Ordering::Relaxed);
                            warn!(queue = %queue, undelivered = depth,
                                "still delivering at the drain deadline; the rest stays in the outbox for the next start");
                        }
                        q.stop();
                    }
                    let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
                }
                forced |= shutdown.is_forced();
            }
            if let Err(e) = d.store.flush() {
                warn!(error = %e, "cannot make the last acks durable");
            }
            for q in &d.queues {
                let depth = q.depth.load(Ordering::Relaxed);
                if depth > 0 {
                    left_in_outbox.push((q.id.clone(), depth));
                }
            }
            if !left_in_outbox.is_empty() {
                let total: u64 = left_in_outbox.iter().map(|(_, n)| n).sum();
                let per_queue = left_in_outbox
                    .iter()
                    .map(|(q, n)| format!("{q}: {n}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                warn!(entries = total, queues = %per_queue, path = %d.store.path().display(),
                    "undelivered entries stay in the outbox; they are delivered after the next start");
            }
        }
        self.trigger.trigger();
        for task in self.background {
            task.abort();
        }
        let depth = metrics::gauge!(CHANNEL_FRAMES_DEPTH);
        depth.set(0.0);
        let mut report = Running::report_from(&totals, &sources, &queues);
        report.source_errors = source_errors;
        report.left_in_outbox = left_in_outbox;
        report.forced = forced;
        report
    }

    fn report_from(
        totals: &Arc<Totals>,
        sources: &[(String, Arc<SourceStats>)],
        queues: &[String],
    ) -> Report {
        let mut skipped = totals.skip_counts();
        let mut frames_received = 0;
        let mut bytes_received = 0;
        for (_, s) in sources {
            frames_received += s.frames_received.load(Ordering::Relaxed);
            bytes_received += s.bytes_received.load(Ordering::Relaxed);
            for (i, n) in s.skipped.iter().enumerate() {
                skipped.0[i] += n.load(Ordering::Relaxed);
            }
        }
        Report {
            frames_received,
            bytes_received,
            frames_processed: totals.frames.load(Ordering::Relaxed),
            posts: totals.posts.load(Ordering::Relaxed),
            matched: totals.matched.load(Ordering::Relaxed),
            routed: totals.routed.load(Ordering::Relaxed),
            skipped,
            per_queue: queues
                .iter()
                .zip(totals.per_queue.iter())
                .map(|(q, n)| (q.clone(), n.load(Ordering::Relaxed)))
                .collect(),
            source_errors: Vec::new(),
            left_in_outbox: Vec::new(),
            forced: false,
        }
    }
}

/// Waits for `f` for at most `limit`, or until shutdown is forced. True when `f` completed.
async fn until<F: std::future::Future>(shutdown: &mut Shutdown, limit: Duration, f: F) -> bool {
    tokio::select! {
        _ = f => true,
        _ = tokio::time::sleep(limit) => false,
        _ = shutdown.forced() => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_that_cannot_be_set_up_is_named_with_what_is_missing() {
        let queue = |toml: &str| -> QueueConfig {
            toml::from_str(&format!("id = \"tickets\"\nsink = \"webhook\"\n{toml}")).unwrap()
        };
        let message = |q: &QueueConfig| match crate::sink::setup::webhook_target(q) {
            Err(e) => format!("queue `{}`: {e}", q.id),
            Ok(_) => panic!("set up"),
        };
        assert_eq!(message(&queue("")), "queue `tickets`: needs a url");
        assert_eq!(
            message(&queue("url = \"https://crm.example/hook\"")),
            "queue `tickets`: needs secret_env (a generic queue's receiver checks the signature)"
        );
        assert_eq!(
            message(&queue(
                "url = \"https://crm.example/hook\"\nsecret_env = \"EARSHOT_TEST_APP_UNSET_SECRET\""
            )),
            "queue `tickets`: environment variable `EARSHOT_TEST_APP_UNSET_SECRET` is not set"
        );
        assert!(message(&queue("url = \"not a url\"")).starts_with("queue `tickets`: url: "));
    }
}
