//! Reports of the long-running cases: the soak (one long step at a steady rate: does
//! anything grow?) and the overload (more input than the endpoint can take: is memory
//! bounded, does backpressure reach the source, is nothing lost, how long is the drain?).
//!
//! Both are built from the runner's [`Sample`]s and the receiver's delivery count; the
//! verdicts are computed here, from numbers only, so they are unit tested.

use std::fmt::Write as _;

use serde::Serialize;

use crate::flatness::{self, Flatness, Tolerance};
use crate::sample::Sample;
use crate::svg::{self, Limit};

const MIB: f64 = 1024.0 * 1024.0;

/// What the receiver and the expected file say about completeness.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Delivery {
    /// Mentions the firehose sent.
    pub expected: u64,
    /// Of those, accepted by the receiver (each counted once).
    pub delivered: u64,
    /// `expected − delivered`.
    pub lost: u64,
    /// Valid repeat deliveries of a webhook-id.
    pub duplicates: u64,
    /// Requests the receiver refused.
    pub rejected: u64,
    /// Delivered posts the firehose did not send as mentions.
    pub unexpected: u64,
    /// Send → webhook latency, ms.
    pub p50_ms: Option<f64>,
    /// 99th percentile, ms.
    pub p99_ms: Option<f64>,
    /// Largest, ms.
    pub max_ms: Option<f64>,
}

impl Delivery {
    /// Every mention arrived, exactly once, and nothing else did.
    pub fn complete(&self) -> bool {
        self.expected > 0
            && self.lost == 0
            && self.delivered == self.expected
            && self.duplicates == 0
            && self.rejected == 0
            && self.unexpected == 0
    }

    fn line(&self) -> String {
        format!(
            "{} mentions sent, {} delivered, **{} lost**; duplicates {}, rejected {}, unexpected {}",
            self.expected,
            self.delivered,
            self.lost,
            self.duplicates,
            self.rejected,
            self.unexpected
        )
    }
}

/// The run's facts that are not samples.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunFacts {
    /// Case name.
    pub case: String,
    /// Case description.
    pub description: String,
    /// Offered rate, events/s.
    pub offered_rate: u64,
    /// How long the input ran, seconds (as measured by the firehose).
    pub input_seconds: f64,
    /// Events the firehose generated.
    pub generated: u64,
    /// Share of posts that mention a brand.
    pub mention_rate: f64,
    /// Seconds between samples.
    pub sample_seconds: f64,
    /// How earshot ended after SIGTERM.
    pub earshot_exit: String,
    /// Where and alongside what the run happened (written into the report as given).
    pub machine: String,
}

/// One judged series of a soak.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    /// What it is.
    pub name: String,
    /// The chart's file name.
    pub chart: String,
    /// Unit as printed.
    pub unit: String,
    /// First and last sample, in `unit`.
    pub start: Option<f64>,
    /// Last sample.
    pub end: Option<f64>,
    /// Largest sample.
    pub max: Option<f64>,
    /// The tolerance it was judged with.
    pub tolerance: Tolerance,
    /// The verdict.
    pub flatness: Flatness,
}

/// How each soak series is read, scaled, charted and judged: (name, chart, unit, scale,
/// tolerance, value of a sample).
type SeriesDef = (
    &'static str,
    &'static str,
    &'static str,
    f64,
    Tolerance,
    fn(&Sample) -> Option<f64>,
);

const SOAK_SERIES: [SeriesDef; 4] = [
    (
        "earshot resident memory (VmRSS)",
        "soak-rss.svg",
        " MiB",
        MIB,
        Tolerance {
            relative: 0.10,
            absolute: 16.0,
        },
        |s| s.rss_bytes.map(|v| v as f64),
    ),
    (
        "outbox file size",
        "soak-outbox-file.svg",
        " MiB",
        MIB,
        Tolerance {
            relative: 0.10,
            absolute: 4.0,
        },
        |s| s.outbox_bytes.map(|v| v as f64),
    ),
    (
        "open file descriptors",
        "soak-fds.svg",
        "",
        1.0,
        Tolerance {
            relative: 0.0,
            absolute: 8.0,
        },
        |s| s.open_fds.map(|v| v as f64),
    ),
    (
        "outbox depth (entries waiting)",
        "soak-outbox-depth.svg",
        "",
        1.0,
        Tolerance {
            relative: 0.0,
            absolute: 2_000.0,
        },
        |s| Some(s.queue_depth as f64),
    ),
];

/// Tolerance of the delivery rate (per second, between samples).
const DELIVERY_RATE_TOLERANCE: Tolerance = Tolerance {
    relative: 0.10,
    absolute: 20.0,
};

/// The soak's report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SoakReport {
    /// The run.
    pub run: RunFacts,
    /// Completeness.
    pub delivery: Delivery,
    /// The judged series, delivery rate last.
    pub series: Vec<Series>,
    /// Every sample.
    pub samples: Vec<Sample>,
}

fn judge_series(
    name: &str,
    chart: &str,
    unit: &str,
    points: &[(f64, f64)],
    tolerance: Tolerance,
) -> Series {
    let values: Vec<f64> = points.iter().map(|p| p.1).collect();
    Series {
        name: name.to_string(),
        chart: chart.to_string(),
        unit: unit.to_string(),
        start: values.first().copied(),
        end: values.last().copied(),
        max: values.iter().copied().reduce(f64::max),
        tolerance,
        flatness: flatness::judge(&values, tolerance),
    }
}

/// The samples taken while the input ran (the drain after it is not steady state).
fn during_input(samples: &[Sample], input_end: f64) -> Vec<Sample> {
    samples
        .iter()
        .filter(|s| s.t <= input_end)
        .cloned()
        .collect()
}

impl SoakReport {
    /// Judges every series over the samples taken until `input_end` (runner seconds).
    pub fn new(run: RunFacts, delivery: Delivery, samples: Vec<Sample>, input_end: f64) -> Self {
        let steady = during_input(&samples, input_end);
        let mut series: Vec<Series> = SOAK_SERIES
            .iter()
            .map(|(name, chart, unit, scale, tol, get)| {
                let points: Vec<(f64, f64)> = steady
                    .iter()
                    .filter_map(|s| get(s).map(|v| (s.t, v / scale)))
                    .collect();
                judge_series(name, chart, unit, &points, *tol)
            })
            .collect();
        let counts: Vec<(f64, f64)> = steady.iter().map(|s| (s.t, s.delivered as f64)).collect();
        // The first interval includes start-up: earshot connecting, the first deliveries.
        let rates: Vec<(f64, f64)> = flatness::rates(&counts).into_iter().skip(1).collect();
        series.push(judge_series(
            "webhook deliveries per second",
            "soak-delivered.svg",
            "/s",
            &rates,
            DELIVERY_RATE_TOLERANCE,
        ));
        SoakReport {
            run,
            delivery,
            series,
            samples,
        }
    }

    /// Every series flat and every mention delivered once.
    pub fn pass(&self) -> bool {
        self.delivery.complete() && self.series.iter().all(|s| s.flatness.flat == Some(true))
    }

    /// The charts: (file name, SVG).
    pub fn charts(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = SOAK_SERIES
            .iter()
            .map(|(name, chart, unit, scale, _, get)| {
                let points: Vec<(f64, f64)> = self
                    .samples
                    .iter()
                    .filter_map(|s| get(s).map(|v| (s.t, v / scale)))
                    .collect();
                (
                    chart.to_string(),
                    svg::render_series(&format!("soak: {name}"), unit, &points, None),
                )
            })
            .collect();
        let counts: Vec<(f64, f64)> = self
            .samples
            .iter()
            .map(|s| (s.t, s.delivered as f64))
            .collect();
        out.push((
            "soak-delivered.svg".into(),
            svg::render_series("soak: webhooks delivered (count)", "", &counts, None),
        ));
        out
    }

    /// The report in Markdown.
    pub fn markdown(&self) -> String {
        let r = &self.run;
        let mut m = String::new();
        let _ = writeln!(m, "# earshot soak: `{}`\n", r.case);
        if !r.description.is_empty() {
            let _ = writeln!(m, "{}\n", r.description);
        }
        let _ = writeln!(
            m,
            "**{}**: {}.\n",
            if self.pass() { "PASS" } else { "FAIL" },
            if self.pass() {
                "every series flat, every mention delivered exactly once"
            } else {
                "see the series and the delivery line below"
            }
        );
        let _ = writeln!(
            m,
            "Offered {} events/s for {:.0} s ({} generated, {:.0}/s), mention rate {}; a sample every {} s. {}\n",
            r.offered_rate,
            r.input_seconds,
            r.generated,
            r.generated as f64 / r.input_seconds.max(1e-9),
            r.mention_rate,
            r.sample_seconds,
            r.machine
        );
        let _ = writeln!(m, "Delivery: {}.", self.delivery.line());
        let _ = writeln!(
            m,
            "Send → webhook latency: p50 {} ms, p99 {} ms, max {} ms. earshot after SIGTERM: {}.\n",
            fmt_opt(self.delivery.p50_ms, 1),
            fmt_opt(self.delivery.p99_ms, 1),
            fmt_opt(self.delivery.max_ms, 1),
            r.earshot_exit
        );
        m.push_str("| series | start | end | max | verdict |\n|---|---:|---:|---:|---|\n");
        for s in &self.series {
            let f = |v: f64| format!("{}{}", fmt_val(v), s.unit);
            let _ = writeln!(
                m,
                "| {} | {} | {} | {} | {} |",
                s.name,
                s.start.map_or("–".into(), f),
                s.end.map_or("–".into(), f),
                s.max.map_or("–".into(), f),
                s.flatness.phrase(f)
            );
        }
        let _ = writeln!(
            m,
            "\n**Flat** means: of the samples taken while the input ran, the first quarter is \
             warm-up (memory, pools and the outbox file settle) and not judged; every sample of \
             the last quarter lies within the median of the middle half ± the larger of a share \
             of it and a floor: memory ±10% or 16 MiB, outbox file ±10% or 4 MiB, descriptors \
             ±8, outbox depth ±2000 entries, deliveries per second ±10% or 20/s (judged on the \
             rate between samples; the count itself always grows). The charts also show the \
             drain after the input stopped.\n"
        );
        for (file, _) in self.charts() {
            let _ = writeln!(m, "![{file}]({file})");
        }
        m
    }
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".to_string(), |v| format!("{v:.digits$}"))
}

fn fmt_val(v: f64) -> String {
    if v.abs() >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// earshot's limits in the run's config: where backpressure should show.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Limits {
    /// `[pipeline] channel_batches`.
    pub channel_batches: u64,
    /// `[outbox] max_entries`.
    pub max_entries: u64,
    /// The receiver's delay per webhook, ms.
    pub receiver_delay_ms: u64,
}

/// The overload report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OverloadReport {
    /// The run.
    pub run: RunFacts,
    /// Completeness.
    pub delivery: Delivery,
    /// earshot's limits.
    pub limits: Limits,
    /// Runner seconds at which the input stopped.
    pub input_end: f64,
    /// Seconds from the input stopping to the last expected mention delivered (None: the
    /// drain did not finish within the wait).
    pub drain_seconds: Option<f64>,
    /// Every sample.
    pub samples: Vec<Sample>,
}

/// What the overload samples show.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OverloadFindings {
    /// Largest resident memory, bytes.
    pub rss_max: Option<u64>,
    /// Resident memory at the first and the last sample, bytes.
    pub rss_first: Option<u64>,
    /// Last sample.
    pub rss_last: Option<u64>,
    /// Memory over the input, judged like a soak series (flat after warm-up = bounded).
    pub rss_flat: Flatness,
    /// Events generated per second over the input.
    pub generated_per_s: f64,
    /// Highest and mean frames sent per second, between samples, while the input ran.
    pub sent_per_s_max: f64,
    /// Mean.
    pub sent_per_s_mean: f64,
    /// Share of the input's time the firehose waited on earshot.
    pub blocked_share: f64,
    /// Largest frame-channel depth seen, and the share of input samples at capacity.
    pub channel_max: u64,
    /// Share of samples at capacity.
    pub channel_full_share: f64,
    /// Largest outbox depth, and the share of input samples at `max_entries`.
    pub depth_max: u64,
    /// Share of samples at `max_entries`.
    pub outbox_full_share: f64,
}

impl OverloadReport {
    /// Reads the samples.
    pub fn findings(&self) -> OverloadFindings {
        let input = during_input(&self.samples, self.input_end);
        let n = input.len().max(1) as f64;
        let rss: Vec<f64> = input
            .iter()
            .filter_map(|s| s.rss_bytes.map(|v| v as f64 / MIB))
            .collect();
        let sent: Vec<(f64, f64)> = input.iter().map(|s| (s.t, s.sent as f64)).collect();
        let sent_rates: Vec<f64> = flatness::rates(&sent).into_iter().map(|p| p.1).collect();
        let last_blocked = input.last().map_or(0, |s| s.blocked_ms) as f64 / 1e3;
        OverloadFindings {
            rss_max: self.samples.iter().filter_map(|s| s.rss_bytes).max(),
            rss_first: self.samples.first().and_then(|s| s.rss_bytes),
            rss_last: self.samples.last().and_then(|s| s.rss_bytes),
            rss_flat: flatness::judge(
                &rss,
                Tolerance {
                    relative: 0.10,
                    absolute: 16.0,
                },
            ),
            generated_per_s: self.run.generated as f64 / self.run.input_seconds.max(1e-9),
            sent_per_s_max: sent_rates.iter().copied().fold(0.0, f64::max),
            sent_per_s_mean: match (input.first(), input.last()) {
                (Some(a), Some(b)) if b.t > a.t => (b.sent - a.sent) as f64 / (b.t - a.t),
                _ => 0.0,
            },
            blocked_share: (last_blocked / self.run.input_seconds.max(1e-9)).min(1.0),
            channel_max: self
                .samples
                .iter()
                .map(|s| s.channel_batches)
                .max()
                .unwrap_or(0),
            channel_full_share: input
                .iter()
                .filter(|s| {
                    self.limits.channel_batches > 0
                        && s.channel_batches >= self.limits.channel_batches
                })
                .count() as f64
                / n,
            depth_max: self
                .samples
                .iter()
                .map(|s| s.queue_depth)
                .max()
                .unwrap_or(0),
            outbox_full_share: input
                .iter()
                .filter(|s| self.limits.max_entries > 0 && s.queue_depth >= self.limits.max_entries)
                .count() as f64
                / n,
        }
    }

    /// (verdict, what it stands on) for the four questions.
    pub fn verdicts(&self) -> Vec<(&'static str, bool, String)> {
        let f = self.findings();
        let mib = |v: Option<u64>| fmt_opt(v.map(|b| b as f64 / MIB), 1);
        let offered = self.run.offered_rate as f64;
        vec![
            (
                "memory bounded",
                f.rss_flat.flat == Some(true),
                format!(
                    "earshot's RSS {} MiB at the first sample, {} MiB at most, {} MiB at the last; \
                     over the input {}",
                    mib(f.rss_first),
                    mib(f.rss_max),
                    mib(f.rss_last),
                    f.rss_flat.phrase(|v| format!("{v:.0} MiB"))
                ),
            ),
            (
                "backpressure reached the source",
                f.generated_per_s < offered * crate::verdict::OFFERED_SHARE
                    && f.blocked_share > 0.0
                    && f.outbox_full_share > 0.0,
                format!(
                    "offered {:.0} events/s; the firehose generated {:.0}/s and sent {:.0}/s on \
                     average (at most {:.0}/s between samples), and waited on earshot {:.0}% of \
                     the input's time; the frame channel held up to {} of {} batches (at capacity \
                     in {:.0}% of samples); the outbox held up to {} of max_entries {} (full in \
                     {:.0}% of samples)",
                    offered,
                    f.generated_per_s,
                    f.sent_per_s_mean,
                    f.sent_per_s_max,
                    f.blocked_share * 100.0,
                    f.channel_max,
                    self.limits.channel_batches,
                    f.channel_full_share * 100.0,
                    f.depth_max,
                    self.limits.max_entries,
                    f.outbox_full_share * 100.0
                ),
            ),
            (
                "no mention lost",
                self.delivery.complete(),
                self.delivery.line(),
            ),
            (
                "backlog drained",
                self.drain_seconds.is_some(),
                match self.drain_seconds {
                    Some(s) => {
                        format!("every expected mention delivered {s:.0} s after the input stopped")
                    }
                    None => "the backlog had not drained when the runner stopped waiting".into(),
                },
            ),
        ]
    }

    /// The charts: (file name, SVG).
    pub fn charts(&self) -> Vec<(String, String)> {
        let pts = |get: fn(&Sample) -> Option<f64>| -> Vec<(f64, f64)> {
            self.samples
                .iter()
                .filter_map(|s| get(s).map(|v| (s.t, v)))
                .collect()
        };
        let sent: Vec<(f64, f64)> = self.samples.iter().map(|s| (s.t, s.sent as f64)).collect();
        let stop = Limit {
            label: format!("offered {}/s", self.run.offered_rate),
            value: self.run.offered_rate as f64,
        };
        vec![
            (
                "overload-rss.svg".into(),
                svg::render_series(
                    "overload: earshot resident memory (VmRSS)",
                    " MiB",
                    &pts(|s| s.rss_bytes.map(|v| v as f64 / MIB)),
                    None,
                ),
            ),
            (
                "overload-sent.svg".into(),
                svg::render_series(
                    "overload: frames the firehose sent per second",
                    "/s",
                    &flatness::rates(&sent),
                    Some(&stop),
                ),
            ),
            (
                "overload-channel.svg".into(),
                svg::render_series(
                    "overload: frame channel depth (batches)",
                    "",
                    &pts(|s| Some(s.channel_batches as f64)),
                    Some(&Limit {
                        label: format!("capacity {}", self.limits.channel_batches),
                        value: self.limits.channel_batches as f64,
                    }),
                ),
            ),
            (
                "overload-outbox.svg".into(),
                svg::render_series(
                    "overload: outbox depth (entries)",
                    "",
                    &pts(|s| Some(s.queue_depth as f64)),
                    Some(&Limit {
                        label: format!("max_entries {}", self.limits.max_entries),
                        value: self.limits.max_entries as f64,
                    }),
                ),
            ),
            (
                "overload-delivered.svg".into(),
                svg::render_series(
                    "overload: webhooks delivered (count)",
                    "",
                    &pts(|s| Some(s.delivered as f64)),
                    None,
                ),
            ),
        ]
    }

    /// The report in Markdown.
    pub fn markdown(&self) -> String {
        let r = &self.run;
        let verdicts = self.verdicts();
        let pass = verdicts.iter().all(|v| v.1);
        let mut m = String::new();
        let _ = writeln!(m, "# earshot overload: `{}`\n", r.case);
        if !r.description.is_empty() {
            let _ = writeln!(m, "{}\n", r.description);
        }
        let _ = writeln!(m, "**{}**\n", if pass { "PASS" } else { "FAIL" });
        let _ = writeln!(
            m,
            "Offered {} events/s for {:.0} s, mention rate {}; the receiver held each webhook \
             {} ms; a sample every {} s. {}\n",
            r.offered_rate,
            r.input_seconds,
            r.mention_rate,
            self.limits.receiver_delay_ms,
            r.sample_seconds,
            r.machine
        );
        m.push_str("| question | verdict | evidence |\n|---|---|---|\n");
        for (q, ok, why) in &verdicts {
            let _ = writeln!(
                m,
                "| {q} | {} | {why} |",
                if *ok { "yes" } else { "**NO**" }
            );
        }
        let _ = writeln!(
            m,
            "\nSend → webhook latency (queueing in the backlog included): p50 {} ms, p99 {} ms, \
             max {} ms. earshot after SIGTERM: {}.\n",
            fmt_opt(self.delivery.p50_ms, 0),
            fmt_opt(self.delivery.p99_ms, 0),
            fmt_opt(self.delivery.max_ms, 0),
            r.earshot_exit
        );
        for (file, _) in self.charts() {
            let _ = writeln!(m, "![{file}]({file})");
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> RunFacts {
        RunFacts {
            case: "c".into(),
            offered_rate: 1000,
            input_seconds: 100.0,
            generated: 50_000,
            mention_rate: 0.02,
            sample_seconds: 10.0,
            earshot_exit: "exit status: 0".into(),
            machine: "test machine.".into(),
            ..RunFacts::default()
        }
    }

    fn complete() -> Delivery {
        Delivery {
            expected: 100,
            delivered: 100,
            ..Delivery::default()
        }
    }

    fn sample(t: f64, rss_mib: u64, delivered: u64) -> Sample {
        Sample {
            t,
            rss_bytes: Some(rss_mib * 1024 * 1024),
            open_fds: Some(20),
            outbox_bytes: Some(3 * 1024 * 1024),
            delivered,
            queue_depth: 10,
            ..Sample::default()
        }
    }

    #[test]
    fn a_steady_soak_passes_and_a_leak_or_a_loss_fails() {
        let steady: Vec<Sample> = (0..20)
            .map(|i| sample(i as f64 * 10.0, 50, i * 1000))
            .collect();
        let r = SoakReport::new(run(), complete(), steady.clone(), 200.0);
        assert!(r.pass(), "{:#?}", r.series);
        assert_eq!(r.series.len(), 5);
        assert_eq!(r.series[0].start, Some(50.0));
        let md = r.markdown();
        assert!(md.contains("**PASS**"), "{md}");
        assert!(md.contains("| earshot resident memory (VmRSS) | 50 MiB | 50 MiB | 50 MiB | flat"));
        assert!(md.contains("![soak-rss.svg](soak-rss.svg)"));
        assert_eq!(r.charts().len(), 5);

        let leaking: Vec<Sample> = (0..20)
            .map(|i| sample(i as f64 * 10.0, 50 + 5 * i, i * 1000))
            .collect();
        let r = SoakReport::new(run(), complete(), leaking, 200.0);
        assert!(!r.pass());
        assert_eq!(r.series[0].flatness.flat, Some(false));
        assert!(r.markdown().contains("**FAIL**"));

        let lost = Delivery {
            delivered: 99,
            lost: 1,
            ..complete()
        };
        assert!(!SoakReport::new(run(), lost, steady.clone(), 200.0).pass());
        // Samples after the input stopped (the drain) are charted, not judged.
        let mut drained = steady;
        drained.push(sample(400.0, 500, 20_000));
        let r = SoakReport::new(run(), complete(), drained, 200.0);
        assert!(r.pass());
        assert_eq!(r.series[0].end, Some(50.0));
    }

    #[test]
    fn overload_verdicts_read_backpressure_from_the_samples() {
        let limits = Limits {
            channel_batches: 64,
            max_entries: 500,
            receiver_delay_ms: 20,
        };
        let samples: Vec<Sample> = (0..20u64)
            .map(|i| Sample {
                t: i as f64,
                rss_bytes: Some(60 * 1024 * 1024),
                delivered: i * 10,
                queue_depth: if i > 2 { 500 } else { 100 },
                channel_batches: if i > 2 { 64 } else { 3 },
                generated: i * 400,
                sent: i * 300,
                blocked_ms: i * 500,
                ..Sample::default()
            })
            .collect();
        let mut r = OverloadReport {
            run: RunFacts {
                generated: 8_000,
                input_seconds: 20.0,
                ..run()
            },
            delivery: complete(),
            limits,
            input_end: 20.0,
            drain_seconds: Some(42.0),
            samples,
        };
        let f = r.findings();
        assert_eq!((f.channel_max, f.depth_max), (64, 500));
        assert!((f.generated_per_s - 400.0).abs() < 1e-9);
        assert!((f.sent_per_s_mean - 300.0).abs() < 1e-9);
        assert!((f.blocked_share - 0.475).abs() < 1e-9);
        assert!((f.outbox_full_share - 0.85).abs() < 1e-9);
        let v = r.verdicts();
        assert!(v.iter().all(|v| v.1), "{v:#?}");
        assert!(r.markdown().contains("**PASS**"));
        assert!(r.markdown().contains("42 s after the input stopped"));
        assert_eq!(r.charts().len(), 5);

        // A firehose that kept up with the offered rate was not held back.
        r.run.generated = 20_000;
        assert!(!r.verdicts()[1].1);
        r.run.generated = 8_000;
        r.drain_seconds = None;
        assert!(!r.verdicts()[3].1);
        assert!(r.markdown().contains("**FAIL**"));
    }
}
