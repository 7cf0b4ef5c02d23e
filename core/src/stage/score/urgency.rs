//! Urgency: features of a judged post → a 0–100 score whose reasons add up to it exactly.
//!
//! Each feature's points come from `rules/scoring.toml` and appear in `reasons` under the
//! feature's name, so a reader sees what built the number. When the features sum past 100 (or
//! below 0, as spam's negative category points can), a `cap` reason brings the sum back into
//! range.

use serde::Serialize;

/// One contribution to the urgency score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reason {
    /// Feature name (`negative_sentiment`, `crisis_terms`, `category`, `question`,
    /// `direct_address`, `influence`, `verified`, `customer_tier`, `engagement`, `spike`,
    /// `cap`).
    pub feature: &'static str,
    /// Points it added (negative for `cap` above 100, and for categories weighted down).
    pub points: i32,
}

/// Urgency 0–100; `reasons` sum exactly to `score`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Urgency {
    /// 0–100.
    pub score: u8,
    /// What built it.
    pub reasons: Vec<Reason>,
}

/// Collects reasons, rounding each to whole points and leaving out zeros.
#[derive(Debug, Default)]
pub struct Reasons(Vec<Reason>);

impl Reasons {
    /// Adds `points` (rounded) under `feature`.
    pub fn add(&mut self, feature: &'static str, points: f64) {
        let points = points.round() as i32;
        if points != 0 {
            self.0.push(Reason { feature, points });
        }
    }

    /// Sums the reasons into a 0–100 score, adding a `cap` reason when the sum is outside.
    pub fn finish(self) -> Urgency {
        let mut reasons = self.0;
        let sum: i32 = reasons.iter().map(|r| r.points).sum();
        let score = sum.clamp(0, 100);
        if sum != score {
            reasons.push(Reason {
                feature: "cap",
                points: score - sum,
            });
        }
        Urgency {
            score: score as u8,
            reasons,
        }
    }
}

/// Points per power of ten of `n`, at most `max`: `log10(n + 1) × per_decade`.
pub fn per_decade(n: u64, per_decade: f64, max: f64) -> f64 {
    (per_decade * ((n as f64) + 1.0).log10()).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_add_up_to_the_score_within_0_and_100() {
        let cases: [(&[f64], u8); 6] = [
            (&[], 0),
            (&[40.0, 30.0], 70),
            (&[40.0, 30.0, 15.0, 20.0, 10.0], 100),
            (&[100.0, 1.0], 100),
            (&[10.0, -40.0], 0),
            (&[0.4, 0.4], 0),
        ];
        for (points, want) in cases {
            let mut r = Reasons::default();
            for &p in points {
                r.add("x", p);
            }
            let u = r.finish();
            assert_eq!(u.score, want, "{points:?}");
            assert_eq!(
                u.reasons.iter().map(|r| r.points).sum::<i32>(),
                i32::from(u.score)
            );
        }
    }

    #[test]
    fn per_decade_grows_with_the_log_and_stops_at_the_cap() {
        assert_eq!(per_decade(0, 4.0, 16.0), 0.0);
        assert!((per_decade(999, 4.0, 16.0) - 12.0).abs() < 1e-9);
        assert_eq!(per_decade(10_000_000, 4.0, 16.0), 16.0);
    }
}
