//! The recent-frames set that lets a resuming source drop what it already handed on.
//!
//! Input → output: (64-bit hash of a frame's bytes, the frame's time) → "new" or "seen".
//!
//! Jetstream resumes a lost connection from `cursor = last time_us − overlap`, so the first
//! frames of the new connection repeat the end of the old one. The source keeps the hashes of
//! the frames of the last `window` (the overlap) and drops a repeat as
//! [`SkipReason::Duplicate`](crate::skip::SkipReason::Duplicate).
//!
//! Invariants and bounds:
//! - Entries leave in arrival order once their time is older than `newest − window`. Arrival
//!   order is nearly time order (Jetstream's `time_us` steps back by a few ms at most), so an
//!   entry may stay a little longer than its window, never shorter.
//! - At most `capacity` entries: past it the oldest arrival is dropped first. About 32 bytes
//!   per entry, so the default of 1M entries bounds the set near 32 MiB; Jetstream's full
//!   firehose (a few thousand events a second) fills a 5 s window with tens of thousands.
//! - The hash is SipHash with a per-process random key over the frame's bytes, so a crafted
//!   frame cannot aim at another's hash; two distinct frames colliding (odds 2⁻⁶⁴ per pair)
//!   would drop one as a counted duplicate, never silently.

use std::collections::hash_map::RandomState;
use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::time::Duration;

/// A set of recent frame hashes, bounded in time and size.
#[derive(Debug, Clone)]
pub struct RecentFrames {
    seen: HashSet<u64, BuildHasherDefault<PassThrough>>,
    /// (time in µs, hash), in arrival order.
    order: VecDeque<(u64, u64)>,
    capacity: usize,
    window_us: u64,
    keys: RandomState,
}

impl RecentFrames {
    /// A set keeping frames of the last `window`, at most `capacity` of them (at least one).
    pub fn new(capacity: usize, window: Duration) -> Self {
        Self {
            seen: HashSet::default(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            window_us: u64::try_from(window.as_micros()).unwrap_or(u64::MAX),
            keys: RandomState::new(),
        }
    }

    /// The hash identifying `frame`.
    pub fn hash(&self, frame: &[u8]) -> u64 {
        self.keys.hash_one(frame)
    }

    /// Records a frame of time `time_us` (µs); `newest_us` is the newest time seen so far,
    /// which drives eviction. Returns `false` when the frame was already recorded.
    pub fn insert(&mut self, hash: u64, time_us: u64, newest_us: u64) -> bool {
        let horizon = newest_us.saturating_sub(self.window_us);
        while let Some(&(t, h)) = self.order.front() {
            if t >= horizon {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&h);
        }
        if self.seen.contains(&hash) {
            return false;
        }
        if self.order.len() >= self.capacity {
            if let Some((_, h)) = self.order.pop_front() {
                self.seen.remove(&h);
            }
        }
        self.seen.insert(hash);
        self.order.push_back((time_us, hash));
        true
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

/// The keys are already SipHash outputs: hashing them again would only cost time.
#[derive(Debug, Default, Clone, Copy)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        // window 100 µs, capacity 3; (hash, time, newest, expected "new")
        let steps: &[(u64, u64, u64, bool)] = &[
            (1, 1000, 1000, true),
            (2, 1050, 1050, true),
            (1, 1000, 1050, false), // repeat within the window
            (3, 1040, 1050, true),  // older than the newest but inside the window: kept
            (4, 1200, 1200, true),  // evicts 1, 2, 3 (older than 1100)
            (1, 1000, 1200, true),  // 1 was evicted: new again
            (5, 1201, 1201, true),
            (6, 1202, 1202, true), // capacity 3: evicts the oldest arrival (4)
            (4, 1200, 1202, true), // 4 is new again; 1, now in front, leaves by time
            (6, 1202, 1202, false),
            (5, 1201, 1202, false),
        ];
        let mut set = RecentFrames::new(3, Duration::from_micros(100));
        for (i, &(h, t, newest, want)) in steps.iter().enumerate() {
            assert_eq!(set.insert(h, t, newest), want, "step {i}");
            assert!(set.len() <= 3);
        }
    }

    #[test]
    fn hashes_identify_bytes() {
        let set = RecentFrames::new(10, Duration::from_secs(1));
        assert_eq!(set.hash(b"{\"a\":1}"), set.hash(b"{\"a\":1}"));
        assert_ne!(set.hash(b"{\"a\":1}"), set.hash(b"{\"a\":2}"));
        assert!(set.is_empty());
    }
}
