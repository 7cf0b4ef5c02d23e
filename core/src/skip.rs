//! Why a frame did not become a post: the bounded set of reasons every skip is counted under.
//!
//! The accounting invariant of the pipeline is `frames received = posts decoded + Σ skipped by
//! reason`, so every path that drops a frame names one of these. The names are metric label
//! values (`earshot_stage_posts_dropped_total{stage,reason}`) and appear in `earshot replay`'s
//! summary; they never come from frame content.

use serde::Serialize;

/// Why a frame was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// Not valid JSON (including a truncated document).
    InvalidJson,
    /// Not valid UTF-8.
    InvalidUtf8,
    /// Larger than the configured frame limit.
    Oversize,
    /// Nested deeper than the configured depth limit.
    TooDeep,
    /// Valid JSON, but not of the shape the format requires (a required field missing or of
    /// the wrong type).
    WrongShape,
    /// An error or control object sent in-band by the stream (X `errors`, Mastodon
    /// `filters_changed`).
    StreamError,
    /// Replayed by the source after a reconnect and already processed.
    Duplicate,
    /// A like.
    Like,
    /// A repost / retweet / reblog without text of its own.
    Repost,
    /// A follow or unfollow.
    Follow,
    /// A block, list or other social-graph record.
    Graph,
    /// A deletion of any record.
    Delete,
    /// An update of an existing record (profile, status, edited post).
    Update,
    /// A record of any other collection (non-post lexicons).
    OtherRecord,
    /// A Jetstream identity event.
    Identity,
    /// A Jetstream account event.
    Account,
    /// Any other non-post event (notifications, announcements, conversations).
    OtherEvent,
    /// Not processed: shutdown came while the pipeline was full (an endpoint down, a disk
    /// full) and the frame's batch could not be handed on within the grace period. Its
    /// position was never checkpointed, so a source that resumes (a Jetstream cursor, a file
    /// offset) reads it again at the next start.
    Shutdown,
    /// A compressed message that does not decompress (damaged, or compressed with another
    /// dictionary), or whose content is larger than the frame limit says.
    Compression,
}

impl SkipReason {
    /// Every reason, for registering metrics and printing summaries in a fixed order.
    pub const ALL: [SkipReason; 19] = [
        SkipReason::InvalidJson,
        SkipReason::InvalidUtf8,
        SkipReason::Oversize,
        SkipReason::TooDeep,
        SkipReason::WrongShape,
        SkipReason::StreamError,
        SkipReason::Duplicate,
        SkipReason::Like,
        SkipReason::Repost,
        SkipReason::Follow,
        SkipReason::Graph,
        SkipReason::Delete,
        SkipReason::Update,
        SkipReason::OtherRecord,
        SkipReason::Identity,
        SkipReason::Account,
        SkipReason::OtherEvent,
        SkipReason::Shutdown,
        SkipReason::Compression,
    ];

    /// The metric label and summary name.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::InvalidJson => "invalid_json",
            SkipReason::InvalidUtf8 => "invalid_utf8",
            SkipReason::Oversize => "oversize",
            SkipReason::TooDeep => "too_deep",
            SkipReason::WrongShape => "wrong_shape",
            SkipReason::StreamError => "stream_error",
            SkipReason::Duplicate => "duplicate",
            SkipReason::Like => "like",
            SkipReason::Repost => "repost",
            SkipReason::Follow => "follow",
            SkipReason::Graph => "graph",
            SkipReason::Delete => "delete",
            SkipReason::Update => "update",
            SkipReason::OtherRecord => "other_record",
            SkipReason::Identity => "identity",
            SkipReason::Account => "account",
            SkipReason::OtherEvent => "other_event",
            SkipReason::Shutdown => "shutdown",
            SkipReason::Compression => "compression",
        }
    }

    /// Whether this reason is malformed input (as opposed to a well-formed non-post event).
    pub fn is_malformed(self) -> bool {
        matches!(
            self,
            SkipReason::InvalidJson
                | SkipReason::InvalidUtf8
                | SkipReason::Oversize
                | SkipReason::TooDeep
                | SkipReason::WrongShape
                | SkipReason::Compression
        )
    }

    /// Index into [`SkipReason::ALL`], for counting in a plain array on the hot path.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Skips counted per reason in a plain array: workers count here and flush per batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SkipCounts(pub [u64; SkipReason::ALL.len()]);

impl SkipCounts {
    /// Counts one skip.
    pub fn add(&mut self, reason: SkipReason) {
        self.0[reason.index()] += 1;
    }

    /// Sum over all reasons.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Adds another set of counts.
    pub fn merge(&mut self, other: &SkipCounts) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a += b;
        }
    }

    /// Non-zero counts, in [`SkipReason::ALL`] order.
    pub fn nonzero(&self) -> impl Iterator<Item = (SkipReason, u64)> + '_ {
        SkipReason::ALL
            .iter()
            .map(|r| (*r, self.0[r.index()]))
            .filter(|(_, n)| *n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_index_order_with_unique_names() {
        for (i, r) in SkipReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
        let mut names: Vec<_> = SkipReason::ALL.iter().map(|r| r.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), SkipReason::ALL.len());
    }
}
