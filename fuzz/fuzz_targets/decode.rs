//! The tape decoders of every non-Jetstream format (the first byte picks it: X v2, X v1.1,
//! X Activity Streams, Mastodon, Reddit, generic field paths) on the frame that follows:
//! never a panic, the result's invariants hold, the padded and copying parses agree, a reused
//! decoder agrees with a fresh one, and format detection survives the frame.
#![no_main]

use earshot::stage::decode::{DecodeLimits, Format, GenericFields};
use earshot_fuzz::{decode, decoder, Path};
use libfuzzer_sys::fuzz_target;

fn format(selector: u8) -> Format {
    match selector % 6 {
        0 => Format::XV2,
        1 => Format::XV1,
        2 => Format::XActivity,
        3 => Format::Mastodon,
        4 => Format::Reddit,
        _ => Format::Generic(GenericFields {
            text: "text".into(),
            id: "id".into(),
            author_id: "user.id".into(),
            author_handle: Some("user.handle".into()),
            lang: Some("lang".into()),
            created_at: Some("created_at".into()),
            followers: Some("user.followers".into()),
            url: Some("links.0".into()),
        }),
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&selector, frame)) = input.split_first() else {
        return;
    };
    let _ = Format::detect(frame);
    let mut d = decoder(format(selector), DecodeLimits::default());
    let first = decode(&mut d, frame, Path::Decode);
    assert_eq!(decode(&mut d, frame, Path::Padded), first, "padded differs");
    assert_eq!(decode(&mut d, frame, Path::Decode), first, "reuse differs");
});
