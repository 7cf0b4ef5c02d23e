//! Bookkeeping of what had to arrive and what did: the firehose writes one line per
//! brand-mentioning post it sends (`<step>\t<at:// uri>`), the receiver records each accepted
//! post with its send-to-receipt latency, and [`summarize`] joins the two per step into
//! delivered / lost counts and latency percentiles (an HDR histogram per step, in
//! microseconds, 3 significant digits).

use std::collections::{HashMap, HashSet};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// The largest latency recorded (an hour, in microseconds); longer ones count as an hour.
const MAX_US: u64 = 3_600_000_000;

/// One post that must be delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// The step (0-based) it was sent in.
    pub step: usize,
    /// Its `at://` URI, which earshot delivers as `post.id`.
    pub uri: String,
}

/// Parses the firehose's expected file: `<step>\t<uri>` per line.
pub fn parse_expected(text: &str) -> anyhow::Result<Vec<Expected>> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| {
            let (step, uri) = line
                .split_once('\t')
                .with_context(|| format!("expected file line {}: no tab in {line:?}", i + 1))?;
            let step = step
                .parse()
                .with_context(|| format!("expected file line {}: bad step {step:?}", i + 1))?;
            Ok(Expected {
                step,
                uri: uri.to_string(),
            })
        })
        .collect()
}

/// One accepted mention, as the receiver recorded it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Received {
    /// `data.post.id`.
    pub post: String,
    /// Receipt time − `data.post.created_at`, when that parsed.
    pub latency_us: Option<u64>,
}

/// What the receiver reports (over `GET /report` and into `--out`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReceiverReport {
    /// Accepted mentions, first delivery of each webhook-id, in arrival order.
    pub received: Vec<Received>,
    /// Valid deliveries of a webhook-id already accepted.
    pub duplicates: u64,
    /// Requests refused: bad or missing signature headers, bad envelope.
    pub rejected: u64,
    /// Accepted mentions whose `post.created_at` was not RFC 3339 (no latency recorded).
    pub unparsed_created_at: u64,
    /// Per-step summary, when the receiver was given the expected file.
    pub steps: Vec<StepSummary>,
}

/// Delivery and latency of one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepSummary {
    /// Step number (0-based).
    pub step: usize,
    /// Mentions the firehose sent in this step.
    pub expected: u64,
    /// Of those, how many the receiver accepted.
    pub delivered: u64,
    /// `expected - delivered`.
    pub lost: u64,
    /// Latency percentiles in milliseconds (None when nothing was timed).
    pub p50_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: Option<f64>,
    /// 99.9th percentile.
    pub p999_ms: Option<f64>,
    /// Largest.
    pub max_ms: Option<f64>,
}

/// Joins expected and received per step, for `steps` steps (steps beyond the largest step
/// number in `expected` come out empty). Also returns how many received posts were not
/// expected at all (a rule matched something the generator did not mean as a mention).
pub fn summarize(
    expected: &[Expected],
    received: &[Received],
    steps: usize,
) -> (Vec<StepSummary>, u64) {
    let steps = steps.max(expected.iter().map(|e| e.step + 1).max().unwrap_or(0));
    let step_of: HashMap<&str, usize> = expected.iter().map(|e| (e.uri.as_str(), e.step)).collect();
    let mut hist: Vec<Histogram<u64>> = (0..steps)
        .map(|_| Histogram::new_with_bounds(1, MAX_US, 3).expect("valid bounds"))
        .collect();
    let mut delivered = vec![0u64; steps];
    let mut seen = HashSet::new();
    let mut unexpected = 0;
    for r in received {
        if !seen.insert(r.post.as_str()) {
            continue;
        }
        match step_of.get(r.post.as_str()) {
            Some(&s) => {
                delivered[s] += 1;
                if let Some(l) = r.latency_us {
                    hist[s]
                        .record(l.clamp(1, MAX_US))
                        .expect("clamped into bounds");
                }
            }
            None => unexpected += 1,
        }
    }
    let mut wanted = vec![0u64; steps];
    for e in expected {
        wanted[e.step] += 1;
    }
    let ms =
        |h: &Histogram<u64>, q: f64| (!h.is_empty()).then(|| h.value_at_quantile(q) as f64 / 1e3);
    let summary = (0..steps)
        .map(|s| StepSummary {
            step: s,
            expected: wanted[s],
            delivered: delivered[s],
            lost: wanted[s].saturating_sub(delivered[s]),
            p50_ms: ms(&hist[s], 0.5),
            p99_ms: ms(&hist[s], 0.99),
            p999_ms: ms(&hist[s], 0.999),
            max_ms: (!hist[s].is_empty()).then(|| hist[s].max() as f64 / 1e3),
        })
        .collect();
    (summary, unexpected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_per_step_with_losses_percentiles_and_unexpected() {
        let expected = parse_expected("0\tat://a\n0\tat://b\n1\tat://c\n\n1\tat://d\n").unwrap();
        assert_eq!(expected.len(), 4);
        let received = vec![
            Received {
                post: "at://a".into(),
                latency_us: Some(2_000),
            },
            Received {
                post: "at://b".into(),
                latency_us: Some(4_000),
            },
            Received {
                post: "at://a".into(),
                latency_us: Some(9_000_000),
            },
            Received {
                post: "at://c".into(),
                latency_us: None,
            },
            Received {
                post: "at://zzz".into(),
                latency_us: Some(1),
            },
        ];
        let (steps, unexpected) = summarize(&expected, &received, 3);
        assert_eq!(unexpected, 1);
        assert_eq!(steps.len(), 3);
        assert_eq!(
            (steps[0].expected, steps[0].delivered, steps[0].lost),
            (2, 2, 0)
        );
        assert!(
            (steps[0].p50_ms.unwrap() - 2.0).abs() < 0.01,
            "{:?}",
            steps[0]
        );
        assert!(
            (steps[0].max_ms.unwrap() - 4.0).abs() < 0.01,
            "the repeat is not timed"
        );
        assert_eq!(
            (steps[1].expected, steps[1].delivered, steps[1].lost),
            (2, 1, 1)
        );
        assert_eq!(steps[1].p99_ms, None);
        assert_eq!(steps[2].expected, 0);
    }

    #[test]
    fn expected_file_errors_name_the_line() {
        let e = parse_expected("0\tat://a\nx\tat://b\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2"), "{e}");
        let e = parse_expected("at://a\n").unwrap_err().to_string();
        assert!(e.contains("line 1: no tab"), "{e}");
    }
}
