//! Noise control of a queue owned by a cluster node: the single node's [`NoiseGate`], fed
//! each mention as it is pulled from the queue's stream, its held mentions kept in
//! [`HELD_STREAM`] until the digest counting them is delivered.
//!
//! A held mention is published to `earshot.held.<queue>` before its queue message is
//! acknowledged, so it is never only in the owner's memory. A digest goes to the dispatcher as
//! an entry of its own; once it is delivered (or dead-lettered) the held mentions it counts
//! are purged from the stream. A node that takes the queue over reads the held mentions back
//! and restores the gate from them ([`NoiseGate::restore`]), so the open digest window, its
//! id and the waves being held go on; what it cannot restore is the rest of the gate's memory
//! (originals and authors seen but delivered), so right after a takeover it may deliver a
//! repost or an author's second post it would have held: more noise, never a lost mention.

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::consumer::pull::OrderedConfig;
use async_nats::jetstream::consumer::DeliverPolicy;
use bytes::Bytes;
use futures_util::StreamExt as _;
use tracing::{debug, warn};

use crate::cluster::{held_subject, HELD_STREAM};
use crate::metrics::{NOISE_DIGESTS, NOISE_HELD};
use crate::noise::{Digest, Held, NoiseConfig, NoiseGate, Noticed, Verdict};
use crate::outbox::entry::{now_us, Entry, Event};

/// Keys the dispatcher gives digests, above any stream sequence.
pub const DIGEST_SEQ: u64 = 1 << 62;

/// One queue's gate and what it holds.
pub struct QueueNoise {
    queue: String,
    js: async_nats::jetstream::Context,
    timeout: Duration,
    gate: NoiseGate,
    digest_every_ms: u64,
    /// Held mentions of the open window, with their sequence in the held stream.
    held: Vec<(u64, Held)>,
    /// Digests handed to the dispatcher: the last held sequence each one counts.
    digests: HashMap<u64, u64>,
    next_digest: u64,
}

/// What the gate says of one entry pulled from the queue's stream.
pub enum Admitted {
    /// Deliver it.
    Deliver,
    /// Held and stored: acknowledge its queue message.
    Held,
}

impl QueueNoise {
    /// The gate of `queue`, restored from what the held stream keeps for it.
    pub async fn restore(
        queue: &str,
        config: &NoiseConfig,
        js: &async_nats::jetstream::Context,
        timeout: Duration,
    ) -> Result<QueueNoise, String> {
        let mut gate = NoiseGate::new(config);
        let mut held = Vec::new();
        let stream = js
            .get_stream(HELD_STREAM)
            .await
            .map_err(|e| e.to_string())?;
        let mut consumer = stream
            .create_consumer(OrderedConfig {
                filter_subject: held_subject(queue),
                deliver_policy: DeliverPolicy::All,
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?;
        let pending = consumer
            .info()
            .await
            .map_err(|e| e.to_string())?
            .num_pending;
        if pending > 0 {
            let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
            for _ in 0..pending {
                let m = match tokio::time::timeout(timeout, messages.next()).await {
                    Ok(Some(Ok(m))) => m,
                    Ok(Some(Err(e))) => return Err(e.to_string()),
                    Ok(None) | Err(_) => return Err("the held mentions stopped coming".into()),
                };
                let seq = m.info().map_err(|e| e.to_string())?.stream_sequence;
                match serde_json::from_slice::<Held>(&m.payload) {
                    Ok(h) => {
                        gate.restore(&h);
                        held.push((seq, h));
                    }
                    Err(e) => {
                        warn!(queue, error = %e, "a held mention does not parse; left out of the digest")
                    }
                }
            }
        }
        Ok(QueueNoise {
            queue: queue.to_string(),
            js: js.clone(),
            timeout,
            gate,
            digest_every_ms: config.digest_every.as_millis() as u64,
            held,
            digests: HashMap::new(),
            next_digest: DIGEST_SEQ,
        })
    }

    /// Decides for one entry: anything but a mention whose contract parses is delivered.
    pub async fn admit(&mut self, entry: &Entry) -> Admitted {
        if entry.event != Event::MentionCreated {
            return Admitted::Deliver;
        }
        let Ok(noticed) = Noticed::from_contract(entry.data.get()) else {
            return Admitted::Deliver;
        };
        let now_ms = now_us() / 1000;
        let Verdict::Hold(h) = self.gate.admit_noticed(&noticed, now_ms) else {
            return Admitted::Deliver;
        };
        metrics::counter!(NOISE_HELD, "queue" => self.queue.clone(), "reason" => h.reason.as_str())
            .increment(1);
        match self.store(&entry.id, &h).await {
            Ok(seq) => {
                self.held.push((seq, h));
                Admitted::Held
            }
            Err(e) => {
                // Not stored: delivering it is more noise; dropping it would lose it.
                warn!(queue = %self.queue, error = %e, "cannot store a held mention; delivering it instead");
                Admitted::Deliver
            }
        }
    }

    async fn store(&self, id: &str, h: &Held) -> Result<u64, String> {
        let body = Bytes::from(serde_json::to_vec(h).map_err(|e| e.to_string())?);
        let mut headers = async_nats::HeaderMap::new();
        let msg_id = format!("{}:{id}", self.queue);
        headers.insert(async_nats::header::NATS_MESSAGE_ID, msg_id.as_str());
        let publish = async {
            self.js
                .publish_with_headers(held_subject(&self.queue), headers, body)
                .await?
                .await
        };
        match tokio::time::timeout(self.timeout, publish).await {
            Ok(Ok(ack)) => Ok(ack.sequence),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("no acknowledgement in time".into()),
        }
    }

    /// The digest of the open window, when it is due: an entry for the dispatcher with the
    /// key it is to be acknowledged by.
    pub fn due_digest(&mut self) -> Option<(u64, Entry)> {
        let now_ms = now_us() / 1000;
        let start = self.gate.window_start()?;
        if self.held.is_empty() || now_ms.saturating_sub(start) < self.digest_every_ms {
            return None;
        }
        let items: Vec<Held> = self.held.iter().map(|(_, h)| h.clone()).collect();
        let digest = Digest::build(&self.queue, start, now_ms, &items);
        let entry = crate::outbox::writer::digest_entry(&digest, start)?;
        let last = self.held.last().map(|(s, _)| *s).unwrap_or(0);
        self.held.clear();
        self.gate.digest_sent(now_ms);
        let key = self.next_digest;
        self.next_digest += 1;
        self.digests.insert(key, last);
        metrics::counter!(NOISE_DIGESTS, "queue" => self.queue.clone()).increment(1);
        Some((key, entry))
    }

    /// Whether `seq` is a digest's key.
    pub fn is_digest(seq: u64) -> bool {
        seq >= DIGEST_SEQ
    }

    /// The digest `key` was delivered or dead-lettered: the held mentions it counts go.
    pub async fn settled(&mut self, key: u64) {
        let Some(last) = self.digests.remove(&key) else {
            return;
        };
        let purge = async {
            let stream = self
                .js
                .get_stream(HELD_STREAM)
                .await
                .map_err(|e| e.to_string())?;
            stream
                .purge()
                .filter(held_subject(&self.queue))
                .sequence(last + 1)
                .await
                .map_err(|e| e.to_string())
        };
        if let Err(e) = purge.await {
            // They would be counted again by a later owner's digest: a repeat, not a loss.
            debug!(queue = %self.queue, error = %e, "cannot purge the held mentions of a delivered digest");
        }
    }
}
