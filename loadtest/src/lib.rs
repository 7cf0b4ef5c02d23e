//! earshot-loadtest: steps a real `earshot run` process through rising firehose rates and
//! measures, per step, whether every expected mention arrived and how long it took from send
//! to webhook receipt.
//!
//! The binary runs three roles as separate processes so that none of them shares a runtime or
//! an allocator with the process under test: a Jetstream firehose
//! (`earshot-loadtest firehose`), a webhook receiver (`earshot-loadtest receiver`) and the
//! runner (`earshot-loadtest run CASE`) that starts the two of them and earshot, scrapes
//! earshot's `/metrics`, stops everything and writes the report.
//!
//! This library holds the parts that do not need processes or sockets, so that they are unit
//! tested on their own:
//! - [`case`]: the `case.toml` of a load-test case and its config template;
//! - [`pool`]: pre-rendered firehose frames, restamped per send;
//! - [`time`]: RFC 3339 parsing for the send timestamp carried in `post.created_at`;
//! - [`prom`]: the few Prometheus series the runner reads;
//! - [`nats`]: the NATS server of a cluster-mode case and the counters it is measured by;
//! - [`http`]: a minimal blocking HTTP/1.1 GET for loopback scraping;
//! - [`summary`]: expected-vs-received bookkeeping and per-step latency percentiles;
//! - [`verdict`]: which steps passed and the highest sustained rate;
//! - [`svg`] and [`report`]: the chart and the Markdown report;
//! - [`sample`], [`flatness`] and [`longrun`]: what the long cases sample every few seconds
//!   (memory, descriptors, outbox file, backlogs), whether a series stayed flat, and the
//!   soak and overload reports;
//! - [`spikes`]: the spike-detection evaluation (`earshot-loadtest spikes`), which needs no
//!   process at all: earshot's detector run over simulated hours of traffic with surges
//!   injected at known seconds.
#![deny(missing_docs)]
// Unsafe code only where a module allows it, and every block says why it is sound.
#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod case;
pub mod flatness;
pub mod http;
pub mod longrun;
pub mod nats;
pub mod pool;
pub mod prom;
pub mod report;
pub mod sample;
pub mod spikes;
pub mod summary;
pub mod svg;
pub mod time;
pub mod verdict;
