//! Sources: transports that turn a stream into batches of raw frames on a bounded channel.
//!
//! Each source runs on the tokio runtime, batches frames ([`batch`]) and pushes them through
//! an [`emit::Emitter`]; a full channel blocks only that source, so TCP pushes back on the
//! sender. Network sources reconnect forever with backoff ([`backoff`]); only failures that
//! retrying cannot fix end a source ([`error`]).
pub mod backoff;
pub mod batch;
pub mod dedup;
pub mod emit;
pub mod error;
pub mod file;
pub mod framing;
pub mod http_client;
pub mod http_stream;
pub mod jetstream;
pub mod lines;
pub mod reddit;
pub mod sse;
#[cfg(test)]
mod testutil;
