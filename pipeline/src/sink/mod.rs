//! Sinks: where routed mentions go, and the queues that feed them.
//!
//! A routed mention is first written to the durable outbox ([`crate::outbox`]); each queue's
//! dispatcher ([`dispatch`]) reads its entries from there, delivers them through the queue's
//! sink (a signed webhook in one of the [`payload`] formats, a publish to a team's JetStream
//! stream ([`nats`]), an NDJSON file, stdout) and removes them once delivered. A slow or
//! failing endpoint therefore never blocks the workers or the other queues; only a full
//! outbox ([`crate::outbox::OutboxSettings::max_entries`]) pushes back on the sources.

pub mod backing;
pub mod breaker;
pub mod cases;
pub mod dispatch;
pub mod file;
pub mod nats;
pub mod payload;
pub mod retry;
pub mod setup;
pub mod signature;
pub mod webhook;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::noise::NoiseConfig;

/// The kind of sink behind a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    /// Signed HTTP POST (Standard Webhooks).
    Webhook,
    /// NDJSON appended to a file.
    File,
    /// NDJSON on standard output.
    Stdout,
    /// JetStream publishes to a subject of a team's own stream ([`nats`]).
    Nats,
}

/// Whether a queue delivers in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ordering {
    /// Up to `concurrency` deliveries at once; a retried entry does not hold the others up.
    #[default]
    Unordered,
    /// One delivery at a time, in routing order: an entry being retried holds the queue.
    Ordered,
}

pub use crate::credentials::{AuthConfig, AuthScheme};

/// One `[[queue]]` table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// Queue id (referenced by routes, used as a metric label).
    pub id: String,
    /// Where mentions of this queue go.
    pub sink: SinkKind,
    /// Webhook endpoint (`https://`, or `http://` to a loopback address only).
    #[serde(default)]
    pub url: Option<String>,
    /// Name of the environment variable holding the webhook signing secret: required for the
    /// `generic` format, optional for CRM formats, whose APIs never check the signature.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// The payload format of a webhook queue.
    #[serde(default = "default_format")]
    pub format: payload::PayloadFormat,
    /// A template file overriding the format's built-in one.
    #[serde(default)]
    pub template: Option<PathBuf>,
    /// Values the template reads as `vars.<name>` (CRM pipeline ids, department ids, …).
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    /// The `Authorization` header for CRM APIs: static, or renewed OAuth tokens
    /// ([`crate::credentials`]).
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// File path for the `file` sink.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// The subject a `nats` queue publishes to.
    #[serde(default)]
    pub subject: Option<String>,
    /// The credentials of a `nats` queue.
    #[serde(default)]
    pub nats_auth: Option<nats::NatsAuth>,
    /// A PEM bundle of the CAs that sign a `nats` queue's servers' certificates (default: the
    /// public roots).
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// Attempts before an entry is given up (moved to the dead-letter store).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// The longest wait before each retry; the actual wait is drawn at random below it (full
    /// jitter). The last one repeats. Default: the Standard Webhooks schedule (5 s, 5 min,
    /// 30 min, 2 h, 5 h, 10 h, 10 h), 8 attempts over about 27.6 hours at most.
    #[serde(default = "default_retry_schedule", with = "durations")]
    pub retry_schedule: Vec<Duration>,
    /// Per-request timeout.
    #[serde(default = "default_timeout", with = "crate::duration")]
    pub timeout: Duration,
    /// Deliveries in flight at once (`ordered` queues: one).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Delivery order.
    #[serde(default)]
    pub ordering: Ordering,
    /// Ingest → delivery time a mention should take; later deliveries are counted and flagged
    /// in the payload. `"0"`: no budget.
    #[serde(default, with = "crate::duration")]
    pub latency_budget: Duration,
    /// Consecutive failures that open the circuit breaker.
    #[serde(default = "default_breaker_failures")]
    pub breaker_failures: u32,
    /// First breaker cool-down (doubles after each failed probe).
    #[serde(default = "default_breaker_cooldown", with = "crate::duration")]
    pub breaker_cooldown: Duration,
    /// Longest breaker cool-down.
    #[serde(default = "default_breaker_max_cooldown", with = "crate::duration")]
    pub breaker_max_cooldown: Duration,
    /// An endpoint failing this long without one success disables the queue: its backlog
    /// moves to the dead-letter store. `"0"`: never.
    #[serde(default = "default_disable_after", with = "crate::duration")]
    pub disable_after: Duration,
    /// Noise control: reposts, storms, cooldown, rate limit, digests.
    #[serde(default)]
    pub noise: NoiseConfig,
    /// How mentions of one conversation become one case ([`cases`]).
    #[serde(default)]
    pub cases: cases::CasesConfig,
}

fn default_format() -> payload::PayloadFormat {
    payload::PayloadFormat::Generic
}
fn default_max_attempts() -> u32 {
    8
}
fn default_retry_schedule() -> Vec<Duration> {
    [5, 300, 1800, 7200, 18000, 36000, 36000]
        .map(Duration::from_secs)
        .to_vec()
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_concurrency() -> usize {
    8
}
fn default_breaker_failures() -> u32 {
    5
}
fn default_breaker_cooldown() -> Duration {
    Duration::from_secs(5)
}
fn default_breaker_max_cooldown() -> Duration {
    Duration::from_secs(300)
}
fn default_disable_after() -> Duration {
    Duration::from_secs(5 * 24 * 3600)
}

/// A list of durations (`["5s", "5m"]`).
mod durations {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
        let texts = Vec::<String>::deserialize(d)?;
        texts
            .iter()
            .map(|t| crate::duration::parse(t).map_err(serde::de::Error::custom))
            .collect()
    }
}

impl QueueConfig {
    /// A queue of `sink` with every other setting at its default (tests, the demo).
    pub fn new(id: &str, sink: SinkKind) -> Self {
        Self {
            id: id.into(),
            sink,
            url: None,
            secret_env: None,
            format: default_format(),
            template: None,
            vars: BTreeMap::new(),
            auth: None,
            path: None,
            subject: None,
            nats_auth: None,
            ca: None,
            max_attempts: default_max_attempts(),
            retry_schedule: default_retry_schedule(),
            timeout: default_timeout(),
            concurrency: default_concurrency(),
            ordering: Ordering::default(),
            latency_budget: Duration::ZERO,
            breaker_failures: default_breaker_failures(),
            breaker_cooldown: default_breaker_cooldown(),
            breaker_max_cooldown: default_breaker_max_cooldown(),
            disable_after: default_disable_after(),
            noise: NoiseConfig::default(),
            cases: cases::CasesConfig::default(),
        }
    }
}
