//! Wiring: config → compiled stages → sinks, workers, sources, admin server → a running
//! pipeline, and its orderly end.
//!
//! Start order is back to front (sinks, then workers, then sources) so nothing produces into a
//! channel without a consumer. Stop order is front to back (STYLE: shutdown by closing
//! channels): the shutdown signal reaches only sources and the admin server; each source
//! flushes its partial batch and drops its sender; workers end when the frame channel drains
//! and drop their queue senders; sinks end when their queues drain. [`Running::wait`] joins in
//! that order and names whatever is still running past the drain deadline.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::admin::ReloadAccess;
use crate::config::{Config, SourceKind};
use crate::customers::{CustomerLimits, Customers};
use crate::mention::Mention;
use crate::metrics::{DropCounters, Latencies, SourceCounters, CHANNEL_FRAMES_DEPTH, QUEUE_DEPTH};
use crate::reload::{self, Reloader, Shared};
use crate::rules::{RuleErrors, RuleSet};
use crate::shutdown::{Shutdown, ShutdownTrigger};
use crate::sink::signature::SigningKey;
use crate::sink::{file, webhook, SinkKind};
use crate::skip::SkipCounts;
use crate::source::batch::Batch;
use crate::source::emit::{Emitter, SourceStats};
use crate::stage::matcher::Matcher;
use crate::stage::route::Router;
use crate::stage::score::Scorer;
use crate::worker::{self, Compiled, Outputs, Totals, Worker};

/// Why the pipeline could not start.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The rules do not load.
    #[error("rules:\n{0}")]
    Rules(RuleErrors),
    /// The matcher could not be built.
    #[error("matcher: {0}")]
    Matcher(String),
    /// The CRM customer table does not load.
    #[error("customers: {0}")]
    Customers(#[from] crate::customers::CustomerError),
    /// The scorer could not be built.
    #[error("scoring: {0}")]
    Score(#[from] crate::stage::score::ScoreError),
    /// Routes refer to unknown queues or brands.
    #[error("routes:\n{0}")]
    Routes(String),
    /// A queue's settings are unusable.
    #[error("queue `{queue}`: {message}")]
    Queue {
        /// Queue id.
        queue: String,
        /// What is wrong.
        message: String,
    },
    /// An OS-level failure (binding a port, spawning a thread).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
}

/// Loads the rules and compiles every stage.
pub fn compile(config: &Config) -> Result<Compiled, AppError> {
    let started = Instant::now();
    let rules = RuleSet::load(&config.rules.paths).map_err(AppError::Rules)?;
    let matcher = Matcher::build(&rules).map_err(|e| AppError::Matcher(e.to_string()))?;
    let examples = crate::examples::run(&rules, &matcher).map_err(AppError::Rules)?;
    let scorer = Scorer::build(&config.scoring, &rules)?;
    let queue_ids: Vec<String> = config.queues.iter().map(|q| q.id.clone()).collect();
    let router = Router::build(&config.routes, &queue_ids, &rules).map_err(|errs| {
        AppError::Routes(
            errs.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
        )
    })?;
    info!(
        brands = rules.brands().len(),
        rules = rules.rules().len(),
        terms = matcher.term_count(),
        examples,
        ms = started.elapsed().as_millis() as u64,
        "rules compiled"
    );
    Ok(Compiled {
        rules,
        matcher,
        scorer,
        router,
    })
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
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            deliver: true,
            tap: None,
            admin: true,
            reload: true,
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
    /// Reloads the rules, when [`RunOptions::reload`] is on.
    pub reloader: Option<Arc<Reloader>>,
    source_tasks: Vec<(String, JoinHandle<Result<(), String>>)>,
    worker_threads: Vec<std::thread::JoinHandle<usize>>,
    sink_tasks: Vec<(String, JoinHandle<()>)>,
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
    crate::tls::ensure_crypto_provider();
    let compiled = Arc::new(compiled);
    let shared = Shared::new(compiled.clone());
    let reloader = options
        .reload
        .then(|| Reloader::new(config.clone(), shared.clone()));
    let customers = Customers::load(&config.customers, &CustomerLimits::default())?;
    let latencies = Latencies::new();
    let queue_ids: Vec<String> = compiled.router.queues().to_vec();

    // Sinks first, so workers always have somewhere to send.
    let mut queue_txs = Vec::new();
    let mut sink_tasks = Vec::new();
    for q in &config.queues {
        if !options.deliver {
            queue_txs.push(None);
            continue;
        }
        let (tx, rx) = mpsc::channel::<Arc<Mention>>(q.capacity);
        let task = match q.sink {
            SinkKind::Webhook => {
                let settings = webhook_settings(q)?;
                tokio::spawn(webhook::run(settings, rx, latencies.clone()))
            }
            SinkKind::File | SinkKind::Stdout => {
                let target = match (&q.sink, &q.path) {
                    (SinkKind::File, Some(p)) => file::Target::File(p.clone()),
                    _ => file::Target::Stdout,
                };
                let queue = q.id.clone();
                tokio::spawn(async move {
                    let _ = file::run(queue, target, rx).await;
                })
            }
        };
        sink_tasks.push((q.id.clone(), task));
        queue_txs.push(Some(tx));
    }

    // Workers: build all, then spawn.
    let workers_n = config.pipeline.worker_count();
    let (frame_tx, frame_rx) = crossbeam_channel::bounded::<Batch>(config.pipeline.channel_batches);
    let totals = Arc::new(Totals::new(queue_ids.len()));
    let formats: Vec<_> = config.sources.iter().map(|s| s.format.clone()).collect();
    // Emptied batches return to their source: as many as can be in flight, so a source in the
    // steady state never allocates a batch.
    let (recycle_txs, recycle_rxs): (Vec<_>, Vec<_>) = config
        .sources
        .iter()
        .map(|_| {
            crossbeam_channel::bounded::<Batch>(config.pipeline.channel_batches + workers_n + 1)
        })
        .unzip();
    let outputs = Outputs {
        queues: queue_txs,
        tap: options.tap.clone(),
        recycle: recycle_txs,
    };
    let workers: Vec<Worker> = (0..workers_n)
        .map(|i| {
            Worker::new(
                i,
                compiled.clone(),
                &formats,
                config.limits.decode_limits(),
                outputs.clone(),
                totals.clone(),
                latencies.clone(),
            )
            .follow(shared.clone())
            .customers(customers.clone())
        })
        .collect();
    drop(outputs);
    let worker_threads = worker::spawn(workers, frame_rx).map_err(|source| AppError::Io {
        context: "spawning worker threads".into(),
        source,
    })?;
    let workers_running = Arc::new(AtomicBool::new(true));

    // Sources.
    let mut sources = Vec::new();
    let mut source_tasks = Vec::new();
    let mut connected_flags = Vec::new();
    for ((index, s), recycled) in config.sources.iter().enumerate().zip(recycle_rxs) {
        let stats = Arc::new(SourceStats::default());
        let emitter = Emitter::new(
            index as u16,
            frame_tx.clone(),
            config.pipeline.batch_limits(),
            stats.clone(),
        )
        .with_recycler(recycled);
        let shutdown = trigger.subscribe();
        let kind = s.kind.clone();
        let id = s.id.clone();
        let task = tokio::spawn(async move {
            let result = match kind {
                SourceKind::Jetstream(o) => o.run(emitter, shutdown).await,
                SourceKind::HttpNdjson(o) => o.run(emitter, shutdown).await,
                SourceKind::Sse(o) => o.run(emitter, shutdown).await,
                SourceKind::File(o) => o.run(emitter, shutdown).await,
            };
            match result {
                Ok(()) => {
                    info!(source = %id, "source finished");
                    Ok(())
                }
                Err(e) => {
                    error!(source = %id, error = %e, "source stopped");
                    Err(format!("{id}: {e}"))
                }
            }
        });
        if !matches!(s.kind, SourceKind::File(_)) {
            connected_flags.push((s.id.clone(), stats.clone()));
        }
        source_tasks.push((s.id.clone(), task));
        sources.push((s.id.clone(), stats));
    }
    drop(frame_tx);

    // Background: export source counters and channel depths once a second.
    let mut background = Vec::new();
    background.push(tokio::spawn(export_loop(
        sources.clone(),
        trigger.subscribe(),
    )));

    if let (true, Some(path)) = (options.reload, &config.customers.path) {
        background.push(tokio::spawn(crate::customers::watch(
            customers.clone(),
            path.clone(),
            config.customers.reload,
            trigger.subscribe(),
        )));
    }
    if let Some(reloader) = &reloader {
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

    let mut admin_addr = None;
    if options.admin && config.admin.enabled {
        let (flags_tx, flags) = connected_mirror(&connected_flags, trigger.subscribe());
        background.push(flags_tx);
        let state = crate::admin::AdminState {
            latencies: latencies.clone(),
            workers_running: workers_running.clone(),
            sources_connected: flags,
            reload: reloader.clone().map(|reloader| ReloadAccess {
                reloader,
                token: std::env::var(&config.admin.token_env)
                    .ok()
                    .filter(|t| !t.is_empty()),
                token_env: config.admin.token_env.clone(),
            }),
        };
        let (addr, task) = crate::admin::serve(config.admin.listen, state, trigger.subscribe())
            .await
            .map_err(|source| AppError::Io {
                context: format!("binding the admin server to {}", config.admin.listen),
                source,
            })?;
        admin_addr = Some(addr);
        background.push(task);
    }
    Ok(Running {
        totals,
        latencies,
        sources,
        queues: queue_ids,
        admin_addr,
        reloader,
        source_tasks,
        worker_threads,
        sink_tasks,
        background,
        workers_running,
        trigger: trigger.clone(),
    })
}

fn webhook_settings(q: &crate::sink::QueueConfig) -> Result<webhook::WebhookSettings, AppError> {
    let err = |message: String| AppError::Queue {
        queue: q.id.clone(),
        message,
    };
    let url = q.url.as_deref().ok_or_else(|| err("needs a url".into()))?;
    let url = url::Url::parse(url).map_err(|e| err(format!("url: {e}")))?;
    let var = q
        .secret_env
        .as_deref()
        .ok_or_else(|| err("needs secret_env".into()))?;
    let secret =
        std::env::var(var).map_err(|_| err(format!("environment variable `{var}` is not set")))?;
    let key = SigningKey::from_secret(&secret).map_err(|e| err(e.to_string()))?;
    Ok(webhook::WebhookSettings {
        queue: q.id.clone(),
        url,
        key,
        max_attempts: q.max_attempts,
        timeout: Duration::from_millis(q.timeout_ms),
        concurrency: q.concurrency,
        backoff_base: Duration::from_millis(q.backoff_base_ms),
        backoff_max: Duration::from_millis(q.backoff_max_ms),
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

async fn export_loop(sources: Vec<(String, Arc<SourceStats>)>, mut shutdown: Shutdown) {
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

    /// Waits for sources (until they end or shutdown), then workers, then sinks, each within
    /// `deadline` after the sources are done; names whatever is still running past it.
    pub async fn wait(self, deadline: Duration) -> Report {
        let mut source_errors = Vec::new();
        for (id, task) in self.source_tasks {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => source_errors.push(e),
                Err(e) => {
                    error!(source = %id, error = %e, "source task panicked");
                    source_errors.push(format!("{id}: the source task panicked"));
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
        if tokio::time::timeout(deadline, joined).await.is_err() {
            warn!(
                deadline_s = deadline.as_secs(),
                "workers still running at the drain deadline"
            );
        }
        self.workers_running.store(false, Ordering::Relaxed);
        for (queue, task) in self.sink_tasks {
            let left = deadline.saturating_sub(started.elapsed());
            if tokio::time::timeout(left, task).await.is_err() {
                warn!(queue = %queue, "sink still delivering at the drain deadline");
            }
        }
        self.trigger.trigger();
        for task in self.background {
            task.abort();
        }
        let depth = metrics::gauge!(CHANNEL_FRAMES_DEPTH);
        depth.set(0.0);
        for q in &queues {
            metrics::gauge!(QUEUE_DEPTH, "queue" => q.clone()).set(0.0);
        }
        let mut report = Running::report_from(&totals, &sources, &queues);
        report.source_errors = source_errors;
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
        }
    }
}
