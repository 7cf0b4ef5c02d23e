//! Held mentions and the digest that rolls them up: `[Held]` of one window → one [`Digest`].
//!
//! A [`Held`] is what the caller persists for a mention the gate held, until the digest that
//! counts it goes out: small (a [`Summary`], not the whole mention) because a storm can hold
//! thousands. [`Digest::build`] is a pure function of the queue, the window and the held
//! entries, so the same window rebuilt after a restart gives the same digest, id included.

use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::mention::Mention;
use crate::timestamp::rfc3339_millis;

/// Longest summary text, in characters: a tweet's length, enough to recognise a post in a
/// digest without carrying a long post once per held copy.
pub const SUMMARY_TEXT_CHARS: usize = 280;

/// Summaries a digest shows of the rate-limited mentions: the most urgent few, which a
/// person reads; the rest are counted.
pub const TOP_RATE_LIMITED: usize = 5;

/// Example summaries a digest shows per repost or storm group: enough to see what it is.
pub const EXAMPLES_PER_GROUP: usize = 3;

/// Why a mention was held instead of delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldReason {
    /// It reposts or quotes a post this queue has seen within the window.
    Repost,
    /// Its text is a near-duplicate of one this queue has seen within the window.
    Storm,
    /// Its author was delivered to this queue within the author cool-down.
    Cooldown,
    /// The queue's rate limit had no token left.
    RateLimited,
}

impl HoldReason {
    /// The snake_case name, also the metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            HoldReason::Repost => "repost",
            HoldReason::Storm => "storm",
            HoldReason::Cooldown => "cooldown",
            HoldReason::RateLimited => "rate_limited",
        }
    }
}

/// The author part of a [`Summary`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummaryAuthor {
    /// Platform id of the account.
    pub id: String,
    /// Handle without `@`, when known.
    pub handle: Option<String>,
}

/// A held mention in brief: what a digest shows of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// The mention's id, to fetch the full mention where the consumer keeps them.
    pub mention_id: String,
    /// Web page of the post, when known.
    pub url: Option<String>,
    /// Who wrote it.
    pub author: SummaryAuthor,
    /// The text, cut to [`SUMMARY_TEXT_CHARS`] characters (ending in `…` when cut).
    pub text: String,
    /// Urgency 0–100, which orders the rate-limited mentions of a digest.
    pub urgency: u8,
    /// Primary category (`complaint`, `crisis`, …).
    pub category: String,
    /// Sentiment label (`negative`, `neutral`, `positive`).
    pub sentiment: String,
    /// The brand of the first rule that matched, when any.
    pub brand: Option<String>,
}

impl Summary {
    /// The summary of a mention.
    pub fn of(m: &Mention) -> Summary {
        Summary {
            mention_id: m.mention_id.clone(),
            url: m.post.url.clone(),
            author: SummaryAuthor {
                id: m.post.author.id.clone(),
                handle: m.post.author.handle.clone(),
            },
            text: truncate_chars(&m.post.text, SUMMARY_TEXT_CHARS),
            urgency: m.urgency.score,
            category: m.category.as_str().to_owned(),
            sentiment: m.sentiment.label.as_str().to_owned(),
            brand: m.matches.first().map(|hit| hit.brand.clone()),
        }
    }
}

/// `text` cut to at most `max` characters on a character boundary, the last one `…` when
/// anything was cut.
pub(super) fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some(_) => {
            let keep = max.saturating_sub(1);
            let end = text.char_indices().nth(keep).map_or(text.len(), |(i, _)| i);
            let mut out = String::with_capacity(end + '…'.len_utf8());
            out.push_str(&text[..end]);
            out.push('…');
            out
        }
    }
}

/// One held mention, compact: the caller persists it (as JSON) until the digest counting it
/// has gone out, so that a restart loses no held mention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// Why it was held.
    pub reason: HoldReason,
    /// What it was grouped by: the original's id for a repost, `simhash:<16 hex>` (the
    /// storm cluster's fingerprint) for a storm, `<platform>:<author id>` for a cool-down;
    /// none for the rate limit.
    pub key: Option<String>,
    /// The mention in brief.
    pub summary: Summary,
    /// When it was held (the gate's clock, milliseconds).
    pub at_ms: u64,
}

/// Held mentions by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ByReason {
    /// Held by the rate limit.
    pub rate_limited: usize,
    /// Reposts and quotes collapsed onto an original.
    pub repost: usize,
    /// Near-duplicate texts collapsed onto a storm cluster.
    pub storm: usize,
    /// Held by an author's cool-down.
    pub cooldown: usize,
}

/// The rate-limited part of a digest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RateLimited {
    /// How many were held by the rate limit.
    pub count: usize,
    /// The [`TOP_RATE_LIMITED`] most urgent, highest urgency first (then earliest).
    pub top: Vec<Summary>,
}

/// Reposts and quotes of one original.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepostGroup {
    /// The original's id (the form of `post.id`).
    pub original: String,
    /// How many were held.
    pub count: usize,
    /// Up to [`EXAMPLES_PER_GROUP`], most urgent first (then earliest).
    pub examples: Vec<Summary>,
}

/// Near-duplicate texts of one storm cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StormGroup {
    /// How many were held.
    pub count: usize,
    /// Up to [`EXAMPLES_PER_GROUP`], most urgent first (then earliest).
    pub examples: Vec<Summary>,
}

/// Mentions of one author held by the cool-down.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CooldownGroup {
    /// Platform id of the author.
    pub author: String,
    /// Handle without `@`, when known.
    pub handle: Option<String>,
    /// How many were held.
    pub count: usize,
}

/// The roll-up of everything a queue held in one window: one message instead of hundreds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Digest {
    /// `d_` and 24 hex digits of SHA-256 over the queue and the window start: the same window
    /// gives the same id after a restart, so a receiver can deduplicate a re-sent digest.
    pub digest_id: String,
    /// The queue it rolls up.
    pub queue: String,
    /// When the window opened (the first held mention), RFC 3339 UTC with milliseconds.
    pub window_start: String,
    /// When it closed, RFC 3339 UTC with milliseconds.
    pub window_end: String,
    /// Every held mention of the window.
    pub total: usize,
    /// `total` by reason.
    pub by_reason: ByReason,
    /// The rate-limited mentions.
    pub rate_limited: RateLimited,
    /// Reposts and quotes by original, most reposted first.
    pub reposts: Vec<RepostGroup>,
    /// Storms, biggest first.
    pub storms: Vec<StormGroup>,
    /// Cooled-down authors, most held first.
    pub cooldown: Vec<CooldownGroup>,
}

impl Digest {
    /// Builds the digest of `held` for `queue` over `[window_start_ms, window_end_ms]`
    /// (milliseconds since the Unix epoch, written as RFC 3339). Groups and examples are
    /// ordered deterministically (ties by first held time, then id), so the same held
    /// entries in any order give the same digest.
    pub fn build(queue: &str, window_start_ms: u64, window_end_ms: u64, held: &[Held]) -> Digest {
        let mut by_reason = ByReason::default();
        let mut rate_limited: Vec<&Held> = Vec::new();
        let mut reposts = Groups::default();
        let mut storms = Groups::default();
        let mut cooldown = Groups::default();
        for h in held {
            let key = h.key.as_deref().unwrap_or("");
            match h.reason {
                HoldReason::RateLimited => {
                    by_reason.rate_limited += 1;
                    rate_limited.push(h);
                }
                HoldReason::Repost => {
                    by_reason.repost += 1;
                    reposts.add(key, h);
                }
                HoldReason::Storm => {
                    by_reason.storm += 1;
                    storms.add(key, h);
                }
                HoldReason::Cooldown => {
                    by_reason.cooldown += 1;
                    cooldown.add(key, h);
                }
            }
        }
        let rate_limited = RateLimited {
            count: rate_limited.len(),
            top: most_urgent(rate_limited, TOP_RATE_LIMITED),
        };
        let reposts = reposts
            .biggest_first()
            .into_iter()
            .map(|(original, members)| RepostGroup {
                original: original.to_owned(),
                count: members.len(),
                examples: most_urgent(members, EXAMPLES_PER_GROUP),
            })
            .collect();
        let storms = storms
            .biggest_first()
            .into_iter()
            .map(|(_, members)| StormGroup {
                count: members.len(),
                examples: most_urgent(members, EXAMPLES_PER_GROUP),
            })
            .collect();
        let cooldown = cooldown
            .biggest_first()
            .into_iter()
            .map(|(_, members)| {
                let author = &members[0].summary.author;
                CooldownGroup {
                    author: author.id.clone(),
                    handle: members
                        .iter()
                        .find_map(|h| h.summary.author.handle.clone())
                        .or_else(|| author.handle.clone()),
                    count: members.len(),
                }
            })
            .collect();
        Digest {
            digest_id: digest_id(queue, window_start_ms),
            queue: queue.to_owned(),
            window_start: rfc3339_millis(UNIX_EPOCH + Duration::from_millis(window_start_ms)),
            window_end: rfc3339_millis(UNIX_EPOCH + Duration::from_millis(window_end_ms)),
            total: held.len(),
            by_reason,
            rate_limited,
            reposts,
            storms,
            cooldown,
        }
    }
}

/// Held entries grouped by key, in order of first appearance.
#[derive(Default)]
struct Groups<'h> {
    index: foldhash::HashMap<&'h str, usize>,
    groups: Vec<(&'h str, Vec<&'h Held>)>,
}

impl<'h> Groups<'h> {
    fn add(&mut self, key: &'h str, h: &'h Held) {
        let groups = &mut self.groups;
        let i = *self.index.entry(key).or_insert_with(|| {
            groups.push((key, Vec::new()));
            groups.len() - 1
        });
        self.groups[i].1.push(h);
    }

    /// The groups ordered by size, then first held time, then key.
    fn biggest_first(self) -> Vec<(&'h str, Vec<&'h Held>)> {
        let mut keyed: Vec<(u64, &'h str, Vec<&'h Held>)> = self
            .groups
            .into_iter()
            .map(|(key, members)| {
                let first = members.iter().map(|h| h.at_ms).min().unwrap_or(0);
                (first, key, members)
            })
            .collect();
        keyed.sort_by(|(fa, ka, a), (fb, kb, b)| {
            b.len().cmp(&a.len()).then(fa.cmp(fb)).then(ka.cmp(kb))
        });
        keyed
            .into_iter()
            .map(|(_, key, members)| (key, members))
            .collect()
    }
}

/// Orders held entries most urgent first, then earliest, then by mention id.
fn by_urgency(a: &&Held, b: &&Held) -> std::cmp::Ordering {
    b.summary
        .urgency
        .cmp(&a.summary.urgency)
        .then(a.at_ms.cmp(&b.at_ms))
        .then_with(|| a.summary.mention_id.cmp(&b.summary.mention_id))
}

/// The `n` most urgent summaries.
fn most_urgent(mut members: Vec<&Held>, n: usize) -> Vec<Summary> {
    members.sort_by(by_urgency);
    members
        .into_iter()
        .take(n)
        .map(|h| h.summary.clone())
        .collect()
}

/// `d_` + 24 hex digits of SHA-256 over the queue and the window start.
fn digest_id(queue: &str, window_start_ms: u64) -> String {
    let mut h = Sha256::new();
    h.update(queue.as_bytes());
    h.update([0u8]);
    h.update(window_start_ms.to_be_bytes());
    let digest = h.finalize();
    let mut id = String::with_capacity(26);
    id.push_str("d_");
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in &digest[..12] {
        id.push(char::from(HEX[usize::from(b >> 4)]));
        id.push(char::from(HEX[usize::from(b & 15)]));
    }
    id
}
