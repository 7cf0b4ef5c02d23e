//! Which source position is safe to checkpoint, when batches finish out of order.
//!
//! Workers take batches of one source in parallel, so batch 7 can be written to the outbox
//! before batch 6. A position may only be checkpointed once every batch up to it is safe:
//! otherwise a crash would resume after mentions that were never written. Each source numbers
//! its batches (1, 2, 3, …); [`Checkpoints::complete`] records one as safe and returns the
//! position of the longest run of safe batches from the start, when that run grew and ends in a
//! batch that carries a position.

use std::collections::BTreeMap;

use crate::source::batch::Position;

/// Safe batches of every source.
#[derive(Debug, Default)]
pub struct Checkpoints {
    sources: Vec<SourceTrack>,
}

#[derive(Debug, Default)]
struct SourceTrack {
    /// Every batch numbered at or below this is safe.
    done_through: u64,
    /// Position of the newest contiguous safe batch that had one.
    position: Option<Position>,
    /// Safe batches above a gap, with their positions.
    ahead: BTreeMap<u64, Option<Position>>,
}

impl Checkpoints {
    /// Tracks `sources` sources.
    pub fn new(sources: usize) -> Self {
        Self {
            sources: (0..sources).map(|_| SourceTrack::default()).collect(),
        }
    }

    /// Records batch `seq` (1-based, per source) of `source` as safe. Returns the position to
    /// checkpoint now, if it moved.
    pub fn complete(
        &mut self,
        source: usize,
        seq: u64,
        position: Option<Position>,
    ) -> Option<Position> {
        let t = self.sources.get_mut(source)?;
        if seq <= t.done_through {
            return None;
        }
        t.ahead.insert(seq, position);
        let before = t.position;
        while let Some(p) = t.ahead.remove(&(t.done_through + 1)) {
            t.done_through += 1;
            if p.is_some() {
                t.position = p;
            }
        }
        (t.position != before).then_some(t.position).flatten()
    }

    /// Batches of `source` waiting behind a gap (for diagnostics).
    pub fn waiting(&self, source: usize) -> usize {
        self.sources.get(source).map_or(0, |t| t.ahead.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_advance_only_over_contiguous_batches() {
        use Position::Offset as O;
        let mut c = Checkpoints::new(2);
        // (source, seq, position, expected checkpoint)
        let steps: &[(usize, u64, Option<Position>, Option<Position>)] = &[
            (0, 2, Some(O(20)), None),        // batch 1 not safe yet
            (1, 1, Some(O(5)), Some(O(5))),   // other source independent
            (0, 1, Some(O(10)), Some(O(20))), // 1 and 2 now contiguous
            (0, 3, None, None),               // no position: nothing to move
            (0, 5, Some(O(50)), None),        // gap at 4
            (0, 4, Some(O(40)), Some(O(50))),
            (0, 4, Some(O(40)), None), // a repeat changes nothing
        ];
        for (i, &(source, seq, pos, want)) in steps.iter().enumerate() {
            assert_eq!(c.complete(source, seq, pos), want, "step {i}");
        }
        assert_eq!(c.waiting(0), 0);
        assert_eq!(c.complete(7, 1, Some(O(1))), None, "unknown source");
    }
}
