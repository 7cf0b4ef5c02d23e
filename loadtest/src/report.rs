//! The run report: one struct serialised as `report.json`, and the same facts as
//! `report.md` (a table a reviewer reads in a pull request) and `report.svg` (the chart).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::nats::Varz;
use crate::prom::Scrape;
use crate::summary::StepSummary;
use crate::svg::Point;

/// One step of the run, as reported: the receiver's delivery summary plus what the firehose,
/// earshot's metrics and the verdict add.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepRow {
    /// Step number, mentions sent, delivered and lost, and latency percentiles.
    #[serde(flatten)]
    pub delivery: StepSummary,
    /// Offered rate, events per second.
    pub rate: u64,
    /// Events the firehose generated in the step.
    pub generated: u64,
    /// `generated` / the step's measured duration: whether the firehose itself kept up.
    pub generated_per_s: f64,
    /// Frames earshot received per second during the step (from its `/metrics`).
    pub ingested_per_s: f64,
    /// Whether the step passed.
    pub pass: bool,
    /// Why it failed.
    pub why: String,
}

/// What a stretch of the run cost, read at its start and end: CPU seconds of earshot and,
/// in cluster mode, of the NATS server, and the server's message counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Cost {
    /// Events the firehose generated in the stretch.
    pub events: u64,
    /// CPU seconds earshot used (user + system, all threads).
    pub earshot_cpu_s: Option<f64>,
    /// CPU seconds the NATS server used (cluster mode).
    pub nats_cpu_s: Option<f64>,
    /// What the NATS server counted (cluster mode).
    pub nats: Option<Varz>,
}

impl Cost {
    fn per_event(&self, v: f64) -> f64 {
        v / self.events.max(1) as f64
    }

    /// The row cells after the first: events, µs of CPU per event (earshot, NATS), NATS
    /// messages and bytes per event (in + out).
    fn cells(&self) -> String {
        let us =
            |v: Option<f64>| v.map_or("–".into(), |v| format!("{:.2}", self.per_event(v) * 1e6));
        let (msgs, bytes) = match &self.nats {
            Some(n) => (
                format!(
                    "{:.3} ({:.3} + {:.3})",
                    self.per_event(n.msgs() as f64),
                    self.per_event(n.in_msgs as f64),
                    self.per_event(n.out_msgs as f64)
                ),
                format!(
                    "{:.0} ({:.0} + {:.0})",
                    self.per_event(n.bytes() as f64),
                    self.per_event(n.in_bytes as f64),
                    self.per_event(n.out_bytes as f64)
                ),
            ),
            None => ("–".into(), "–".into()),
        };
        format!(
            "{} | {} | {} | {} | {} |",
            self.events,
            us(self.earshot_cpu_s),
            us(self.nats_cpu_s),
            msgs,
            bytes
        )
    }
}

/// Everything a run found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunReport {
    /// The case name.
    pub case: String,
    /// The case's description.
    pub description: String,
    /// Generator seed.
    pub seed: u64,
    /// Share of posts that mention a brand.
    pub mention_rate: f64,
    /// Seconds per step.
    pub step_seconds: f64,
    /// The p99 budget, ms.
    pub p99_budget_ms: f64,
    /// Highest rate sustained within budget and without loss (None: not even the first).
    pub sustained_rate: Option<u64>,
    /// Per step.
    pub steps: Vec<StepRow>,
    /// Valid repeat deliveries.
    pub duplicates: u64,
    /// Requests the receiver refused (bad signature or envelope).
    pub rejected: u64,
    /// Delivered posts the firehose did not send as mentions.
    pub unexpected: u64,
    /// How earshot ended after SIGTERM (`exit status: 0`, or that it had to be killed).
    pub earshot_exit: String,
    /// earshot's posts dropped by reason at the end of the run (non-post events included).
    pub dropped: BTreeMap<String, u64>,
    /// earshot's webhook deliveries by outcome at the end of the run.
    pub deliveries: BTreeMap<String, u64>,
    /// Per step, what it cost (same order as `steps`).
    pub costs: Vec<Cost>,
    /// The whole run: earshot's CPU from its start until it had read every frame, the NATS
    /// server's from its start until earshot had exited (its drain included).
    pub run_cost: Cost,
    /// Whether earshot ran as a cluster node on a NATS server the runner started.
    pub cluster: bool,
    /// One scrape of earshot's `/metrics` per second.
    pub scrapes: Vec<Scrape>,
}

fn ms(v: Option<f64>) -> String {
    v.map_or("–".to_string(), |v| format!("{v:.1}"))
}

impl RunReport {
    /// The chart's points.
    pub fn points(&self) -> Vec<Point> {
        self.steps
            .iter()
            .map(|s| Point {
                rate: s.rate,
                p50: s.delivery.p50_ms,
                p99: s.delivery.p99_ms,
                p999: s.delivery.p999_ms,
            })
            .collect()
    }

    /// The passing step with the highest rate at most half the highest sustained rate: where
    /// latency is judged, away from the saturation point.
    pub fn at_half(&self) -> Option<&StepRow> {
        let half = self.sustained_rate? / 2;
        self.steps
            .iter()
            .filter(|s| s.pass && s.rate <= half)
            .max_by_key(|s| s.rate)
    }

    /// One line on the latency at half the highest sustained rate.
    pub fn at_half_line(&self) -> String {
        match self.at_half() {
            Some(s) => format!(
                "at half of it (the {} events/s step): p50 {} ms, p99 {} ms, p999 {} ms, {} lost",
                s.rate,
                ms(s.delivery.p50_ms),
                ms(s.delivery.p99_ms),
                ms(s.delivery.p999_ms),
                s.delivery.lost
            ),
            None => "no passing step at or below half of it".to_string(),
        }
    }

    /// The per-step table in Markdown.
    pub fn table(&self) -> String {
        let mut t = String::from(
            "| step | offered/s | generated/s | ingested/s | mentions | delivered | lost | p50 ms | p99 ms | p999 ms | max ms | verdict |\n\
             |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
        );
        for row in &self.steps {
            let s = &row.delivery;
            let _ = writeln!(
                t,
                "| {} | {} | {:.0} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} |",
                s.step,
                row.rate,
                row.generated_per_s,
                row.ingested_per_s,
                s.expected,
                s.delivered,
                s.lost,
                ms(s.p50_ms),
                ms(s.p99_ms),
                ms(s.p999_ms),
                ms(s.max_ms),
                if row.pass {
                    "pass".to_string()
                } else {
                    format!("FAIL: {}", row.why)
                }
            );
        }
        t
    }

    /// The cost table in Markdown: per step and for the whole run, per generated event.
    pub fn cost_table(&self) -> String {
        let mut t = String::from(
            "| step | offered/s | events | earshot CPU µs/event | NATS CPU µs/event | NATS msgs/event (in + out) | NATS bytes/event (in + out) |\n\
             |---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for (row, cost) in self.steps.iter().zip(&self.costs) {
            let _ = writeln!(
                t,
                "| {} | {} | {}",
                row.delivery.step,
                row.rate,
                cost.cells()
            );
        }
        let _ = writeln!(t, "| run | | {}", self.run_cost.cells());
        t
    }

    /// The whole report in Markdown.
    pub fn markdown(&self) -> String {
        let mut m = String::new();
        let _ = writeln!(m, "# earshot load test: `{}`\n", self.case);
        if !self.description.is_empty() {
            let _ = writeln!(m, "{}\n", self.description);
        }
        let all_passed = !self.steps.is_empty() && self.steps.iter().all(|s| s.pass);
        let _ = writeln!(
            m,
            "**Highest sustained rate: {}** (every mention delivered, p99 send → webhook ≤ {} ms){}\n",
            self.sustained_rate
                .map_or("none — the first step failed".to_string(), |r| format!("{r} events/s")),
            self.p99_budget_ms,
            if all_passed {
                "; every step passed, so the limit lies above the top step"
            } else {
                ""
            }
        );
        if self.sustained_rate.is_some() {
            let _ = writeln!(m, "Latency {}.\n", self.at_half_line());
        }
        let _ = writeln!(
            m,
            "Seed {}, mention rate {}, {} s per step. Latency is from the firehose stamping the \
             post (`createdAt` = send time) to the receiver accepting its signed webhook.\n",
            self.seed, self.mention_rate, self.step_seconds
        );
        m.push_str(&self.table());
        let _ = writeln!(
            m,
            "\nWhat it cost{}, per event the firehose generated (earshot reads about 85% of \
             them: not the likes). CPU is user + system of all threads; a step's figures are \
             read when it starts and ends, so work still queued from it counts in the next.\n",
            if self.cluster {
                " (earshot as a one-node cluster on a NATS JetStream server started for the run; \
                 NATS messages and bytes are the server's `/varz` counters: every publish, \
                 delivery, acknowledgement and API request)"
            } else {
                ""
            }
        );
        m.push_str(&self.cost_table());
        let _ = writeln!(
            m,
            "\nDuplicates: {} · rejected: {} · unexpected: {} · earshot after SIGTERM: {}\n",
            self.duplicates, self.rejected, self.unexpected, self.earshot_exit
        );
        let join = |map: &BTreeMap<String, u64>| {
            map.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(m, "earshot dropped (by reason): {}\n", join(&self.dropped));
        let _ = writeln!(
            m,
            "earshot webhook deliveries (by outcome): {}\n",
            join(&self.deliveries)
        );
        m.push_str("![latency against offered rate](report.svg)\n");
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_has_the_verdict_and_one_row_per_step() {
        let row = |step, rate, pass: bool| StepRow {
            delivery: StepSummary {
                step,
                expected: 10,
                delivered: if pass { 10 } else { 8 },
                lost: if pass { 0 } else { 2 },
                p50_ms: Some(1.25),
                p99_ms: Some(3.0),
                p999_ms: None,
                max_ms: Some(4.0),
            },
            rate,
            generated: rate * 3,
            generated_per_s: rate as f64,
            ingested_per_s: rate as f64 * 0.9,
            pass,
            why: if pass {
                String::new()
            } else {
                "2 of 10 mentions lost".into()
            },
        };
        let r = RunReport {
            case: "smoke".into(),
            description: "two steps".into(),
            seed: 1,
            mention_rate: 0.1,
            step_seconds: 3.0,
            p99_budget_ms: 100.0,
            sustained_rate: Some(1000),
            steps: vec![row(0, 500, true), row(1, 1000, true), row(2, 2000, false)],
            duplicates: 0,
            rejected: 0,
            unexpected: 0,
            earshot_exit: "exit status: 0".into(),
            dropped: BTreeMap::from([("like".to_string(), 3)]),
            deliveries: BTreeMap::new(),
            costs: vec![
                Cost {
                    events: 1500,
                    earshot_cpu_s: Some(0.03),
                    nats_cpu_s: None,
                    nats: None,
                };
                3
            ],
            run_cost: Cost {
                events: 10_500,
                earshot_cpu_s: Some(0.5),
                nats_cpu_s: Some(0.25),
                nats: Some(Varz {
                    in_msgs: 2100,
                    out_msgs: 1050,
                    in_bytes: 3_150_000,
                    out_bytes: 1_050_000,
                }),
            },
            cluster: true,
            scrapes: vec![],
        };
        let md = r.markdown();
        assert!(md.contains("**Highest sustained rate: 1000 events/s**"));
        assert!(
            md.contains("Latency at half of it (the 500 events/s step): p50 1.2 ms, p99 3.0 ms"),
            "{md}"
        );
        assert!(
            md.contains("| 0 | 500 | 500 | 450 | 10 | 10 | 0 | 1.2 | 3.0 | – | 4.0 | pass |"),
            "{md}"
        );
        assert!(md.contains("FAIL: 2 of 10 mentions lost"));
        assert!(md.contains("like=3"));
        assert!(
            md.contains("| 0 | 500 | 1500 | 20.00 | – | – | – |"),
            "{md}"
        );
        assert!(
            md.contains(
                "| run | | 10500 | 47.62 | 23.81 | 0.300 (0.200 + 0.100) | 400 (300 + 100) |"
            ),
            "{md}"
        );
        assert!(md.contains("one-node cluster"));
        assert_eq!(r.points().len(), 3);
        let none = RunReport {
            sustained_rate: Some(500),
            ..r
        };
        assert!(none.at_half().is_none());
    }
}
