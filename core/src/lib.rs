//! earshot-core: the pure part of earshot, from a raw frame to a judged, routed mention.
//!
//! Everything here is a function of its input and of compiled, read-only tables: no async
//! runtime, no network, no storage, no clock it does not take as an argument, no metrics
//! or logs. The runtime crate (`earshot`) runs these on threads and tasks, feeds them bytes
//! from the sources, counts what they report and stores what they return; the benchmarks,
//! the load test and the fuzz targets drive them directly.
//!
//! # Layout (dependencies run down this list, never up)
//! - [`diagnostic`], [`duration`], [`timestamp`], [`normalize`]: leaves. A mistake at
//!   `file:line:col`; the `"30s"` durations of every settings file; RFC 3339 times; case,
//!   width, space and accent folding with the tokens the matcher's word boundaries need,
//!   shared by posts and rule terms.
//! - [`post`], [`skip`]: the decoded post every stage shares; why a frame was not a post.
//! - [`rules`]: the rule language and the rule files brand teams write.
//! - [`customers`]: the CRM table of which accounts belong to which customers.
//! - [`stage`]: the stages a worker runs on every frame: decode, match, score (sentiment,
//!   category, author, urgency, recommendation, with reasons), route.
//! - [`mention`]: the routed mention, the stable contract consumers rely on.
//! - [`noise`]: the per-queue gate that rolls reposts, storms and repeat authors into digests
//!   (run by the outbox writer); [`spike`]: the per-brand spike detector (run by the monitor).
//! - [`examples`]: the examples written in rule files, checked against the compiled matcher;
//!   [`backtest`]: a rule change compared with the rules in force, post by post.
//! - [`generator`]: a seeded synthetic Jetstream firehose for the demo, load tests and tests.
#![deny(missing_docs)]
// Unsafe code only where a module allows it, and every block says why it is sound.
#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod backtest;
pub mod customers;
pub mod diagnostic;
pub mod duration;
pub mod examples;
pub mod generator;
pub mod language;
pub mod mention;
pub mod noise;
pub mod normalize;
pub mod post;
pub mod rules;
pub mod skip;
pub mod spike;
pub mod stage;
pub mod timestamp;
