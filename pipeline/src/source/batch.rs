//! Batches of raw frames: what sources hand to workers.
//!
//! A batch stores its frames back to back in one buffer with their end offsets, so a source
//! makes no allocation per frame and a worker can decode each frame in place (simd-json
//! unescapes strings into the frame's own bytes). A batch closes when it holds
//! [`BatchLimits::max_frames`] frames or [`BatchLimits::max_bytes`] bytes, or when the source
//! sees no new frame for [`BatchLimits::linger`]: large batches amortise the channel hand-off,
//! the linger bounds the latency a quiet stream adds.

use std::time::{Duration, Instant};

/// Index of a source in the configuration (`[[source]]` order); a metric label comes from the
/// source's configured id, never from frame content.
pub type SourceIndex = u16;

/// A resumable position in a source, checkpointed once the frames before it are safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// Jetstream `time_us` cursor of the last frame in the batch.
    Cursor(u64),
    /// Byte offset just after the last frame in a file.
    Offset(u64),
}

/// Room reserved after a batch's frames for the padding a worker adds while decoding
/// ([`Batch::for_each_frame_padded`]), so adding it never reallocates.
pub const BATCH_PADDING: usize = 64;
const _: () = assert!(BATCH_PADDING >= crate::stage::decode::FRAME_PADDING);

/// Frames of one source, in arrival order.
#[derive(Debug)]
pub struct Batch {
    /// Which source produced it.
    pub source: SourceIndex,
    /// The frames, back to back.
    pub data: Vec<u8>,
    /// End offset in `data` of each frame.
    pub ends: Vec<u32>,
    /// When the first frame of the batch was received: the start of every post's latency.
    pub opened: Instant,
    /// Where to resume after this batch, when the source can resume.
    pub position: Option<Position>,
    /// The batch's number within its source (1, 2, 3, … in send order; 0 before it is sent),
    /// so the outbox can checkpoint a position only once every batch before it is safe.
    pub seq: u64,
}

impl Batch {
    /// An empty batch with room for `frames` frames of about `frame_bytes` each.
    pub fn with_capacity(source: SourceIndex, frames: usize, frame_bytes: usize) -> Self {
        Self {
            source,
            data: Vec::with_capacity(frames * frame_bytes + BATCH_PADDING),
            ends: Vec::with_capacity(frames),
            opened: Instant::now(),
            position: None,
            seq: 0,
        }
    }

    /// Appends one frame.
    pub fn push(&mut self, frame: &[u8]) {
        if self.ends.is_empty() {
            self.opened = Instant::now();
        }
        self.data.extend_from_slice(frame);
        self.ends.push(self.data.len() as u32);
    }

    /// Number of frames.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether the batch holds no frame.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Calls `f(buf, len)` for each frame, in order: the frame is `buf[..len]`, mutable so it
    /// can be decoded in place, and `buf[len..]` holds at least `padding` more bytes (the
    /// frames after it, then zeros past the last one). simd-json needs that padding to parse a
    /// frame where it lies instead of copying it into a padded buffer first; `f` must leave
    /// `buf[len..]` as it found it. The zeros are removed again before this returns.
    pub fn for_each_frame_padded(&mut self, padding: usize, mut f: impl FnMut(&mut [u8], usize)) {
        let len = self.data.len();
        self.data.resize(len + padding, 0);
        let mut start = 0usize;
        for &end in &self.ends {
            let end = end as usize;
            f(&mut self.data[start..], end - start);
            start = end;
        }
        self.data.truncate(len);
    }

    /// Empties the batch, keeping its buffers for reuse.
    pub fn clear(&mut self) {
        self.data.clear();
        self.ends.clear();
        self.position = None;
        self.seq = 0;
    }
}

/// When a batch closes.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Most frames in one batch.
    pub max_frames: usize,
    /// Most bytes in one batch (a batch always takes at least one frame).
    pub max_bytes: usize,
    /// How long a partial batch may wait for more frames.
    pub linger: Duration,
}

impl Default for BatchLimits {
    /// 256 frames (~190 KB of Jetstream) per batch amortises the channel hand-off to well under
    /// 1% of the work; 1 ms of linger is far below any delivery budget.
    fn default() -> Self {
        Self {
            max_frames: 256,
            max_bytes: 1 << 20,
            linger: Duration::from_millis(1),
        }
    }
}

impl BatchLimits {
    /// Whether `batch` is full and must be sent now.
    pub fn is_full(&self, batch: &Batch) -> bool {
        batch.len() >= self.max_frames || batch.data.len() >= self.max_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_come_back_in_order_and_mutable() {
        let mut b = Batch::with_capacity(0, 4, 8);
        b.push(b"{\"a\":1}");
        b.push(b"");
        b.push(b"[2]");
        let mut seen = Vec::new();
        b.for_each_frame_padded(4, |buf, len| {
            assert!(buf.len() >= len + 4, "padding after every frame");
            let f = &mut buf[..len];
            seen.push(f.to_vec());
            if let Some(x) = f.first_mut() {
                *x = b'X';
            }
        });
        assert_eq!(
            seen,
            vec![b"{\"a\":1}".to_vec(), b"".to_vec(), b"[2]".to_vec()]
        );
        assert_eq!(&b.data, b"X\"a\":1}X2]", "the padding is gone again");
        b.clear();
        assert!(b.is_empty());
    }

    #[test]
    fn full_by_frames_or_bytes() {
        let limits = BatchLimits {
            max_frames: 2,
            max_bytes: 10,
            linger: Duration::ZERO,
        };
        let mut b = Batch::with_capacity(0, 2, 4);
        b.push(b"abc");
        assert!(!limits.is_full(&b));
        b.push(b"d");
        assert!(limits.is_full(&b));
        let mut big = Batch::with_capacity(0, 1, 16);
        big.push(b"0123456789ab");
        assert!(limits.is_full(&big));
    }
}
