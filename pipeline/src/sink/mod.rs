//! Sinks: where routed mentions go. Each queue has one sink task on the tokio runtime, fed by
//! a bounded channel from the workers; a full channel blocks the workers, which in turn stop
//! taking batches, so a slow endpoint slows the sources instead of dropping mentions.

pub mod file;
pub mod payload;
pub mod signature;
pub mod webhook;

use std::path::PathBuf;

use serde::Deserialize;

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
}

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
    /// Name of the environment variable holding the webhook signing secret.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// File path for the `file` sink.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Delivery attempts before a mention is given up (dead-lettered).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Per-request timeout in milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Deliveries in flight at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// First retry delay in milliseconds (exponential, full jitter).
    #[serde(default = "default_backoff_base_ms")]
    pub backoff_base_ms: u64,
    /// Longest retry delay in milliseconds (also caps a `Retry-After`).
    #[serde(default = "default_backoff_max_ms")]
    pub backoff_max_ms: u64,
    /// Mentions buffered between workers and this sink before workers wait.
    #[serde(default = "default_capacity")]
    pub capacity: usize,
}

fn default_max_attempts() -> u32 {
    8
}
fn default_timeout_ms() -> u64 {
    10_000
}
fn default_concurrency() -> usize {
    8
}
fn default_backoff_base_ms() -> u64 {
    500
}
fn default_backoff_max_ms() -> u64 {
    60_000
}
fn default_capacity() -> usize {
    4096
}
