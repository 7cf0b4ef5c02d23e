//! Frame batches as stream messages: what an ingester publishes and a worker reads.
//!
//! The body keeps a batch's layout: a count, the end offset of each frame, then the frames
//! back to back, so a worker rebuilds the [`Batch`] with two copies and decodes in place as
//! it does on a single node. A frame may hold any bytes, newlines included: lengths, not
//! separators, delimit them. The source, where it resumes after the batch, and when its first
//! frame arrived travel as headers.
//!
//! The decoder checks every count and offset against the body it has, so a damaged or foreign
//! message is refused whole (and counted), never read past its end.

use crate::source::batch::{Batch, Position, SourceIndex};

/// The header naming the source (its configured id).
pub const SOURCE: &str = "Earshot-Source";
/// The header with the position after the batch: `c<cursor>` or `o<offset>`.
pub const POSITION: &str = "Earshot-Position";
/// The header with the arrival of the batch's first frame, µs since the Unix epoch.
pub const RECEIVED: &str = "Earshot-Received-Us";

/// Bytes the body adds to the frames: the count and one offset per frame.
pub fn overhead(frames: usize) -> usize {
    4 + 4 * frames
}

/// The body of `batch`.
pub fn encode(batch: &Batch) -> Vec<u8> {
    let mut out = Vec::with_capacity(overhead(batch.len()) + batch.data.len());
    out.extend_from_slice(&(batch.len() as u32).to_le_bytes());
    for end in &batch.ends {
        out.extend_from_slice(&end.to_le_bytes());
    }
    out.extend_from_slice(&batch.data);
    out
}

/// Why a body is not a frame batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramesError {
    /// Shorter than its count and offsets say.
    #[error("the body is cut short ({0} bytes)")]
    Short(usize),
    /// More frames than a batch may hold.
    #[error("{0} frames, more than {1}")]
    TooMany(usize, usize),
    /// An offset before the previous one, or past the data.
    #[error("frame {0} ends outside the data")]
    BadEnd(usize),
}

/// Fills `batch` (cleared first, buffers kept) from a body, allowing at most `max_frames`.
pub fn decode_into(
    body: &[u8],
    source: SourceIndex,
    max_frames: usize,
    batch: &mut Batch,
) -> Result<(), FramesError> {
    batch.clear();
    batch.source = source;
    let count = body
        .get(..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or(FramesError::Short(body.len()))?;
    if count > max_frames {
        return Err(FramesError::TooMany(count, max_frames));
    }
    let data_at = overhead(count);
    let data = body.get(data_at..).ok_or(FramesError::Short(body.len()))?;
    let mut previous = 0u32;
    for i in 0..count {
        let at = 4 + 4 * i;
        let end = u32::from_le_bytes([body[at], body[at + 1], body[at + 2], body[at + 3]]);
        if end < previous || end as usize > data.len() {
            batch.clear();
            return Err(FramesError::BadEnd(i));
        }
        batch.ends.push(end);
        previous = end;
    }
    batch.data.extend_from_slice(&data[..previous as usize]);
    Ok(())
}

/// A position as its header value.
pub fn position_header(p: Position) -> String {
    match p {
        Position::Cursor(c) => format!("c{c}"),
        Position::Offset(o) => format!("o{o}"),
    }
}

/// A header value as a position (`None` for anything else).
pub fn parse_position(v: &str) -> Option<Position> {
    let (kind, n) = v.split_at_checked(1)?;
    let n: u64 = n.parse().ok()?;
    match kind {
        "c" => Some(Position::Cursor(n)),
        "o" => Some(Position::Offset(n)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_survives_the_trip_with_any_bytes_in_its_frames() {
        let mut b = Batch::with_capacity(3, 4, 8);
        for f in [&b"{\"a\":1}"[..], b"", b"line\nbreak\0", b"[2]"] {
            b.push(f);
        }
        let body = encode(&b);
        assert_eq!(body.len(), overhead(4) + b.data.len());
        let mut back = Batch::with_capacity(0, 1, 1);
        back.push(b"old");
        decode_into(&body, 3, 16, &mut back).unwrap();
        assert_eq!(back.source, 3);
        assert_eq!(back.ends, b.ends);
        assert_eq!(back.data, b.data);
    }

    #[test]
    fn damaged_bodies_are_refused_whole() {
        let mut b = Batch::with_capacity(0, 2, 4);
        b.push(b"abc");
        b.push(b"de");
        let body = encode(&b);
        let mut out = Batch::with_capacity(0, 1, 1);
        assert_eq!(
            decode_into(&body[..2], 0, 16, &mut out),
            Err(FramesError::Short(2))
        );
        assert_eq!(
            decode_into(&body[..8], 0, 16, &mut out),
            Err(FramesError::Short(8))
        );
        assert_eq!(
            decode_into(&body, 0, 1, &mut out),
            Err(FramesError::TooMany(2, 1))
        );
        let mut cut = body.clone();
        cut.truncate(body.len() - 1);
        assert_eq!(
            decode_into(&cut, 0, 16, &mut out),
            Err(FramesError::BadEnd(1))
        );
        let mut backwards = body.clone();
        backwards[8..12].copy_from_slice(&1u32.to_le_bytes());
        assert_eq!(
            decode_into(&backwards, 0, 16, &mut out),
            Err(FramesError::BadEnd(1))
        );
        assert!(out.is_empty(), "nothing half-read is left behind");
    }

    #[test]
    fn positions_round_trip_and_foreign_values_are_none() {
        for p in [Position::Cursor(1_700_000_000_000_000), Position::Offset(0)] {
            assert_eq!(parse_position(&position_header(p)), Some(p));
        }
        for bad in ["", "c", "x12", "c-1", "o1.5", "ö1"] {
            assert_eq!(parse_position(bad), None, "{bad}");
        }
    }
}
