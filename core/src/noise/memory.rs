//! What a noise gate remembers: recent keys (originals, authors) and recent storm clusters,
//! each forgotten after a time to live and bounded in number.
//!
//! Entries are added with non-decreasing times (the gate's clock never goes back), so a FIFO
//! queue beside each map is also the order of expiry: forgetting is popping the front, and
//! evicting the oldest when full is the same operation. No scan ever walks the whole memory.

use std::collections::VecDeque;

use foldhash::HashMap;

use super::fingerprint::hamming;

/// Keys seen recently, each with the time it was last remembered.
#[derive(Debug, Default)]
pub(super) struct Recent {
    at: HashMap<Box<str>, u64>,
    /// Insertion order; a key remembered again appears twice, and the older entry is skipped
    /// when it reaches the front (its time no longer matches the map's).
    order: VecDeque<(Box<str>, u64)>,
    cap: usize,
}

impl Recent {
    pub(super) fn with_cap(cap: usize) -> Self {
        Self {
            at: HashMap::default(),
            order: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    /// When `key` was last remembered, if it still is.
    pub(super) fn get(&self, key: &str) -> Option<u64> {
        self.at.get(key).copied()
    }

    /// Remembers `key` as of `now`, evicting the oldest key when full.
    pub(super) fn insert(&mut self, key: &str, now: u64) {
        match self.at.get_mut(key) {
            Some(at) => *at = now,
            None => {
                while self.at.len() >= self.cap {
                    if !self.pop_front() {
                        break;
                    }
                }
                self.at.insert(key.into(), now);
            }
        }
        self.order.push_back((key.into(), now));
        // Keys remembered again leave stale entries behind; keep the queue within twice the
        // cap so that a hot key cannot grow it without bound.
        if self.order.len() > 2 * self.cap {
            let at = &self.at;
            self.order
                .retain(|(key, when)| at.get(key).is_some_and(|t| t == when));
        }
    }

    /// Forgets every key remembered at or before `now − ttl`.
    pub(super) fn expire(&mut self, now: u64, ttl: u64) {
        while let Some((_, when)) = self.order.front() {
            if when.saturating_add(ttl) > now {
                break;
            }
            self.pop_front();
        }
    }

    /// Pops the oldest entry, forgetting its key unless it was remembered again later.
    /// `false` when the queue is empty.
    fn pop_front(&mut self) -> bool {
        let Some((key, when)) = self.order.pop_front() else {
            return false;
        };
        if self.at.get(&key) == Some(&when) {
            self.at.remove(&key);
        }
        true
    }

    pub(super) fn len(&self) -> usize {
        self.at.len()
    }
}

/// One remembered storm cluster: the fingerprint of the mention that opened it.
#[derive(Debug, Clone, Copy)]
struct Cluster {
    fingerprint: u64,
    at: u64,
}

/// Storm clusters remembered for a while, found by fingerprint distance through LSH bands.
///
/// The 64 bits are cut into `distance + 1` bands. Two fingerprints at most `distance` bits
/// apart differ in at most `distance` bands, so by pigeonhole they agree exactly on at least
/// one: looking up each band of a fingerprint finds every cluster within the distance (and
/// some farther, which the exact distance then rules out), without scanning all clusters.
#[derive(Debug)]
pub(super) struct StormIndex {
    distance: u32,
    /// `(first bit, width)` of each band.
    bands: Vec<(u32, u32)>,
    /// Clusters in the order they were opened; `clusters[i]` has sequence number `first + i`.
    clusters: VecDeque<Cluster>,
    first: u64,
    /// `(band, band bits)` → sequence numbers of the clusters with those bits, oldest first.
    buckets: HashMap<(u8, u64), Vec<u64>>,
    cap: usize,
}

impl StormIndex {
    /// An index that matches fingerprints at most `distance` bits apart (at most 63).
    pub(super) fn new(distance: u32, cap: usize) -> Self {
        let distance = distance.min(63);
        let count = distance + 1;
        let bands = (0..count)
            .map(|i| {
                let start = i * 64 / count;
                let end = (i + 1) * 64 / count;
                (start, end - start)
            })
            .collect();
        Self {
            distance,
            bands,
            clusters: VecDeque::new(),
            first: 0,
            buckets: HashMap::default(),
            cap: cap.max(1),
        }
    }

    /// The `(band, band bits)` bucket key of band `i` of `fingerprint`.
    fn band_key(&self, i: usize, fingerprint: u64) -> (u8, u64) {
        let (start, width) = self.bands[i];
        let mask = if width >= 64 {
            u64::MAX
        } else {
            (1u64 << width) - 1
        };
        // At most 64 bands, so the index fits.
        (i as u8, (fingerprint >> start) & mask)
    }

    /// The fingerprint of the nearest remembered cluster within the distance (the oldest
    /// among equally near ones), if any.
    pub(super) fn find(&self, fingerprint: u64) -> Option<u64> {
        let mut best: Option<(u32, u64)> = None;
        for i in 0..self.bands.len() {
            let key = self.band_key(i, fingerprint);
            for &seq in self.buckets.get(&key).into_iter().flatten() {
                let Some(cluster) = self.cluster(seq) else {
                    continue;
                };
                let d = hamming(cluster.fingerprint, fingerprint);
                if d <= self.distance && best.is_none_or(|(bd, bs)| (d, seq) < (bd, bs)) {
                    best = Some((d, seq));
                }
            }
        }
        best.and_then(|(_, seq)| self.cluster(seq))
            .map(|c| c.fingerprint)
    }

    fn cluster(&self, seq: u64) -> Option<Cluster> {
        let index = usize::try_from(seq.checked_sub(self.first)?).ok()?;
        self.clusters.get(index).copied()
    }

    /// Opens a cluster for `fingerprint` as of `now`, evicting the oldest when full.
    pub(super) fn insert(&mut self, fingerprint: u64, now: u64) {
        while self.clusters.len() >= self.cap {
            self.pop_front();
        }
        let seq = self.first + self.clusters.len() as u64;
        self.clusters.push_back(Cluster {
            fingerprint,
            at: now,
        });
        for i in 0..self.bands.len() {
            let key = self.band_key(i, fingerprint);
            self.buckets.entry(key).or_default().push(seq);
        }
    }

    /// Forgets every cluster opened at or before `now − ttl`.
    pub(super) fn expire(&mut self, now: u64, ttl: u64) {
        while let Some(front) = self.clusters.front() {
            if front.at.saturating_add(ttl) > now {
                break;
            }
            self.pop_front();
        }
    }

    fn pop_front(&mut self) {
        let Some(cluster) = self.clusters.pop_front() else {
            return;
        };
        let seq = self.first;
        self.first += 1;
        for i in 0..self.bands.len() {
            let key = self.band_key(i, cluster.fingerprint);
            if let Some(bucket) = self.buckets.get_mut(&key) {
                // The oldest cluster is first in each of its buckets.
                if let Some(i) = bucket.iter().position(|&s| s == seq) {
                    bucket.remove(i);
                }
                if bucket.is_empty() {
                    self.buckets.remove(&key);
                }
            }
        }
    }

    pub(super) fn len(&self) -> usize {
        self.clusters.len()
    }
}
