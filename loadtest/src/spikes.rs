//! The spike-detection evaluation (`earshot-loadtest spikes`): earshot's spike detector
//! ([`earshot::spike::Detector`]) fed hours of simulated traffic with surges injected
//! at known seconds, scored on how soon it tells each surge and how often it alarms on none.
//!
//! Input → output: a [`Simulation`] (brands with steady base rates, a negative share, a daily
//! rhythm, a spike schedule and a seed) and the detector's [`SpikeSettings`] → a
//! [`SpikeReport`] (detection delay per multiplier × base rate, false alarms per hour and per
//! 24 h, a verdict per goal), written as `report.md` and `report.json`.
//!
//! Everything runs in simulated seconds: the detector reads no clock, so 48 simulated hours
//! take a few seconds of wall time and the same seed gives the same report, byte for byte.
//! No earshot process, socket or post text is involved: the detector's input here is the
//! per-second counts the pipeline would give it (`Detector::count`), which is all its test
//! looks at.
//!
//! # Traffic
//! Each brand's mentions in a second are Poisson with mean `rate(t)`: the base rate times a
//! sinusoid of ±`diurnal` over 24 h (lowest at 04:00, highest at 16:00), so the baseline has a
//! day's rhythm to follow. Negative mentions are an independent Poisson share of it
//! (`negative_share`, thinning a Poisson process gives two independent ones).
//!
//! # Spikes
//! Each brand gets a surge every `spike_every_s` (brands staggered evenly across that period,
//! each start moved later by up to `jitter_s` from the seed), lasting `spike_len_s`, during
//! which its rate is multiplied by 3, 5 or 10 in turn. Every other group of three is a
//! "negative crisis": the extra traffic is `crisis_negative_share` negative instead of the
//! usual share, so the negative series is tested too (a 3× crisis is a 9× surge of negatives).
//!
//! # Scoring
//! The margin after a surge is the detector's longest window plus its `end_after`: the
//! longest a count from the surge can still be in a window, plus the calm it needs to end.
//! - A surge is **detected** by the first `Started` event of its brand (either series)
//!   emitted in `(start, end + margin]`; the **delay** is the second that event came out
//!   minus the surge's first second (1 s at the earliest: the detector judges a second once
//!   it has closed). None in that interval: **missed**.
//! - A **false alarm** is a `Started` event of a brand outside every one of its surges'
//!   intervals. Rates are per hour of *quiet* time of that brand: the simulated time after
//!   the warmup, less its surge intervals, where an alarm can only be false.
//! - A surge that starts the same series more than once inside its interval is **split**: the
//!   detector ended it and started again, two alarms for one event.
//!
//! Percentiles are nearest-rank on the detected surges of a cell (the median of 8 is the 4th).
//!
//! # Goals
//! - A 5× surge detected within 10 s: judged per base rate, holding when at least 90% of that
//!   brand's 5× surges were ([`GOAL_SHARE`] says why not all).
//! - At most one false alarm per 24 h: the brands' rates per quiet hour summed, times 24.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context as _};
use earshot::rules::BrandKind;
use earshot::spike::poisson::{ln_factorial, ln_upper_tail};
use earshot::spike::{Detector, Phase, Series, SpikeSettings};
use serde::{Deserialize, Serialize};

/// The first goal: a surge of this multiple …
pub const GOAL_MULTIPLIER: f64 = 5.0;
/// … is detected within this many seconds …
pub const GOAL_DELAY_S: u64 = 10;
/// … at least this share of the time. Not every time: under Poisson traffic the slowest of
/// n surges keeps growing with n (one unlucky draw in a thousand), so "every surge" is a
/// verdict a longer run eventually overturns, while the 90th percentile settles.
pub const GOAL_SHARE: f64 = 0.9;
/// The second goal: at most this many false alarms per 24 simulated hours (all brands).
pub const GOAL_FALSE_PER_DAY: f64 = 1.0;

const DAY_S: f64 = 86_400.0;

/// A simulated brand.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BrandSpec {
    /// Its id (in the detector's spike ids).
    pub id: String,
    /// Mean mentions per second, before the daily rhythm.
    pub rate: f64,
}

/// The traffic and the spike schedule of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Simulation {
    /// Simulated hours.
    pub hours: f64,
    /// Seed of the schedule's jitter and of every Poisson draw.
    pub seed: u64,
    /// The brands, each with its own base rate: the detector's difficulty is set by the
    /// rate (a quiet brand has few mentions per window to tell a surge from noise by).
    pub brands: Vec<BrandSpec>,
    /// Share of negative mentions in steady traffic.
    pub negative_share: f64,
    /// Share of negative mentions in the extra traffic of a crisis.
    pub crisis_negative_share: f64,
    /// Amplitude of the daily sinusoid (0.3: the rate swings ±30% over 24 h).
    pub diurnal: f64,
    /// Seconds between one brand's surges: far more than a surge, its margin and the
    /// baseline's recovery, so each surge is judged on its own.
    pub spike_every_s: u64,
    /// Earliest first surge, seconds (and at least 30 min after the warmup).
    pub first_spike_s: u64,
    /// Each surge's length, seconds.
    pub spike_len_s: u64,
    /// Each start moved later by a seeded 0..jitter_s, so surges fall on every phase of the
    /// detector's windows and of the day.
    pub jitter_s: u64,
    /// Rate multipliers, taken in turn.
    pub multipliers: Vec<f64>,
}

impl Simulation {
    /// The evaluation's defaults: four brands at 0.5, 2, 10 and 50 mentions/s, 20% negative
    /// (80% of a crisis's extra traffic), ±30% daily rhythm, a 5-minute surge every 2 h per
    /// brand of 3×, 5× and 10× in turn.
    pub fn new(hours: f64, seed: u64) -> Self {
        Self {
            hours,
            seed,
            brands: [("b0.5", 0.5), ("b2", 2.0), ("b10", 10.0), ("b50", 50.0)]
                .map(|(id, rate)| BrandSpec {
                    id: id.into(),
                    rate,
                })
                .to_vec(),
            negative_share: 0.2,
            crisis_negative_share: 0.8,
            diurnal: 0.3,
            spike_every_s: 7200,
            first_spike_s: 3600,
            spike_len_s: 300,
            jitter_s: 600,
            multipliers: vec![3.0, 5.0, 10.0],
        }
    }

    /// Simulated seconds.
    pub fn seconds(&self) -> u64 {
        (self.hours * 3600.0).round() as u64
    }

    /// Brand `b`'s steady rate at second `t` (the base rate times the daily rhythm).
    pub fn rate(&self, b: usize, t: u64) -> f64 {
        let phase = t as f64 / DAY_S - 10.0 / 24.0;
        self.brands[b].rate * (1.0 + self.diurnal * (std::f64::consts::TAU * phase).sin())
    }

    /// The surges: every brand's, ordered by start. Each must end `tail_s` before the run
    /// does, so its late detections still fall inside the run.
    pub fn schedule(&self, warmup_s: u64, tail_s: u64) -> Vec<Surge> {
        let mut rng = fastrand::Rng::with_seed(self.seed ^ 0x5c4e_d01e);
        let first = self.first_spike_s.max(warmup_s + 1800);
        let stagger = self.spike_every_s / self.brands.len().max(1) as u64;
        let mut out = Vec::new();
        for b in 0..self.brands.len() {
            for j in 0.. {
                let start = first
                    + j as u64 * self.spike_every_s
                    + b as u64 * stagger
                    + rng.u64(..self.jitter_s.max(1));
                let end = start + self.spike_len_s;
                if end + tail_s > self.seconds() {
                    break;
                }
                out.push(Surge {
                    brand: b,
                    start_s: start,
                    end_s: end,
                    multiplier: self.multipliers[j % self.multipliers.len()],
                    crisis: (j / self.multipliers.len()) % 2 == 1,
                });
            }
        }
        out.sort_by_key(|s| (s.start_s, s.brand));
        out
    }

    /// Brand `b`'s means at second `t` (all mentions, negative ones), with `surge` on or not.
    fn means(&self, b: usize, t: u64, surge: Option<&Surge>) -> (f64, f64) {
        let r = self.rate(b, t);
        let mut all = r;
        let mut neg = r * self.negative_share;
        if let Some(s) = surge {
            let extra = (s.multiplier - 1.0) * r;
            let share = if s.crisis {
                self.crisis_negative_share
            } else {
                self.negative_share
            };
            all += extra;
            neg += extra * share;
        }
        (all, neg)
    }
}

/// One injected surge.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Surge {
    /// Index of the brand.
    pub brand: usize,
    /// Its first second.
    pub start_s: u64,
    /// The first second after it.
    pub end_s: u64,
    /// The brand's rate is multiplied by this.
    pub multiplier: f64,
    /// Its extra traffic is mostly negative.
    pub crisis: bool,
}

impl Surge {
    fn covers(&self, t: u64) -> bool {
        self.start_s <= t && t < self.end_s
    }
}

/// One `Started` event of the detector.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Start {
    /// Index of the brand.
    pub brand: usize,
    /// Which series fired.
    #[serde(serialize_with = "series_str")]
    pub series: Series,
    /// The simulated second it was emitted in (the detector had closed every second before).
    pub at_s: u64,
    /// The window that fired.
    pub window_s: u32,
    /// Its rate over the baseline.
    pub ratio: f64,
}

fn series_str<S: serde::Serializer>(s: &Series, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(s.as_str())
}

/// What a simulation produced: the detector's starts and the traffic it saw.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Trace {
    /// Every `Started` event, in order.
    pub starts: Vec<Start>,
    /// Mentions per brand.
    pub mentions: Vec<u64>,
    /// Negative mentions per brand.
    pub negatives: Vec<u64>,
}

/// Runs the detector over `sim`'s traffic with `surges` injected (the schedule, and in tests
/// surges left out of it on purpose). Each brand draws from its own seeded generator.
pub fn simulate(sim: &Simulation, settings: &SpikeSettings, surges: &[Surge]) -> Trace {
    let n = sim.brands.len();
    let mut detector = Detector::new(settings.clone(), 0);
    for b in &sim.brands {
        detector.brand(&b.id, BrandKind::Brand);
    }
    let mut rngs: Vec<fastrand::Rng> = (0..n as u64)
        .map(|b| fastrand::Rng::with_seed(sim.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ b))
        .collect();
    let by_brand: Vec<Vec<Surge>> = (0..n)
        .map(|b| {
            let mut v: Vec<Surge> = surges.iter().filter(|s| s.brand == b).copied().collect();
            v.sort_by_key(|s| s.start_s);
            v
        })
        .collect();
    // Per brand, the first surge not yet over: a run of thousands of surges stays linear.
    let mut next = vec![0usize; n];
    let mut trace = Trace {
        starts: Vec::new(),
        mentions: vec![0; n],
        negatives: vec![0; n],
    };
    let mut events = Vec::new();
    let end = sim.seconds();
    for t in 0..=end {
        // Closes second t - 1: what comes out now is "at t".
        detector.advance(t, &mut events);
        for e in events.drain(..) {
            if e.phase == Phase::Started {
                trace.starts.push(Start {
                    brand: sim
                        .brands
                        .iter()
                        .position(|b| b.id == e.doc.brand)
                        .expect("the detector reports only the brands it was given"),
                    series: e.doc.series,
                    at_s: t,
                    window_s: e.doc.window_s,
                    ratio: e.doc.ratio,
                });
            }
        }
        if t == end {
            break;
        }
        for b in 0..n {
            let mine = &by_brand[b];
            while mine.get(next[b]).is_some_and(|s| s.end_s <= t) {
                next[b] += 1;
            }
            let surge = mine[next[b]..]
                .iter()
                .take_while(|s| s.start_s <= t)
                .find(|s| s.covers(t));
            let (all, neg) = sim.means(b, t, surge);
            let negative = poisson(&mut rngs[b], neg);
            let other = poisson(&mut rngs[b], all - neg);
            detector.count(b, negative + other, negative);
            trace.mentions[b] += (negative + other) as u64;
            trace.negatives[b] += negative as u64;
        }
    }
    trace
}

/// A Poisson draw with mean `mu`.
///
/// Below 10, inversion: walk the CDF from 0 until it passes a uniform draw (about `mu + 1`
/// steps, exact). From 10 up, Hörmann's PTRS (transformed rejection with squeeze, "The
/// transformed rejection method for generating Poisson random variables", 1993; the method
/// NumPy uses): exact too, and a constant ~1.2 uniform pairs per draw however large the mean,
/// where inversion would take `mu` steps and underflow `e^-mu` past ~700. A normal
/// approximation would be cheaper still but wrong in exactly the tails a spike test lives in.
pub fn poisson(rng: &mut fastrand::Rng, mu: f64) -> u32 {
    if mu <= 0.0 {
        return 0;
    }
    if mu < 10.0 {
        let u = rng.f64();
        let mut k = 0u32;
        let mut p = (-mu).exp();
        let mut cdf = p;
        while u > cdf && k < 1_000 {
            k += 1;
            p *= mu / k as f64;
            cdf += p;
        }
        return k;
    }
    let smu = mu.sqrt();
    let ln_mu = mu.ln();
    let b = 0.931 + 2.53 * smu;
    let a = -0.059 + 0.02483 * b;
    let inv_alpha = 1.1239 + 1.1328 / (b - 3.4);
    let vr = 0.9277 - 3.6224 / (b - 2.0);
    loop {
        let u = rng.f64() - 0.5;
        let v = rng.f64();
        let us = 0.5 - u.abs();
        let k = ((2.0 * a / us + b) * u + mu + 0.43).floor();
        if us >= 0.07 && v <= vr {
            return k as u32;
        }
        if k < 0.0 || (us < 0.013 && v > us) {
            continue;
        }
        if v.ln() + inv_alpha.ln() - (a / (us * us) + b).ln()
            <= -mu + k * ln_mu - ln_factorial(k as u64)
        {
            return k as u32;
        }
    }
}

/// The `[spikes]` settings of a TOML file (an earshot config works: only `[spikes]` is read;
/// keys it leaves out keep their defaults).
pub fn load_settings(path: &Path) -> anyhow::Result<SpikeSettings> {
    #[derive(Deserialize)]
    struct File {
        #[serde(default)]
        spikes: SpikeSettings,
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    let file: File = toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
    let problems = file.spikes.problems();
    if !problems.is_empty() {
        bail!("{}: {}", path.display(), problems.join("; "));
    }
    Ok(file.spikes)
}

/// The detector settings that matter here, as the report shows them (a `[spikes]` table that
/// can be pasted into a settings file).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SettingsUsed {
    /// `default`, or the settings file.
    pub source: String,
    /// Windows tested.
    pub windows: Vec<String>,
    /// Baseline half-life.
    pub baseline_half_life: String,
    /// Warmup.
    pub warmup: String,
    /// Fewest mentions in a window.
    pub min_mentions: u32,
    /// Least window rate over baseline.
    pub min_ratio: f64,
    /// Tail probability threshold.
    pub p_value: f64,
    /// Calm below this ratio …
    pub end_ratio: f64,
    /// … for this long ends a spike.
    pub end_after: String,
}

fn dur(d: Duration) -> String {
    let s = d.as_secs();
    if d.subsec_nanos() != 0 {
        format!("{}ms", d.as_millis())
    } else if s >= 3600 && s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s >= 60 && s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

impl SettingsUsed {
    /// `settings`, read from `source`.
    pub fn new(settings: &SpikeSettings, source: &str) -> Self {
        Self {
            source: source.to_string(),
            windows: settings.windows.iter().copied().map(dur).collect(),
            baseline_half_life: dur(settings.baseline_half_life),
            warmup: dur(settings.warmup),
            min_mentions: settings.min_mentions,
            min_ratio: settings.min_ratio,
            p_value: settings.p_value,
            end_ratio: settings.end_ratio,
            end_after: dur(settings.end_after),
        }
    }

    fn toml(&self) -> String {
        let q = |v: &[String]| {
            v.iter()
                .map(|s| format!("\"{s}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "[spikes]\nwindows = [{}]\nbaseline_half_life = \"{}\"\nwarmup = \"{}\"\n\
             min_mentions = {}\nmin_ratio = {:?}\np_value = {:e}\nend_ratio = {:?}\nend_after = \"{}\"\n",
            q(&self.windows),
            self.baseline_half_life,
            self.warmup,
            self.min_mentions,
            self.min_ratio,
            self.p_value,
            self.end_ratio,
            self.end_after
        )
    }
}

/// How one surge went.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SurgeOutcome {
    /// The surge.
    #[serde(flatten)]
    pub surge: Surge,
    /// Its brand's id.
    pub brand_id: String,
    /// Its brand's base rate.
    pub base_rate: f64,
    /// Seconds from its first second to the first `Started` of its brand (None: missed).
    pub delay_s: Option<u64>,
    /// The series of that event.
    pub series: Option<&'static str>,
    /// The window that fired.
    pub window_s: Option<u32>,
    /// Series started more than once inside its interval.
    pub split: u32,
}

/// One cell of the detection table: the surges of one multiplier on one brand.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cell {
    /// Rate multiplier.
    pub multiplier: f64,
    /// The brand's base rate.
    pub base_rate: f64,
    /// Surges injected.
    pub count: usize,
    /// Surges detected.
    pub detected: usize,
    /// Surges detected within [`GOAL_DELAY_S`].
    pub within_goal: usize,
    /// Median delay of the detected, seconds.
    pub median_s: Option<u64>,
    /// 90th percentile.
    pub p90_s: Option<u64>,
    /// Longest.
    pub max_s: Option<u64>,
    /// Median delay of the plain surges (share of negatives unchanged).
    pub plain_median_s: Option<u64>,
    /// Median delay of the negative crises.
    pub crisis_median_s: Option<u64>,
}

/// One brand's false alarms.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BrandRow {
    /// Its id.
    pub id: String,
    /// Its base rate.
    pub base_rate: f64,
    /// Mentions simulated.
    pub mentions: u64,
    /// Surges injected.
    pub surges: usize,
    /// Surges detected.
    pub detected: usize,
    /// Surges split into more than one start of a series.
    pub split: usize,
    /// Hours after the warmup outside its surges' intervals.
    pub quiet_hours: f64,
    /// False alarms.
    pub false_alarms: usize,
    /// … per quiet hour.
    pub per_hour: f64,
    /// … per 24 quiet hours.
    pub per_24h: f64,
}

/// Minimum count for a window to fire at a base rate, and what a 5× surge gives it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Threshold {
    /// Base rate, mentions/s (the baseline, the daily rhythm aside).
    pub base_rate: f64,
    /// Window, seconds.
    pub window_s: u64,
    /// Expected count in the window at the base rate.
    pub expected: f64,
    /// Least count that fires (p-value, `min_mentions` and `min_ratio` all met).
    pub fires_at: u64,
    /// Expected count in the window 10 s into a 5× surge.
    pub at_goal: f64,
    /// Seconds into a 5× surge at which the expected count reaches `fires_at` (None: never
    /// on average; only a lucky draw fires it).
    pub expected_s: Option<f64>,
}

/// A goal and whether it holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// The goal.
    pub goal: String,
    /// Whether it holds for every brand.
    pub holds: bool,
    /// One line saying for what it holds.
    pub line: String,
}

/// Everything a run found: `report.json`, and the same facts as `report.md`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpikeReport {
    /// Traffic and schedule.
    pub simulation: Simulation,
    /// Detector settings.
    pub settings: SettingsUsed,
    /// Simulated hours after the warmup.
    pub evaluated_hours: f64,
    /// Seconds after a surge still counted as its own.
    pub margin_s: u64,
    /// Per multiplier × base rate.
    pub cells: Vec<Cell>,
    /// Per brand.
    pub brands: Vec<BrandRow>,
    /// False alarms, every brand.
    pub false_alarms: usize,
    /// Sum of the brands' per-hour rates.
    pub false_alarms_per_hour: f64,
    /// Sum of the brands' per-24 h rates.
    pub false_alarms_per_24h: f64,
    /// 5× within 10 s, and at most one false alarm per 24 h.
    pub verdicts: Vec<Verdict>,
    /// The Poisson arithmetic behind the delays.
    pub thresholds: Vec<Threshold>,
    /// Every surge.
    pub surges: Vec<SurgeOutcome>,
    /// Every false alarm.
    pub false_alarm_events: Vec<Start>,
}

/// Seconds after a surge still counted as its own: the longest window (a surge's counts stay
/// in it that long) plus `end_after` (the calm a spike needs to end).
pub fn margin_s(settings: &SpikeSettings) -> u64 {
    settings.windows.iter().max().map_or(0, |w| w.as_secs()) + settings.end_after.as_secs()
}

/// Nearest-rank percentile of sorted values.
fn rank(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    Some(sorted[i])
}

fn median(mut v: Vec<u64>) -> Option<u64> {
    v.sort_unstable();
    rank(&v, 0.5)
}

/// Scores `trace` against the `surges` that were scheduled.
pub fn evaluate(
    sim: &Simulation,
    settings: &SpikeSettings,
    source: &str,
    surges: &[Surge],
    trace: &Trace,
) -> SpikeReport {
    let margin = margin_s(settings);
    let warmup = settings.warmup.as_secs();
    let seconds = sim.seconds();
    let inside = |s: &Surge, st: &Start| {
        st.brand == s.brand && st.at_s > s.start_s && st.at_s <= s.end_s + margin
    };
    let outcomes: Vec<SurgeOutcome> = surges
        .iter()
        .map(|s| {
            let mine: Vec<&Start> = trace.starts.iter().filter(|st| inside(s, st)).collect();
            let first = mine.first();
            let split = Series::BOTH
                .iter()
                .filter(|&&k| mine.iter().filter(|st| st.series == k).count() > 1)
                .count() as u32;
            SurgeOutcome {
                surge: *s,
                brand_id: sim.brands[s.brand].id.clone(),
                base_rate: sim.brands[s.brand].rate,
                delay_s: first.map(|st| st.at_s - s.start_s),
                series: first.map(|st| st.series.as_str()),
                window_s: first.map(|st| st.window_s),
                split,
            }
        })
        .collect();
    let false_alarm_events: Vec<Start> = trace
        .starts
        .iter()
        .filter(|st| !surges.iter().any(|s| inside(s, st)))
        .copied()
        .collect();

    let mut cells = Vec::new();
    for &m in &sim.multipliers {
        for (b, spec) in sim.brands.iter().enumerate() {
            let of: Vec<&SurgeOutcome> = outcomes
                .iter()
                .filter(|o| o.surge.brand == b && o.surge.multiplier == m)
                .collect();
            let mut delays: Vec<u64> = of.iter().filter_map(|o| o.delay_s).collect();
            delays.sort_unstable();
            let kind = |crisis: bool| {
                median(
                    of.iter()
                        .filter(|o| o.surge.crisis == crisis)
                        .filter_map(|o| o.delay_s)
                        .collect(),
                )
            };
            cells.push(Cell {
                multiplier: m,
                base_rate: spec.rate,
                count: of.len(),
                detected: delays.len(),
                within_goal: delays.iter().filter(|&&d| d <= GOAL_DELAY_S).count(),
                median_s: rank(&delays, 0.5),
                p90_s: rank(&delays, 0.9),
                max_s: delays.last().copied(),
                plain_median_s: kind(false),
                crisis_median_s: kind(true),
            });
        }
    }

    let brands: Vec<BrandRow> = sim
        .brands
        .iter()
        .enumerate()
        .map(|(b, spec)| {
            let mine: Vec<&SurgeOutcome> = outcomes.iter().filter(|o| o.surge.brand == b).collect();
            let busy: u64 = mine
                .iter()
                .map(|o| (o.surge.end_s + margin).min(seconds) - o.surge.start_s.max(warmup))
                .sum();
            let quiet_hours = seconds.saturating_sub(warmup).saturating_sub(busy) as f64 / 3600.0;
            let false_alarms = false_alarm_events.iter().filter(|s| s.brand == b).count();
            let per_hour = if quiet_hours > 0.0 {
                false_alarms as f64 / quiet_hours
            } else {
                0.0
            };
            BrandRow {
                id: spec.id.clone(),
                base_rate: spec.rate,
                mentions: trace.mentions.get(b).copied().unwrap_or(0),
                surges: mine.len(),
                detected: mine.iter().filter(|o| o.delay_s.is_some()).count(),
                split: mine.iter().filter(|o| o.split > 0).count(),
                quiet_hours,
                false_alarms,
                per_hour,
                per_24h: per_hour * 24.0,
            }
        })
        .collect();
    let per_hour: f64 = brands.iter().map(|b| b.per_hour).sum();

    let goal_cells: Vec<&Cell> = cells
        .iter()
        .filter(|c| c.multiplier == GOAL_MULTIPLIER && c.count > 0)
        .collect();
    let met = |c: &Cell| c.within_goal as f64 >= GOAL_SHARE * c.count as f64;
    let describe = |pass: bool| {
        goal_cells
            .iter()
            .filter(|c| met(c) == pass)
            .map(|c| {
                format!(
                    "{}/s ({} of {} within {GOAL_DELAY_S} s, median {}, p90 {}, max {})",
                    c.base_rate,
                    c.within_goal,
                    c.count,
                    c.median_s.map_or("–".into(), |d| format!("{d} s")),
                    c.p90_s.map_or("–".into(), |d| format!("{d} s")),
                    c.max_s.map_or("–".into(), |d| format!("{d} s")),
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (good, bad) = (describe(true), describe(false));
    let five = Verdict {
        goal: format!(
            "{GOAL_MULTIPLIER}× surges detected within {GOAL_DELAY_S} s ({:.0}% of them at least)",
            GOAL_SHARE * 100.0
        ),
        holds: !goal_cells.is_empty() && bad.is_empty(),
        line: match (goal_cells.is_empty(), good.is_empty(), bad.is_empty()) {
            (true, _, _) => "no 5× surge was injected".to_string(),
            (false, _, true) => format!("holds for every base rate: {good}"),
            (false, true, false) => format!("holds for no base rate: {bad}"),
            (false, false, false) => format!("holds for {good}; does not hold for {bad}"),
        },
    };
    let total = false_alarm_events.len();
    let alarms = Verdict {
        goal: format!("at most {GOAL_FALSE_PER_DAY} false alarm per 24 h (all brands together)"),
        holds: per_hour * 24.0 <= GOAL_FALSE_PER_DAY,
        line: format!(
            "{} ({total} false alarms over {:.1} quiet hours of each of {} brands: {:.2} per 24 h)",
            if per_hour * 24.0 <= GOAL_FALSE_PER_DAY {
                "holds"
            } else {
                "does not hold"
            },
            brands.iter().map(|b| b.quiet_hours).sum::<f64>() / brands.len().max(1) as f64,
            brands.len(),
            per_hour * 24.0
        ),
    };

    SpikeReport {
        simulation: sim.clone(),
        settings: SettingsUsed::new(settings, source),
        evaluated_hours: seconds.saturating_sub(warmup) as f64 / 3600.0,
        margin_s: margin,
        cells,
        brands,
        false_alarms: total,
        false_alarms_per_hour: per_hour,
        false_alarms_per_24h: per_hour * 24.0,
        verdicts: vec![five, alarms],
        thresholds: thresholds(sim, settings),
        surges: outcomes,
        false_alarm_events,
    }
}

/// For each base rate and window: the least count that fires at that baseline, and when a 5×
/// surge reaches it on average. The detector's test, by hand, so the report can say why a
/// delay is what it is.
pub fn thresholds(sim: &Simulation, settings: &SpikeSettings) -> Vec<Threshold> {
    let ln_threshold = (settings.p_value / settings.windows.len().max(1) as f64).ln();
    let mut out = Vec::new();
    for spec in &sim.brands {
        let r = spec.rate;
        for w in &settings.windows {
            let w = w.as_secs();
            let mu = r * w as f64;
            let mut n = (settings.min_mentions as u64).max((settings.min_ratio * mu).ceil() as u64);
            while ln_upper_tail(n, mu) > ln_threshold {
                n += 1;
            }
            // s seconds into a 5× surge (s ≤ w): 5r·s + r·(w − s) = r·w + 4r·s.
            let at = |s: f64| mu + (GOAL_MULTIPLIER - 1.0) * r * s.min(w as f64);
            let need = (n as f64 - mu) / ((GOAL_MULTIPLIER - 1.0) * r);
            out.push(Threshold {
                base_rate: r,
                window_s: w,
                expected: mu,
                fires_at: n,
                at_goal: at(GOAL_DELAY_S as f64),
                expected_s: (need <= w as f64).then_some(need.max(0.0)),
            });
        }
    }
    out
}

fn opt(v: Option<u64>) -> String {
    v.map_or("–".to_string(), |v| v.to_string())
}

impl SpikeReport {
    /// The report in Markdown.
    pub fn markdown(&self) -> String {
        let sim = &self.simulation;
        let mut m = String::new();
        let _ = writeln!(m, "# earshot spike detection: evaluation\n");
        let _ = writeln!(
            m,
            "{} simulated hours (seed {}, detector settings: {}); {:.1} h after the {} warmup.\n",
            sim.hours, sim.seed, self.settings.source, self.evaluated_hours, self.settings.warmup
        );
        for v in &self.verdicts {
            let _ = writeln!(
                m,
                "- **{}** {}: {}",
                if v.holds { "PASS" } else { "FAIL" },
                v.goal,
                v.line
            );
        }
        let _ = writeln!(
            m,
            "\n## Traffic\n\n\
             Brands at {} mentions/s, Poisson per second, {:.0}% negative, rate ×(1 ± {}) over \
             the day (sinusoid, lowest 04:00, highest 16:00). Per brand a {} s surge every {} s \
             (brands staggered, starts jittered by up to {} s), multiplying the rate by {} in \
             turn; every other group is a negative crisis ({:.0}% of the extra traffic negative). \
             A surge's interval runs to {} s after it ends (longest window + `end_after`): a \
             `Started` there detects it, one anywhere else is a false alarm.\n",
            sim.brands
                .iter()
                .map(|b| format!("{} (`{}`)", b.rate, b.id))
                .collect::<Vec<_>>()
                .join(", "),
            sim.negative_share * 100.0,
            sim.diurnal,
            sim.spike_len_s,
            sim.spike_every_s,
            sim.jitter_s,
            sim.multipliers
                .iter()
                .map(|x| format!("{x}×"))
                .collect::<Vec<_>>()
                .join(", "),
            sim.crisis_negative_share * 100.0,
            self.margin_s
        );
        let _ = writeln!(m, "## Detection delay\n");
        let _ = writeln!(
            m,
            "Seconds from a surge's first second to the first `Started` of its brand (either \
             series); nearest-rank percentiles over the detected.\n"
        );
        m.push_str(
            "| multiplier | base rate/s | surges | detected | ≤ 10 s | median s | p90 s | max s | median plain | median crisis |\n\
             |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for c in &self.cells {
            let _ = writeln!(
                m,
                "| {}× | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                c.multiplier,
                c.base_rate,
                c.count,
                c.detected,
                c.within_goal,
                opt(c.median_s),
                opt(c.p90_s),
                opt(c.max_s),
                opt(c.plain_median_s),
                opt(c.crisis_median_s)
            );
        }
        let missed: Vec<&SurgeOutcome> =
            self.surges.iter().filter(|o| o.delay_s.is_none()).collect();
        if !missed.is_empty() {
            let _ = writeln!(m, "\nMissed:\n");
            for o in missed {
                let _ = writeln!(
                    m,
                    "- `{}` {}× {} at {} s",
                    o.brand_id,
                    o.surge.multiplier,
                    if o.surge.crisis { "crisis" } else { "plain" },
                    o.surge.start_s
                );
            }
        }
        let _ = writeln!(m, "\n## False alarms\n");
        m.push_str(
            "| brand | base rate/s | mentions | surges | detected | split | quiet h | false alarms | per 24 h |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for b in &self.brands {
            let _ = writeln!(
                m,
                "| `{}` | {} | {} | {} | {} | {} | {:.1} | {} | {:.2} |",
                b.id,
                b.base_rate,
                b.mentions,
                b.surges,
                b.detected,
                b.split,
                b.quiet_hours,
                b.false_alarms,
                b.per_24h
            );
        }
        let _ = writeln!(
            m,
            "\nAll brands: {} false alarms, {:.3} per hour, **{:.2} per 24 h**. \
             `split`: surges where a series ended and started again inside the interval.\n",
            self.false_alarms, self.false_alarms_per_hour, self.false_alarms_per_24h
        );
        for f in &self.false_alarm_events {
            let _ = writeln!(
                m,
                "- `{}` {} at {} s (window {} s, ratio {})",
                sim.brands[f.brand].id,
                f.series.as_str(),
                f.at_s,
                f.window_s,
                f.ratio
            );
        }
        let _ = writeln!(m, "\n## Why the delays are what they are\n");
        let _ = writeln!(
            m,
            "The least count that fires each window at each base rate (tail probability below \
             `p_value / windows`, at least `min_mentions` and `min_ratio` × expected), the \
             count a 5× surge gives that window 10 s in, and when its expected count reaches \
             the threshold (– : never on average, only a lucky draw fires it).\n"
        );
        m.push_str(
            "| base rate/s | window s | expected | fires at | 5× at 10 s | reached after s |\n\
             |---:|---:|---:|---:|---:|---:|\n",
        );
        for t in &self.thresholds {
            let _ = writeln!(
                m,
                "| {} | {} | {:.1} | {} | {:.1} | {} |",
                t.base_rate,
                t.window_s,
                t.expected,
                t.fires_at,
                t.at_goal,
                t.expected_s.map_or("–".into(), |s| format!("{s:.1}"))
            );
        }
        let _ = writeln!(
            m,
            "\n## Settings\n\n```toml\n{}```\n\nEvery surge and false alarm is in `report.json`.",
            self.settings.toml()
        );
        m
    }

    /// A few lines for the terminal.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        for v in &self.verdicts {
            let _ = writeln!(
                s,
                "{} {}: {}",
                if v.holds { "PASS" } else { "FAIL" },
                v.goal,
                v.line
            );
        }
        let _ = writeln!(s, "detected / surges, median / p90 / max delay (s):");
        for c in &self.cells {
            let _ = writeln!(
                s,
                "  {:>4}× at {:>4}/s: {:>2}/{:<2} {:>3} / {:>3} / {:>3}",
                c.multiplier,
                c.base_rate,
                c.detected,
                c.count,
                opt(c.median_s),
                opt(c.p90_s),
                opt(c.max_s)
            );
        }
        s
    }

    /// Writes `report.md` and `report.json` into `dir` (created if missing).
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let json = serde_json::to_string_pretty(self)? + "\n";
        for (name, text) in [("report.md", self.markdown()), ("report.json", json)] {
            let path = dir.join(name);
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    }
}

/// The whole evaluation: schedule, simulate, score.
pub fn run(sim: &Simulation, settings: &SpikeSettings, source: &str) -> SpikeReport {
    let surges = sim.schedule(settings.warmup.as_secs(), margin_s(settings));
    let trace = simulate(sim, settings, &surges);
    evaluate(sim, settings, source, &surges, &trace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisson_draws_have_the_right_mean_and_variance() {
        let mut rng = fastrand::Rng::with_seed(42);
        for mu in [0.3, 2.0, 9.9, 10.0, 37.5, 500.0] {
            let n = 40_000;
            let draws: Vec<f64> = (0..n).map(|_| poisson(&mut rng, mu) as f64).collect();
            let mean = draws.iter().sum::<f64>() / n as f64;
            let var = draws.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            // Five standard errors of the mean; the variance within 5% (Poisson: var = mu).
            assert!(
                (mean - mu).abs() < 5.0 * (mu / n as f64).sqrt(),
                "mu {mu}: mean {mean}"
            );
            assert!((var / mu - 1.0).abs() < 0.05, "mu {mu}: variance {var}");
        }
        assert_eq!(poisson(&mut rng, 0.0), 0);
    }

    #[test]
    fn ptrs_matches_the_poisson_law_in_its_tail() {
        // P(X ≥ 70; 50) ≈ 0.0053: the tail a spike test lives in.
        let mut rng = fastrand::Rng::with_seed(9);
        let n = 200_000;
        let hits = (0..n).filter(|_| poisson(&mut rng, 50.0) >= 70).count() as f64;
        let want = ln_upper_tail(70, 50.0).exp() * n as f64;
        assert!((hits - want).abs() < 5.0 * want.sqrt(), "{hits} vs {want}");
    }

    #[test]
    fn the_schedule_is_spaced_rotated_and_inside_the_run() {
        let sim = Simulation::new(48.0, 1);
        let s = SpikeSettings::default();
        let surges = sim.schedule(s.warmup.as_secs(), margin_s(&s));
        for b in 0..sim.brands.len() {
            let mine: Vec<&Surge> = surges.iter().filter(|x| x.brand == b).collect();
            assert!(mine.len() >= 22, "brand {b}: {}", mine.len());
            for w in mine.windows(2) {
                assert!(w[1].start_s >= w[0].end_s + 3600, "{w:?}");
            }
            for m in [3.0, 5.0, 10.0] {
                for crisis in [false, true] {
                    let n = mine
                        .iter()
                        .filter(|x| x.multiplier == m && x.crisis == crisis)
                        .count();
                    assert!(n >= 3, "brand {b} {m}× crisis {crisis}: {n}");
                }
            }
        }
        assert!(surges.iter().all(|x| x.start_s >= 3600
            && x.end_s + margin_s(&s) <= sim.seconds()
            && x.end_s - x.start_s == 300));
        assert_eq!(surges, sim.schedule(s.warmup.as_secs(), margin_s(&s)));
    }

    /// The scoring rules on a hand-made trace, where every answer is known.
    #[test]
    fn scoring_measures_from_the_known_start_and_counts_what_falls_outside() {
        let mut sim = Simulation::new(3.0, 1);
        sim.brands.truncate(2);
        let settings = SpikeSettings::default();
        let margin = margin_s(&settings); // 60 + 60
        assert_eq!(margin, 120);
        let surge = |brand, start_s| Surge {
            brand,
            start_s,
            end_s: start_s + 300,
            multiplier: 5.0,
            crisis: false,
        };
        let surges = [surge(0, 4000), surge(1, 5000), surge(1, 8000)];
        let start = |brand, series, at_s| Start {
            brand,
            series,
            at_s,
            window_s: 5,
            ratio: 6.0,
        };
        let trace = Trace {
            starts: vec![
                start(0, Series::All, 4000), // its own start second: too early, false
                start(0, Series::Negative, 4007), // detects surge 0 after 7 s
                start(0, Series::All, 4009), // same surge, other series
                start(1, Series::All, 4010), // brand 1 is quiet now: false
                start(1, Series::Negative, 5003), // detects surge 1 after 3 s
                start(1, Series::Negative, 5200), // the same series again: split
                start(1, Series::All, 5300 + 120), // last second of the margin: its own
                start(1, Series::All, 5300 + 121), // past it: false
                start(0, Series::All, 9000), // false
            ],
            mentions: vec![1, 2],
            negatives: vec![0, 0],
        };
        let r = evaluate(&sim, &settings, "default", &surges, &trace);
        let delays: Vec<Option<u64>> = r.surges.iter().map(|o| o.delay_s).collect();
        assert_eq!(delays, [Some(7), Some(3), None]);
        assert_eq!(r.surges[0].series, Some("negative"));
        assert_eq!(r.surges[1].split, 1);
        assert_eq!(r.surges[0].split, 0);
        let falses: Vec<(usize, u64)> = r
            .false_alarm_events
            .iter()
            .map(|s| (s.brand, s.at_s))
            .collect();
        assert_eq!(falses, [(0, 4000), (1, 4010), (1, 5421), (0, 9000)]);
        assert_eq!(r.brands[0].false_alarms, 2);
        assert_eq!(r.brands[1].false_alarms, 2);
        // Quiet time: 3 h less the 5 min warmup less each surge's 420 s interval.
        assert!((r.brands[0].quiet_hours - (10_800.0 - 300.0 - 420.0) / 3600.0).abs() < 1e-9);
        assert!((r.brands[1].quiet_hours - (10_800.0 - 300.0 - 840.0) / 3600.0).abs() < 1e-9);
        let want = 2.0 / r.brands[0].quiet_hours + 2.0 / r.brands[1].quiet_hours;
        assert!((r.false_alarms_per_hour - want).abs() < 1e-9);
        assert!(!r.verdicts[1].holds);
        // 5× cells: brand 0 met the goal, brand 1 detected one of two within it.
        let five: Vec<(usize, usize, usize)> = r
            .cells
            .iter()
            .filter(|c| c.multiplier == 5.0)
            .map(|c| (c.count, c.detected, c.within_goal))
            .collect();
        assert_eq!(five, [(1, 1, 1), (2, 1, 1)]);
        assert!(!r.verdicts[0].holds);
        let line = &r.verdicts[0].line;
        assert!(line.starts_with("holds for 0.5/s (1 of 1 within 10 s, median 7 s, p90 7 s, max 7 s); does not hold for 2/s (1 of 2 within 10 s"), "{line}");
    }

    /// Six simulated hours with the default settings, and a surge fed on purpose outside the
    /// schedule: the machinery end to end, on simulated seconds only.
    #[test]
    fn a_short_run_detects_big_surges_and_counts_a_planted_false_alarm() {
        let mut sim = Simulation::new(6.0, 3);
        // A surge an hour per brand, so six hours hold every multiplier on every brand.
        sim.spike_every_s = 3600;
        let settings = SpikeSettings::default();
        let surges = sim.schedule(settings.warmup.as_secs(), margin_s(&settings));
        let big = surges
            .iter()
            .filter(|s| s.multiplier == 10.0 && sim.brands[s.brand].rate >= 2.0)
            .count();
        assert!(big >= 3, "{surges:?}");
        // A 10× surge on the 50/s brand, 40 min before its first scheduled one.
        let b50 = 3;
        let first = surges.iter().find(|s| s.brand == b50).unwrap();
        let planted = Surge {
            brand: b50,
            start_s: first.start_s - 2400,
            end_s: first.start_s - 2400 + 120,
            multiplier: 10.0,
            crisis: false,
        };
        let mut fed = surges.clone();
        fed.push(planted);
        let trace = simulate(&sim, &settings, &fed);
        let r = evaluate(&sim, &settings, "default", &surges, &trace);

        for o in &r.surges {
            if o.surge.multiplier == 10.0 && o.base_rate >= 2.0 {
                let d = o.delay_s.unwrap_or_else(|| panic!("missed {o:?}"));
                assert!((1..=10).contains(&d), "{o:?}");
            }
            // The delay is the first start of the brand after the known start, in seconds.
            if let Some(d) = o.delay_s {
                let first = trace
                    .starts
                    .iter()
                    .find(|s| s.brand == o.surge.brand && s.at_s > o.surge.start_s)
                    .unwrap();
                assert_eq!(first.at_s, o.surge.start_s + d, "{o:?}");
            }
        }
        let planted_alarms: Vec<&Start> = r
            .false_alarm_events
            .iter()
            .filter(|s| s.brand == b50 && s.at_s > planted.start_s && s.at_s <= planted.end_s)
            .collect();
        assert!(!planted_alarms.is_empty(), "{:?}", r.false_alarm_events);
        assert!(
            planted_alarms[0].at_s <= planted.start_s + 5,
            "{planted_alarms:?}"
        );
        assert!(r.brands[b50].false_alarms >= 1);
        assert!(r.false_alarms_per_24h > 0.0);

        // Without the plant, the same run has no alarm there.
        let clean = simulate(&sim, &settings, &surges);
        assert!(!clean
            .starts
            .iter()
            .any(|s| s.brand == b50 && s.at_s > planted.start_s && s.at_s <= planted.end_s + 120));
        assert!(trace.mentions[b50] > clean.mentions[b50]);
    }

    #[test]
    fn the_report_is_written_in_both_forms() {
        let sim = Simulation::new(3.0, 5);
        let r = run(&sim, &SpikeSettings::default(), "default");
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("spikes");
        r.write(&out).unwrap();
        let md = std::fs::read_to_string(out.join("report.md")).unwrap();
        assert!(
            md.contains("5× surges detected within 10 s (90% of them at least)"),
            "{md}"
        );
        assert!(md.contains("false alarm per 24 h"), "{md}");
        assert!(md.contains("| 10× | 50 |"), "{md}");
        assert!(
            md.contains("[spikes]\nwindows = [\"5s\", \"10s\", \"15s\", \"1m\"]"),
            "{md}"
        );
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap())
                .unwrap();
        assert_eq!(json["simulation"]["hours"], 3.0);
        assert_eq!(json["cells"].as_array().unwrap().len(), 12);
        assert!(json["false_alarms_per_24h"].is_number());
        assert_eq!(json["verdicts"].as_array().unwrap().len(), 2);
        // Deterministic given the seed.
        assert_eq!(r, run(&sim, &SpikeSettings::default(), "default"));
    }

    #[test]
    fn a_settings_file_overrides_only_what_it_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.toml");
        std::fs::write(
            &path,
            "[admin]\nlisten = \"x\"\n\n[spikes]\nwindows = [\"3s\", \"10s\", \"60s\"]\np_value = 1e-7\n",
        )
        .unwrap();
        let s = load_settings(&path).unwrap();
        assert_eq!(s.windows, [3, 10, 60].map(Duration::from_secs));
        assert_eq!(s.p_value, 1e-7);
        assert_eq!(s.min_mentions, SpikeSettings::default().min_mentions);
        std::fs::write(&path, "[spikes]\nmin_mentions = 0\n").unwrap();
        let e = format!("{:#}", load_settings(&path).unwrap_err());
        assert!(e.contains("min_mentions"), "{e}");
        std::fs::write(&path, "[spikes]\nwindow = [\"5s\"]\n").unwrap();
        let e = format!("{:#}", load_settings(&path).unwrap_err());
        assert!(e.contains("window"), "{e}");
    }

    #[test]
    fn thresholds_follow_the_poisson_tail() {
        let mut sim = Simulation::new(1.0, 1);
        sim.brands.truncate(1); // 0.5/s
        let t = thresholds(&sim, &SpikeSettings::default());
        let five = &t[0];
        assert_eq!((five.window_s, five.expected), (5, 2.5));
        // P(N ≥ 16; 2.5) ≈ 1.1e-8 ≤ 1e-7 / 4 < P(N ≥ 15; 2.5).
        assert_eq!(five.fires_at, 16);
        assert!(
            five.expected_s.is_none(),
            "5× of 0.5/s is 12.5 in 5 s on average"
        );
    }
}
