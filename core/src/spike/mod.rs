//! Spike detection: a brand's mentions (all of them, and its negative ones) arriving far
//! faster than usual, told within seconds, with what drives it.
//!
//! Input → output: per-brand counts in 1-second buckets (and, for mentions, their tokens and
//! a summary of the post) → [`SpikeEvent`]s when a spike starts, every `update_every` while it
//! lasts, and when it ends. The detector reads no clock: every call says which second it is,
//! so tests and the load-test evaluation run hours of traffic in milliseconds.
//!
//! # The test, and why this one
//! Independent posts arriving at a steady rate are a Poisson process, so the count `n` over
//! the last `w` seconds is Poisson with mean `μ = λ·w` where `λ` is the baseline rate. Each
//! second, for each window in `windows` (5, 10, 15 and 60 s by default), the detector computes
//! the exact tail probability `P(N ≥ n; μ)` and starts a spike when it falls below
//! `p_value / windows` (a Bonferroni split across windows) while `n ≥ min_mentions` and
//! `n ≥ min_ratio·μ`. Why:
//! - The tail probability is the false-alarm rate itself: one test per second per series at
//!   `p_value = 1e-7` is at most about 0.01 false alarms per series per day under steady
//!   traffic (fewer in practice: overlapping windows are correlated, and the count is
//!   discrete), so dozens of brands stay under one a day. The load test's evaluation case
//!   (`earshot-loadtest spikes`) measures it: no false alarm in 2,400 simulated brand-days. A z-score on the EWMA (the usual
//!   alternative) misjudges exactly the low counts where brands live: at μ = 2, a count of 9
//!   is z = 5 but has probability 2e-4, 30 times more than the normal law says.
//! - Short windows catch large surges in a few seconds (a 10× spike on 1/s fires within 3 s);
//!   long ones catch smaller, steadier rises that a short window cannot tell from noise. The
//!   10 s window is where a 5× surge on a quiet brand first stands out.
//! - `min_mentions` keeps a brand that is usually silent from alarming on a handful of posts;
//!   `min_ratio` keeps a huge brand from alarming on a statistically real 10% wobble.
//!
//! The baseline `λ` is an exponentially weighted mean of the per-second counts with a long
//! half-life (30 min by default, so it follows the day's rhythm but not a surge), fed with
//! counts that lag by the longest window so the surge being tested is never in its own
//! baseline, bias-corrected while it warms up, and slowed tenfold during a spike so a long
//! crisis does not become the new normal within the hour. No spike starts before `warmup`.
//!
//! A spike ends when no window fires and the longest window's rate has stayed below
//! `end_ratio` × baseline for `end_after` (hysteresis: a spike that flickers around the
//! threshold is one spike, not twenty). With the defaults a spike ends about two minutes
//! after the surge stops.

mod event;
pub mod poisson;
pub mod terms;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize};

pub use event::{Phase, Series, SpikeDoc, SpikeEvent, SpikePost};
use terms::{SpikeTerms, TermBaseline};

use crate::rules::BrandKind;

/// Seconds of per-second counts kept per series: the longest window allowed, and the live
/// page's five-minute sparklines.
pub const HISTORY: usize = 300;
/// The least baseline rate assumed (mentions/s): a brand never seen still needs
/// `min_mentions` and a real excess over this to alarm.
/// The most seconds [`Detector::advance`] closes one by one in a call (see there).
pub const MAX_CATCH_UP_S: u64 = 3600;

const FLOOR_RATE: f64 = 0.01;
/// Mentions remembered per brand for the start of a spike (its first window's terms and
/// posts happened before anyone knew it was a spike).
const RECENT_CAP: usize = 5_000;

/// `[spikes]`: the detector's settings (defaults in [`SpikeSettings::default`]).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpikeSettings {
    /// Run the detector.
    pub enabled: bool,
    /// Queues that receive the spike events (`spike.started`, `spike.updated`,
    /// `spike.ended`), through the same outbox and delivery as mentions.
    pub queues: Vec<String>,
    /// Windows tested every second (whole seconds, at most [`HISTORY`]).
    #[serde(deserialize_with = "durations")]
    pub windows: Vec<Duration>,
    /// Half-life of the baseline's weighted mean.
    #[serde(with = "crate::duration")]
    pub baseline_half_life: Duration,
    /// No spike starts before the detector has seen this much time.
    #[serde(with = "crate::duration")]
    pub warmup: Duration,
    /// Fewest mentions in a window for a spike.
    pub min_mentions: u32,
    /// Least window rate over baseline for a spike.
    pub min_ratio: f64,
    /// Tail probability a window's count must fall below (split across the windows).
    pub p_value: f64,
    /// A spike calms when its rate is below this many times the baseline …
    pub end_ratio: f64,
    /// … and ends after it has stayed calm this long.
    #[serde(with = "crate::duration")]
    pub end_after: Duration,
    /// How often an active spike sends an update (when it gained mentions).
    #[serde(with = "crate::duration")]
    pub update_every: Duration,
    /// Driving terms per event.
    pub top_terms: usize,
    /// Top posts per event.
    pub top_posts: usize,
}

impl Default for SpikeSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            queues: Vec::new(),
            windows: [5, 10, 15, 60].map(Duration::from_secs).to_vec(),
            baseline_half_life: Duration::from_secs(30 * 60),
            warmup: Duration::from_secs(5 * 60),
            min_mentions: 10,
            min_ratio: 3.0,
            p_value: 1e-7,
            end_ratio: 1.5,
            end_after: Duration::from_secs(60),
            update_every: Duration::from_secs(30),
            top_terms: 8,
            top_posts: 5,
        }
    }
}

fn durations<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|s| crate::duration::parse(s).map_err(serde::de::Error::custom))
        .collect()
}

impl SpikeSettings {
    /// What is wrong with these settings, one message per problem.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.windows.is_empty() {
            out.push("spikes.windows must name at least one window".to_string());
        }
        for w in &self.windows {
            if w.subsec_nanos() != 0 || w.as_secs() == 0 || w.as_secs() > HISTORY as u64 {
                out.push(format!(
                    "spikes.windows: {w:?} must be whole seconds between 1s and {HISTORY}s"
                ));
            }
        }
        let longest = self.windows.iter().max().copied().unwrap_or_default();
        if self.baseline_half_life < longest * 10 {
            out.push(format!(
                "spikes.baseline_half_life ({:?}) must be at least ten times the longest window ({longest:?}), or the baseline follows the spikes",
                self.baseline_half_life
            ));
        }
        if self.warmup < longest * 2 {
            out.push(format!(
                "spikes.warmup ({:?}) must be at least twice the longest window ({longest:?}): the baseline learns only from counts older than that window",
                self.warmup
            ));
        }
        if self.min_mentions == 0 {
            out.push("spikes.min_mentions must be at least 1".to_string());
        }
        if self.min_ratio.is_nan() || self.min_ratio < 1.0 {
            out.push("spikes.min_ratio must be at least 1.0".to_string());
        }
        if !(self.p_value > 0.0 && self.p_value <= 0.05) {
            out.push("spikes.p_value must be above 0 and at most 0.05".to_string());
        }
        if !(self.end_ratio >= 1.0 && self.end_ratio <= self.min_ratio) {
            out.push("spikes.end_ratio must be between 1.0 and min_ratio".to_string());
        }
        for (name, d) in [
            ("end_after", self.end_after),
            ("update_every", self.update_every),
        ] {
            if d < Duration::from_secs(1) {
                out.push(format!("spikes.{name} must be at least 1s"));
            }
        }
        if self.top_terms > 50 || self.top_posts > 20 {
            out.push("spikes.top_terms must be at most 50 and spikes.top_posts at most 20".into());
        }
        out
    }
}

/// One mention as the detector sees it.
#[derive(Debug, Clone)]
pub struct Observation {
    /// Its sentiment is negative.
    pub negative: bool,
    /// Its distinct tokens ([`terms::tokens`]).
    pub tokens: Vec<String>,
    /// The post, for the top-posts list.
    pub post: SpikePost,
}

/// One brand's state of the detector, for the live page and the metrics.
#[derive(Debug, Clone)]
pub struct BrandView {
    /// Brand id.
    pub id: String,
    /// Ours or a competitor.
    pub kind: BrandKind,
    /// Mentions per second over the last [`HISTORY`] seconds, oldest first.
    pub counts: Vec<u32>,
    /// Negative mentions per second, same seconds.
    pub negatives: Vec<u32>,
    /// Mentions per second over the last 60 s.
    pub rate: f64,
    /// Negative share over the last 60 s (`None` without mentions).
    pub negative_share: Option<f64>,
    /// Per series: in a spike now.
    pub active: [bool; 2],
    /// Per series: the shortest window's rate over the baseline now (0 while warming up).
    pub ratio: [f64; 2],
}

#[derive(Debug)]
struct Active {
    spike_id: String,
    started_s: u64,
    window_s: u32,
    p_value: f64,
    rate: f64,
    baseline: f64,
    peak_rate: f64,
    peak_ratio: f64,
    mentions: u64,
    updates: u32,
    last_event: Phase,
    last_update_s: u64,
    mentions_at_update: u64,
    calm_since: Option<u64>,
    terms: SpikeTerms,
    posts: Vec<SpikePost>,
}

#[derive(Debug, Default)]
struct SeriesState {
    /// Judged from the first second: its baseline was restored from before a restart.
    warm: bool,
    /// Closed seconds, newest last, at most [`HISTORY`].
    counts: VecDeque<u32>,
    /// The weighted mean before bias correction, and the weight it carries so far.
    mean: f64,
    weight: f64,
    active: Option<Active>,
}

impl SeriesState {
    fn sum_last(&self, w: usize) -> u64 {
        self.counts.iter().rev().take(w).map(|&c| c as u64).sum()
    }

    /// The baseline rate, bias-corrected (an EWMA started at zero underestimates until its
    /// weights add up to one).
    fn baseline(&self) -> f64 {
        if self.weight <= 0.0 {
            FLOOR_RATE
        } else {
            (self.mean / self.weight).max(FLOOR_RATE)
        }
    }
}

#[derive(Debug)]
struct BrandState {
    id: String,
    kind: BrandKind,
    series: [SeriesState; 2],
    /// Counts of the open second.
    open: [u32; 2],
    vocab: TermBaseline,
    /// Mentions of the last longest-window seconds: (second, observation).
    recent: VecDeque<(u64, Observation)>,
}

/// The detector over every brand.
#[derive(Debug)]
pub struct Detector {
    settings: SpikeSettings,
    windows: Vec<usize>,
    longest: usize,
    /// ln of the per-window tail probability threshold.
    ln_threshold: f64,
    alpha: f64,
    brands: Vec<BrandState>,
    index: HashMap<String, usize>,
    /// The second being filled.
    open_s: u64,
    /// The first second.
    start_s: u64,
}

impl Detector {
    /// A detector whose first second is `now_s` (unix seconds, or any monotonic count).
    ///
    /// `start_s` never exceeds `open_s`: both only move forward.
    pub fn new(settings: SpikeSettings, now_s: u64) -> Self {
        let windows: Vec<usize> = settings
            .windows
            .iter()
            .map(|w| (w.as_secs() as usize).clamp(1, HISTORY))
            .collect();
        let longest = windows.iter().copied().max().unwrap_or(1);
        let ln_threshold = (settings.p_value / windows.len().max(1) as f64).ln();
        let half_life = settings.baseline_half_life.as_secs_f64().max(1.0);
        Self {
            alpha: 1.0 - 0.5f64.powf(1.0 / half_life),
            settings,
            windows,
            longest,
            ln_threshold,
            brands: Vec::new(),
            index: HashMap::new(),
            open_s: now_s,
            start_s: now_s,
        }
    }

    /// The index of brand `id`, added (with no history) if new.
    pub fn brand(&mut self, id: &str, kind: BrandKind) -> usize {
        if let Some(&i) = self.index.get(id) {
            return i;
        }
        self.brands.push(BrandState {
            id: id.to_string(),
            kind,
            series: Default::default(),
            open: [0; 2],
            vocab: TermBaseline::default(),
            recent: VecDeque::new(),
        });
        self.index.insert(id.to_string(), self.brands.len() - 1);
        self.brands.len() - 1
    }

    /// Counts `all` mentions of brand `b`, `negative` of them negative, in the open second
    /// (for callers with counts only, like the load-test evaluation).
    pub fn count(&mut self, b: usize, all: u32, negative: u32) {
        let s = &mut self.brands[b];
        s.open[0] += all;
        s.open[1] += negative;
    }

    /// Counts one mention of brand `b` in the open second and keeps what it says for the
    /// driving terms and top posts.
    pub fn observe(&mut self, b: usize, obs: Observation) {
        let now = self.open_s;
        let half_life = self.settings.baseline_half_life.as_secs_f64();
        let top = self.settings.top_posts;
        let s = &mut self.brands[b];
        s.open[0] += 1;
        s.open[1] += obs.negative as u32;
        let mut in_spike = false;
        for (k, series) in s.series.iter_mut().enumerate() {
            if let Some(a) = &mut series.active {
                in_spike = true;
                if k == 0 || obs.negative {
                    a.terms.add(&obs.tokens);
                    offer(&mut a.posts, &obs.post, top);
                }
            }
        }
        s.recent.push_back((now, obs));
        // The vocabulary learns from mentions as they leave the recent buffer, the longest
        // window after they came, like the count baseline: the first window of a spike is in
        // the spike's terms and not yet in the vocabulary it is compared with. A spike's
        // words stay out of it altogether.
        let oldest = now.saturating_sub(self.longest as u64);
        while s
            .recent
            .front()
            .is_some_and(|(t, _)| *t < oldest || s.recent.len() > RECENT_CAP)
        {
            if let Some((t, old)) = s.recent.pop_front() {
                if !in_spike {
                    s.vocab.add(t, &old.tokens, half_life);
                }
            }
        }
    }

    /// Closes every second before `now_s` and runs the test on each; events go to `out`.
    ///
    /// A gap longer than [`MAX_CATCH_UP_S`] (a clock that jumped, a process that was stopped)
    /// is closed as its last [`MAX_CATCH_UP_S`] seconds only: that many empty seconds already
    /// empty every window and the recent history, so the seconds before them would change
    /// nothing but would cost a loop per second of the gap.
    pub fn advance(&mut self, now_s: u64, out: &mut Vec<SpikeEvent>) {
        if now_s.saturating_sub(self.open_s) > MAX_CATCH_UP_S {
            self.open_s = now_s - MAX_CATCH_UP_S;
        }
        while self.open_s < now_s {
            let closed = self.open_s;
            for b in 0..self.brands.len() {
                self.close(b, closed, out);
            }
            self.open_s += 1;
        }
    }

    /// The second being filled.
    pub fn now(&self) -> u64 {
        self.open_s
    }

    /// Every brand's state.
    pub fn views(&self) -> Vec<BrandView> {
        self.brands
            .iter()
            .map(|s| {
                let padded = |q: &VecDeque<u32>| {
                    let mut v = vec![0; HISTORY - q.len()];
                    v.extend(q.iter());
                    v
                };
                let all = s.series[0].sum_last(60);
                let neg = s.series[1].sum_last(60);
                let warm = self.open_s - self.start_s >= self.settings.warmup.as_secs();
                let ratio = |k: usize| {
                    let w = self.windows.iter().copied().min().unwrap_or(1);
                    let se = &s.series[k];
                    if warm || se.warm {
                        se.sum_last(w) as f64 / w as f64 / se.baseline()
                    } else {
                        0.0
                    }
                };
                BrandView {
                    id: s.id.clone(),
                    kind: s.kind,
                    counts: padded(&s.series[0].counts),
                    negatives: padded(&s.series[1].counts),
                    rate: all as f64 / 60.0,
                    negative_share: (all > 0).then(|| neg as f64 / all as f64),
                    active: [0, 1].map(|k| s.series[k].active.is_some()),
                    ratio: [ratio(0), ratio(1)],
                }
            })
            .collect()
    }

    /// The current document of every active spike (its last event's phase).
    pub fn active(&self) -> Vec<SpikeDoc> {
        let mut out = Vec::new();
        for (b, s) in self.brands.iter().enumerate() {
            for series in Series::BOTH {
                if let Some(a) = &s.series[series.index()].active {
                    out.push(self.doc(b, series, a, a.last_event, self.open_s));
                }
            }
        }
        out
    }

    /// Brand ids with a spike in either series.
    pub fn brands_in_spike(&self) -> Vec<String> {
        self.brands
            .iter()
            .filter(|s| s.series.iter().any(|x| x.active.is_some()))
            .map(|s| s.id.clone())
            .collect()
    }

    /// What a restart needs to go on where this detector is: each series' baseline and its
    /// active spike (without its terms and posts, which rebuild from the posts that follow).
    pub fn save(&self) -> Saved {
        Saved {
            at_s: self.open_s,
            brands: self
                .brands
                .iter()
                .map(|s| SavedBrand {
                    id: s.id.clone(),
                    series: [0, 1].map(|k| {
                        let st = &s.series[k];
                        SavedSeries {
                            mean: st.mean,
                            weight: st.weight,
                            active: st.active.as_ref().map(|a| SavedSpike {
                                spike_id: a.spike_id.clone(),
                                started_s: a.started_s,
                                window_s: a.window_s,
                                p_value: a.p_value,
                                peak_rate: a.peak_rate,
                                peak_ratio: a.peak_ratio,
                                mentions: a.mentions,
                                updates: a.updates,
                            }),
                        }
                    }),
                })
                .collect(),
        }
    }

    /// Takes the baselines and active spikes of `saved` for the brands this detector knows,
    /// when it is younger than the baseline's half-life: those series are judged from the
    /// first second, without a warmup, and a spike that was active goes on under its id (and
    /// ends with an `ended` event like any other). Returns how many series were restored.
    pub fn restore(&mut self, saved: &Saved) -> usize {
        let age = self.open_s.saturating_sub(saved.at_s);
        if age > self.settings.baseline_half_life.as_secs() {
            return 0;
        }
        let now = self.open_s;
        let mut restored = 0;
        for sb in &saved.brands {
            let Some(&b) = self.index.get(&sb.id) else {
                continue;
            };
            for (k, ss) in sb.series.iter().enumerate() {
                if ss.weight <= 0.0 || !ss.mean.is_finite() {
                    continue;
                }
                let st = &mut self.brands[b].series[k];
                st.mean = ss.mean;
                st.weight = ss.weight;
                st.warm = true;
                restored += 1;
                let baseline = st.baseline();
                st.active = ss.active.as_ref().map(|a| Active {
                    spike_id: a.spike_id.clone(),
                    started_s: a.started_s,
                    window_s: a.window_s,
                    p_value: a.p_value,
                    rate: 0.0,
                    baseline,
                    peak_rate: a.peak_rate,
                    peak_ratio: a.peak_ratio,
                    mentions: a.mentions,
                    updates: a.updates,
                    last_event: if a.updates == 0 {
                        Phase::Started
                    } else {
                        Phase::Updated(a.updates)
                    },
                    last_update_s: now,
                    mentions_at_update: a.mentions,
                    calm_since: None,
                    terms: SpikeTerms::default(),
                    posts: Vec::new(),
                });
            }
        }
        restored
    }

    fn close(&mut self, b: usize, closed: u64, out: &mut Vec<SpikeEvent>) {
        let started_long_ago = closed + 1 - self.start_s >= self.settings.warmup.as_secs();
        let open = std::mem::take(&mut self.brands[b].open);
        for series in Series::BOTH {
            let k = series.index();
            let st = &mut self.brands[b].series[k];
            st.counts.push_back(open[k]);
            if st.counts.len() > HISTORY {
                st.counts.pop_front();
            }
            // The baseline learns from the count that just left the longest window.
            if st.counts.len() > self.longest {
                let x = st.counts[st.counts.len() - 1 - self.longest] as f64;
                let a = if st.active.is_some() {
                    self.alpha / 10.0
                } else {
                    self.alpha
                };
                st.mean = (1.0 - a) * st.mean + a * x;
                st.weight = (1.0 - a) * st.weight + a;
            }
            if let Some(a) = st.active.as_mut() {
                a.mentions += open[k] as u64;
            }
            if !(started_long_ago || st.warm) {
                continue;
            }
            let fired = self.test(&self.brands[b].series[k]);
            if self.brands[b].series[k].active.is_none() {
                if let Some((w, n, ln_p)) = fired {
                    self.start(b, series, closed, w, n, ln_p, out);
                }
            } else {
                self.follow(b, series, closed, fired.is_some(), out);
            }
        }
    }

    /// The strongest window that fires now: (window, count, ln p).
    fn test(&self, st: &SeriesState) -> Option<(usize, u64, f64)> {
        let lambda = st.baseline();
        let mut best: Option<(usize, u64, f64)> = None;
        for &w in &self.windows {
            if st.counts.len() < w {
                continue;
            }
            let n = st.sum_last(w);
            let mu = lambda * w as f64;
            if n < self.settings.min_mentions as u64 || (n as f64) < self.settings.min_ratio * mu {
                continue;
            }
            let ln_p = poisson::ln_upper_tail(n, mu);
            if ln_p <= self.ln_threshold && best.is_none_or(|(_, _, b)| ln_p < b) {
                best = Some((w, n, ln_p));
            }
        }
        best
    }

    #[allow(clippy::too_many_arguments)]
    fn start(
        &mut self,
        b: usize,
        series: Series,
        closed: u64,
        w: usize,
        n: u64,
        ln_p: f64,
        out: &mut Vec<SpikeEvent>,
    ) {
        let top = self.settings.top_posts;
        let s = &mut self.brands[b];
        let baseline = s.series[series.index()].baseline();
        let started_s = closed + 1 - w as u64;
        let mut terms = SpikeTerms::default();
        let mut posts = Vec::new();
        for (t, obs) in &s.recent {
            if *t >= started_s && (series == Series::All || obs.negative) {
                terms.add(&obs.tokens);
                offer(&mut posts, &obs.post, top);
            }
        }
        let rate = n as f64 / w as f64;
        let active = Active {
            spike_id: format!("spk_{}_{}_{}", s.id, series.as_str(), started_s),
            started_s,
            window_s: w as u32,
            p_value: ln_p.exp(),
            rate,
            baseline,
            peak_rate: rate,
            peak_ratio: rate / baseline,
            mentions: n,
            updates: 0,
            last_event: Phase::Started,
            last_update_s: closed,
            mentions_at_update: n,
            calm_since: None,
            terms,
            posts,
        };
        let doc = self.doc(b, series, &active, Phase::Started, closed + 1);
        self.brands[b].series[series.index()].active = Some(active);
        out.push(SpikeEvent {
            phase: Phase::Started,
            doc,
        });
    }

    fn follow(
        &mut self,
        b: usize,
        series: Series,
        closed: u64,
        fired: bool,
        out: &mut Vec<SpikeEvent>,
    ) {
        let end_after = self.settings.end_after.as_secs();
        let update_every = self.settings.update_every.as_secs();
        let end_ratio = self.settings.end_ratio;
        let st = &mut self.brands[b].series[series.index()];
        let baseline = st.baseline();
        // Calm is judged on the longest window: a short one crosses `end_ratio` on noise
        // alone every few seconds and would keep a finished spike open.
        let settled = st.sum_last(self.longest) as f64 / self.longest as f64;
        let Some(a) = st.active.as_mut() else { return };
        let w = a.window_s as usize;
        let rate = st
            .counts
            .iter()
            .rev()
            .take(w)
            .map(|&c| c as f64)
            .sum::<f64>()
            / w as f64;
        a.rate = rate;
        a.baseline = baseline;
        a.peak_rate = a.peak_rate.max(rate);
        a.peak_ratio = a.peak_ratio.max(rate / baseline);
        if !fired && settled < end_ratio * baseline {
            let since = *a.calm_since.get_or_insert(closed);
            if closed + 1 - since >= end_after {
                let a = st.active.take().expect("checked above");
                let doc = self.doc(b, series, &a, Phase::Ended, closed + 1);
                out.push(SpikeEvent {
                    phase: Phase::Ended,
                    doc,
                });
            }
            return;
        }
        a.calm_since = None;
        if closed - a.last_update_s >= update_every && a.mentions > a.mentions_at_update {
            a.updates += 1;
            a.last_update_s = closed;
            a.mentions_at_update = a.mentions;
            a.last_event = Phase::Updated(a.updates);
            let phase = a.last_event;
            let st = &self.brands[b].series[series.index()];
            let a = st.active.as_ref().expect("checked above");
            let doc = self.doc(b, series, a, phase, closed + 1);
            out.push(SpikeEvent { phase, doc });
        }
    }

    fn doc(&self, b: usize, series: Series, a: &Active, phase: Phase, at_s: u64) -> SpikeDoc {
        let s = &self.brands[b];
        let w = a.window_s as usize;
        let all = s.series[0].sum_last(w);
        let neg = s.series[1].sum_last(w);
        let round = |x: f64| (x * 100.0).round() / 100.0;
        SpikeDoc {
            spike_id: a.spike_id.clone(),
            event: phase.as_str(),
            brand: s.id.clone(),
            brand_kind: s.kind,
            series,
            started_at: rfc3339(a.started_s),
            at: rfc3339(at_s),
            ended_at: (phase == Phase::Ended).then(|| rfc3339(at_s)),
            window_s: a.window_s,
            rate: round(a.rate),
            baseline: (a.baseline * 1000.0).round() / 1000.0,
            ratio: round(a.rate / a.baseline),
            peak_rate: round(a.peak_rate),
            peak_ratio: round(a.peak_ratio),
            mentions: a.mentions,
            negative_share: (all > 0).then(|| round(neg as f64 / all as f64)),
            p_value: a.p_value,
            terms: a.terms.driving(&s.vocab, self.settings.top_terms),
            posts: a.posts.clone(),
        }
    }
}

/// A detector's state for a restart ([`Detector::save`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Saved {
    /// The second it was saved at.
    pub at_s: u64,
    /// Per brand.
    pub brands: Vec<SavedBrand>,
}

/// One brand's saved state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedBrand {
    /// Brand id.
    pub id: String,
    /// All, negative.
    pub series: [SavedSeries; 2],
}

/// One series' saved state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedSeries {
    /// The baseline's weighted mean and weight (before bias correction).
    pub mean: f64,
    /// See `mean`.
    pub weight: f64,
    /// Its active spike.
    pub active: Option<SavedSpike>,
}

/// An active spike's saved state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedSpike {
    /// Its id.
    pub spike_id: String,
    /// When it started.
    pub started_s: u64,
    /// The window that fired.
    pub window_s: u32,
    /// The tail probability that started it.
    pub p_value: f64,
    /// Peaks so far.
    pub peak_rate: f64,
    /// See `peak_rate`.
    pub peak_ratio: f64,
    /// Mentions so far.
    pub mentions: u64,
    /// Updates sent so far (the next is numbered one more).
    pub updates: u32,
}

/// Keeps `posts` the `top` best, best first, with `post` offered.
fn offer(posts: &mut Vec<SpikePost>, post: &SpikePost, top: usize) {
    if top == 0 || posts.iter().any(|p| p.mention_id == post.mention_id) {
        return;
    }
    let at = posts
        .iter()
        .position(|p| post.outranks(p))
        .unwrap_or(posts.len());
    if at < top {
        posts.insert(at, post.clone());
        posts.truncate(top);
    }
}

fn rfc3339(s: u64) -> String {
    crate::timestamp::rfc3339_millis(UNIX_EPOCH + Duration::from_secs(s))
}

/// Unix seconds of `t`.
pub fn unix_s(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
