//! earshot: a streaming social-listening pipeline.
//!
//! # Layout
//! - [`source`]: transports (Jetstream websocket, X-style NDJSON over HTTP, Mastodon SSE,
//!   files) that turn a stream into batches of raw frames on a bounded channel.
//! - [`stage`]: the CPU stages a worker runs on every post: decode, normalize, match, score,
//!   route, and the per-queue noise gate that rolls reposts, storms and repeat authors up
//!   into digests. Each is a compiled value with a pure function at its core.
//! - [`rules`]: the rule language and the rule files brand teams write.
//! - [`customers`]: the CRM table of which accounts belong to which customers, attached to
//!   mentions and read for urgency; reloaded when its file changes.
//! - [`post`]: the decoded post the stages share; [`skip`]: why a frame was not a post.
//! - [`worker`]: the worker loop that strings the stages together on OS threads.
//! - [`mention`]: the routed mention, the stable contract consumers rely on.
//! - [`sink`]: where mentions go (signed webhooks, NDJSON files and stdout).
//! - [`monitor`]: the spike monitor thread (per-brand counts → spike events, the live page's
//!   snapshot, the workers' `in_spike`); [`live`]: the live dashboard's fan-out.
//! - [`metrics`]: the metric catalogue; [`admin`]: `/metrics`, `/healthz`, `/readyz`, the
//!   dead-letter API and the live dashboard page, behind a token, login links, a Host
//!   allow-list, optional TLS and connection limits.
//! - [`config`]: the configuration file, validated at load; [`app`]: wiring it all together.
//! - [`backtest`]: a rule change replayed on recorded posts, rule by rule, before it goes live.
//! - [`demo`]: the embedded firehose simulator and webhook receiver behind `earshot demo`.
//! - [`health`]: which parts run, what keeps earshot from being ready, the panic policy.
//! - [`shutdown`], [`tls`], [`redact`]: process plumbing.
#![deny(missing_docs)]
// Unsafe code only where a module allows it, and every block says why it is sound.
#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod admin;
pub mod app;
pub mod backtest;
pub mod compile;
pub mod config;
pub mod customers;
pub mod demo;
pub mod diagnostic;
pub mod dlq;
pub mod duration;
pub mod examples;
#[cfg(any(test, feature = "fault-injection"))]
pub mod fault;
pub mod health;
pub mod live;
pub mod mention;
pub mod metrics;
pub mod monitor;
pub mod noise;
pub mod normalize;
pub mod outbox;
pub mod post;
pub mod redact;
pub mod reload;
pub mod rules;
pub mod shutdown;
pub mod sink;
pub mod skip;
pub mod source;
pub mod spike;
pub mod stage;
pub mod tls;
pub mod worker;
