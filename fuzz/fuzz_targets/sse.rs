//! The SSE parser: what it reports does not depend on where the stream is cut into chunks
//! (a CRLF split between chunks included), no event's data exceeds the limit, and the last
//! event id and retry time come out the same. Input: a byte for the limit (1 to 256), a byte
//! for the cutting pattern, then the stream.
#![no_main]

use std::convert::Infallible;
use std::time::Duration;

use earshot::source::sse::{SseItem, SseParser};
use earshot_fuzz::chunks;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Event {
        event: Vec<u8>,
        data: Vec<u8>,
        id: Vec<u8>,
    },
    Comment(Vec<u8>),
    Oversize(Vec<u8>),
}

type Parsed = (Vec<Seen>, Vec<u8>, Option<Duration>);

fn parse<'a>(max: usize, parts: impl IntoIterator<Item = &'a [u8]>) -> Parsed {
    let mut parser = SseParser::new(max);
    let mut seen = Vec::new();
    let mut on = |item: SseItem<'_>| -> Result<(), Infallible> {
        seen.push(match item {
            SseItem::Event(e) => Seen::Event {
                event: e.event.to_vec(),
                data: e.data.to_vec(),
                id: e.id.to_vec(),
            },
            SseItem::Comment(c) => Seen::Comment(c.to_vec()),
            SseItem::Oversize { event } => Seen::Oversize(event.to_vec()),
        });
        Ok(())
    };
    for part in parts {
        let _ = parser.feed(part, &mut on);
    }
    parser.end_of_stream();
    (seen, parser.last_event_id().to_vec(), parser.retry())
}

fuzz_target!(|input: &[u8]| {
    let [limit, cut, stream @ ..] = input else {
        return;
    };
    let max = 1 + usize::from(*limit);
    let whole = parse(max, [stream]);
    let cut_up = parse(max, chunks(stream, *cut));
    assert_eq!(whole, cut_up, "the chunking changed the events");
    for s in &whole.0 {
        if let Seen::Event { data, .. } = s {
            assert!(data.len() <= max, "event data over the limit");
        }
    }
});
