//! The Poisson upper tail, in logs so that the tiny probabilities of a real spike (1e-30 and
//! below) compare without underflow.

/// `ln P(X ≥ k)` for `X ~ Poisson(mu)`. `0.0` (probability 1) when `k ≤ mu` or `mu ≤ 0`
/// with `k == 0`; `-inf` when `mu ≤ 0` and `k > 0` (impossible under the model).
pub fn ln_upper_tail(k: u64, mu: f64) -> f64 {
    if k == 0 {
        return 0.0;
    }
    if mu <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if (k as f64) <= mu {
        // Not an excess; the detector never asks, but the answer stays meaningful.
        return 0.0;
    }
    // ln pmf(k), then the sum of pmf(j)/pmf(k) for j ≥ k: each term is the last times
    // mu / (j + 1), which is below 1 from here on, so the sum converges geometrically.
    let ln_pmf = -mu + k as f64 * mu.ln() - ln_factorial(k);
    let mut term = 1.0f64;
    let mut sum = 1.0f64;
    let mut j = k;
    loop {
        j += 1;
        term *= mu / j as f64;
        sum += term;
        if term < sum * 1e-15 || j - k > 100_000 {
            break;
        }
    }
    (ln_pmf + sum.ln()).min(0.0)
}

/// `ln k!`: exact up to 20, Stirling's series (error below 1e-12) beyond.
pub fn ln_factorial(k: u64) -> f64 {
    if k < 20 {
        return (2..=k).map(|i| (i as f64).ln()).sum();
    }
    let n = k as f64;
    n * n.ln() - n + 0.5 * (2.0 * std::f64::consts::PI * n).ln() + 1.0 / (12.0 * n)
        - 1.0 / (360.0 * n * n * n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tail summed term by term from the definition, for small cases.
    fn direct(k: u64, mu: f64) -> f64 {
        let mut below = 0.0;
        let mut pmf = (-mu).exp();
        for j in 0..k {
            below += pmf;
            pmf *= mu / (j + 1) as f64;
        }
        1.0 - below
    }

    #[test]
    fn matches_the_definition() {
        for (k, mu) in [(3, 1.0), (10, 2.0), (15, 5.0), (30, 10.0), (25, 12.5)] {
            let got = ln_upper_tail(k, mu).exp();
            let want = direct(k, mu);
            assert!(
                (got - want).abs() <= want * 1e-9,
                "P(X≥{k}; {mu}) = {got}, want {want}"
            );
        }
    }

    #[test]
    fn known_values() {
        // P(X ≥ 30; 10) ≈ 2.51e-7 and P(X ≥ 50; 10) ≈ 1.2e-17 (tables of the Poisson law).
        assert!((ln_upper_tail(30, 10.0).exp() / 2.51e-7 - 1.0).abs() < 0.01);
        assert!(ln_upper_tail(50, 10.0) < (1e-16f64).ln());
        // Far in the tail it stays finite where the plain probability underflows.
        let deep = ln_upper_tail(5000, 10.0);
        assert!(deep.is_finite() && deep < -20_000.0, "{deep}");
    }

    #[test]
    fn edges() {
        assert_eq!(ln_upper_tail(0, 3.0), 0.0);
        assert_eq!(ln_upper_tail(2, 3.0), 0.0);
        assert_eq!(ln_upper_tail(1, 0.0), f64::NEG_INFINITY);
        assert!((ln_factorial(20) - 42.335_616_460_753_485).abs() < 1e-9);
        assert!((ln_factorial(5) - 120f64.ln()).abs() < 1e-12);
    }
}
