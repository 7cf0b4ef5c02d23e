//! Whether a series sampled over a soak is flat: the soak's verdict on leaks.
//!
//! # Definition
//! With `n` samples in time order, the first quarter is warm-up and not judged (memory
//! grows while allocator arenas, connection pools, the rule automaton and the outbox's pages
//! settle; disk and descriptors have their own start-up). The *reference* is the median of
//! the middle half (samples `n/4 .. 3n/4`); the series is **flat** when every sample of the
//! last quarter (`3n/4 .. n`) lies within the *band* `reference ± max(relative × reference,
//! absolute)`. A leak that keeps growing leaves the band by the end even when it is slow
//! next to the run; a series that merely jitters stays in it. The absolute floor keeps a
//! series that sits near zero (an outbox that is nearly always empty) from failing on a
//! handful of entries.
//!
//! Fewer than [`MIN_SAMPLES`] samples are not judged: a quarter of three samples says nothing.

use serde::Serialize;

/// Fewest samples a verdict is given on.
pub const MIN_SAMPLES: usize = 8;

/// How far the last quarter may stray from the middle half's median.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Tolerance {
    /// Share of the reference, e.g. 0.10.
    pub relative: f64,
    /// In the series' unit, whichever is larger.
    pub absolute: f64,
}

/// The verdict on one series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Flatness {
    /// Samples judged (all of them; the first quarter only as warm-up).
    pub samples: usize,
    /// Median of the middle half.
    pub reference: f64,
    /// Half-width of the band around the reference.
    pub band: f64,
    /// Lowest and highest of the last quarter.
    pub tail_min: f64,
    /// Highest of the last quarter.
    pub tail_max: f64,
    /// `Some(true)` when flat, `Some(false)` when not, `None` when too few samples.
    pub flat: Option<bool>,
}

impl Flatness {
    /// One phrase for the report: "flat", "NOT flat (…)" or "not judged (…)".
    pub fn phrase(&self, fmt: impl Fn(f64) -> String) -> String {
        match self.flat {
            None => format!(
                "not judged ({} samples, at least {MIN_SAMPLES} needed)",
                self.samples
            ),
            Some(true) => format!(
                "flat (last quarter {}–{}, within {} ± {})",
                fmt(self.tail_min),
                fmt(self.tail_max),
                fmt(self.reference),
                fmt(self.band)
            ),
            Some(false) => format!(
                "**NOT flat** (last quarter {}–{}, outside {} ± {})",
                fmt(self.tail_min),
                fmt(self.tail_max),
                fmt(self.reference),
                fmt(self.band)
            ),
        }
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

/// Judges `values` (in time order) with `tol`.
pub fn judge(values: &[f64], tol: Tolerance) -> Flatness {
    let n = values.len();
    if n < MIN_SAMPLES {
        return Flatness {
            samples: n,
            reference: 0.0,
            band: 0.0,
            tail_min: 0.0,
            tail_max: 0.0,
            flat: None,
        };
    }
    let (q1, q3) = (n / 4, 3 * n / 4);
    let reference = median(&values[q1..q3]);
    let band = (tol.relative * reference.abs()).max(tol.absolute);
    let tail = &values[q3..];
    let tail_min = tail.iter().copied().fold(f64::INFINITY, f64::min);
    let tail_max = tail.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Flatness {
        samples: n,
        reference,
        band,
        tail_min,
        tail_max,
        flat: Some(tail_min >= reference - band && tail_max <= reference + band),
    }
}

/// Per-second rates between successive `(t, count)` points of a counter (a point per
/// interval, at its end), for judging a monotonic count such as deliveries: the count
/// itself always grows, its rate should not change.
pub fn rates(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    points
        .windows(2)
        .filter(|w| w[1].0 > w[0].0)
        .map(|w| (w[1].0, (w[1].1 - w[0].1) / (w[1].0 - w[0].0)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEN_PERCENT: Tolerance = Tolerance {
        relative: 0.10,
        absolute: 1.0,
    };

    #[test]
    fn a_warm_up_then_a_plateau_is_flat() {
        // Climbs for the first quarter, then jitters by ±3% around 100.
        let mut v: Vec<f64> = (0..10).map(|i| 10.0 * i as f64).collect();
        v.extend((0..30).map(|i| if i % 2 == 0 { 103.0 } else { 97.0 }));
        let f = judge(&v, TEN_PERCENT);
        assert_eq!(f.flat, Some(true), "{f:?}");
        assert_eq!(f.reference, 100.0);
        assert_eq!(f.band, 10.0);
        assert_eq!((f.tail_min, f.tail_max), (97.0, 103.0));
        assert!(f
            .phrase(|x| format!("{x:.0}"))
            .starts_with("flat (last quarter 97–103"));
    }

    #[test]
    fn a_slow_steady_climb_is_not_flat() {
        // +1% of the start per sample: the last quarter ends about 25% above the reference.
        let v: Vec<f64> = (0..40).map(|i| 100.0 + i as f64).collect();
        let f = judge(&v, TEN_PERCENT);
        assert_eq!(f.flat, Some(false), "{f:?}");
        assert!(f.phrase(|x| format!("{x:.0}")).contains("NOT flat"));
        // A drop counts too: a series that collapses at the end is not steady either.
        let mut v = vec![100.0; 30];
        v.extend([50.0; 10]);
        assert_eq!(judge(&v, TEN_PERCENT).flat, Some(false));
    }

    #[test]
    fn the_absolute_floor_keeps_a_near_zero_series_flat() {
        let v = [0.0, 3.0, 0.0, 1.0, 0.0, 2.0, 0.0, 4.0, 0.0, 5.0, 1.0, 0.0];
        let f = judge(
            &v,
            Tolerance {
                relative: 0.10,
                absolute: 10.0,
            },
        );
        assert_eq!(f.flat, Some(true), "{f:?}");
        assert_eq!(judge(&v, TEN_PERCENT).flat, Some(false));
    }

    #[test]
    fn too_few_samples_are_not_judged() {
        let f = judge(&[1.0; 7], TEN_PERCENT);
        assert_eq!(f.flat, None);
        assert!(f
            .phrase(|x| x.to_string())
            .contains("not judged (7 samples"));
        assert_eq!(judge(&[1.0; 8], TEN_PERCENT).flat, Some(true));
    }

    #[test]
    fn rates_are_per_second_between_points() {
        let r = rates(&[(0.0, 0.0), (10.0, 100.0), (20.0, 300.0), (20.0, 300.0)]);
        assert_eq!(r, vec![(10.0, 10.0), (20.0, 20.0)]);
        assert!(rates(&[(1.0, 5.0)]).is_empty());
    }
}
