//! The NDJSON line splitter: the lines it hands on do not depend on where the stream is cut
//! into chunks, none is longer than the limit or only whitespace, offsets grow and end at the
//! stream's length. Input: a byte for the limit (1 to 64), a byte for the cutting pattern,
//! then the stream.
#![no_main]

use std::convert::Infallible;

use earshot::source::lines::{Line, LineSplitter};
use earshot_fuzz::chunks;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Frame(Vec<u8>, u64),
    Oversize,
}

fn split<'a>(max: usize, parts: impl IntoIterator<Item = &'a [u8]>) -> (Vec<Seen>, u64) {
    let mut splitter = LineSplitter::new(max);
    let mut seen = Vec::new();
    let mut on = |line: Line<'_>| -> Result<(), Infallible> {
        seen.push(match line {
            Line::Frame { bytes, end } => Seen::Frame(bytes.to_vec(), end),
            Line::Oversize => Seen::Oversize,
        });
        Ok(())
    };
    for part in parts {
        let _ = splitter.feed(part, &mut on);
    }
    let _ = splitter.finish(&mut on);
    (seen, splitter.offset())
}

fuzz_target!(|input: &[u8]| {
    let [limit, cut, stream @ ..] = input else {
        return;
    };
    let max = 1 + usize::from(*limit % 64);
    let whole = split(max, [stream]);
    let cut_up = split(max, chunks(stream, *cut));
    assert_eq!(whole, cut_up, "the chunking changed the lines");
    let (seen, offset) = whole;
    assert_eq!(offset, stream.len() as u64);
    let mut last = 0;
    for s in &seen {
        if let Seen::Frame(bytes, end) = s {
            assert!(bytes.len() <= max, "a line over the limit");
            assert!(!bytes.iter().all(u8::is_ascii_whitespace), "a blank line");
            assert!(
                *end > last && *end <= stream.len() as u64,
                "offsets out of order"
            );
            assert!(!bytes.contains(&b'\n'));
            last = *end;
        }
    }
});
