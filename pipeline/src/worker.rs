//! The worker loop: receive a batch, run every stage on each frame run-to-completion, send the
//! mentions on, count.
//!
//! Workers are plain OS threads, one per core. Everything a worker needs (decoders, compiled
//! rules, scratch buffers, metric handles) is built before its thread starts, and scratch is
//! cleared, never reallocated, in the steady state: the only allocations on this path are for
//! the few posts that match. Stage latency is sampled (one frame in [`SAMPLE_EVERY`] is timed
//! stage by stage) so timing costs well under 1% of the work; mention latency (ingest → routed)
//! is recorded for every mention. Counts go to plain integers and are flushed once per batch.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::Receiver;
use metrics::Counter;
use tokio::sync::mpsc;
use tracing::{debug, error};

use crate::compile::{Compiled, Shared};
use crate::config::FormatChoice;
use crate::enrich::Profiles;
use crate::mention::{mention_id, LangSource, MatchOut, Mention, MentionPost};
use crate::metrics::{
    DropCounters, Latencies, LatencySet, Stage, BRAND_MENTIONS, BRAND_NEGATIVE_MENTIONS,
    LANG_DETECTED, MATCH_POSTS_MATCHED, ROUTE_MENTIONS_ROUTED, STAGE_POSTS_DECODED,
    WORKER_FRAMES_PROCESSED,
};
use crate::monitor::SpikeFlags;
use crate::normalize::{normalize, Normalized};
use crate::outbox::deletes::RoutedIndex;
use crate::outbox::writer::Routed;
use crate::post::{Platform, Post};
use crate::reload::customers::Customers;
use crate::skip::{SkipCounts, SkipReason};
use crate::source::batch::Batch;
use crate::source::batch::Position;
use crate::stage::decode::{DecodeLimits, Decoder, Format, FRAME_PADDING};
use crate::stage::matcher::{Hit, MatchScratch};
use crate::stage::score::sentiment::SentimentLabel;
use crate::stage::score::{ScoreInput, ScoreScratch};
use crate::timestamp::rfc3339_millis;

/// One frame in this many is timed stage by stage.
pub const SAMPLE_EVERY: u64 = 16;

/// Where a worker's mentions go.
#[derive(Debug, Clone, Default)]
pub struct Outputs {
    /// The outbox writer: one [`Routed`] per batch (its routed mentions and its position);
    /// `None` where nothing is delivered (replay, benchmarks).
    pub routed: Option<crossbeam_channel::Sender<Routed>>,
    /// Receives every mention, routed or not (replay's stdout, the demo's live feed).
    pub tap: Option<mpsc::Sender<Arc<Mention>>>,
    /// The spike monitor: every batch's mentions, routed or not (only batches with any).
    pub spikes: Option<crossbeam_channel::Sender<Vec<Arc<Mention>>>>,
    /// Per source index: where emptied batches go back for reuse, so sources fill the same
    /// buffers again instead of allocating (and page-faulting) a fresh one per batch.
    pub recycle: Vec<crossbeam_channel::Sender<Batch>>,
    /// The posts routed lately, for deletes ([`crate::outbox::deletes`]): a delete event of
    /// one of them goes to the outbox writer. `None` where nothing is delivered.
    pub routed_posts: Option<Arc<RoutedIndex>>,
    /// Profile lookups for matched Bluesky posts ([`crate::enrich`]); `None`: off.
    pub profiles: Option<Arc<Profiles>>,
}

/// Totals across all workers, for summaries (`earshot replay`, the demo's status line).
#[derive(Debug, Default)]
pub struct Totals {
    /// Frames finished (decoded or skipped by the decoder).
    pub frames: AtomicU64,
    /// Bytes of those frames.
    pub bytes: AtomicU64,
    /// Posts decoded.
    pub posts: AtomicU64,
    /// Posts that matched at least one rule.
    pub matched: AtomicU64,
    /// Mentions routed to at least one queue.
    pub routed: AtomicU64,
    /// Frames skipped by the decoder, by reason.
    pub skipped: [AtomicU64; SkipReason::ALL.len()],
    /// Mentions routed, per queue index.
    pub per_queue: Vec<AtomicU64>,
}

impl Totals {
    /// Zeroed totals for `queues` queues.
    pub fn new(queues: usize) -> Self {
        Self {
            per_queue: (0..queues).map(|_| AtomicU64::new(0)).collect(),
            ..Default::default()
        }
    }

    /// Skips by reason as plain counts.
    pub fn skip_counts(&self) -> SkipCounts {
        let mut c = SkipCounts::default();
        for (i, a) in self.skipped.iter().enumerate() {
            c.0[i] = a.load(Ordering::Relaxed);
        }
        c
    }
}

/// Metric handles of one worker, registered before the thread starts.
struct Handles {
    frames: Counter,
    posts: Counter,
    matched: Counter,
    lang_detected: Counter,
    drops: DropCounters,
    brands: Vec<Counter>,
    negative: Vec<Counter>,
    queues: Vec<Counter>,
}

impl Handles {
    /// The metric handles of a worker using `compiled` (brand counters follow its rules).
    fn new(compiled: &Compiled) -> Self {
        Self {
            frames: metrics::counter!(WORKER_FRAMES_PROCESSED),
            posts: metrics::counter!(STAGE_POSTS_DECODED),
            matched: metrics::counter!(MATCH_POSTS_MATCHED),
            lang_detected: metrics::counter!(LANG_DETECTED),
            drops: DropCounters::register("decode"),
            brands: compiled
                .rules
                .brands()
                .iter()
                .map(|b| {
                    metrics::counter!(BRAND_MENTIONS, "brand" => b.id.0.clone(), "kind" => b.kind.as_str())
                })
                .collect(),
            negative: compiled
                .rules
                .brands()
                .iter()
                .map(|b| {
                    metrics::counter!(BRAND_NEGATIVE_MENTIONS, "brand" => b.id.0.clone(), "kind" => b.kind.as_str())
                })
                .collect(),
            queues: compiled
                .router
                .queues()
                .iter()
                .map(|q| metrics::counter!(ROUTE_MENTIONS_ROUTED, "queue" => q.clone()))
                .collect(),
        }
    }
}

/// Per-batch counts, flushed to metrics and totals after each batch.
#[derive(Default)]
struct Counts {
    frames: u64,
    bytes: u64,
    posts: u64,
    matched: u64,
    lang_detected: u64,
    routed: u64,
    skipped: SkipCounts,
    per_queue: Vec<u64>,
    per_brand: Vec<u64>,
    per_brand_negative: Vec<u64>,
}

/// A worker, fully built and ready to run on its own thread.
pub struct Worker {
    index: usize,
    compiled: Arc<Compiled>,
    /// Where reloaded stages appear, and the generation `compiled` is.
    reloads: Option<(Arc<Shared>, u64)>,
    decoders: Vec<Option<Decoder>>,
    auto: Vec<bool>,
    limits: DecodeLimits,
    stages: Stages,
    outputs: Outputs,
    totals: Arc<Totals>,
    latencies: Latencies,
    handles: Handles,
    counts: Counts,
    pending: Vec<Arc<Mention>>,
    /// Thread keys of routed posts deleted in the batches since the last send.
    deleted: Vec<String>,
    frame_seq: u64,
}

/// The per-post stages and their scratch, apart from the decoder so both can be borrowed at
/// once inside the decoder's callback.
struct Stages {
    normalized: Normalized,
    match_scratch: MatchScratch,
    hits: Vec<Hit>,
    score: ScoreScratch,
    /// The CRM customer table in force (reloaded in place).
    customers: Customers,
    /// Brands in a spike now (none without a spike monitor).
    spikes: Option<Arc<SpikeFlags>>,
    queue_idx: Vec<u16>,
    local: LatencySet,
    inner_ns: u64,
    /// Profile lookups for authors the post does not describe.
    profiles: Option<Arc<Profiles>>,
    /// This worker's allowance of waiting for profiles.
    wait_budget: Option<crate::enrich::WaitBudget>,
}

impl Worker {
    /// Builds worker `index` for the given sources' formats.
    pub fn new(
        index: usize,
        compiled: Arc<Compiled>,
        formats: &[FormatChoice],
        limits: DecodeLimits,
        outputs: Outputs,
        totals: Arc<Totals>,
        latencies: Latencies,
    ) -> Self {
        let decoders = formats
            .iter()
            .map(|f| match f {
                FormatChoice::Fixed(format) => Some(Decoder::new(format.clone(), limits)),
                FormatChoice::Auto => None,
            })
            .collect();
        let auto = formats
            .iter()
            .map(|f| matches!(f, FormatChoice::Auto))
            .collect();
        let handles = Handles::new(&compiled);
        let counts = Counts {
            per_queue: vec![0; compiled.router.queues().len()],
            per_brand: vec![0; compiled.rules.brands().len()],
            per_brand_negative: vec![0; compiled.rules.brands().len()],
            ..Default::default()
        };
        Self {
            index,
            compiled,
            reloads: None,
            decoders,
            auto,
            limits,
            stages: Stages {
                normalized: Normalized::new(),
                match_scratch: MatchScratch::new(),
                hits: Vec::with_capacity(16),
                score: ScoreScratch::default(),
                customers: Customers::empty(),
                spikes: None,
                queue_idx: Vec::with_capacity(8),
                local: LatencySet::new(),
                inner_ns: 0,
                wait_budget: outputs.profiles.as_ref().map(|p| p.budget()),
                profiles: outputs.profiles.clone(),
            },
            outputs,
            totals,
            latencies,
            handles,
            counts,
            pending: Vec::with_capacity(64),
            deleted: Vec::new(),
            frame_seq: 0,
        }
    }

    /// Makes the worker look authors up in `customers` (empty otherwise).
    pub fn customers(mut self, customers: Customers) -> Self {
        self.stages.customers = customers;
        self
    }

    /// Makes the worker read which brands are in a spike from `flags` (for urgency).
    pub fn spike_flags(mut self, flags: Arc<SpikeFlags>) -> Self {
        self.stages.spikes = Some(flags);
        self
    }

    /// Makes the worker take reloaded stages from `shared` (starting with those in force).
    pub fn follow(mut self, shared: Arc<Shared>) -> Self {
        // Generation 0 never exists, so the stages in force are taken now.
        self.reloads = Some((shared, 0));
        self.adopt_reloaded();
        self
    }

    /// Takes the stages in force if a reload replaced the ones this worker holds. Called
    /// between batches only, so a batch is processed by one rule set from start to end.
    fn adopt_reloaded(&mut self) {
        let shared = match &self.reloads {
            Some((shared, held)) if shared.generation() != *held => shared.clone(),
            _ => return,
        };
        let (generation, compiled) = shared.current();
        // Counts so far belong to the old rules' brands.
        self.flush_counts();
        self.handles = Handles::new(&compiled);
        self.counts.per_brand = vec![0; compiled.rules.brands().len()];
        self.counts.per_brand_negative = vec![0; compiled.rules.brands().len()];
        self.counts.per_queue = vec![0; compiled.router.queues().len()];
        self.compiled = compiled;
        self.reloads = Some((shared, generation));
    }

    /// Runs until the channel is closed and drained. Returns the worker's index.
    pub fn run(mut self, rx: Receiver<Batch>) -> usize {
        let mut last_merge = Instant::now();
        for mut batch in rx.iter() {
            #[cfg(feature = "fault-injection")]
            crate::fault::worker_batch();
            self.adopt_reloaded();
            self.process(&mut batch);
            let (source, seq, position) = (batch.source, batch.seq, batch.position);
            if let Some(back) = self.outputs.recycle.get(batch.source as usize) {
                batch.clear();
                // A full recycle channel means the source has spares: drop this one.
                let _ = back.try_send(batch);
            }
            if !self.send_pending(source, seq, position) {
                break;
            }
            self.flush_counts();
            if last_merge.elapsed() >= Latencies::MERGE_EVERY {
                self.latencies.merge(&mut self.stages.local);
                last_merge = Instant::now();
            }
        }
        self.latencies.merge(&mut self.stages.local);
        debug!(worker = self.index, "worker finished");
        self.index
    }

    /// Runs every stage over the frames of one batch; mentions collect in `pending`.
    pub fn process(&mut self, batch: &mut Batch) {
        let source = batch.source as usize;
        let opened = batch.opened;
        let received_wall = SystemTime::now() - opened.elapsed();
        let Worker {
            compiled,
            decoders,
            auto,
            limits,
            stages,
            counts,
            pending,
            deleted,
            frame_seq,
            outputs,
            ..
        } = self;
        let routed_posts = outputs.routed_posts.as_deref();
        let Some(slot) = decoders.get_mut(source) else {
            error!(source, "batch from an unknown source index; skipped");
            counts.frames += batch.len() as u64;
            for _ in 0..batch.len() {
                counts.skipped.add(SkipReason::WrongShape);
            }
            return;
        };
        let is_auto = auto.get(source).copied().unwrap_or(false);
        batch.for_each_frame_padded(FRAME_PADDING, |buf, len| {
            let frame = &buf[..len];
            counts.frames += 1;
            counts.bytes += frame.len() as u64;
            *frame_seq += 1;
            let decoder = match decoder_for(slot, is_auto, frame, *limits) {
                Ok(decoder) => decoder,
                Err(reason) => {
                    counts.skipped.add(reason);
                    return;
                }
            };
            let sampled = *frame_seq % SAMPLE_EVERY == 0;
            let start = sampled.then(Instant::now);
            stages.inner_ns = 0;
            let result = decoder.decode_padded(buf, len, |post| {
                counts.posts += 1;
                stages.post(
                    compiled,
                    &post,
                    sampled,
                    opened,
                    received_wall,
                    counts,
                    pending,
                );
            });
            if let Some(start) = start {
                let total = start.elapsed().as_nanos() as u64;
                record(
                    &mut stages.local.stages[0],
                    total.saturating_sub(stages.inner_ns),
                );
            }
            match result {
                // Items of a page (search response, listing) that were not posts are counted,
                // never lost silently.
                Ok(_) => {
                    for _ in 0..decoder.malformed_in_last_frame() {
                        counts.skipped.add(SkipReason::WrongShape);
                    }
                }
                Err(reason) => {
                    if let (SkipReason::Delete, Some(index), Some(key)) =
                        (reason, routed_posts, decoder.deleted())
                    {
                        // Routed before, or earlier in this very batch.
                        let routed = index.contains(key)
                            || pending
                                .iter()
                                .any(|m| !m.queues.is_empty() && m.post.thread.key == key);
                        if routed {
                            deleted.push(key.to_string());
                        }
                    }
                    counts.skipped.add(reason);
                }
            }
        });
    }

    /// Takes the mentions of the batches processed since the last call (for callers that run
    /// [`Worker::process`] themselves, such as benchmarks, instead of [`Worker::run`]).
    pub fn take_mentions(&mut self) -> Vec<Arc<Mention>> {
        std::mem::take(&mut self.pending)
    }

    /// Flushes the counts of the batches processed so far to metrics and [`Totals`], and the
    /// worker's stage histograms to its [`Latencies`].
    pub fn flush(&mut self) {
        self.flush_counts();
        self.latencies.merge(&mut self.stages.local);
    }

    /// Sends the batch's mentions to the tap and its routed ones, with the batch's number and
    /// position, to the outbox writer; false if either is gone.
    fn send_pending(&mut self, source: u16, seq: u64, position: Option<Position>) -> bool {
        if let Some(tap) = &self.outputs.tap {
            for m in &self.pending {
                if tap.blocking_send(m.clone()).is_err() {
                    error!(
                        worker = self.index,
                        "the mention tap closed; stopping the worker"
                    );
                    return false;
                }
            }
        }
        let mut mentions = std::mem::take(&mut self.pending);
        if let (Some(tx), false) = (&self.outputs.spikes, mentions.is_empty()) {
            if tx.send(mentions.clone()).is_err() {
                error!(
                    worker = self.index,
                    "the spike monitor stopped; stopping the worker"
                );
                return false;
            }
        }
        if let Some(tx) = &self.outputs.routed {
            mentions.retain(|m| !m.queues.is_empty());
            if let Some(index) = &self.outputs.routed_posts {
                // Known before the writer commits them, so a delete read by another worker
                // meanwhile is not missed.
                for m in &mentions {
                    index.insert(&m.post.thread.key);
                }
            }
            let mut routed = Routed::batch(source, seq, position, mentions);
            routed.deleted = std::mem::take(&mut self.deleted);
            if tx.send(routed).is_err() {
                error!(
                    worker = self.index,
                    "the outbox writer stopped; stopping the worker"
                );
                return false;
            }
        }
        true
    }

    fn flush_counts(&mut self) {
        let c = &mut self.counts;
        let t = &self.totals;
        let h = &self.handles;
        h.frames.increment(c.frames);
        h.posts.increment(c.posts);
        h.matched.increment(c.matched);
        h.lang_detected.increment(c.lang_detected);
        t.frames.fetch_add(c.frames, Ordering::Relaxed);
        t.bytes.fetch_add(c.bytes, Ordering::Relaxed);
        t.posts.fetch_add(c.posts, Ordering::Relaxed);
        t.matched.fetch_add(c.matched, Ordering::Relaxed);
        t.routed.fetch_add(c.routed, Ordering::Relaxed);
        for (reason, n) in c.skipped.nonzero() {
            h.drops.add(reason, n);
            t.skipped[reason.index()].fetch_add(n, Ordering::Relaxed);
        }
        for (i, n) in c.per_queue.iter_mut().enumerate() {
            if *n > 0 {
                h.queues[i].increment(*n);
                t.per_queue[i].fetch_add(*n, Ordering::Relaxed);
                *n = 0;
            }
        }
        for (i, n) in c.per_brand.iter_mut().enumerate() {
            if *n > 0 {
                h.brands[i].increment(*n);
                *n = 0;
            }
        }
        for (i, n) in c.per_brand_negative.iter_mut().enumerate() {
            if *n > 0 {
                h.negative[i].increment(*n);
                *n = 0;
            }
        }
        c.frames = 0;
        c.bytes = 0;
        c.posts = 0;
        c.matched = 0;
        c.lang_detected = 0;
        c.routed = 0;
        c.skipped = SkipCounts::default();
    }
}

/// The decoder for a frame of one source: the source's fixed decoder, or with `auto` the one
/// built for the format detected from the first frame that names one. A frame before that is
/// skipped (`Oversize` when over `limits`, otherwise `WrongShape`) and the next one is tried.
/// Shared with `earshot replay --baseline-rules` so both read input the same way.
pub fn decoder_for<'a>(
    slot: &'a mut Option<Decoder>,
    auto: bool,
    frame: &[u8],
    limits: DecodeLimits,
) -> Result<&'a mut Decoder, SkipReason> {
    if slot.is_none() && auto {
        match Format::detect(frame) {
            Some(format) => *slot = Some(Decoder::new(format, limits)),
            None if frame.len() > limits.max_frame_bytes => return Err(SkipReason::Oversize),
            None => return Err(SkipReason::WrongShape),
        }
    }
    slot.as_mut().ok_or(SkipReason::WrongShape)
}

/// Times consecutive stages of one post when sampling is on.
struct Lap(Option<Instant>);

impl Lap {
    /// Starts timing if it is not already on.
    fn start(&mut self) {
        if self.0.is_none() {
            self.0 = Some(Instant::now());
        }
    }

    /// Records the time since the last lap under `stage` and adds it to `inner`.
    fn stop(&mut self, local: &mut LatencySet, inner: &mut u64, stage: Stage) {
        if let Some(t) = self.0.as_mut() {
            let now = Instant::now();
            let ns = (now - *t).as_nanos() as u64;
            *inner += ns;
            let i = Stage::ALL.iter().position(|s| *s == stage).unwrap_or(0);
            record(&mut local.stages[i], ns);
            *t = now;
        }
    }
}

fn record(h: &mut hdrhistogram::Histogram<u64>, ns: u64) {
    let _ = h.record(ns.clamp(1, 60_000_000_000));
}

impl Stages {
    /// normalize → match → (score → route → mention) for one decoded post.
    #[allow(clippy::too_many_arguments)]
    fn post(
        &mut self,
        compiled: &Compiled,
        post: &Post<'_>,
        sampled: bool,
        opened: Instant,
        received_wall: SystemTime,
        counts: &mut Counts,
        pending: &mut Vec<Arc<Mention>>,
    ) {
        let mut lap = Lap(sampled.then(Instant::now));
        normalize(&post.text, &mut self.normalized);
        lap.stop(&mut self.local, &mut self.inner_ns, Stage::Normalize);
        compiled.matcher.match_post(
            post,
            &self.normalized,
            &mut self.match_scratch,
            &mut self.hits,
        );
        lap.stop(&mut self.local, &mut self.inner_ns, Stage::Match);
        if self.hits.is_empty() {
            return;
        }
        // A post without a declared language gets one detected where a rule's `lang:`
        // condition needed it (the matcher did it then) or a route filters on language.
        let detected = match (&post.lang, self.match_scratch.detected_lang()) {
            (Some(_), _) => None,
            (None, Some(said)) => said,
            (None, None) if compiled.router.needs_lang() => crate::language::detect(&post.text),
            (None, None) => None,
        };
        // A Bluesky author is a DID only: the profile gives the handle, name, followers and
        // description author classes and influence read (within the lookup's deadline).
        let profile = match (
            &self.profiles,
            &mut self.wait_budget,
            post.platform,
            &post.author.handle,
        ) {
            (Some(profiles), Some(budget), Platform::Bluesky, None) => {
                profiles.lookup_within(&post.author.id, budget)
            }
            _ => None,
        };
        let completed;
        let post = if detected.is_some() || profile.is_some() {
            let mut p = post.clone();
            if let Some(code) = detected {
                counts.lang_detected += 1;
                p.lang = Some(std::borrow::Cow::Borrowed(code));
            }
            if let Some(profile) = &profile {
                p.author.handle = Some(std::borrow::Cow::Owned(profile.handle.clone()));
                p.author.name = profile.name.clone().map(std::borrow::Cow::Owned);
                p.author.followers = profile.followers;
                p.author.description = profile.description.clone().map(std::borrow::Cow::Owned);
            }
            completed = p;
            &completed
        } else {
            post
        };
        // Matched posts are timed every time: they are rare and their latency is the product.
        lap.start();
        counts.matched += 1;
        let customer = self
            .customers
            .current()
            .lookup(
                post.platform,
                &post.author.id,
                post.author.handle.as_deref(),
            )
            .cloned();
        let scored = compiled.scorer.score(
            &ScoreInput {
                post,
                norm: &self.normalized,
                hits: &self.hits,
                rules: &compiled.rules,
                customer_tier: customer.as_ref().map(|c| c.tier.as_deref()),
                in_spike: self.spikes.as_ref().is_some_and(|f| {
                    f.any(
                        self.hits
                            .iter()
                            .map(|h| compiled.rules.brands()[h.brand as usize].id.0.as_str()),
                    )
                }),
            },
            &mut self.score,
        );
        lap.stop(&mut self.local, &mut self.inner_ns, Stage::Score);
        compiled.router.route(
            post,
            &self.hits,
            &compiled.rules,
            &scored,
            &mut self.queue_idx,
        );
        let queues: Vec<String> = self
            .queue_idx
            .iter()
            .map(|&i| compiled.router.queues()[i as usize].clone())
            .collect();
        for &i in &self.queue_idx {
            counts.per_queue[i as usize] += 1;
        }
        if !queues.is_empty() {
            counts.routed += 1;
        }
        let rules = &compiled.rules;
        let mut seen_brands: Vec<u32> = Vec::with_capacity(self.hits.len());
        let matches = self
            .hits
            .iter()
            .map(|h| {
                if !seen_brands.contains(&h.brand) {
                    seen_brands.push(h.brand);
                    counts.per_brand[h.brand as usize] += 1;
                    if scored.sentiment.label == SentimentLabel::Negative {
                        counts.per_brand_negative[h.brand as usize] += 1;
                    }
                }
                let brand = &rules.brands()[h.brand as usize];
                let rule = &rules.rules()[h.rule as usize];
                MatchOut {
                    rule: rule.id.0.clone(),
                    tags: rule.tags.clone(),
                    brand: brand.id.0.clone(),
                    kind: brand.kind,
                    terms: h
                        .terms
                        .iter()
                        .map(|&t| compiled.matcher.term(t).to_string())
                        .collect(),
                }
            })
            .collect();
        let mut mpost = MentionPost::from_post(post);
        if detected.is_some() {
            mpost.lang_source = Some(LangSource::Detected);
        }
        let mention = Mention {
            mention_id: mention_id(post.platform, &mpost.id),
            post: mpost,
            matches,
            sentiment: scored.sentiment,
            category: scored.category,
            categories: scored.categories,
            urgency: scored.urgency,
            author_class: scored.speaker.class,
            author_classes: scored.speaker.classes,
            recommendation: scored.recommendation,
            cues: scored.cues,
            customer,
            queues,
            received_at: rfc3339_millis(received_wall),
            received: opened,
        };
        lap.stop(&mut self.local, &mut self.inner_ns, Stage::Route);
        record(&mut self.local.mention, opened.elapsed().as_nanos() as u64);
        pending.push(Arc::new(mention));
    }
}

/// Spawns each built worker on its own named thread, registered in `health` (so `/readyz`
/// names a worker that panicked).
pub fn spawn(
    workers: Vec<Worker>,
    rx: Receiver<Batch>,
    health: &crate::health::Health,
) -> std::io::Result<Vec<std::thread::JoinHandle<usize>>> {
    workers
        .into_iter()
        .map(|w| {
            let rx = rx.clone();
            let held = health.register(
                crate::health::Component::Worker,
                format!("worker {}", w.index),
            );
            std::thread::Builder::new()
                .name(format!("earshot-worker-{}", w.index))
                .spawn(move || {
                    let _held = held;
                    w.run(rx)
                })
        })
        .collect()
}

/// How long the demo and tests wait for in-flight batches at shutdown before naming what is
/// still running.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(10);
