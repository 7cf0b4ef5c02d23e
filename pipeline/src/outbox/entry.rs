//! One message waiting in the outbox, as it is stored: the payload data (the mention contract,
//! a digest or a spike document) verbatim, with what delivery needs to know about it.
//!
//! Stored as JSON, so `earshot dlq list` can print an entry as it is and a store written by
//! one version stays readable by the next (fields are added with defaults, never renamed).

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// What a message announces: the Standard Webhooks `type` of the envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// A routed mention.
    #[serde(rename = "mention.created")]
    MentionCreated,
    /// A roll-up of mentions that noise control held back.
    #[serde(rename = "mention.digest")]
    MentionDigest,
    /// A brand's mention rate rose far above its baseline: `data` is the spike document.
    #[serde(rename = "spike.started")]
    SpikeStarted,
    /// A spike still under way, with its figures now (sent every `update_every`).
    #[serde(rename = "spike.updated")]
    SpikeUpdated,
    /// A spike's rate came back near its baseline and stayed there.
    #[serde(rename = "spike.ended")]
    SpikeEnded,
    /// The author deleted a post whose mention the queue was sent: `data` is the deletion
    /// ([`Deletion`]); the entry's id is `{mention_id}.deleted`.
    #[serde(rename = "mention.deleted")]
    MentionDeleted,
}

impl Event {
    /// The envelope `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Event::MentionCreated => "mention.created",
            Event::MentionDigest => "mention.digest",
            Event::SpikeStarted => "spike.started",
            Event::SpikeUpdated => "spike.updated",
            Event::SpikeEnded => "spike.ended",
            Event::MentionDeleted => "mention.deleted",
        }
    }
}

/// What a `mention.deleted` says: which mention's post was deleted, and where that post was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deletion {
    /// The mention whose post was deleted.
    pub mention_id: String,
    /// The post, as the mention named it.
    pub post: DeletedPost,
    /// When earshot learnt of the deletion, RFC 3339 UTC with milliseconds.
    pub deleted_at: String,
}

/// The deleted post, as the mention named it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedPost {
    /// `post.id` of the mention.
    pub id: String,
    /// `post.platform`.
    pub platform: String,
    /// `post.url`, when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `post.thread.key`: where the mention's case is kept.
    pub thread_key: String,
}

/// The mention a `mention.deleted` entry's data retracts, when it is one.
pub fn retracted_mention(data: &RawValue) -> Option<String> {
    #[derive(Deserialize)]
    struct Id {
        mention_id: String,
    }
    serde_json::from_str::<Id>(data.get())
        .ok()
        .map(|d| d.mention_id)
}

/// One message for one queue.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// The `webhook-id`: the receiver's idempotency key, the same on every attempt and after
    /// every restart (a mention's `mention_id`, a digest's `digest_id`, a spike event's
    /// `{spike_id}.started`, `{spike_id}.updated.{n}` or `{spike_id}.ended`).
    pub id: String,
    /// What the message announces.
    pub event: Event,
    /// The payload data, verbatim JSON.
    pub data: Box<RawValue>,
    /// When earshot received the post (µs since the Unix epoch): where the latency budget
    /// starts.
    pub received_us: u64,
    /// When the entry was written to the outbox (µs since the Unix epoch).
    pub enqueued_us: u64,
    /// Attempts made so far.
    #[serde(default)]
    pub attempts: u32,
    /// What the last failed attempt ended with (`HTTP 503`, `connection refused`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the entry was given up and moved to the dead-letter store (µs since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_us: Option<u64>,
}

impl Entry {
    /// A fresh entry, not yet attempted.
    pub fn new(id: String, event: Event, data: Box<RawValue>, received_us: u64) -> Self {
        Self {
            id,
            event,
            data,
            received_us,
            enqueued_us: now_us(),
            attempts: 0,
            last_error: None,
            dead_us: None,
        }
    }

    /// The stored form.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an entry always serializes")
    }

    /// Reads the stored form.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// Microseconds since the Unix epoch, now.
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_data_verbatim() {
        let data = RawValue::from_string(r#"{"mention_id":"m_1", "text":"a\"b"}"#.into()).unwrap();
        let mut e = Entry::new("m_1".into(), Event::MentionCreated, data, 7);
        e.attempts = 3;
        e.last_error = Some("HTTP 503".into());
        let back = Entry::from_bytes(&e.to_bytes()).unwrap();
        assert_eq!(back.id, "m_1");
        assert_eq!(back.event, Event::MentionCreated);
        assert_eq!(back.data.get(), r#"{"mention_id":"m_1", "text":"a\"b"}"#);
        assert_eq!((back.received_us, back.attempts), (7, 3));
        assert_eq!(back.last_error.as_deref(), Some("HTTP 503"));
        let json: serde_json::Value = serde_json::from_slice(&e.to_bytes()).unwrap();
        assert_eq!(json["event"], "mention.created");
        assert!(json.get("dead_us").is_none());
    }

    /// The stored name of each event is its envelope `type`, so `earshot dlq list` and the
    /// receiver read the same word.
    #[test]
    fn events_are_stored_as_their_envelope_type() {
        for event in [
            Event::MentionCreated,
            Event::MentionDigest,
            Event::SpikeStarted,
            Event::SpikeUpdated,
            Event::SpikeEnded,
            Event::MentionDeleted,
        ] {
            let stored = serde_json::to_value(event).unwrap();
            assert_eq!(stored, event.as_str());
            assert_eq!(serde_json::from_value::<Event>(stored).unwrap(), event);
        }
    }
}
