//! What the detector says: the spike document delivered as `spike.started`, `spike.updated`
//! and `spike.ended` events (to the crisis queue, the live page and the metrics).

use serde::Serialize;

use super::terms::DrivingTerm;
use crate::rules::BrandKind;

/// Which count of a brand spiked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Series {
    /// Every mention of the brand.
    All,
    /// Its negative mentions: a crisis shows here first, often before the total moves much.
    Negative,
}

impl Series {
    /// Both, in index order.
    pub const BOTH: [Series; 2] = [Series::All, Series::Negative];

    /// The label value (`all`, `negative`).
    pub fn as_str(self) -> &'static str {
        match self {
            Series::All => "all",
            Series::Negative => "negative",
        }
    }

    /// 0 for all, 1 for negative.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Where a spike is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The first event of a spike.
    Started,
    /// The n-th periodic update (1, 2, …) while it lasts.
    Updated(u32),
    /// The rate has been back near the baseline for `end_after`.
    Ended,
}

impl Phase {
    /// `started`, `updated`, `ended`.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Started => "started",
            Phase::Updated(_) => "updated",
            Phase::Ended => "ended",
        }
    }
}

/// A post that drives a spike, as much of it as a responder needs to open it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct SpikePost {
    /// The mention id (the same as the post's `mention.created` event).
    pub mention_id: String,
    /// Web page of the post.
    pub url: Option<String>,
    /// Platform name.
    pub platform: String,
    /// Handle, or account id when there is no handle.
    pub author: String,
    /// Follower count, when known: the reach part of the ranking.
    pub followers: Option<u64>,
    /// Text, cut to 280 characters.
    pub text: String,
    /// Urgency 0–100: the first part of the ranking.
    pub urgency: u8,
    /// Sentiment label.
    pub sentiment: String,
}

impl SpikePost {
    /// Ranking: more urgent first, then more followers.
    pub(super) fn outranks(&self, other: &SpikePost) -> bool {
        (self.urgency, self.followers.unwrap_or(0)) > (other.urgency, other.followers.unwrap_or(0))
    }
}

/// The spike document: `data` of every spike event (README "Spike events").
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpikeDoc {
    /// Stable for one spike: `spk_<brand>_<series>_<start unix s>`.
    pub spike_id: String,
    /// `started`, `updated` or `ended`.
    pub event: &'static str,
    /// Brand id.
    pub brand: String,
    /// Ours or a competitor.
    pub brand_kind: BrandKind,
    /// Which count spiked.
    pub series: Series,
    /// When it started, RFC 3339 UTC with milliseconds.
    pub started_at: String,
    /// When this event was emitted.
    pub at: String,
    /// When it ended (`ended` only).
    pub ended_at: Option<String>,
    /// The window (seconds) that fired; rates below are over it.
    pub window_s: u32,
    /// Mentions per second over the window, now.
    pub rate: f64,
    /// Expected mentions per second (the baseline).
    pub baseline: f64,
    /// `rate / baseline`.
    pub ratio: f64,
    /// Highest rate so far.
    pub peak_rate: f64,
    /// Highest ratio so far.
    pub peak_ratio: f64,
    /// Mentions of the series since the spike began (its first window included).
    pub mentions: u64,
    /// Negative share of the brand's mentions over the window (`null` with no mentions).
    pub negative_share: Option<f64>,
    /// The Poisson tail probability of the count that started the spike.
    pub p_value: f64,
    /// Driving terms, best first.
    pub terms: Vec<DrivingTerm>,
    /// Top posts by urgency, then reach.
    pub posts: Vec<SpikePost>,
}

/// One thing the detector reports.
#[derive(Debug, Clone, PartialEq)]
pub struct SpikeEvent {
    /// Started, updated or ended.
    pub phase: Phase,
    /// The document.
    pub doc: SpikeDoc,
}

impl SpikeEvent {
    /// The webhook id and idempotency key: `{spike_id}.started`, `{spike_id}.updated.{n}`,
    /// `{spike_id}.ended`. Each event is its own message, stable across retries.
    pub fn id(&self) -> String {
        match self.phase {
            Phase::Updated(n) => format!("{}.updated.{n}", self.doc.spike_id),
            p => format!("{}.{}", self.doc.spike_id, p.as_str()),
        }
    }
}
