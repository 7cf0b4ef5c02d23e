//! Reconnect delays: capped exponential backoff with full jitter, and X's documented policy.
//!
//! Input → output: the outcome of a connection attempt → how long to wait before the next.
//! Pure and deterministic: no clock, no global RNG. The jittered policy takes an injected
//! [`fastrand::Rng`], so a seeded one gives a reproducible sequence in tests; sources seed it
//! from entropy so that many clients cut off together do not reconnect in lock-step.
//!
//! - [`JitteredBackoff`] (websocket sources): attempt `n` waits a uniform random duration in
//!   `[0, min(cap, base · 2ⁿ)]` ("full jitter"); defaults 250 ms and 30 s.
//! - [`HttpBackoff`] (HTTP streams): X's reconnect policy for the filtered stream, by kind of
//!   failure: network errors back off linearly by 250 ms up to 16 s; HTTP errors start at 5 s
//!   and double up to 320 s; HTTP 429 starts at 1 minute and doubles (X states no cap; ours,
//!   16 minutes, keeps a long-lived stream retrying at least that often). Each kind counts its
//!   own attempts. No jitter: the delays are X's own numbers.
//!
//! Both reset once a connection has delivered data, so the next attempt waits only the first
//! step. X asks to reconnect at once after an established connection drops; the first step
//! (at most 250 ms by default) keeps a server that accepts and drops connections from turning
//! that into a busy loop.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Capped exponential backoff settings (websocket sources).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExponentialBackoff {
    /// The ceiling of the first delay; doubled per failed attempt.
    #[serde(with = "crate::duration")]
    pub base: Duration,
    /// The largest ceiling.
    #[serde(with = "crate::duration")]
    pub cap: Duration,
}

impl Default for ExponentialBackoff {
    /// 250 ms doubling to 30 s: a relay restart is ridden out in a few quick tries, and a long
    /// outage costs one attempt per 15 s on average.
    fn default() -> Self {
        Self {
            base: Duration::from_millis(250),
            cap: Duration::from_secs(30),
        }
    }
}

impl ExponentialBackoff {
    /// The ceiling for attempt `attempt` (0-based): `min(cap, base · 2^attempt)`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.base
            .checked_mul(factor)
            .map_or(self.cap, |d| d.min(self.cap))
    }
}

/// Full-jitter exponential backoff state: one per source.
#[derive(Debug, Clone)]
pub struct JitteredBackoff {
    policy: ExponentialBackoff,
    attempt: u32,
    rng: fastrand::Rng,
}

impl JitteredBackoff {
    /// A fresh state drawing jitter from `rng`.
    pub fn new(policy: ExponentialBackoff, rng: fastrand::Rng) -> Self {
        Self {
            policy,
            attempt: 0,
            rng,
        }
    }

    /// The delay before the next attempt; counts the attempt.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.policy.ceiling(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(self.rng.u64(0..=nanos))
    }

    /// Failed attempts since the last reset.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Starts over (after a connection delivered data).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// What kind of failure ended a connection attempt (X's reconnect policy distinguishes them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// TCP/TLS-level: refused, reset, timed out, stalled, closed by the peer.
    Network,
    /// An HTTP error status other than 429.
    Http,
    /// HTTP 429 Too Many Requests.
    RateLimited,
}

impl Failure {
    /// The failure class of an HTTP status that is not a success.
    pub fn from_status(status: u16) -> Self {
        if status == 429 {
            Failure::RateLimited
        } else {
            Failure::Http
        }
    }

    /// A bounded name for logs and labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::Network => "network",
            Failure::Http => "http",
            Failure::RateLimited => "rate_limited",
        }
    }
}

/// X's reconnect policy settings (HTTP streams). Configurable so tests and other servers can
/// use shorter delays; the defaults are X's published numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpBackoffPolicy {
    /// Network errors: the delay grows by this much per attempt.
    #[serde(with = "crate::duration")]
    pub network_step: Duration,
    /// Network errors: the largest delay.
    #[serde(with = "crate::duration")]
    pub network_cap: Duration,
    /// HTTP errors: the first delay, doubled per attempt.
    #[serde(with = "crate::duration")]
    pub http_base: Duration,
    /// HTTP errors: the largest delay.
    #[serde(with = "crate::duration")]
    pub http_cap: Duration,
    /// HTTP 429: the first delay, doubled per attempt.
    #[serde(with = "crate::duration")]
    pub rate_limit_base: Duration,
    /// HTTP 429: the largest delay.
    #[serde(with = "crate::duration")]
    pub rate_limit_cap: Duration,
}

impl Default for HttpBackoffPolicy {
    fn default() -> Self {
        Self {
            network_step: Duration::from_millis(250),
            network_cap: Duration::from_secs(16),
            http_base: Duration::from_secs(5),
            http_cap: Duration::from_secs(320),
            rate_limit_base: Duration::from_secs(60),
            rate_limit_cap: Duration::from_secs(16 * 60),
        }
    }
}

/// X's reconnect policy state: one per source.
#[derive(Debug, Clone)]
pub struct HttpBackoff {
    policy: HttpBackoffPolicy,
    network: u32,
    http: u32,
    rate_limited: u32,
}

impl HttpBackoff {
    /// A fresh state.
    pub fn new(policy: HttpBackoffPolicy) -> Self {
        Self {
            policy,
            network: 0,
            http: 0,
            rate_limited: 0,
        }
    }

    /// The delay before the next attempt after `failure`; counts the attempt.
    pub fn next_delay(&mut self, failure: Failure) -> Duration {
        let p = &self.policy;
        match failure {
            Failure::Network => {
                self.network = self.network.saturating_add(1);
                p.network_step
                    .checked_mul(self.network)
                    .map_or(p.network_cap, |d| d.min(p.network_cap))
            }
            Failure::Http => {
                let d = doubling(p.http_base, p.http_cap, self.http);
                self.http = self.http.saturating_add(1);
                d
            }
            Failure::RateLimited => {
                let d = doubling(p.rate_limit_base, p.rate_limit_cap, self.rate_limited);
                self.rate_limited = self.rate_limited.saturating_add(1);
                d
            }
        }
    }

    /// Starts over (after a connection delivered data).
    pub fn reset(&mut self) {
        self.network = 0;
        self.http = 0;
        self.rate_limited = 0;
    }
}

fn doubling(base: Duration, cap: Duration, attempt: u32) -> Duration {
    ExponentialBackoff { base, cap }.ceiling(attempt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn s(v: u64) -> Duration {
        Duration::from_secs(v)
    }

    #[test]
    fn exponential_ceilings() {
        let p = ExponentialBackoff::default();
        let want = [
            ms(250),
            ms(500),
            s(1),
            s(2),
            s(4),
            s(8),
            s(16),
            s(30),
            s(30),
        ];
        for (attempt, w) in want.iter().enumerate() {
            assert_eq!(p.ceiling(attempt as u32), *w, "attempt {attempt}");
        }
        assert_eq!(p.ceiling(u32::MAX), s(30), "no overflow");
        let huge = ExponentialBackoff {
            base: Duration::MAX,
            cap: s(1),
        };
        assert_eq!(huge.ceiling(3), s(1));
    }

    #[test]
    fn jitter_is_within_ceiling_deterministic_and_resets() {
        let p = ExponentialBackoff::default();
        let mut a = JitteredBackoff::new(p, fastrand::Rng::with_seed(7));
        let mut b = JitteredBackoff::new(p, fastrand::Rng::with_seed(7));
        let seq_a: Vec<Duration> = (0..12).map(|_| a.next_delay()).collect();
        let seq_b: Vec<Duration> = (0..12).map(|_| b.next_delay()).collect();
        assert_eq!(seq_a, seq_b, "same seed, same sequence");
        for (i, d) in seq_a.iter().enumerate() {
            assert!(*d <= p.ceiling(i as u32), "attempt {i}: {d:?}");
        }
        assert!(seq_a.windows(2).any(|w| w[0] != w[1]), "jitter varies");
        assert_eq!(a.attempt(), 12);
        a.reset();
        assert_eq!(a.attempt(), 0);
        assert!(a.next_delay() <= ms(250));
    }

    #[test]
    fn x_policy_sequences() {
        // (failure kind, the first delays X documents)
        let cases: &[(Failure, &[Duration])] = &[
            (
                Failure::Network,
                &[
                    ms(250),
                    ms(500),
                    ms(750),
                    s(1),
                    ms(1250),
                    ms(1500),
                    ms(1750),
                    s(2),
                ],
            ),
            (
                Failure::Http,
                &[s(5), s(10), s(20), s(40), s(80), s(160), s(320), s(320)],
            ),
            (
                Failure::RateLimited,
                &[s(60), s(120), s(240), s(480), s(960), s(960)],
            ),
        ];
        for (failure, want) in cases {
            let mut b = HttpBackoff::new(HttpBackoffPolicy::default());
            let got: Vec<Duration> = want.iter().map(|_| b.next_delay(*failure)).collect();
            assert_eq!(&got, want, "{}", failure.as_str());
        }
        let mut b = HttpBackoff::new(HttpBackoffPolicy::default());
        for _ in 0..100 {
            b.next_delay(Failure::Network);
        }
        assert_eq!(b.next_delay(Failure::Network), s(16), "network cap");
    }

    #[test]
    fn x_policy_kinds_count_separately_and_reset() {
        let mut b = HttpBackoff::new(HttpBackoffPolicy::default());
        let seq = [
            (Failure::Http, s(5)),
            (Failure::Network, ms(250)),
            (Failure::Http, s(10)),
            (Failure::RateLimited, s(60)),
            (Failure::Network, ms(500)),
        ];
        for (f, want) in seq {
            assert_eq!(b.next_delay(f), want);
        }
        b.reset();
        assert_eq!(b.next_delay(Failure::Http), s(5));
        assert_eq!(b.next_delay(Failure::Network), ms(250));
    }

    #[test]
    fn status_classes() {
        for (status, want) in [
            (429, Failure::RateLimited),
            (500, Failure::Http),
            (401, Failure::Http),
        ] {
            assert_eq!(Failure::from_status(status), want);
        }
    }

    #[test]
    fn policies_deserialize_with_defaults_and_reject_unknown_keys() {
        let p: HttpBackoffPolicy = toml::from_str("rate_limit_base = \"10ms\"").expect("parses");
        assert_eq!(p.rate_limit_base, ms(10));
        assert_eq!(p.http_base, s(5));
        let e: ExponentialBackoff = toml::from_str("cap = \"5s\"").expect("parses");
        assert_eq!(
            e,
            ExponentialBackoff {
                base: ms(250),
                cap: s(5)
            }
        );
        assert!(toml::from_str::<ExponentialBackoff>("bsae = \"1s\"").is_err());
    }
}
