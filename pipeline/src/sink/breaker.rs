//! The circuit breaker of one endpoint, and how long it has been failing.
//!
//! Why: when an endpoint is down, every attempt fails, and each failure would use up one of an
//! entry's attempts; an hour's outage would dead-letter everything routed during it. With the
//! breaker open nothing is attempted, so entries keep their attempts for when the endpoint is
//! back. After `threshold` consecutive failures the breaker opens for a cool-down (doubling
//! after each failed probe, up to a cap); then one probe goes through (half-open): success
//! closes it, failure opens it again. A `Retry-After` on 429 / 503 pauses the whole queue
//! until then instead: the endpoint said when to come back.
//!
//! It also tracks how long the endpoint has failed without one success, which disables the
//! queue past `disable_after` (an endpoint gone for days is an operator's problem, and its
//! backlog belongs in the dead-letter store where `earshot dlq replay` can bring it back).
//!
//! Pure: time is passed in, so tests never sleep.

use std::time::{Duration, Instant};

/// `now + d`, or a year from now when `d` is longer than that: a duration from configuration
/// or from an endpoint can be anything, and `Instant + Duration` panics on overflow.
pub fn later(now: Instant, d: Duration) -> Instant {
    const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);
    now.checked_add(d.min(YEAR)).unwrap_or(now)
}

/// Breaker settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Consecutive failures that open the breaker.
    pub threshold: u32,
    /// First cool-down.
    pub cooldown: Duration,
    /// Longest cool-down.
    pub max_cooldown: Duration,
}

/// The breaker of one endpoint.
#[derive(Debug, Clone)]
pub struct Breaker {
    settings: BreakerSettings,
    consecutive: u32,
    cooldown: Duration,
    open_until: Option<Instant>,
    probing: bool,
    paused_until: Option<Instant>,
    failing_since: Option<Instant>,
}

/// Where the breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Attempts go through.
    Closed,
    /// No attempts until the cool-down ends.
    Open,
    /// One probe may go (or is going) through.
    HalfOpen,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(settings: BreakerSettings) -> Self {
        Self {
            settings,
            consecutive: 0,
            cooldown: settings.cooldown,
            open_until: None,
            probing: false,
            paused_until: None,
            failing_since: None,
        }
    }

    /// The state at `now`.
    pub fn state(&self, now: Instant) -> BreakerState {
        match self.open_until {
            None => BreakerState::Closed,
            Some(t) if now < t => BreakerState::Open,
            Some(_) => BreakerState::HalfOpen,
        }
    }

    /// Whether an attempt may start at `now`.
    pub fn allows(&self, now: Instant) -> bool {
        if self.paused_until.is_some_and(|t| now < t) {
            return false;
        }
        match self.state(now) {
            BreakerState::Closed => true,
            BreakerState::Open => false,
            BreakerState::HalfOpen => !self.probing,
        }
    }

    /// An attempt starts at `now` (call only when [`Breaker::allows`]).
    pub fn started(&mut self, now: Instant) {
        if self.state(now) == BreakerState::HalfOpen {
            self.probing = true;
        }
    }

    /// An attempt succeeded.
    pub fn succeeded(&mut self) {
        self.consecutive = 0;
        self.cooldown = self.settings.cooldown;
        self.open_until = None;
        self.probing = false;
        self.failing_since = None;
    }

    /// An attempt failed at `now`. Returns true when this failure opened the breaker.
    pub fn failed(&mut self, now: Instant) -> bool {
        self.failing_since.get_or_insert(now);
        self.consecutive = self.consecutive.saturating_add(1);
        let was_probe = std::mem::take(&mut self.probing);
        if was_probe {
            self.cooldown = self
                .cooldown
                .saturating_mul(2)
                .min(self.settings.max_cooldown);
            self.open_until = Some(later(now, self.cooldown));
            return true;
        }
        if self.open_until.is_none() && self.consecutive >= self.settings.threshold.max(1) {
            self.open_until = Some(later(now, self.cooldown));
            return true;
        }
        false
    }

    /// The endpoint asked to be left alone until `until` (429 / 503 with `Retry-After`).
    /// Counts as a failure for how long the endpoint has been failing, not for the breaker.
    pub fn pause(&mut self, now: Instant, until: Instant) {
        self.failing_since.get_or_insert(now);
        self.probing = false;
        self.paused_until = Some(self.paused_until.map_or(until, |t| t.max(until)));
    }

    /// When something changes without an event: the end of a pause or of a cool-down.
    pub fn next_change(&self, now: Instant) -> Option<Instant> {
        [self.paused_until, self.open_until]
            .into_iter()
            .flatten()
            .filter(|t| *t > now)
            .min()
    }

    /// How long the endpoint has been failing without a success, at `now`.
    pub fn failing_for(&self, now: Instant) -> Option<Duration> {
        self.failing_since.map(|t| now.saturating_duration_since(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> BreakerSettings {
        BreakerSettings {
            threshold: 3,
            cooldown: Duration::from_secs(1),
            max_cooldown: Duration::from_secs(4),
        }
    }

    #[test]
    fn opens_after_threshold_probes_and_closes_on_success() {
        let t0 = Instant::now();
        let s = |ms: u64| t0 + Duration::from_millis(ms);
        let mut b = Breaker::new(settings());
        assert!(b.allows(t0));
        assert!(!b.failed(s(0)));
        assert!(!b.failed(s(10)));
        assert!(b.failed(s(20)), "the third failure opens it");
        assert_eq!(b.state(s(500)), BreakerState::Open);
        assert!(!b.allows(s(500)));
        assert_eq!(b.next_change(s(500)), Some(s(1020)));
        // Half-open: one probe only.
        assert!(b.allows(s(1020)));
        b.started(s(1020));
        assert!(!b.allows(s(1021)), "one probe at a time");
        assert!(b.failed(s(1100)), "a failed probe reopens");
        assert_eq!(b.next_change(s(1100)), Some(s(3100)), "cool-down doubled");
        b.started(s(3100));
        assert!(b.failed(s(3200)));
        assert_eq!(b.next_change(s(3200)), Some(s(7200)), "capped at 4 s");
        assert_eq!(b.failing_for(s(7200)), Some(Duration::from_millis(7200)));
        b.started(s(7200));
        b.succeeded();
        assert_eq!(b.state(s(7300)), BreakerState::Closed);
        assert_eq!(b.failing_for(s(7300)), None);
        // After a success the count starts over.
        assert!(!b.failed(s(8000)));
        assert!(!b.failed(s(8001)));
        assert!(b.failed(s(8002)));
        assert_eq!(b.next_change(s(8002)), Some(s(9002)), "cool-down reset");
    }

    #[test]
    fn retry_after_pauses_without_opening() {
        let t0 = Instant::now();
        let mut b = Breaker::new(settings());
        b.pause(t0, t0 + Duration::from_secs(5));
        assert!(!b.allows(t0 + Duration::from_secs(4)));
        assert_eq!(b.state(t0), BreakerState::Closed);
        assert!(b.allows(t0 + Duration::from_secs(5)));
        // A shorter pause does not cut a longer one short.
        b.pause(t0, t0 + Duration::from_secs(1));
        assert!(!b.allows(t0 + Duration::from_secs(2)));
        assert_eq!(
            b.failing_for(t0 + Duration::from_secs(3)),
            Some(Duration::from_secs(3))
        );
    }
}
