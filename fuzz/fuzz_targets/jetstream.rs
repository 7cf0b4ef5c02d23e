//! Jetstream: the fast reader (with its fallback to the tape) and the tape decoder alone must
//! give the same result for every frame, under the default limits and under a tight depth
//! limit; and a decoder reused for a second frame gives what a fresh one gave.
#![no_main]

use earshot::stage::decode::{DecodeLimits, Format};
use earshot_fuzz::{decode, decoder, Path};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|frame: &[u8]| {
    for limits in [
        DecodeLimits::default(),
        DecodeLimits {
            max_frame_bytes: 1 << 20,
            max_depth: 3,
        },
    ] {
        let mut fast = decoder(Format::Jetstream, limits);
        let by_decoder = decode(&mut fast, frame, Path::Decode);
        let by_tape = decode(
            &mut decoder(Format::Jetstream, limits),
            frame,
            Path::TapeOnly,
        );
        assert_eq!(
            by_decoder,
            by_tape,
            "fast reader and tape disagree on {:?}",
            String::from_utf8_lossy(frame)
        );
        assert_eq!(
            decode(&mut fast, frame, Path::Padded),
            by_decoder,
            "padded differs"
        );
        assert_eq!(
            decode(&mut fast, frame, Path::Decode),
            by_decoder,
            "reuse differs"
        );
    }
});
