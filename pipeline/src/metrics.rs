//! The metric catalogue: every name earshot exports, registered once, counted in batches.
//!
//! Names follow `earshot_<subsystem>_<name>_<unit>[_total]`. Label values come from enums or
//! configuration ids (source id, queue id, brand id), never from post text. Workers count in
//! plain integers and flush to these handles once per batch; stage latencies go into
//! hdrhistograms that workers merge into [`Latencies`] a few times a second, and the admin
//! server turns them into quantile gauges at scrape time — so nothing here sits in the per-post
//! path.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use hdrhistogram::Histogram;
use metrics::{describe_counter, describe_gauge, Counter, Gauge, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::noise::HoldReason;
use crate::skip::SkipReason;

/// The cluster's rules generation this node runs (0 while its rules differ from the
/// cluster's).
pub const RULES_CLUSTER_GENERATION: &str = "earshot_rules_cluster_generation";
/// Messages a cluster node published to a stream and had acknowledged, or had to publish
/// again. Labels: `stream`, `outcome` (`acked`, `retried`).
pub const CLUSTER_PUBLISHED: &str = "earshot_cluster_published_total";
/// 1 while this node holds a lease. Labels: `lease` (`source.<id>`, `queue.<id>`).
pub const CLUSTER_LEASE_HELD: &str = "earshot_cluster_lease_held";
/// Times this node took a lease over. Labels: `lease`.
pub const CLUSTER_LEASE_TAKEN: &str = "earshot_cluster_lease_taken_total";
/// Sightings the detector's node dropped because it was behind (its channel full).
pub const CLUSTER_SIGHTINGS_DROPPED: &str = "earshot_cluster_sightings_dropped_total";
/// Stream messages a worker refused as not a frame batch (terminated, never redelivered).
pub const CLUSTER_FRAMES_REFUSED: &str = "earshot_cluster_frame_batches_refused_total";

/// Frames received by a source (before any skip). Labels: `source`.
pub const SOURCE_FRAMES_RECEIVED: &str = "earshot_source_frames_received_total";
/// Bytes received by a source. Labels: `source`.
pub const SOURCE_BYTES_RECEIVED: &str = "earshot_source_bytes_received_total";
/// Reconnects of a source after a lost or failed connection. Labels: `source`.
pub const SOURCE_RECONNECTS: &str = "earshot_source_reconnects_total";
/// Waits of a polling source (Reddit) for its API's rate-limit window to reset. Labels:
/// `source`.
pub const SOURCE_RATE_LIMIT_WAITS: &str = "earshot_source_rate_limit_waits_total";
/// 1 while a source is connected. Labels: `source`.
pub const SOURCE_CONNECTED: &str = "earshot_source_connected";
/// Sources that stopped on an error retrying cannot fix, by `source` and `reason` (the
/// error's `reason()`; `panicked` for a source task that panicked).
pub const SOURCE_ERRORS: &str = "earshot_source_errors_total";
/// Attempts whose payload template failed on the message's data, by `queue` and `reason`
/// (`RenderError::reason`): the entry is dead-lettered, since rendering again gives the same.
pub const PAYLOAD_RENDER_ERRORS: &str = "earshot_payload_render_errors_total";
/// Frames a worker finished (decoded or skipped). Labels: none.
pub const WORKER_FRAMES_PROCESSED: &str = "earshot_worker_frames_processed_total";
/// Posts decoded. Labels: `platform`.
pub const STAGE_POSTS_DECODED: &str = "earshot_stage_posts_decoded_total";
/// Frames or posts dropped, by stage and reason. Labels: `stage` (`source`, `decode`),
/// `reason` (a [`SkipReason`] name).
pub const STAGE_POSTS_DROPPED: &str = "earshot_stage_posts_dropped_total";
/// Per-post time in each stage, as quantile gauges. Labels: `stage`, `quantile`.
pub const STAGE_DURATION: &str = "earshot_stage_duration_seconds";
/// Posts that matched at least one rule. Labels: none.
pub const MATCH_POSTS_MATCHED: &str = "earshot_match_posts_matched_total";
/// Profile lookups of matched posts' authors ([`crate::enrich`]), by outcome: `cached`,
/// `fetched`, `missing` (no such profile), `late` (past the deadline), `busy` (too many
/// waiting), `failed` (an API call that failed). Labels: `outcome`.
pub const ENRICHMENT: &str = "earshot_enrichment_total";
/// Routed posts their authors deleted (their mentions retracted). Labels: none.
pub const DELETED_POSTS: &str = "earshot_deleted_posts_total";
/// What became of a queue's retracted mentions: `dropped` (deleted before it was sent: never
/// sent), `notified` (`mention.deleted` sent after it), `not_sent` (sent, but the queue's
/// format or sink cannot say so: a file, a template without `[deleted]`, no ticket id).
/// Labels: `queue`, `outcome`.
pub const QUEUE_DELETES: &str = "earshot_queue_deletes_total";
/// Matched posts without a declared language whose language was detected in their text.
pub const LANG_DETECTED: &str = "earshot_lang_detected_total";
/// Mentions per brand. Labels: `brand`, `kind`.
pub const BRAND_MENTIONS: &str = "earshot_brand_mentions_total";
/// Mentions routed to a queue. Labels: `queue`.
pub const ROUTE_MENTIONS_ROUTED: &str = "earshot_route_mentions_routed_total";
/// Ingest-to-routed latency of mentions, as quantile gauges. Labels: `quantile`.
pub const MENTION_LATENCY: &str = "earshot_mention_latency_seconds";
/// Ingest-to-delivered latency of webhook deliveries, as quantile gauges. Labels: `quantile`.
pub const DELIVERY_LATENCY: &str = "earshot_delivery_latency_seconds";
/// Delivery attempts by outcome (delivered, retry, rejected, redirected, panicked, dead,
/// unauthorized).
/// Labels: `queue`, `outcome`.
pub const WEBHOOK_DELIVERIES: &str = "earshot_webhook_deliveries_total";
/// 1 while a queue's credentials are refused (its entries wait). Labels: `queue`.
pub const QUEUE_CREDENTIALS_REFUSED: &str = "earshot_queue_credentials_refused";
/// Access-token requests to a token endpoint. Labels: `queue` (or `source`, for a source that
/// reads an OAuth API), `outcome` (`renewed`, `refused`, `failed`).
pub const TOKEN_RENEWALS: &str = "earshot_token_renewals_total";
/// Mentions delivered as the first of a case (`opened`) or as a follow-up of one
/// (`followup`). Labels: `queue`, `kind`.
pub const CASE_MENTIONS: &str = "earshot_case_mentions_total";
/// `Retry-After` answers longer than the cap that were cut to it. Labels: `queue`.
pub const WEBHOOK_RETRY_AFTER_CAPPED: &str = "earshot_webhook_retry_after_capped_total";
/// Mentions written by a file or stdout sink. Labels: `queue`.
pub const FILE_MENTIONS_WRITTEN: &str = "earshot_file_mentions_written_total";
/// Batches waiting in the frame channel between sources and workers.
pub const CHANNEL_FRAMES_DEPTH: &str = "earshot_channel_frame_batches";
/// Entries waiting in the outbox for delivery. Labels: `queue`.
pub const QUEUE_DEPTH: &str = "earshot_queue_depth";
/// Entries in the dead-letter store. Labels: `queue`.
pub const QUEUE_DEAD_LETTERS: &str = "earshot_queue_dead_letters";
/// Dead letters deleted because they were older than `[outbox] dead_letter_ttl`. Labels:
/// `queue`.
pub const DEAD_LETTERS_EXPIRED: &str = "earshot_queue_dead_letters_expired_total";
/// 1 while a queue is disabled (its endpoint failed past `disable_after`). Labels: `queue`.
pub const QUEUE_DISABLED: &str = "earshot_queue_disabled";
/// 1 while a queue's circuit breaker is open. Labels: `queue`.
pub const QUEUE_BREAKER_OPEN: &str = "earshot_queue_breaker_open";
/// Deliveries later than the queue's latency budget. Labels: `queue`.
pub const QUEUE_OVER_BUDGET: &str = "earshot_queue_over_budget_total";
/// Mentions held back by noise control for a digest. Labels: `queue`, `reason` (repost,
/// storm, cooldown, rate_limited).
pub const NOISE_HELD: &str = "earshot_noise_held_total";
/// Digests written to the outbox. Labels: `queue`.
pub const NOISE_DIGESTS: &str = "earshot_noise_digests_total";
/// Durable outbox commits (each an fsync).
pub const OUTBOX_COMMITS: &str = "earshot_outbox_commits_total";
/// Outbox operations that failed (retried; the source position does not advance meanwhile).
pub const OUTBOX_ERRORS: &str = "earshot_outbox_errors_total";
/// 1 while the outbox takes writes; 0 after a failed commit until one succeeds again.
pub const OUTBOX_WRITABLE: &str = "earshot_outbox_writable";
/// Times the outbox file was closed and opened again after a storage error.
pub const OUTBOX_REOPENS: &str = "earshot_outbox_reopens_total";
/// Panics in any thread or task of earshot. Labels: `thread` (worker, outbox, monitor, async
/// for the tasks of sources, dispatchers and the admin server, main, other).
pub const PANICS: &str = "earshot_panics_total";
/// Rule reloads attempted. Labels: `trigger` (signal, admin, watch), `outcome` (ok, error).
pub const RULES_RELOADS: &str = "earshot_rules_reloads_total";
/// Generation of the rules in force: 1 at start, one more per reload that took effect.
pub const RULES_GENERATION: &str = "earshot_rules_generation";
/// 1 when the last reload took effect (or none was tried), 0 after a failed one.
pub const RULES_LAST_RELOAD_OK: &str = "earshot_rules_last_reload_ok";
/// Accounts in the customer table in force.
pub const CUSTOMERS_ROWS: &str = "earshot_customers_rows";
/// Rows skipped (bad or duplicate) when the customer table in force was loaded.
pub const CUSTOMERS_ROWS_SKIPPED: &str = "earshot_customers_rows_skipped";
/// Customer table reloads after the first load. Labels: `outcome` (ok, error).
pub const CUSTOMERS_RELOADS: &str = "earshot_customers_reloads_total";
/// Customer table reloads that failed, by `reason` (`CustomerError::reason`: read, too_large,
/// not_utf8, malformed, missing_column, …); the table in force stays.
pub const CUSTOMERS_RELOAD_ERRORS: &str = "earshot_customers_reload_errors_total";
/// Negative mentions of a brand. Labels: `brand`, `kind`.
pub const BRAND_NEGATIVE_MENTIONS: &str = "earshot_brand_negative_mentions_total";
/// A brand's mentions per second over the last 60 s, from the spike monitor. Labels: `brand`.
pub const BRAND_RATE: &str = "earshot_brand_rate";
/// Negative share of a brand's mentions over the last 60 s (0 with none). Labels: `brand`.
pub const BRAND_NEGATIVE_SHARE: &str = "earshot_brand_negative_share";
/// 1 while a spike is active. Labels: `brand`, `series` (all, negative).
pub const SPIKE_ACTIVE: &str = "earshot_spike_active";
/// The shortest window's rate over the baseline now (0 while the detector warms up).
/// Labels: `brand`, `series`.
pub const SPIKE_RATIO: &str = "earshot_spike_ratio";
/// Spike events. Labels: `brand`, `series`, `event` (started, updated, ended).
pub const SPIKE_EVENTS: &str = "earshot_spike_events_total";
/// Admin connections refused before any request was read. Labels: `reason` (`limit`: past
/// `admin.max_connections`, accepted and closed at once).
pub const ADMIN_CONNECTIONS_REJECTED: &str = "earshot_admin_connections_rejected_total";
/// Admin connections the server closed itself. Labels: `reason` (`header_timeout`,
/// `idle_timeout`, `tls_handshake`).
pub const ADMIN_CONNECTIONS_CLOSED: &str = "earshot_admin_connections_closed_total";
/// Dashboard event streams refused with 503 past `admin.max_live_viewers`.
pub const ADMIN_LIVE_VIEWERS_REJECTED: &str = "earshot_admin_live_viewers_rejected_total";
/// Admin requests refused. Labels: `reason` (`host`: not in the allow-list, `no_token`: no
/// token configured, `unauthorized`: no valid token or session, `login`: a login code that
/// is not valid).
pub const ADMIN_REQUESTS_REFUSED: &str = "earshot_admin_requests_refused_total";

/// Counts one refused admin request under `reason` (see [`ADMIN_REQUESTS_REFUSED`]).
pub fn admin_request_refused(reason: &'static str) {
    metrics::counter!(ADMIN_REQUESTS_REFUSED, "reason" => reason).increment(1);
}

/// The worker stages that are timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Frame → post.
    Decode,
    /// Text → casefolded text and tokens.
    Normalize,
    /// Normalized post → rule hits.
    Match,
    /// Hits → sentiment, category, urgency.
    Score,
    /// Scored mention → queues.
    Route,
}

impl Stage {
    /// Every stage, in pipeline order.
    pub const ALL: [Stage; 5] = [
        Stage::Decode,
        Stage::Normalize,
        Stage::Match,
        Stage::Score,
        Stage::Route,
    ];

    /// The `stage` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Decode => "decode",
            Stage::Normalize => "normalize",
            Stage::Match => "match",
            Stage::Score => "score",
            Stage::Route => "route",
        }
    }
}

/// The process-wide Prometheus recorder, installed on first use.
///
/// `metrics` has one global recorder per process; tests and `earshot demo` start several
/// pipelines in one process, so this installs once and hands out the same handle.
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let handle = PrometheusBuilder::new()
            .install_recorder()
            .expect("the earshot Prometheus recorder is the only recorder installed");
        describe_all();
        handle
    })
}

fn describe_all() {
    describe_counter!(
        SOURCE_FRAMES_RECEIVED,
        Unit::Count,
        "Frames received by a source."
    );
    describe_counter!(
        SOURCE_BYTES_RECEIVED,
        Unit::Bytes,
        "Bytes received by a source."
    );
    describe_counter!(SOURCE_RECONNECTS, Unit::Count, "Reconnects of a source.");
    describe_counter!(
        SOURCE_RATE_LIMIT_WAITS,
        Unit::Count,
        "Waits of a polling source for its API's rate-limit window to reset."
    );
    describe_gauge!(SOURCE_CONNECTED, "1 while the source is connected.");
    describe_counter!(
        PAYLOAD_RENDER_ERRORS,
        Unit::Count,
        "Payload templates that failed on a message's data (dead-lettered), by reason."
    );
    describe_counter!(
        SOURCE_ERRORS,
        Unit::Count,
        "Sources stopped by an error retrying cannot fix, by reason."
    );
    describe_counter!(
        WORKER_FRAMES_PROCESSED,
        Unit::Count,
        "Frames finished by workers."
    );
    describe_counter!(STAGE_POSTS_DECODED, Unit::Count, "Posts decoded.");
    describe_counter!(
        STAGE_POSTS_DROPPED,
        Unit::Count,
        "Frames skipped, by stage and reason."
    );
    describe_gauge!(
        STAGE_DURATION,
        Unit::Seconds,
        "Per-post stage time quantiles."
    );
    describe_counter!(
        MATCH_POSTS_MATCHED,
        Unit::Count,
        "Posts matching at least one rule."
    );
    describe_counter!(
        ENRICHMENT,
        Unit::Count,
        "Profile lookups of matched posts' authors, by outcome."
    );
    describe_counter!(
        DELETED_POSTS,
        Unit::Count,
        "Routed posts their authors deleted."
    );
    describe_counter!(
        QUEUE_DELETES,
        Unit::Count,
        "Retracted mentions of the queue, by what became of them."
    );
    describe_counter!(
        LANG_DETECTED,
        Unit::Count,
        "Matched posts without a declared language whose language was detected."
    );
    describe_counter!(BRAND_MENTIONS, Unit::Count, "Mentions per brand.");
    describe_counter!(
        ROUTE_MENTIONS_ROUTED,
        Unit::Count,
        "Mentions routed to a queue."
    );
    describe_gauge!(
        MENTION_LATENCY,
        Unit::Seconds,
        "Ingest-to-routed latency quantiles."
    );
    describe_gauge!(
        DELIVERY_LATENCY,
        Unit::Seconds,
        "Ingest-to-delivered latency quantiles."
    );
    describe_counter!(
        WEBHOOK_DELIVERIES,
        Unit::Count,
        "Delivery attempts of webhook and nats queues, by outcome."
    );
    describe_counter!(
        FILE_MENTIONS_WRITTEN,
        Unit::Count,
        "Mentions written to files/stdout."
    );
    describe_gauge!(
        CHANNEL_FRAMES_DEPTH,
        Unit::Count,
        "Batches waiting for a worker."
    );
    describe_gauge!(
        QUEUE_DEPTH,
        Unit::Count,
        "Outbox entries waiting for delivery."
    );
    describe_gauge!(
        QUEUE_DEAD_LETTERS,
        Unit::Count,
        "Entries in the dead-letter store."
    );
    describe_gauge!(QUEUE_DISABLED, "1 while the queue is disabled.");
    describe_gauge!(
        QUEUE_BREAKER_OPEN,
        "1 while the queue's circuit breaker is open."
    );
    describe_counter!(
        QUEUE_OVER_BUDGET,
        Unit::Count,
        "Deliveries later than the queue's latency budget."
    );
    describe_counter!(
        NOISE_HELD,
        Unit::Count,
        "Mentions held back for a digest, by reason."
    );
    describe_counter!(NOISE_DIGESTS, Unit::Count, "Digests written to the outbox.");
    describe_counter!(OUTBOX_COMMITS, Unit::Count, "Durable outbox commits.");
    describe_counter!(OUTBOX_ERRORS, Unit::Count, "Outbox operations that failed.");
    describe_gauge!(
        OUTBOX_WRITABLE,
        "1 while the outbox takes writes, 0 after a failed commit."
    );
    describe_counter!(
        OUTBOX_REOPENS,
        Unit::Count,
        "Outbox reopens after a storage error."
    );
    describe_gauge!(
        QUEUE_CREDENTIALS_REFUSED,
        "1 while the queue's credentials are refused; its entries wait."
    );
    describe_counter!(
        TOKEN_RENEWALS,
        Unit::Count,
        "Access-token requests to the queue's token endpoint, by outcome."
    );
    describe_counter!(
        WEBHOOK_RETRY_AFTER_CAPPED,
        Unit::Count,
        "Retry-After answers cut to the cap."
    );
    describe_counter!(
        CASE_MENTIONS,
        Unit::Count,
        "Mentions delivered as the first of a case or as a follow-up of one."
    );
    describe_counter!(PANICS, Unit::Count, "Panics, by thread.");
    describe_counter!(
        DEAD_LETTERS_EXPIRED,
        Unit::Count,
        "Dead letters deleted after dead_letter_ttl."
    );
    describe_counter!(
        RULES_RELOADS,
        Unit::Count,
        "Rule reloads attempted, by trigger and outcome."
    );
    describe_gauge!(RULES_GENERATION, "Generation of the rules in force.");
    describe_gauge!(
        RULES_LAST_RELOAD_OK,
        "1 when the last rule reload took effect, 0 after a failed one."
    );
    describe_gauge!(
        CUSTOMERS_ROWS,
        Unit::Count,
        "Accounts in the customer table in force."
    );
    describe_gauge!(
        CUSTOMERS_ROWS_SKIPPED,
        Unit::Count,
        "Rows skipped when the customer table in force was loaded."
    );
    describe_counter!(
        CUSTOMERS_RELOADS,
        Unit::Count,
        "Customer table reloads, by outcome."
    );
    describe_counter!(
        CUSTOMERS_RELOAD_ERRORS,
        Unit::Count,
        "Customer table reloads that failed, by reason; the table in force stays."
    );
    describe_counter!(
        BRAND_NEGATIVE_MENTIONS,
        Unit::Count,
        "Negative mentions of a brand."
    );
    describe_gauge!(
        BRAND_RATE,
        "A brand's mentions per second over the last minute."
    );
    describe_gauge!(
        BRAND_NEGATIVE_SHARE,
        "Negative share of a brand's mentions over the last minute."
    );
    describe_gauge!(
        SPIKE_ACTIVE,
        "1 while a spike of the brand's series is active."
    );
    describe_gauge!(
        SPIKE_RATIO,
        "The brand series' short-window rate over its baseline."
    );
    describe_counter!(SPIKE_EVENTS, Unit::Count, "Spike events, by phase.");
    describe_counter!(
        ADMIN_CONNECTIONS_REJECTED,
        Unit::Count,
        "Admin connections closed at once, by reason."
    );
    describe_counter!(
        ADMIN_CONNECTIONS_CLOSED,
        Unit::Count,
        "Admin connections closed by the server on a timeout, by reason."
    );
    describe_counter!(
        ADMIN_LIVE_VIEWERS_REJECTED,
        Unit::Count,
        "Dashboard event streams refused past the viewer limit."
    );
    describe_counter!(
        ADMIN_REQUESTS_REFUSED,
        Unit::Count,
        "Admin requests refused, by reason."
    );
}

/// Handles for the drop counter of one stage, one per [`SkipReason`].
#[derive(Clone)]
pub struct DropCounters(Vec<Counter>);

impl DropCounters {
    /// Registers `earshot_stage_posts_dropped_total{stage, reason}` for every reason.
    pub fn register(stage: &'static str) -> Self {
        Self(
            SkipReason::ALL
                .iter()
                .map(|r| metrics::counter!(STAGE_POSTS_DROPPED, "stage" => stage, "reason" => r.as_str()))
                .collect(),
        )
    }

    /// Sets the running total of drops under `reason` (for counts kept elsewhere as atomics).
    pub fn absolute(&self, reason: SkipReason, total: u64) {
        self.0[reason.index()].absolute(total);
    }

    /// Adds `n` drops under `reason`.
    pub fn add(&self, reason: SkipReason, n: u64) {
        if n > 0 {
            self.0[reason.index()].increment(n);
        }
    }
}

/// Per-source handles.
#[derive(Clone)]
pub struct SourceCounters {
    /// Frames received.
    pub frames: Counter,
    /// Bytes received.
    pub bytes: Counter,
    /// Reconnects.
    pub reconnects: Counter,
    /// Connected gauge.
    pub connected: Gauge,
}

impl SourceCounters {
    /// Registers the handles of source `id`.
    pub fn register(id: &str) -> Self {
        let id = id.to_string();
        Self {
            frames: metrics::counter!(SOURCE_FRAMES_RECEIVED, "source" => id.clone()),
            bytes: metrics::counter!(SOURCE_BYTES_RECEIVED, "source" => id.clone()),
            reconnects: metrics::counter!(SOURCE_RECONNECTS, "source" => id.clone()),
            connected: metrics::gauge!(SOURCE_CONNECTED, "source" => id),
        }
    }
}

/// A histogram of nanoseconds from 1 ns to 60 s at 3 significant figures.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("static histogram bounds are valid")
}

/// Shared latency histograms: one per [`Stage`], the mention latency (ingest → routed) and the
/// delivery latency (ingest → accepted by the endpoint).
///
/// Workers keep their own histograms and merge here a few times a second
/// ([`Latencies::MERGE_EVERY`]), so the lock is taken rarely and never per post.
#[derive(Clone)]
pub struct Latencies(Arc<Mutex<LatencySet>>);

/// The histograms behind [`Latencies`].
#[derive(Clone)]
pub struct LatencySet {
    /// Per-post stage time, indexed like [`Stage::ALL`].
    pub stages: Vec<Histogram<u64>>,
    /// Ingest → routed, per mention.
    pub mention: Histogram<u64>,
    /// Ingest → delivered, per webhook delivery.
    pub delivery: Histogram<u64>,
}

impl LatencySet {
    /// Empty histograms.
    pub fn new() -> Self {
        Self {
            stages: Stage::ALL.iter().map(|_| new_histogram()).collect(),
            mention: new_histogram(),
            delivery: new_histogram(),
        }
    }

    /// Adds every sample of `other` and empties it.
    pub fn drain_from(&mut self, other: &mut LatencySet) {
        for (a, b) in self.stages.iter_mut().zip(other.stages.iter_mut()) {
            a.add(&*b).expect("histograms share bounds");
            b.reset();
        }
        self.mention
            .add(&other.mention)
            .expect("histograms share bounds");
        other.mention.reset();
        self.delivery
            .add(&other.delivery)
            .expect("histograms share bounds");
        other.delivery.reset();
    }
}

impl Default for LatencySet {
    fn default() -> Self {
        Self::new()
    }
}

impl Latencies {
    /// How often a worker merges its local histograms.
    pub const MERGE_EVERY: Duration = Duration::from_millis(250);

    /// Empty shared histograms.
    pub fn new() -> Self {
        Self(Arc::new(Mutex::new(LatencySet::new())))
    }

    /// Merges (and empties) a worker's local histograms.
    pub fn merge(&self, local: &mut LatencySet) {
        let mut shared = self.0.lock().unwrap_or_else(|e| e.into_inner());
        shared.drain_from(local);
    }

    /// Records one delivery latency.
    pub fn record_delivery(&self, d: Duration) {
        let mut shared = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let _ = shared
            .delivery
            .record(d.as_nanos().clamp(1, 60_000_000_000) as u64);
    }

    /// A copy of the current histograms.
    pub fn snapshot(&self) -> LatencySet {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Sets the quantile gauges from the histograms (called at scrape time).
    pub fn publish(&self) {
        let snap = self.snapshot();
        for (stage, h) in Stage::ALL.iter().zip(snap.stages.iter()) {
            publish_quantiles(h, STAGE_DURATION, Some(stage.as_str()));
        }
        publish_quantiles(&snap.mention, MENTION_LATENCY, None);
        publish_quantiles(&snap.delivery, DELIVERY_LATENCY, None);
    }
}

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

/// The quantiles exported for every latency.
pub const QUANTILES: [(f64, &str); 4] =
    [(0.5, "0.5"), (0.99, "0.99"), (0.999, "0.999"), (1.0, "1")];

fn publish_quantiles(h: &Histogram<u64>, name: &'static str, stage: Option<&'static str>) {
    for (q, label) in QUANTILES {
        let secs = if h.is_empty() {
            0.0
        } else {
            h.value_at_quantile(q) as f64 / 1e9
        };
        match stage {
            Some(stage) => metrics::gauge!(name, "stage" => stage, "quantile" => label).set(secs),
            None => metrics::gauge!(name, "quantile" => label).set(secs),
        }
    }
}

/// Registers at 0 the series of queue `queue` that are otherwise created by their first event
/// (a retry, a dead letter, a held mention, a late delivery), so they exist from the start:
/// dashboards and alerts over `rate()` or `delta()` need the series before the first event,
/// and an absent series cannot be told from a failed scrape. Depth and dead-letter gauges are
/// set when the queue's shared state is built; this does not touch their values.
pub fn register_queue(queue: &str) {
    let q = queue.to_string();
    for outcome in [
        "delivered",
        "retry",
        "rejected",
        "redirected",
        "panicked",
        "dead",
        "unauthorized",
    ] {
        metrics::counter!(WEBHOOK_DELIVERIES, "queue" => q.clone(), "outcome" => outcome)
            .increment(0);
    }
    metrics::counter!(WEBHOOK_RETRY_AFTER_CAPPED, "queue" => q.clone()).increment(0);
    for outcome in ["dropped", "notified", "not_sent"] {
        metrics::counter!(QUEUE_DELETES, "queue" => q.clone(), "outcome" => outcome).increment(0);
    }
    for kind in ["opened", "followup"] {
        metrics::counter!(CASE_MENTIONS, "queue" => q.clone(), "kind" => kind).increment(0);
    }
    metrics::counter!(DEAD_LETTERS_EXPIRED, "queue" => q.clone()).increment(0);
    metrics::counter!(QUEUE_OVER_BUDGET, "queue" => q.clone()).increment(0);
    // A file or stdout queue has no breaker and is never disabled: 0 is the truth for it too.
    metrics::gauge!(QUEUE_BREAKER_OPEN, "queue" => q.clone()).increment(0.0);
    metrics::gauge!(QUEUE_DISABLED, "queue" => q.clone()).increment(0.0);
    metrics::gauge!(QUEUE_CREDENTIALS_REFUSED, "queue" => q.clone()).increment(0.0);
    for reason in [
        HoldReason::Repost,
        HoldReason::Storm,
        HoldReason::Cooldown,
        HoldReason::RateLimited,
    ] {
        metrics::counter!(NOISE_HELD, "queue" => q.clone(), "reason" => reason.as_str())
            .increment(0);
    }
    metrics::counter!(NOISE_DIGESTS, "queue" => q).increment(0);
}

/// Registers at 0 the process-wide series that are otherwise created by their first event
/// (an outbox commit or error, a rule or customer-table reload), for the same reason as
/// [`register_queue`].
pub fn register_process() {
    metrics::counter!(OUTBOX_COMMITS).increment(0);
    metrics::counter!(OUTBOX_ERRORS).increment(0);
    metrics::counter!(OUTBOX_REOPENS).increment(0);
    metrics::gauge!(OUTBOX_WRITABLE).set(1.0);
    for thread in ["worker", "outbox", "monitor", "async", "main", "other"] {
        metrics::counter!(PANICS, "thread" => thread).increment(0);
    }
    for trigger in [Trigger::Signal, Trigger::Admin, Trigger::Watch] {
        for outcome in ["ok", "error"] {
            metrics::counter!(RULES_RELOADS, "trigger" => trigger.as_str(), "outcome" => outcome)
                .increment(0);
        }
    }
    for outcome in ["ok", "error"] {
        metrics::counter!(CUSTOMERS_RELOADS, "outcome" => outcome).increment(0);
    }
}

/// Registers at 0 the admin server's series, when it starts.
pub fn register_admin() {
    metrics::counter!(ADMIN_CONNECTIONS_REJECTED, "reason" => "limit").increment(0);
    for reason in ["header_timeout", "idle_timeout", "tls_handshake"] {
        metrics::counter!(ADMIN_CONNECTIONS_CLOSED, "reason" => reason).increment(0);
    }
    metrics::counter!(ADMIN_LIVE_VIEWERS_REJECTED).increment(0);
    for reason in ["host", "no_token", "unauthorized", "login"] {
        metrics::counter!(ADMIN_REQUESTS_REFUSED, "reason" => reason).increment(0);
    }
}

/// What asked for a reload (a log field and a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// `SIGHUP`.
    Signal,
    /// `POST /rules/reload`.
    Admin,
    /// The rule files changed on disk.
    Watch,
    /// Another node of the cluster put new rules in force.
    Cluster,
}

impl Trigger {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Signal => "signal",
            Trigger::Admin => "admin",
            Trigger::Watch => "watch",
            Trigger::Cluster => "cluster",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_moves_samples_and_empties_the_local_set() {
        let shared = Latencies::new();
        let mut local = LatencySet::new();
        local.stages[0].record(1_000).unwrap();
        local.mention.record(2_000_000).unwrap();
        shared.merge(&mut local);
        assert!(local.stages[0].is_empty());
        let snap = shared.snapshot();
        assert_eq!(snap.stages[0].len(), 1);
        assert_eq!(snap.mention.len(), 1);
    }

    #[test]
    fn queue_and_process_series_exist_at_zero_after_registration() {
        let handle = prometheus();
        register_queue("registered-at-start");
        register_process();
        let text = handle.render();
        for line in [
            r#"earshot_webhook_deliveries_total{queue="registered-at-start",outcome="dead"} 0"#,
            r#"earshot_noise_held_total{queue="registered-at-start",reason="rate_limited"} 0"#,
            r#"earshot_queue_disabled{queue="registered-at-start"} 0"#,
            "earshot_outbox_errors_total ",
            r#"earshot_rules_reloads_total{trigger="watch",outcome="error"} "#,
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }

    #[test]
    fn names_follow_the_convention() {
        for name in [
            SOURCE_FRAMES_RECEIVED,
            SOURCE_BYTES_RECEIVED,
            SOURCE_RECONNECTS,
            SOURCE_RATE_LIMIT_WAITS,
            WORKER_FRAMES_PROCESSED,
            STAGE_POSTS_DECODED,
            STAGE_POSTS_DROPPED,
            MATCH_POSTS_MATCHED,
            BRAND_MENTIONS,
            ROUTE_MENTIONS_ROUTED,
            WEBHOOK_DELIVERIES,
            FILE_MENTIONS_WRITTEN,
            RULES_RELOADS,
            CUSTOMERS_RELOADS,
            CUSTOMERS_RELOAD_ERRORS,
            SOURCE_ERRORS,
            PAYLOAD_RENDER_ERRORS,
            BRAND_NEGATIVE_MENTIONS,
            SPIKE_EVENTS,
        ] {
            assert!(
                name.starts_with("earshot_") && name.ends_with("_total"),
                "{name}"
            );
        }
    }
}
