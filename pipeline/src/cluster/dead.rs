//! The cluster's dead letters, in the stream [`DLQ_STREAM`] (subject `earshot.dlq.<queue>`):
//! what `earshot dlq list | replay | purge` does when the config has `[cluster]`.
//!
//! The deliver role writes a dead letter as the queue's outbox [`Entry`] in JSON, with its
//! attempts, last error and time of death, or, for a message that no longer parsed as an
//! entry, as the bytes it found. The operations:
//!
//! - **list** reads without consuming: an ordered consumer (ephemeral, in memory, without
//!   acknowledgements; the server forgets it 30 s after its last read) from the first message
//!   to the last one there was when it started. One command reads at most `limit` messages
//!   ([`MAX_READ`] from the CLI), so its time and memory stay bounded whatever the stream
//!   holds; [`Read::unread`] says how many it left.
//! - **replay** publishes each selected entry to its queue's subject of [`QUEUES_STREAM`],
//!   attempts reset and error and time of death cleared, waits for the stream's
//!   acknowledgement, and only then deletes the dead letter. A command cut off between the
//!   two leaves the letter in both streams. Its `Nats-Msg-Id`
//!   (`<queue>:<id>:replay:<sequence in EARSHOT_DLQ>`, [`replay_msg_id`]) differs from the
//!   original publish's `<queue>:<id>`, which the stream would drop as a repeat within its
//!   de-duplication window, and is the same when the same letter is replayed again: a second
//!   replay within the window is taken as a repeat and only finishes the delete. An unreadable
//!   letter cannot be replayed; it is reported and left where it is.
//! - **purge** deletes the selected letters one by one, or, when no ids narrow the selection,
//!   the queue's whole subject (the whole stream with `all`) in one request.
//!
//! An unreadable letter's id is `unreadable-<its sequence in EARSHOT_DLQ>` ([`unreadable_id`]),
//! so `--id` selects it as it selects an entry by its `webhook-id`.

use std::collections::BTreeSet;
use std::time::{Duration, UNIX_EPOCH};

use async_nats::jetstream::{self, consumer::pull, stream::Stream};
use bytes::Bytes;
use futures_util::StreamExt as _;

use super::{dlq_subject, queue_subject, DLQ_STREAM, QUEUES_STREAM};
use crate::config::cluster::ClusterSettings;
use crate::dlq::{DeadLetter, Filter};
use crate::outbox::entry::{now_us, Entry};
use crate::outbox::store::Stored;
use crate::sink::nats::NatsSetupError;
use crate::timestamp::rfc3339_millis;

/// The most dead letters one `earshot dlq` command reads from the stream: a few tens of
/// megabytes of entries at most. A replay or an id purge over more is run again for the rest
/// (each run removes what it did); a whole queue's purge is one request and has no limit.
pub const MAX_READ: usize = 10_000;

/// What every dead-letter subject starts with ([`dlq_subject`]).
const SUBJECT_PREFIX: &str = "earshot.dlq.";

/// The queue a dead-letter subject belongs to.
pub fn queue_of(subject: &str) -> Option<&str> {
    subject
        .strip_prefix(SUBJECT_PREFIX)
        .filter(|q| !q.is_empty())
}

/// The id an unreadable dead letter is listed and selected by.
pub fn unreadable_id(seq: u64) -> String {
    format!("unreadable-{seq}")
}

/// The `Nats-Msg-Id` of the replay of dead letter `seq` (its sequence in EARSHOT_DLQ) of
/// `queue`, entry `id`: never the original publish's `<queue>:<id>`, always the same for the
/// same letter (see the module docs).
pub fn replay_msg_id(queue: &str, id: &str, seq: u64) -> String {
    format!("{queue}:{id}:replay:{seq}")
}

/// `entry` as a replay puts it back: attempts reset, no error, not dead.
pub fn replayed(entry: &Entry) -> Entry {
    let mut e = entry.clone();
    e.attempts = 0;
    e.last_error = None;
    e.dead_us = None;
    e
}

/// One dead letter as read from the stream.
#[derive(Debug, Clone)]
pub struct Found {
    /// Queue id.
    pub queue: String,
    /// Its sequence in EARSHOT_DLQ.
    pub seq: u64,
    /// When the stream stored it (µs since the Unix epoch).
    pub stored_us: u64,
    /// What it holds.
    pub content: Content,
}

/// What a dead letter holds.
#[derive(Debug, Clone)]
pub enum Content {
    /// An outbox entry.
    Entry(Entry),
    /// Bytes that are not one: an entry that no longer parsed when it was given up.
    Unreadable {
        /// The bytes.
        bytes: Bytes,
        /// Why they do not parse.
        error: String,
    },
}

impl Found {
    /// The dead letter stored as message `seq` on `subject`, at `stored_us`; `None` when
    /// `subject` is not a dead-letter subject.
    pub fn parse(subject: &str, seq: u64, stored_us: u64, payload: &Bytes) -> Option<Found> {
        let queue = queue_of(subject)?.to_string();
        let content = match Entry::from_bytes(payload) {
            Ok(entry) => Content::Entry(entry),
            Err(e) => Content::Unreadable {
                bytes: payload.clone(),
                error: e.to_string(),
            },
        };
        Some(Found {
            queue,
            seq,
            stored_us,
            content,
        })
    }

    /// The `webhook-id`, or [`unreadable_id`].
    pub fn id(&self) -> String {
        match &self.content {
            Content::Entry(e) => e.id.clone(),
            Content::Unreadable { .. } => unreadable_id(self.seq),
        }
    }

    /// Whether `filter` selects it (`filter.all` only matters to a purge's scope).
    pub fn selected(&self, filter: &Filter) -> bool {
        filter.queue.as_deref().is_none_or(|q| q == self.queue)
            && (filter.ids.is_empty() || filter.ids.contains(&self.id()))
    }

    /// As `earshot dlq list` shows a dead letter. An unreadable one has the event `-`, its
    /// parse error as last error, the stream's time for both times, and its bytes as text.
    pub fn letter(&self) -> DeadLetter {
        let stored_at = at(self.stored_us);
        match &self.content {
            Content::Entry(entry) => {
                let mut letter = DeadLetter::from(Stored {
                    queue: self.queue.clone(),
                    seq: self.seq,
                    entry: entry.clone(),
                });
                letter.dead_at.get_or_insert(stored_at);
                letter
            }
            Content::Unreadable { bytes, error } => DeadLetter {
                queue: self.queue.clone(),
                id: self.id(),
                event: "-".into(),
                attempts: 0,
                last_error: Some(format!("unreadable ({} bytes): {error}", bytes.len())),
                received_at: stored_at.clone(),
                dead_at: Some(stored_at),
                data: serde_json::Value::String(String::from_utf8_lossy(bytes).into_owned()),
            },
        }
    }
}

fn at(us: u64) -> String {
    rfc3339_millis(UNIX_EPOCH + Duration::from_micros(us))
}

/// What a purge deletes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PurgeScope {
    /// Every dead letter of every queue: `all` without a queue or ids.
    Stream,
    /// Everything on one subject: a queue without ids.
    Subject(String),
    /// The letters the filter selects, read and deleted one by one: ids.
    Selected,
}

/// The scope of a purge with `filter`; none when it names nothing (that would delete every
/// dead letter without `all` saying so).
pub fn purge_scope(filter: &Filter) -> Result<PurgeScope, DeadError> {
    match (&filter.queue, filter.ids.is_empty(), filter.all) {
        (_, false, _) => Ok(PurgeScope::Selected),
        (Some(q), true, _) => Ok(PurgeScope::Subject(dlq_subject(q))),
        (None, true, true) => Ok(PurgeScope::Stream),
        (None, true, false) => Err(DeadError::Unfiltered),
    }
}

/// Why a dead-letter operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DeadError {
    /// The client cannot be set up (credentials, CA).
    #[error("{0}")]
    Setup(#[from] NatsSetupError),
    /// No server answered within the timeout.
    #[error("cannot reach the cluster's servers ([cluster] url) within {0:?}")]
    Unreachable(Duration),
    /// A request to the servers failed.
    #[error("{what}: {reason}")]
    Request {
        /// What was asked.
        what: String,
        /// What went wrong.
        reason: String,
    },
    /// A purge that names no queue, no ids and not `all`.
    #[error("a purge deletes dead letters for good: name a queue, ids, or all")]
    Unfiltered,
}

fn failed(what: impl Into<String>, reason: impl ToString) -> DeadError {
    DeadError::Request {
        what: what.into(),
        reason: reason.to_string(),
    }
}

/// Connects to the cluster of `settings` to work on its dead letters: a client of its own
/// (`earshot-dlq:<node>`), which creates and changes no stream; waits up to the cluster's
/// timeout for the connection.
pub async fn connect(settings: &ClusterSettings) -> Result<jetstream::Context, DeadError> {
    let name = format!("earshot-dlq:{}", settings.node());
    let client = crate::sink::nats::client(&settings.nats(), &name).await?;
    // The client connects in the background: wait for it here, so that an unreachable
    // cluster is named as such rather than as a request that timed out.
    let deadline = tokio::time::Instant::now() + settings.timeout;
    while client.connection_state() != async_nats::connection::State::Connected {
        if tokio::time::Instant::now() >= deadline {
            return Err(DeadError::Unreachable(settings.timeout));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut js = jetstream::new(client);
    js.set_timeout(settings.timeout);
    Ok(js)
}

/// The dead letters a command read.
#[derive(Debug, Default)]
pub struct Read {
    /// Those the filter selects, in stream order.
    pub letters: Vec<Found>,
    /// Messages of the queue (or of every queue) in the stream when reading started.
    pub total: u64,
    /// How many were left unread: by the limit, or because they arrived while reading.
    pub unread: u64,
}

/// The cluster's dead-letter stream.
pub struct DeadLetters {
    js: jetstream::Context,
    /// `None` when no node created the stream yet: there are no dead letters.
    stream: Option<Stream>,
    /// How long one message may take to arrive, and a publish its acknowledgement.
    timeout: Duration,
}

impl DeadLetters {
    /// The stream on `js`; `timeout` bounds each read and each publish.
    pub async fn open(js: &jetstream::Context, timeout: Duration) -> Result<Self, DeadError> {
        use async_nats::jetstream::context::GetStreamErrorKind;
        use async_nats::jetstream::ErrorCode;
        let stream = match js.get_stream(DLQ_STREAM).await {
            Ok(s) => Some(s),
            Err(e) => match e.kind() {
                GetStreamErrorKind::JetStream(j)
                    if j.error_code() == ErrorCode::STREAM_NOT_FOUND =>
                {
                    None
                }
                _ => return Err(failed(format!("stream {DLQ_STREAM}"), e)),
            },
        };
        Ok(Self {
            js: js.clone(),
            stream,
            timeout,
        })
    }

    /// Reads the dead letters of `filter.queue` (of every queue without one) from the first
    /// on, at most `limit` messages, and keeps those `filter` selects. Consumes nothing.
    pub async fn read(&self, filter: &Filter, limit: usize) -> Result<Read, DeadError> {
        let Some(stream) = &self.stream else {
            return Ok(Read::default());
        };
        let mut consumer = stream
            .create_consumer(pull::OrderedConfig {
                description: Some("earshot dlq: reading dead letters".into()),
                filter_subject: filter.queue.as_deref().map(dlq_subject).unwrap_or_default(),
                ..Default::default()
            })
            .await
            .map_err(|e| failed("a reader of the dead letters", e))?;
        let total = consumer
            .info()
            .await
            .map_err(|e| failed("the reader's state", e))?
            .num_pending;
        let mut read = Read {
            total,
            unread: total,
            ..Read::default()
        };
        if total == 0 || limit == 0 {
            return Ok(read);
        }
        let mut messages = consumer
            .messages()
            .await
            .map_err(|e| failed("reading the dead letters", e))?;
        let mut scanned = 0usize;
        loop {
            let next = tokio::time::timeout(self.timeout, messages.next()).await;
            let message = match next {
                Ok(Some(Ok(m))) => m,
                Ok(Some(Err(e))) => return Err(failed("reading the dead letters", e)),
                Ok(None) => break,
                Err(_) => {
                    return Err(failed(
                        "reading the dead letters",
                        format!(
                            "no message within {:?}, {scanned} of {total} read",
                            self.timeout
                        ),
                    ))
                }
            };
            let info = message
                .info()
                .map_err(|e| failed("a dead letter's metadata", e))?;
            let (seq, pending) = (info.stream_sequence, info.pending);
            let stored_us = u64::try_from(info.published.unix_timestamp_nanos() / 1000)
                .unwrap_or_else(|_| now_us());
            scanned += 1;
            if let Some(found) =
                Found::parse(message.subject.as_str(), seq, stored_us, &message.payload)
            {
                if found.selected(filter) {
                    read.letters.push(found);
                }
            }
            read.unread = pending;
            // Up to the last letter there was at the start: what arrives while reading is
            // counted as unread, not read.
            if pending == 0 || scanned >= limit || scanned as u64 >= total {
                break;
            }
        }
        Ok(read)
    }

    /// Puts every dead letter `filter` selects among the first `limit` back on its queue's
    /// subject (see the module docs), stopping at the first failure.
    pub async fn replay(&self, filter: &Filter, limit: usize) -> Replayed {
        let mut done = Replayed::default();
        let read = match self.read(filter, limit).await {
            Ok(r) => r,
            Err(e) => {
                done.stopped = Some(e);
                return done;
            }
        };
        done.unread = read.unread;
        for found in read.letters {
            let entry = match &found.content {
                Content::Entry(entry) => entry,
                Content::Unreadable { .. } => {
                    done.unreadable.push(found);
                    continue;
                }
            };
            if let Err(e) = self.replay_one(&found, entry).await {
                done.stopped = Some(e);
                break;
            }
            done.replayed += 1;
            done.queues.insert(found.queue.clone());
        }
        done
    }

    async fn replay_one(&self, found: &Found, entry: &Entry) -> Result<(), DeadError> {
        let Some(stream) = &self.stream else {
            return Ok(());
        };
        let what = || format!("replaying {} of queue {}", entry.id, found.queue);
        let msg_id = replay_msg_id(&found.queue, &entry.id, found.seq);
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, msg_id.as_str());
        headers.insert(super::deliver::REPLAY_HEADER, "1");
        let body = Bytes::from(replayed(entry).to_bytes());
        let publish = async {
            self.js
                .publish_with_headers(queue_subject(&found.queue), headers, body)
                .await?
                .await
        };
        match tokio::time::timeout(self.timeout, publish).await {
            // A repeat is the replay of an earlier command that did not finish its delete.
            Ok(Ok(_ack)) => {}
            Ok(Err(e)) => return Err(failed(what(), format!("{QUEUES_STREAM}: {e}"))),
            Err(_) => {
                return Err(failed(
                    what(),
                    format!(
                        "no acknowledgement from {QUEUES_STREAM} within {:?}",
                        self.timeout
                    ),
                ))
            }
        }
        stream.delete_message(found.seq).await.map_err(|e| {
            failed(
                what(),
                format!(
                    "it is back on its queue, but deleting dead letter {} failed ({e}); \
                     replaying it again within 10 minutes only deletes it",
                    found.seq
                ),
            )
        })?;
        Ok(())
    }

    /// Deletes what `filter` selects ([`purge_scope`]); letter by letter, among the first
    /// `limit`. Returns how many were deleted.
    pub async fn purge(&self, filter: &Filter, limit: usize) -> Result<Purged, DeadError> {
        let scope = purge_scope(filter)?;
        let Some(stream) = &self.stream else {
            return Ok(Purged::default());
        };
        let whole = |r: Result<jetstream::stream::PurgeResponse, _>| {
            r.map(|p| Purged {
                purged: p.purged,
                unread: 0,
            })
            .map_err(|e: jetstream::stream::PurgeError| failed(format!("purging {DLQ_STREAM}"), e))
        };
        match scope {
            PurgeScope::Stream => whole(stream.purge().await),
            PurgeScope::Subject(subject) => whole(stream.purge().filter(subject).await),
            PurgeScope::Selected => {
                let read = self.read(filter, limit).await?;
                let mut purged = 0;
                for found in &read.letters {
                    let deleted = stream
                        .delete_message(found.seq)
                        .await
                        .map_err(|e| failed(format!("deleting dead letter {}", found.id()), e))?;
                    purged += u64::from(deleted);
                }
                Ok(Purged {
                    purged,
                    unread: read.unread,
                })
            }
        }
    }
}

/// What a replay did.
#[derive(Debug, Default)]
pub struct Replayed {
    /// Entries put back on their queues (and deleted from the dead letters).
    pub replayed: usize,
    /// The queues they went back to.
    pub queues: BTreeSet<String>,
    /// Selected letters left in place because they are not entries.
    pub unreadable: Vec<Found>,
    /// Letters left unread by the limit.
    pub unread: u64,
    /// The failure that stopped the replay before its end, if one did.
    pub stopped: Option<DeadError>,
}

/// What a purge did.
#[derive(Debug, Default)]
pub struct Purged {
    /// Letters deleted.
    pub purged: u64,
    /// Letters left unread by the limit (an id purge).
    pub unread: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::entry::Event;
    use serde_json::value::RawValue;

    fn entry(id: &str) -> Entry {
        let data = RawValue::from_string(format!(r#"{{"mention_id":"{id}"}}"#)).unwrap();
        let mut e = Entry::new(id.into(), Event::MentionCreated, data, 1_000_000);
        e.attempts = 5;
        e.last_error = Some("HTTP 503".into());
        e.dead_us = Some(2_000_000);
        e
    }

    fn found(subject: &str, seq: u64, body: &[u8]) -> Found {
        Found::parse(subject, seq, 3_000_000, &Bytes::copy_from_slice(body)).unwrap()
    }

    fn filter(queue: Option<&str>, ids: &[&str], all: bool) -> Filter {
        Filter {
            queue: queue.map(String::from),
            ids: ids.iter().map(|s| s.to_string()).collect(),
            all,
        }
    }

    #[test]
    fn subjects_name_their_queue() {
        for (subject, queue) in [
            ("earshot.dlq.support", Some("support")),
            (dlq_subject("crisis").as_str(), Some("crisis")),
            ("earshot.dlq.", None),
            ("earshot.queue.support", None),
            ("other", None),
        ] {
            assert_eq!(queue_of(subject), queue, "{subject}");
        }
        assert!(Found::parse("earshot.held.a", 1, 0, &Bytes::new()).is_none());
    }

    /// The replay's id is not the original publish's (which the stream would drop as a repeat
    /// for ten minutes), and is the same for the same letter (so a second replay is one).
    #[test]
    fn a_replay_has_its_own_message_id_stable_per_letter() {
        let original = format!("{}:{}", "support", "m_1");
        let id = replay_msg_id("support", "m_1", 7);
        assert_eq!(id, "support:m_1:replay:7");
        assert_ne!(id, original);
        assert_eq!(id, replay_msg_id("support", "m_1", 7));
        assert_ne!(id, replay_msg_id("support", "m_1", 8));
    }

    #[test]
    fn a_replayed_entry_starts_again() {
        let e = entry("m_1");
        let r = replayed(&e);
        assert_eq!((r.attempts, r.last_error, r.dead_us), (0, None, None));
        assert_eq!((r.id.as_str(), r.event), ("m_1", Event::MentionCreated));
        assert_eq!(r.data.get(), e.data.get());
        assert_eq!(
            (r.received_us, r.enqueued_us),
            (e.received_us, e.enqueued_us)
        );
    }

    #[test]
    fn letters_read_as_the_single_node_lists_them() {
        let f = found("earshot.dlq.support", 4, &entry("m_1").to_bytes());
        assert_eq!(f.id(), "m_1");
        let l = f.letter();
        assert_eq!((l.queue.as_str(), l.id.as_str()), ("support", "m_1"));
        assert_eq!((l.event.as_str(), l.attempts), ("mention.created", 5));
        assert_eq!(l.last_error.as_deref(), Some("HTTP 503"));
        assert_eq!(l.dead_at.as_deref(), Some("1970-01-01T00:00:02.000Z"));
        assert_eq!(l.data["mention_id"], "m_1");

        // Without a time of death, the stream's time stands in.
        let mut e = entry("m_2");
        e.dead_us = None;
        let l = found("earshot.dlq.support", 5, &e.to_bytes()).letter();
        assert_eq!(l.dead_at.as_deref(), Some("1970-01-01T00:00:03.000Z"));

        let bad = found("earshot.dlq.crisis", 9, b"{not an entry");
        assert!(matches!(bad.content, Content::Unreadable { .. }));
        assert_eq!(bad.id(), "unreadable-9");
        let l = bad.letter();
        assert_eq!(
            (l.queue.as_str(), l.id.as_str(), l.event.as_str()),
            ("crisis", "unreadable-9", "-")
        );
        assert!(l.last_error.unwrap().starts_with("unreadable (13 bytes): "));
        assert_eq!(l.data, "{not an entry");
    }

    #[test]
    fn filters_select_by_queue_and_id() {
        let a = found("earshot.dlq.a", 1, &entry("m_1").to_bytes());
        let bad = found("earshot.dlq.a", 2, b"\xff");
        let b = found("earshot.dlq.b", 3, &entry("m_2").to_bytes());
        let cases: &[(&str, Filter, [bool; 3])] = &[
            ("everything", filter(None, &[], false), [true, true, true]),
            (
                "a queue",
                filter(Some("a"), &[], false),
                [true, true, false],
            ),
            ("an id", filter(None, &["m_2"], false), [false, false, true]),
            (
                "an id elsewhere",
                filter(Some("a"), &["m_2"], false),
                [false, false, false],
            ),
            (
                "the unreadable",
                filter(None, &["unreadable-2"], false),
                [false, true, false],
            ),
            (
                "two ids",
                filter(None, &["m_1", "m_2"], true),
                [true, false, true],
            ),
        ];
        for (name, filter, want) in cases {
            let got = [&a, &bad, &b].map(|f| f.selected(filter));
            assert_eq!(&got, want, "{name}");
        }
    }

    #[test]
    fn a_purge_names_what_it_deletes() {
        let cases: &[(&str, Filter, Option<PurgeScope>)] = &[
            ("nothing named", filter(None, &[], false), None),
            ("all", filter(None, &[], true), Some(PurgeScope::Stream)),
            (
                "a queue",
                filter(Some("a"), &[], false),
                Some(PurgeScope::Subject("earshot.dlq.a".into())),
            ),
            (
                "a queue, all",
                filter(Some("a"), &[], true),
                Some(PurgeScope::Subject("earshot.dlq.a".into())),
            ),
            (
                "ids",
                filter(None, &["m_1"], false),
                Some(PurgeScope::Selected),
            ),
            (
                "a queue's ids",
                filter(Some("a"), &["m_1"], true),
                Some(PurgeScope::Selected),
            ),
        ];
        for (name, filter, want) in cases {
            assert_eq!(purge_scope(filter).ok(), *want, "{name}");
        }
    }
}
