//! The spike monitor: one thread that counts the workers' mentions per brand, runs the spike
//! detector ([`crate::spike`]) once a second, and tells everyone who acts on a spike.
//!
//! Input → output: each worker sends the mentions of a batch (an `Arc` clone each, only for
//! batches that have any) on a bounded channel → once a second: spike events to the
//! `[spikes] queues` through the outbox (the same durable path as mentions), to the live page
//! and to the metrics; the set of brands in a spike to the workers' scorer (`in_spike`); the
//! live page's snapshot (per-brand rates, sparklines, active spikes); routed mentions to the
//! live page as they come.
//!
//! Why a thread of its own: spike counts must be global (a surge spread over four workers is
//! one surge), and the detector's work is per second and per mention, never per post, so it
//! stays off the workers' path. The channel is bounded: if this thread ever fell behind, the
//! workers would wait rather than the counts being wrong.
//!
//! Shutdown: the thread ends when every worker has dropped its sender, after the last events
//! went to the outbox writer, whose channel it holds a sender of, so the writer outlives it.
//!
//! Time: the detector's seconds come from a [`MonitorClock`]: the wall clock read once at start
//! and advanced by the monotonic clock after that, so a wall clock stepped forward (an NTP
//! correction, an operator's mistake) neither makes the detector close a year of empty seconds
//! nor fakes a surge, and one stepped back does not pile minutes of mentions into one second.
//! Tests of the whole pipeline drive it by hand instead ([`DrivenClock`], through
//! [`crate::app::RunOptions::spike_clock`]).
//!
//! Restarts: the detector's baselines and active spikes are saved in the outbox's store once
//! a minute and at the end, and read back at start when they are younger than the baseline's
//! half-life, so a restart neither blinds the detector for its warmup nor leaves a spike in
//! progress without its `ended` event.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use metrics::Gauge;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::{debug, info, warn};

use crate::live::{LiveHub, LiveKind};
use crate::mention::Mention;
use crate::metrics::{BRAND_NEGATIVE_SHARE, BRAND_RATE, SPIKE_ACTIVE, SPIKE_EVENTS, SPIKE_RATIO};
use crate::outbox::entry::Event;
use crate::outbox::store::Store;
use crate::outbox::writer::{Routed, SpikeOut};
use crate::rules::BrandKind;
use crate::spike::terms::{exclusions, tokens};
use crate::spike::{
    unix_s, Detector, Observation, Phase, Saved, Series, SpikeEvent, SpikePost, SpikeSettings,
};
use crate::stage::score::sentiment::SentimentLabel;

/// What the spike monitor reads of a mention: taken from a mention in hand, or sent as JSON
/// by the worker nodes of a cluster to the node that runs the detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sighting {
    /// The brands it matched, each once, in match order.
    pub brands: Vec<(String, BrandKind)>,
    /// Its sentiment is negative.
    pub negative: bool,
    /// The post's text (its words drive a spike's terms), cut to [`SIGHTING_TEXT_CHARS`].
    pub text: String,
    /// The post as a spike document shows it.
    pub post: SpikePost,
    /// The queues it was routed to.
    pub queues: Vec<String>,
    /// The live page's `mention` event, when it was routed and someone may watch.
    pub live: Option<String>,
}

/// How much of a post's text a [`Sighting`] carries: more than any platform allows a post.
pub const SIGHTING_TEXT_CHARS: usize = 1000;

impl Sighting {
    /// The sighting of `m`, with its live event when `live` (it was routed and someone
    /// watches).
    pub fn of(m: &Mention, live: bool) -> Sighting {
        let mut brands: Vec<(String, BrandKind)> = Vec::with_capacity(m.matches.len());
        for hit in &m.matches {
            if !brands.iter().any(|(b, _)| *b == hit.brand) {
                brands.push((hit.brand.clone(), hit.kind));
            }
        }
        let live = (live && !m.queues.is_empty()).then(|| {
            let ids: Vec<&str> = brands.iter().map(|(b, _)| b.as_str()).collect();
            mention_json(m, &ids)
        });
        Sighting {
            negative: m.sentiment.label == SentimentLabel::Negative,
            text: m.post.text.chars().take(SIGHTING_TEXT_CHARS).collect(),
            post: spike_post(m),
            queues: m.queues.clone(),
            live,
            brands,
        }
    }
}

/// Where the detector's baselines and active spikes are kept across restarts (and, in a
/// cluster, across a takeover of the detector).
pub trait StateKeeper: Send {
    /// The state saved last, if any.
    fn load(&self) -> Result<Option<Vec<u8>>, String>;
    /// Saves the state.
    fn save(&self, bytes: &[u8]) -> Result<(), String>;
}

impl StateKeeper for Arc<Store> {
    fn load(&self) -> Result<Option<Vec<u8>>, String> {
        self.load_state(STATE_NAME).map_err(|e| e.to_string())
    }

    fn save(&self, bytes: &[u8]) -> Result<(), String> {
        self.save_state(STATE_NAME, bytes)
            .map_err(|e| e.to_string())
    }
}

/// What the monitor's channel carries: mentions of this node's workers, or sightings from
/// a cluster's worker nodes.
pub trait Seen: Send {
    /// Counts it.
    fn feed(self, monitor: &mut Monitor);
}

impl Seen for Arc<Mention> {
    fn feed(self, monitor: &mut Monitor) {
        monitor.take(&self);
    }
}

impl Seen for Sighting {
    fn feed(self, monitor: &mut Monitor) {
        monitor.take_sighting(self);
    }
}

/// The brands in a spike now, read by workers for every matched post.
#[derive(Debug, Default)]
pub struct SpikeFlags(ArcSwap<Vec<String>>);

impl SpikeFlags {
    /// No brand in a spike.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Whether any of `brands` is in a spike. One atomic load; the list is almost always
    /// empty and at most a few brands long.
    pub fn any<'a>(&self, mut brands: impl Iterator<Item = &'a str>) -> bool {
        let active = self.0.load();
        !active.is_empty() && brands.any(|b| active.iter().any(|a| a == b))
    }

    /// Sets the brands in a spike (the monitor; on a cluster's nodes, what the detector's
    /// node says).
    pub fn set(&self, brands: Vec<String>) {
        if **self.0.load() != brands {
            self.0.store(Arc::new(brands));
        }
    }

    /// The brands in a spike now.
    pub fn brands(&self) -> Vec<String> {
        self.0.load().to_vec()
    }
}

/// Batches of mentions the channel holds: a few seconds of a busy firehose's matched batches.
pub const CHANNEL_BATCHES: usize = 4096;

/// Per-brand metric handles.
struct BrandGauges {
    rate: Gauge,
    share: Gauge,
    active: [Gauge; 2],
    ratio: [Gauge; 2],
}

/// The monitor, built before its thread starts.
pub struct Monitor {
    detector: Detector,
    clock: MonitorClock,
    /// Queues that receive spike events.
    queues: Vec<String>,
    /// Every queue id, for the live page's filter.
    all_queues: Vec<String>,
    outbox: Option<Sender<Routed>>,
    hub: Option<Arc<LiveHub>>,
    flags: Arc<SpikeFlags>,
    gauges: Vec<BrandGauges>,
    /// Per detector brand index: the words of its own name and handles, which are in every
    /// mention and so never drive a spike.
    names: Vec<Vec<String>>,
    /// Where the detector's state is kept across restarts.
    store: Option<Box<dyn StateKeeper>>,
    /// Per detector brand index: the queues its mentions have been routed to since the start,
    /// for the live page's queue filter on brand cards and spikes.
    routed_to: Vec<Vec<String>>,
}

/// Unix seconds as the monitor counts them: the wall clock at start, then monotonic time; or,
/// in tests of the whole pipeline, seconds a test moves by hand ([`DrivenClock`]).
#[derive(Debug, Clone)]
pub struct MonitorClock(ClockSource);

#[derive(Debug, Clone)]
enum ClockSource {
    Wall {
        wall_s: u64,
        mono: std::time::Instant,
    },
    Driven(Arc<DrivenClock>),
}

impl MonitorClock {
    /// A clock that reads `wall` now and goes on with the monotonic clock.
    pub fn starting_at(wall: SystemTime) -> Self {
        Self(ClockSource::Wall {
            wall_s: unix_s(wall),
            mono: std::time::Instant::now(),
        })
    }

    /// A clock that shows what `driven` says, and tells it which seconds the monitor has
    /// closed and how many mentions it has counted.
    pub fn driven(driven: Arc<DrivenClock>) -> Self {
        Self(ClockSource::Driven(driven))
    }

    /// Unix seconds now, by this clock.
    pub fn now_s(&self) -> u64 {
        match &self.0 {
            ClockSource::Wall { wall_s, mono } => wall_s + mono.elapsed().as_secs(),
            ClockSource::Driven(d) => d.now_s(),
        }
    }

    /// How long the monitor may wait for mentions before it looks at the clock again: until
    /// the next second on the wall clock; a few milliseconds on a driven one, whose second
    /// changes whenever its test says so.
    fn until_next_second(&self) -> Duration {
        match &self.0 {
            ClockSource::Wall { mono, .. } => {
                let into_second = Duration::from_nanos(mono.elapsed().subsec_nanos() as u64);
                Duration::from_secs(1)
                    .saturating_sub(into_second)
                    .max(Duration::from_millis(1))
            }
            ClockSource::Driven(_) => Duration::from_millis(2),
        }
    }

    /// The monitor has closed the seconds before `now_s` and counted `taken` more mentions.
    fn report(&self, now_s: u64, taken: u64) {
        if let ClockSource::Driven(d) = &self.0 {
            d.taken.fetch_add(taken, Ordering::Release);
            d.ticked_s.fetch_max(now_s, Ordering::Release);
        }
    }
}

/// Seconds a test of the whole pipeline moves by hand, so that a spike's life (warmup,
/// baseline, surge, end) runs in as long as the pipeline takes to process its posts rather
/// than in the minutes of wall clock it describes. The monitor acknowledges each second it
/// closes and counts the mentions it takes, so the test knows when a second's posts are in
/// before it moves on.
#[derive(Debug, Default)]
pub struct DrivenClock {
    now_s: AtomicU64,
    ticked_s: AtomicU64,
    taken: AtomicU64,
}

impl DrivenClock {
    /// A clock at Unix second `start_s`.
    pub fn new(start_s: u64) -> Arc<Self> {
        Arc::new(Self {
            now_s: AtomicU64::new(start_s),
            ticked_s: AtomicU64::new(0),
            taken: AtomicU64::new(0),
        })
    }

    /// Unix seconds now.
    pub fn now_s(&self) -> u64 {
        self.now_s.load(Ordering::Acquire)
    }

    /// Moves the clock on by `secs` seconds.
    pub fn advance(&self, secs: u64) {
        self.now_s.fetch_add(secs, Ordering::AcqRel);
    }

    /// Whether the monitor has closed every second before now.
    pub fn caught_up(&self) -> bool {
        self.ticked_s.load(Ordering::Acquire) >= self.now_s()
    }

    /// Mentions the monitor has counted so far.
    pub fn taken(&self) -> u64 {
        self.taken.load(Ordering::Acquire)
    }
}

/// The name of the detector's state in the store.
const STATE_NAME: &str = "spikes";
/// How often the detector's state is saved: a restart loses at most this much of the
/// baseline's learning, which has a half-life of half an hour.
const SAVE_EVERY: Duration = Duration::from_secs(60);

/// A brand as the monitor needs it.
#[derive(Debug, Clone)]
pub struct BrandInfo {
    /// Brand id.
    pub id: String,
    /// Ours or a competitor.
    pub kind: BrandKind,
    /// Its display name and handles: left out of its driving terms.
    pub names: Vec<String>,
}

impl BrandInfo {
    /// The monitor's view of a rule set's brand.
    pub fn of(b: &crate::rules::Brand) -> Self {
        let mut names = vec![b.id.0.clone(), b.name.clone()];
        names.extend(b.handles.iter().cloned());
        Self {
            id: b.id.0.clone(),
            kind: b.kind,
            names,
        }
    }
}

impl Monitor {
    /// A monitor for `brands` counting seconds by `clock`, its first second `clock`'s now.
    /// The process passes [`MonitorClock::starting_at`] the wall clock; tests pass a fixed
    /// time and drive [`Monitor::take`] and [`Monitor::tick`] second by second.
    pub fn new(
        settings: SpikeSettings,
        brands: &[BrandInfo],
        all_queues: Vec<String>,
        flags: Arc<SpikeFlags>,
        clock: MonitorClock,
    ) -> Self {
        let mut monitor = Self {
            queues: settings.queues.clone(),
            detector: Detector::new(settings, clock.now_s()),
            clock,
            all_queues,
            outbox: None,
            hub: None,
            flags,
            gauges: Vec::new(),
            names: Vec::new(),
            store: None,
            routed_to: Vec::new(),
        };
        for b in brands {
            let i = monitor.brand(&b.id, b.kind);
            monitor.names[i] = exclusions(b.names.iter().map(String::as_str));
        }
        monitor
    }

    /// Sends spike events for the spike queues to the outbox writer through `tx`.
    pub fn outbox(mut self, tx: Sender<Routed>) -> Self {
        self.outbox = Some(tx);
        self
    }

    /// Keeps the detector's baselines and active spikes in `store`, and starts from what an
    /// earlier run kept there (if it is recent): after a restart the brands are judged at
    /// once, without a warmup, and a spike in progress goes on under its id.
    pub fn store(self, store: Arc<Store>) -> Self {
        self.keep_state(Box::new(store))
    }

    /// [`Monitor::store`] with any keeper of the state.
    pub fn keep_state(mut self, store: Box<dyn StateKeeper>) -> Self {
        match store.load() {
            Ok(Some(bytes)) => match serde_json::from_slice::<Saved>(&bytes) {
                Ok(saved) => {
                    let series = self.detector.restore(&saved);
                    info!(series, saved_at = saved.at_s, "spike baselines restored");
                }
                Err(e) => warn!(error = %e, "the saved spike state does not read; starting afresh"),
            },
            Ok(None) => {}
            Err(e) => warn!(error = %e, "cannot read the saved spike state; starting afresh"),
        }
        self.store = Some(store);
        self
    }

    fn save(&self) {
        let Some(store) = &self.store else { return };
        let result = serde_json::to_vec(&self.detector.save())
            .map_err(|e| e.to_string())
            .and_then(|bytes| store.save(&bytes));
        if let Err(e) = result {
            warn!(error = %e, "cannot save the spike state");
        }
    }

    /// Feeds the live page.
    pub fn live(mut self, hub: Arc<LiveHub>) -> Self {
        self.hub = Some(hub);
        self
    }

    /// The detector's index of a brand, registering its gauges (at zero) the first time.
    fn brand(&mut self, id: &str, kind: BrandKind) -> usize {
        let b = self.detector.brand(id, kind);
        if b == self.gauges.len() {
            let per_series = |name: &'static str| {
                Series::BOTH.map(
                    |s| metrics::gauge!(name, "brand" => id.to_string(), "series" => s.as_str()),
                )
            };
            let g = BrandGauges {
                rate: metrics::gauge!(BRAND_RATE, "brand" => id.to_string()),
                share: metrics::gauge!(BRAND_NEGATIVE_SHARE, "brand" => id.to_string()),
                active: per_series(SPIKE_ACTIVE),
                ratio: per_series(SPIKE_RATIO),
            };
            g.rate.set(0.0);
            g.share.set(0.0);
            for s in Series::BOTH {
                g.active[s.index()].set(0.0);
                g.ratio[s.index()].set(0.0);
                for phase in ["started", "updated", "ended"] {
                    metrics::counter!(SPIKE_EVENTS, "brand" => id.to_string(), "series" => s.as_str(), "event" => phase)
                        .increment(0);
                }
            }
            self.gauges.push(g);
            // A brand first seen in a mention (added by a rule reload): its id at least.
            self.names.push(exclusions([id]));
            self.routed_to.push(Vec::new());
        }
        b
    }

    /// Runs until every sender is gone.
    pub fn run<T: Seen>(mut self, rx: Receiver<Vec<T>>) {
        info!(
            queues = ?self.queues,
            "spike monitor running"
        );
        let mut saved = std::time::Instant::now();
        loop {
            if saved.elapsed() >= SAVE_EVERY {
                self.save();
                saved = std::time::Instant::now();
            }
            let received = rx.recv_timeout(self.clock.until_next_second());
            let now_s = self.clock.now_s();
            self.tick(now_s);
            let taken = match received {
                Ok(batch) => {
                    let n = batch.len() as u64;
                    for m in batch {
                        m.feed(&mut self);
                    }
                    n
                }
                Err(RecvTimeoutError::Timeout) => 0,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            self.clock.report(now_s, taken);
        }
        self.save();
        debug!("spike monitor finished");
    }

    /// Counts one mention for each brand it matched, and shows it on the live page when it
    /// was routed and someone is watching.
    pub fn take(&mut self, m: &Mention) {
        let live = self.hub.as_ref().is_some_and(|h| h.viewers() > 0);
        self.take_sighting(Sighting::of(m, live));
    }

    /// [`Monitor::take`] on what a worker node saw.
    pub fn take_sighting(&mut self, s: Sighting) {
        for (brand, kind) in &s.brands {
            let b = self.brand(brand, *kind);
            for q in &s.queues {
                if !self.routed_to[b].contains(q) {
                    self.routed_to[b].push(q.clone());
                    self.routed_to[b].sort();
                }
            }
            self.detector.observe(
                b,
                Observation {
                    negative: s.negative,
                    tokens: tokens(&s.text, &self.names[b]),
                    post: s.post.clone(),
                },
            );
        }
        if let (Some(hub), Some(live)) = (&self.hub, s.live) {
            if hub.viewers() > 0 {
                hub.publish(LiveKind::Mention, live);
            }
        }
    }

    /// Closes the seconds before `now_s`: events out, flags, gauges and snapshot refreshed.
    pub fn tick(&mut self, now_s: u64) {
        if now_s <= self.detector.now() {
            return;
        }
        let mut events = Vec::new();
        self.detector.advance(now_s, &mut events);
        for e in &events {
            self.announce(e);
        }
        self.flags.set(self.detector.brands_in_spike());
        let views = self.detector.views();
        for (v, g) in views.iter().zip(&self.gauges) {
            g.rate.set(v.rate);
            g.share.set(v.negative_share.unwrap_or(0.0));
            for s in Series::BOTH {
                g.active[s.index()].set(if v.active[s.index()] { 1.0 } else { 0.0 });
                g.ratio[s.index()].set(v.ratio[s.index()]);
            }
        }
        if let Some(hub) = &self.hub {
            let snapshot = json!({
                "at": now_s * 1000,
                "queues": self.all_queues,
                "brands": views.iter().zip(&self.routed_to).map(|(v, queues)| json!({
                    "id": v.id,
                    "kind": v.kind,
                    "rate": (v.rate * 100.0).round() / 100.0,
                    "negative_share": v.negative_share.map(|s| (s * 1000.0).round() / 1000.0),
                    "counts": v.counts,
                    "negatives": v.negatives,
                    "spike": v.active.iter().any(|a| *a),
                    "queues": queues,
                })).collect::<Vec<_>>(),
                "spikes": self.detector.active(),
            });
            hub.set_snapshot(snapshot.to_string());
        }
    }

    fn announce(&self, e: &SpikeEvent) {
        let doc = &e.doc;
        match e.phase {
            Phase::Started => warn!(
                brand = %doc.brand, series = doc.series.as_str(), ratio = doc.ratio,
                rate = doc.rate, baseline = doc.baseline, spike = %doc.spike_id,
                "spike started"
            ),
            Phase::Ended => info!(brand = %doc.brand, series = doc.series.as_str(),
                mentions = doc.mentions, spike = %doc.spike_id, "spike ended"),
            Phase::Updated(_) => debug!(brand = %doc.brand, series = doc.series.as_str(),
                ratio = doc.ratio, spike = %doc.spike_id, "spike update"),
        }
        metrics::counter!(SPIKE_EVENTS, "brand" => doc.brand.clone(), "series" => doc.series.as_str(), "event" => e.phase.as_str())
            .increment(1);
        let Ok(text) = serde_json::to_string(doc) else {
            return;
        };
        if let Some(hub) = &self.hub {
            hub.publish(LiveKind::Spike, text.clone());
        }
        let (Some(tx), false) = (&self.outbox, self.queues.is_empty()) else {
            return;
        };
        let Ok(data) = serde_json::value::RawValue::from_string(text) else {
            return;
        };
        let event = match e.phase {
            Phase::Started => Event::SpikeStarted,
            Phase::Updated(_) => Event::SpikeUpdated,
            Phase::Ended => Event::SpikeEnded,
        };
        let mut routed = Routed::batch(0, 0, None, Vec::new());
        routed.spikes.push(SpikeOut {
            id: e.id(),
            event,
            data,
            queues: self.queues.clone(),
        });
        if tx.send(routed).is_err() {
            warn!(spike = %doc.spike_id, "the outbox writer stopped; spike event not delivered");
        }
    }
}

/// The top-posts entry of a mention.
fn spike_post(m: &Mention) -> SpikePost {
    let a = &m.post.author;
    SpikePost {
        mention_id: m.mention_id.clone(),
        url: m.post.url.clone(),
        platform: m.post.platform.as_str().to_string(),
        author: a.handle.clone().unwrap_or_else(|| a.id.clone()),
        followers: a.followers,
        text: m.post.text.chars().take(280).collect(),
        urgency: m.urgency.score,
        sentiment: m.sentiment.label.as_str().to_string(),
    }
}

/// The live page's `mention` event.
fn mention_json(m: &Mention, brands: &[&str]) -> String {
    let a = &m.post.author;
    json!({
        "id": m.mention_id,
        "at": m.received_at,
        "brands": brands,
        "queues": m.queues,
        "urgency": m.urgency.score,
        "sentiment": m.sentiment.label,
        "category": m.category,
        "author": a.handle.as_deref().unwrap_or(&a.id),
        "text": m.post.text.chars().take(500).collect::<String>(),
        "url": m.post.url,
        "platform": m.post.platform,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mention::testing::spec;

    /// A monitor of `acme` alone, with no queues.
    fn acme_monitor(flags: Arc<SpikeFlags>) -> Monitor {
        Monitor::new(settings(), &[acme()], Vec::new(), flags, clock())
    }

    /// The monitor's clock in tests: a fixed wall time (2026-12-03T00:00:00Z) at start.
    fn clock() -> MonitorClock {
        MonitorClock::starting_at(std::time::UNIX_EPOCH + Duration::from_secs(1_796_256_000))
    }

    fn settings() -> SpikeSettings {
        SpikeSettings {
            queues: vec!["crisis".into()],
            windows: vec![Duration::from_secs(2), Duration::from_secs(4)],
            warmup: Duration::from_secs(8),
            baseline_half_life: Duration::from_secs(60),
            end_after: Duration::from_secs(2),
            ..SpikeSettings::default()
        }
    }

    fn acme() -> BrandInfo {
        BrandInfo {
            id: "acme".into(),
            kind: BrandKind::Brand,
            names: vec!["acme".into(), "Acme Corp".into(), "acmehq".into()],
        }
    }

    /// Runs `seconds` seconds from `start` with `per_second(t)` mentions saying `text` each.
    fn feed(m: &mut Monitor, start: u64, seconds: u64, per_second: impl Fn(u64) -> u64) {
        for t in start..start + seconds {
            m.tick(t);
            for i in 0..per_second(t) {
                let text = if per_second(t) > 5 {
                    format!("acme outage again, checkout broken {i}")
                } else {
                    format!("love my acme order {i}")
                };
                m.take(&spec(&format!("{t}-{i}"), &format!("u{i}"), &text).build());
            }
        }
    }

    /// The monitor's thread on a driven clock: it counts what it receives, closes a second
    /// only when the clock moves, and says so; it ends when the workers' senders are gone.
    #[test]
    fn on_a_driven_clock_the_thread_closes_seconds_when_told_and_says_so() {
        let flags = SpikeFlags::new();
        let driven = DrivenClock::new(1_796_256_000);
        let m = Monitor::new(
            settings(),
            &[acme()],
            Vec::new(),
            flags,
            MonitorClock::driven(driven.clone()),
        );
        let (tx, rx) = crossbeam_channel::bounded(4);
        let thread = std::thread::spawn(move || m.run(rx));
        let wait = |done: &dyn Fn() -> bool| {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while !done() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the monitor never answered"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
        };
        let batch: Vec<Arc<Mention>> = (0..3)
            .map(|i| Arc::new(spec(&format!("p{i}"), "u", "love my acme order").build()))
            .collect();
        tx.send(batch).unwrap();
        wait(&|| driven.taken() == 3);
        assert!(driven.caught_up(), "no second has passed");
        driven.advance(2);
        assert_eq!(driven.now_s(), 1_796_256_002);
        wait(&|| driven.caught_up());
        drop(tx);
        thread.join().unwrap();
        assert_eq!(driven.taken(), 3);
    }

    #[test]
    fn a_surge_reaches_the_outbox_the_flags_the_gauges_and_the_live_page() {
        let flags = SpikeFlags::new();
        let hub = LiveHub::new();
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut m = Monitor::new(
            settings(),
            &[acme()],
            vec!["support".into(), "crisis".into()],
            flags.clone(),
            clock(),
        )
        .outbox(tx)
        .live(hub.clone());
        let start = m.detector.now();
        feed(&mut m, start, 30, |_| 2);
        assert!(rx.try_recv().is_err(), "no spike in steady traffic");
        assert!(!flags.any(["acme"].into_iter()));
        feed(&mut m, start + 30, 3, |_| 40);
        m.tick(start + 33);
        let routed = rx.try_recv().expect("a spike event for the outbox");
        let out = &routed.spikes[0];
        assert_eq!((routed.seq, routed.mentions.len()), (0, 0));
        assert_eq!(out.event, Event::SpikeStarted);
        assert_eq!(out.queues, ["crisis"]);
        assert!(out.id.starts_with("spk_acme_") && out.id.ends_with(".started"));
        let doc: serde_json::Value = serde_json::from_str(out.data.get()).unwrap();
        let terms: Vec<&str> = doc["terms"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|t| t["term"].as_str())
            .collect();
        assert!(terms.contains(&"outage"), "{terms:?}");
        assert!(
            !terms.contains(&"acme"),
            "the brand's own name never drives: {terms:?}"
        );
        assert!(flags.any(["globex", "acme"].into_iter()));
        assert!(!flags.any(["globex"].into_iter()));

        // The live page's snapshot: the brand, its counts, queues and the active spike.
        let mut viewer = hub.subscribe();
        let first = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(viewer.next())
            .unwrap();
        assert_eq!(first.event, "snapshot");
        let snap: serde_json::Value = serde_json::from_str(&first.data).unwrap();
        assert_eq!(snap["queues"], serde_json::json!(["support", "crisis"]));
        let brand = &snap["brands"][0];
        assert_eq!(brand["id"], "acme");
        assert_eq!(brand["spike"], true);
        assert_eq!(brand["queues"], serde_json::json!(["support"]));
        assert_eq!(brand["counts"].as_array().unwrap().len(), 300);
        assert!(!snap["spikes"].as_array().unwrap().is_empty());
    }

    #[test]
    fn the_state_survives_a_restart_through_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("o.redb")).unwrap());
        let mut m = acme_monitor(SpikeFlags::new()).store(store.clone());
        let start = m.detector.now();
        feed(&mut m, start, 30, |_| 2);
        m.save();
        let flags = SpikeFlags::new();
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut again = acme_monitor(flags).store(store).outbox(tx);
        // No warmup after the restart: a surge in the first seconds is told at once.
        let now = again.detector.now();
        feed(&mut again, now, 3, |_| 40);
        again.tick(now + 3);
        assert!(
            rx.try_recv().is_ok(),
            "the restored baseline judges the first seconds"
        );
    }

    #[test]
    fn an_unreadable_saved_state_starts_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("o.redb")).unwrap());
        store.save_state(STATE_NAME, b"{not json").unwrap();
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut m = acme_monitor(SpikeFlags::new())
            .store(store.clone())
            .outbox(tx);
        // Warming up as on a first start: the same surge is not judged yet.
        let now = m.detector.now();
        feed(&mut m, now, 3, |_| 40);
        m.tick(now + 3);
        assert!(rx.try_recv().is_err());
        // And the next save replaces the unreadable state.
        m.save();
        let bytes = store.load_state(STATE_NAME).unwrap().unwrap();
        assert!(serde_json::from_slice::<Saved>(&bytes).is_ok());
    }
}
