//! Noise control: a routed mention → deliver it to the queue now, or hold it for the queue's
//! next digest.
//!
//! Brand teams stop reading a queue that pages them for every retweet of one post, every copy
//! of a copy-paste campaign and every reply of one angry author. Per queue, a [`NoiseGate`]
//! rolls those up: the first of a kind is delivered, the rest are held and counted in one
//! [`Digest`] per `digest_every`. Nothing disappears silently: every mention the gate sees is
//! either delivered ([`Verdict::Deliver`]) or held ([`Verdict::Hold`]), and every held
//! mention is one entry of a digest (the caller persists the [`Held`] entries and builds the
//! digest from them).
//!
//! # Checks, in order
//! 1. **Repost** (`reposts`): a mention whose `post.original` (the post it reposts or quotes)
//!    was seen by this queue within `window` — the original itself, or an earlier repost or
//!    quote of it — is held, keyed by the original. A first repost of an unseen original is
//!    not.
//! 2. **Storm** (`storm`): a mention whose text's SimHash ([`simhash`]) is within
//!    `storm_distance` bits of a storm cluster opened within `window` is held, keyed by the
//!    cluster's fingerprint. Links and handles do not count, so copies that differ only in
//!    them cluster; texts under [`MIN_WORDS`] words are never storm-collapsed.
//! 3. A mention that passes both is new: its own id, its original and its fingerprint are
//!    remembered (whether it is then delivered or held by what follows, so that reposts and
//!    copies of a rate-limited post are grouped with it in the digest).
//! 4. **Cool-down** (`author_cooldown`): an author delivered to this queue within the
//!    cool-down is held, keyed by `<platform>:<author id>`.
//! 5. **Rate limit** (`rate_limit`): a token bucket of `count` tokens refilled at `count` per
//!    `per`; a mention finding no token is held.
//!
//! Mentions whose recommended action is in `exempt` (say `escalate`) skip 4 and 5 (an exempt
//! delivery still takes a token when there is one, and starts its author's cool-down); they
//! are still collapsed by 1 and 2, since a repost of an escalated post is not news.
//! Memory is remembered from the time a mention was admitted, not refreshed by the copies
//! held after it: a storm that goes on for an hour delivers one member per `window`, and the
//! digests count the rest.
//!
//! # Shape
//! Pure: no I/O, no clock, no metrics. Time comes in as milliseconds from the caller (any
//! monotone epoch for the gate; the Unix epoch when building a digest, whose times are
//! written as dates); a time earlier than one already seen is taken as that one. The gate is
//! the explicit `&mut` state of one queue; the caller counts verdicts by [`HoldReason::as_str`].
//! Memory is bounded ([`MAX_REMEMBERED`]) and forgotten by age with FIFO queues, and a storm
//! lookup touches only the clusters sharing an LSH band with the text, never all of them.

mod digest;
mod fingerprint;
mod memory;
mod noticed;

#[cfg(test)]
mod tests;

use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

use crate::duration::DurationError;
use crate::mention::Mention;
use crate::stage::score::recommend::Action;

pub use self::digest::{
    ByReason, CooldownGroup, Digest, Held, HoldReason, RateLimited, RepostGroup, StormGroup,
    Summary, SummaryAuthor, EXAMPLES_PER_GROUP, SUMMARY_TEXT_CHARS, TOP_RATE_LIMITED,
};
pub use self::fingerprint::{hamming, simhash, word_count, MIN_WORDS};
pub use self::noticed::Noticed;

use self::memory::{Recent, StormIndex};

/// Most originals, storm clusters and authors one gate remembers (each). A queue's memory
/// must not grow with the firehose: 100,000 distinct originals within a 10-minute window is
/// over 160 a second to one queue, far beyond what a brand queue sees, and costs a few tens
/// of MiB at worst. Past it the oldest are forgotten first, which can only let a repost or a
/// copy through that would have been held: more noise, never a lost mention.
pub const MAX_REMEMBERED: usize = 100_000;

/// Largest `storm_distance` accepted. The fingerprint is looked up in `distance + 1` bands of
/// `64 / (distance + 1)` bits; at 8 that is 9 bands of 7 bits, each bucket holding 1/128 of
/// the clusters, and beyond it a lookup approaches a scan while texts 9 or more bits apart
/// are no longer reliably copies of each other.
pub const MAX_STORM_DISTANCE: u32 = 8;

/// `[queue.noise]`: how one queue rolls up reposts, storms and repeat authors.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NoiseConfig {
    /// Hold reposts and quotes of a post this queue has seen (delivered or held) within
    /// `window`. Default on: a retweet wave is one story, not hundreds of alerts.
    pub reposts: bool,
    /// How long an original or a storm cluster stays remembered after the mention that
    /// brought it. Default 10 minutes: a retweet wave's peak, after which one more delivery
    /// tells the team the story is still moving.
    #[serde(with = "crate::duration")]
    pub window: Duration,
    /// Hold near-duplicate texts of one delivered within `window`. Default on.
    pub storm: bool,
    /// Largest distance, in bits of the 64-bit SimHash, between copies of one text. Default
    /// 3: copies differing only in links, handles, case or punctuation are 0 apart; one word
    /// changed in a long text moves it about 4 bits (so such edits collapse about half the
    /// time); unrelated texts are about 32 apart and rarely under 20. At most
    /// [`MAX_STORM_DISTANCE`].
    pub storm_distance: u32,
    /// After an author is delivered, hold that author's further mentions to this queue for
    /// this long (authors are remembered this long). Default 0: off.
    #[serde(with = "crate::duration")]
    pub author_cooldown: Duration,
    /// At most `count` deliveries per `per` (a token bucket with a burst of `count`),
    /// written `"60/1m"`; the excess is held for the digest. Default none.
    pub rate_limit: Option<Rate>,
    /// How long a digest window stays open after its first held mention before the digest
    /// is due. Default 1 minute: soon enough to act on, few enough to read.
    #[serde(with = "crate::duration")]
    pub digest_every: Duration,
    /// Recommended actions never held by the cool-down or the rate limit (e.g.
    /// `["escalate"]`), because they must reach someone now. Reposts and storms of them are
    /// still collapsed. Default none.
    pub exempt: Vec<Action>,
}

impl Default for NoiseConfig {
    fn default() -> Self {
        Self {
            reposts: true,
            window: Duration::from_secs(600),
            storm: true,
            storm_distance: 3,
            author_cooldown: Duration::ZERO,
            rate_limit: None,
            digest_every: Duration::from_secs(60),
            exempt: Vec::new(),
        }
    }
}

/// A problem with a [`NoiseConfig`] that parsing alone cannot see.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoiseConfigError {
    /// `storm_distance` over [`MAX_STORM_DISTANCE`].
    #[error("storm_distance {distance} is more than {max} bits")]
    StormDistanceTooLarge {
        /// The configured distance.
        distance: u32,
        /// [`MAX_STORM_DISTANCE`].
        max: u32,
    },
    /// `window` is zero while reposts or storms are collapsed, which would collapse nothing.
    #[error("window is 0 while reposts or storm collapse is on; give it a duration, e.g. \"10m\", or turn them off")]
    ZeroWindow,
}

impl NoiseConfig {
    /// Checks what parsing cannot, reporting every problem (config validation calls this).
    pub fn validate(&self) -> Result<(), Vec<NoiseConfigError>> {
        let mut errors = Vec::new();
        if self.storm_distance > MAX_STORM_DISTANCE {
            errors.push(NoiseConfigError::StormDistanceTooLarge {
                distance: self.storm_distance,
                max: MAX_STORM_DISTANCE,
            });
        }
        if (self.reposts || self.storm) && self.window.is_zero() {
            errors.push(NoiseConfigError::ZeroWindow);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// A rate: at most `count` per `per`. Written `"N/period"`: `"60/1m"`, `"100/1h"`,
/// `"5/1s"` (a bare unit is one of it: `"60/m"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Rate {
    /// How many per period, at least 1; also the burst.
    pub count: u32,
    /// The period, at least one millisecond.
    pub per: Duration,
}

/// Why a rate string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateError {
    /// No `/` between the count and the period.
    #[error("rate {0:?} is not N/period; write it like \"60/1m\"")]
    NoSlash(String),
    /// The count is not a whole number from 1 to 4294967295.
    #[error("rate {0:?}: the count before `/` must be a whole number from 1 to 4294967295")]
    BadCount(String),
    /// The period does not parse as a duration.
    #[error("rate {rate:?}: the period after `/` is not a duration: {source}")]
    BadPeriod {
        /// The rate as written.
        rate: String,
        /// Why the period was refused.
        source: DurationError,
    },
    /// The period is under a millisecond.
    #[error("rate {0:?}: the period after `/` must be at least 1ms")]
    PeriodTooShort(String),
}

impl FromStr for Rate {
    type Err = RateError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let Some((count, period)) = text.split_once('/') else {
            return Err(RateError::NoSlash(text.to_owned()));
        };
        let count: u32 = count
            .trim()
            .parse()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| RateError::BadCount(text.to_owned()))?;
        let period = period.trim();
        let parsed = if !period.is_empty() && period.chars().all(char::is_alphabetic) {
            crate::duration::parse(&format!("1{period}"))
        } else {
            crate::duration::parse(period)
        };
        let per = parsed.map_err(|source| RateError::BadPeriod {
            rate: text.to_owned(),
            source,
        })?;
        if per < Duration::from_millis(1) {
            return Err(RateError::PeriodTooShort(text.to_owned()));
        }
        Ok(Rate { count, per })
    }
}

impl TryFrom<String> for Rate {
    type Error = RateError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

/// What the gate decided for one mention.
// A verdict is moved once, from the gate to the caller, who persists the `Held`: boxing it to
// shrink `Deliver` would add an allocation per hold and save nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Send it to the queue now.
    Deliver,
    /// Keep it for the queue's next digest (the caller persists the [`Held`]).
    Hold(Held),
}

/// A token bucket in integer arithmetic: the level is kept in token·milliseconds so that
/// refilling `count` tokens per `per_ms` never rounds.
#[derive(Debug, Clone)]
struct TokenBucket {
    count: u128,
    per_ms: u128,
    level: u128,
    last: Option<u64>,
}

impl TokenBucket {
    /// A full bucket.
    fn new(rate: Rate) -> Self {
        let count = u128::from(rate.count.max(1));
        let per_ms = rate.per.as_millis().max(1);
        Self {
            count,
            per_ms,
            level: count * per_ms,
            last: None,
        }
    }

    /// Takes a token at `now` if there is one.
    fn take(&mut self, now: u64) -> bool {
        if let Some(last) = self.last {
            let elapsed = u128::from(now.saturating_sub(last));
            self.level = (self.level + elapsed * self.count).min(self.count * self.per_ms);
        }
        self.last = Some(now);
        if self.level >= self.per_ms {
            self.level -= self.per_ms;
            true
        } else {
            false
        }
    }
}

/// The noise state of one queue: what it has seen recently, its rate limit, and the digest
/// window it is filling. Built from the queue's [`NoiseConfig`]; fed every routed mention in
/// order with [`NoiseGate::admit`].
#[derive(Debug)]
pub struct NoiseGate {
    config: NoiseConfig,
    window_ms: u64,
    cooldown_ms: u64,
    digest_every_ms: u64,
    /// Ids of posts seen (admitted mentions' own ids and originals).
    originals: Recent,
    /// `<platform>:<author id>` of authors delivered within the cool-down.
    authors: Recent,
    storms: StormIndex,
    bucket: Option<TokenBucket>,
    /// The latest time seen: the gate's clock never goes back.
    now: u64,
    /// When the first mention held since the last digest was held.
    window_start: Option<u64>,
    /// Mentions held since the last digest.
    held: usize,
}

/// Milliseconds of a duration, saturating.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl NoiseGate {
    /// The gate of a queue with `config`. A `storm_distance` over [`MAX_STORM_DISTANCE`] is
    /// taken as that ([`NoiseConfig::validate`] reports it).
    pub fn new(config: &NoiseConfig) -> NoiseGate {
        Self::with_cap(config, MAX_REMEMBERED)
    }

    /// [`NoiseGate::new`] remembering at most `cap` of each kind (tests use small caps).
    fn with_cap(config: &NoiseConfig, cap: usize) -> NoiseGate {
        NoiseGate {
            config: config.clone(),
            window_ms: millis(config.window),
            cooldown_ms: millis(config.author_cooldown),
            digest_every_ms: millis(config.digest_every),
            originals: Recent::with_cap(cap),
            authors: Recent::with_cap(cap),
            storms: StormIndex::new(config.storm_distance.min(MAX_STORM_DISTANCE), cap),
            bucket: config.rate_limit.map(TokenBucket::new),
            now: 0,
            window_start: None,
            held: 0,
        }
    }

    /// The configuration the gate was built from.
    pub fn config(&self) -> &NoiseConfig {
        &self.config
    }

    /// Advances the clock to `now_ms` (never back) and forgets what has aged out.
    fn tick(&mut self, now_ms: u64) -> u64 {
        self.now = self.now.max(now_ms);
        let now = self.now;
        self.originals.expire(now, self.window_ms);
        self.storms.expire(now, self.window_ms);
        self.authors.expire(now, self.cooldown_ms);
        now
    }

    /// Decides for one routed mention at `now_ms` (milliseconds, any monotone epoch; tests
    /// inject it).
    pub fn admit(&mut self, mention: &Mention, now_ms: u64) -> Verdict {
        self.admit_noticed(&Noticed::of(mention), now_ms)
    }

    /// [`NoiseGate::admit`] on what noise control reads of a mention (a mention that came as
    /// its contract's JSON).
    pub fn admit_noticed(&mut self, n: &Noticed, now_ms: u64) -> Verdict {
        let now = self.tick(now_ms);
        if self.config.reposts {
            if let Some(original) = n.original.as_deref() {
                if self.originals.get(original).is_some() {
                    return self.hold(HoldReason::Repost, Some(original.to_owned()), n, now);
                }
            }
        }
        let fingerprint = if self.config.storm {
            simhash(&n.text)
        } else {
            None
        };
        if let Some(cluster) = fingerprint.and_then(|fp| self.storms.find(fp)) {
            return self.hold(HoldReason::Storm, Some(storm_key(cluster)), n, now);
        }

        // New: remember it, whatever follows.
        if self.config.reposts {
            self.originals.insert(&n.post_id, now);
            if let Some(original) = n.original.as_deref() {
                self.originals.insert(original, now);
            }
        }
        if let Some(fp) = fingerprint {
            self.storms.insert(fp, now);
        }

        let exempt = self.config.exempt.contains(&n.action);
        let author = (self.cooldown_ms > 0).then_some(n.author_key.as_str());
        if let Some(author) = author {
            if !exempt && self.authors.get(author).is_some() {
                return self.hold(HoldReason::Cooldown, Some(author.to_owned()), n, now);
            }
        }
        if let Some(bucket) = &mut self.bucket {
            if !bucket.take(now) && !exempt {
                return self.hold(HoldReason::RateLimited, None, n, now);
            }
        }
        if let Some(author) = author {
            self.authors.insert(author, now);
        }
        Verdict::Deliver
    }

    fn hold(&mut self, reason: HoldReason, key: Option<String>, n: &Noticed, now: u64) -> Verdict {
        self.held += 1;
        self.window_start.get_or_insert(now);
        Verdict::Hold(Held {
            reason,
            key,
            summary: n.summary.clone(),
            at_ms: now,
        })
    }

    /// Whether a digest is due at `now_ms`: something was held and `digest_every` has passed
    /// since the first of it.
    pub fn digest_due(&self, now_ms: u64) -> bool {
        self.window_start
            .is_some_and(|start| now_ms.max(self.now) >= start.saturating_add(self.digest_every_ms))
    }

    /// When the open digest window started (its first held mention), if anything is held:
    /// the `window_start_ms` of [`Digest::build`].
    pub fn window_start(&self) -> Option<u64> {
        self.window_start
    }

    /// How many mentions were held since the last digest: the `total` the next one has.
    pub fn held_in_window(&self) -> usize {
        self.held
    }

    /// Tells the gate the digest of the open window went out at `now_ms`: the next held
    /// mention opens a new window.
    pub fn digest_sent(&mut self, now_ms: u64) {
        self.now = self.now.max(now_ms);
        self.window_start = None;
        self.held = 0;
    }

    /// Rebuilds state after a restart from a held entry the caller persisted (call it for
    /// each, in the order they were held): the window reopens at the earliest, so the next
    /// digest has the same window and id as before the restart; a repost's original and a
    /// storm's cluster are remembered again as of the time of the hold, so a wave that was
    /// being held goes on being held. A cool-down is not rebuilt (a hold does not say when the
    /// author was delivered): after a restart an author can be delivered once more.
    pub fn restore(&mut self, held: &Held) {
        self.held += 1;
        self.window_start = Some(
            self.window_start
                .map_or(held.at_ms, |start| start.min(held.at_ms)),
        );
        // Memory is kept in time order: an entry restored out of order is dated no earlier
        // than the latest one.
        let at = self.now.max(held.at_ms);
        self.now = at;
        let Some(key) = held.key.as_deref() else {
            return;
        };
        match held.reason {
            HoldReason::Repost if self.config.reposts => self.originals.insert(key, at),
            HoldReason::Storm if self.config.storm => {
                if let Some(fp) = parse_storm_key(key) {
                    if self.storms.find(fp) != Some(fp) {
                        self.storms.insert(fp, at);
                    }
                }
            }
            _ => {}
        }
    }

    /// How many originals, storm clusters and authors the gate remembers now.
    pub fn remembered(&self) -> (usize, usize, usize) {
        (self.originals.len(), self.storms.len(), self.authors.len())
    }
}

/// The [`Held::key`] of a storm cluster: `simhash:` and its fingerprint in 16 hex digits.
fn storm_key(fingerprint: u64) -> String {
    format!("simhash:{fingerprint:016x}")
}

/// The fingerprint of a storm key.
fn parse_storm_key(key: &str) -> Option<u64> {
    let hex = key.strip_prefix("simhash:")?;
    u64::from_str_radix(hex, 16).ok()
}
