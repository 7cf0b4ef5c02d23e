//! Sources: transports that turn a stream into batches of raw frames.
pub mod batch;
