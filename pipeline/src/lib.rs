//! earshot: a streaming social-listening pipeline. This crate is its runtime: the sources,
//! threads, outbox, sinks, admin server and wiring around the pure stages of
//! [`earshot_core`], whose modules it re-exports under the same names (so `earshot::stage`
//! is `earshot_core::stage`).
//!
//! # Layout (dependencies run down this list, never up)
//! - [`shutdown`], [`tls`], [`redact`], [`metrics`] (the catalogue), [`health`] (which parts
//!   run, the panic policy): process plumbing every other module may use.
//! - [`credentials`]: the `Authorization` a CRM queue or an OAuth API source sends, static or
//!   renewed at a token endpoint.
//! - [`cluster`]: what the nodes of a cluster on NATS JetStream share (leases).
//! - [`source`]: transports (Jetstream websocket, X-style NDJSON over HTTP, Mastodon SSE,
//!   Reddit's API polled, files) that turn a stream into batches of raw frames on a bounded
//!   channel.
//! - [`outbox`]: the durable store of routed mentions, its writer (with the noise gate) and
//!   each queue's shared state; [`sink`]: the dispatchers that empty it (signed webhooks,
//!   NDJSON files and stdout, payload formats); [`dlq`]: the dead letters.
//! - [`config`]: the configuration file, validated at load; [`compile`]: the rule set,
//!   matcher, scorer and router compiled from it, and the cell a reload swaps.
//! - [`monitor`]: the spike monitor thread (per-brand counts → spike events, the live page's
//!   snapshot, the workers' `in_spike`); [`live`]: the live dashboard's fan-out.
//! - [`worker`]: the worker loop that strings the stages together on OS threads;
//!   [`reload`]: rules and the customer table reloaded when their files change.
//! - [`admin`]: `/metrics`, `/healthz`, `/readyz`, the dead-letter API and the live page,
//!   behind a token, login links, a Host allow-list, optional TLS and connection limits.
//! - [`app`]: wiring it all together; [`backtest`]: a rule change replayed on recorded posts;
//!   [`xrules`]: X's filtered-stream rules derived from the loaded rules.
//!
//! The `earshot` command is the `earshot-cli` package; the simulated firehose and webhook
//! receiver of its demo, the load test and the tests are `earshot-sim`, which depends on
//! this crate and never the other way round.
#![deny(missing_docs)]
// Unsafe code only where a module allows it, and every block says why it is sound.
#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub use earshot_core::{
    customers, diagnostic, duration, examples, language, mention, noise, normalize, post, rules,
    skip, spike, stage, timestamp,
};

pub mod admin;
pub mod app;
pub mod backtest;
pub mod cluster;
pub mod compile;
pub mod config;
pub mod credentials;
pub mod dlq;
pub mod enrich;
#[cfg(any(test, feature = "fault-injection"))]
pub mod fault;
pub mod health;
pub mod live;
pub mod metrics;
pub mod monitor;
pub mod outbox;
pub mod redact;
pub mod reload;
pub mod shutdown;
pub mod sink;
pub mod source;
pub mod tls;
pub mod worker;
pub mod xrules;
