//! The verdict: which steps passed, and the highest rate earshot sustained.
//!
//! A step passes when the firehose really offered its rate (at least [`OFFERED_SHARE`] of
//! it: otherwise the load generator, not earshot, was the limit), every mention it sent was
//! delivered, and its p99 send-to-receipt latency is within the budget. The sustained rate is that of the last step of the unbroken run of
//! passing steps from the first: once a step fails, the backlog it leaves behind delays the
//! next steps' posts, so a later step that happens to pass cannot vouch for its rate.

use serde::Serialize;

use crate::summary::StepSummary;

/// The share of a step's target rate the firehose must reach for the step to count.
pub const OFFERED_SHARE: f64 = 0.95;

/// One step's outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepVerdict {
    /// Step number (0-based).
    pub step: usize,
    /// Offered rate, events per second.
    pub rate: u64,
    /// Whether the step passed.
    pub pass: bool,
    /// Why not, when it did not (empty when it passed).
    pub why: String,
}

/// Judges each step against the budget; `rates[i]` is step `i`'s target rate and
/// `generated[i]` the rate the firehose actually produced in it (events per second).
pub fn judge(
    rates: &[u64],
    generated: &[f64],
    steps: &[StepSummary],
    p99_budget_ms: f64,
) -> Vec<StepVerdict> {
    rates
        .iter()
        .enumerate()
        .map(|(i, &rate)| {
            let mut why = Vec::new();
            if let Some(&g) = generated.get(i) {
                if g < rate as f64 * OFFERED_SHARE {
                    why.push(format!(
                        "firehose generated only {g:.0}/s (the load generator is the limit)"
                    ));
                }
            }
            match steps.get(i) {
                None => why.push("step did not run".to_string()),
                Some(s) => {
                    if s.expected == 0 {
                        why.push("no mentions were sent".to_string());
                    }
                    if s.lost > 0 {
                        why.push(format!("{} of {} mentions lost", s.lost, s.expected));
                    }
                    match s.p99_ms {
                        Some(p99) if p99 > p99_budget_ms => {
                            why.push(format!("p99 {p99:.1} ms > budget {p99_budget_ms} ms"))
                        }
                        Some(_) => {}
                        None if s.expected > 0 => why.push("no latency recorded".to_string()),
                        None => {}
                    }
                }
            }
            StepVerdict {
                step: i,
                rate,
                pass: why.is_empty(),
                why: why.join("; "),
            }
        })
        .collect()
}

/// The highest sustained rate: the rate of the last step of the passing run from step 0;
/// None when the first step failed.
pub fn highest_sustained(verdicts: &[StepVerdict]) -> Option<u64> {
    verdicts
        .iter()
        .take_while(|v| v.pass)
        .map(|v| v.rate)
        .last()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(step: usize, expected: u64, delivered: u64, p99: Option<f64>) -> StepSummary {
        StepSummary {
            step,
            expected,
            delivered,
            lost: expected - delivered,
            p50_ms: p99.map(|p| p / 2.0),
            p99_ms: p99,
            p999_ms: p99,
            max_ms: p99,
        }
    }

    #[test]
    fn sustained_rate_is_the_end_of_the_first_passing_run() {
        let rates = [1000, 2000, 4000, 8000];
        let steps = [
            step(0, 10, 10, Some(5.0)),
            step(1, 20, 20, Some(9.0)),
            step(2, 40, 40, Some(80.0)),
            step(3, 80, 80, Some(5.0)),
        ];
        let v = judge(&rates, &[1000.0, 2000.0, 4000.0, 8000.0], &steps, 50.0);
        assert_eq!(
            v.iter().map(|v| v.pass).collect::<Vec<_>>(),
            [true, true, false, true]
        );
        assert_eq!(v[2].why, "p99 80.0 ms > budget 50 ms");
        assert_eq!(
            highest_sustained(&v),
            Some(2000),
            "step 3 cannot vouch after step 2 failed"
        );
    }

    #[test]
    fn losses_missing_steps_and_empty_steps_fail() {
        let rates = [1000, 2000, 3000];
        let steps = [step(0, 10, 9, Some(1.0)), step(1, 0, 0, None)];
        let v = judge(&rates, &[], &steps, 50.0);
        assert_eq!(v[0].why, "1 of 10 mentions lost");
        assert_eq!(v[1].why, "no mentions were sent");
        assert_eq!(v[2].why, "step did not run");
        assert_eq!(highest_sustained(&v), None);
        let v = judge(&[5], &[5.0], &[step(0, 3, 0, None)], 50.0);
        assert_eq!(v[0].why, "3 of 3 mentions lost; no latency recorded");
        let v = judge(&[100_000], &[80_000.0], &[step(0, 3, 3, Some(1.0))], 50.0);
        assert_eq!(
            v[0].why,
            "firehose generated only 80000/s (the load generator is the limit)"
        );
    }
}
