//! Helpers shared by the fuzz targets: running a decoder over one frame with its invariants
//! checked, and cutting one input into chunks the way a network would.

use earshot::post::{Post, MAX_LINKS, MAX_LINK_BYTES};
use earshot::skip::SkipReason;
use earshot::stage::decode::{DecodeLimits, Decoder, Format, FRAME_PADDING};

/// A decoded frame with its posts as JSON, so that results can be compared after the frame's
/// bytes (which the posts borrow) are gone.
pub type Outcome = Result<Vec<serde_json::Value>, SkipReason>;

/// Which of the decoder's paths to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// [`Decoder::decode`]: the Jetstream fast reader first, the tape when it is unsure.
    Decode,
    /// [`Decoder::decode_padded`] with the frame followed by junk padding.
    Padded,
    /// The tape alone.
    TapeOnly,
}

/// Checks what every post must satisfy whatever the frame held.
pub fn check_post(post: &Post<'_>) {
    assert!(
        post.links.len() <= MAX_LINKS,
        "too many links: {:?}",
        post.links
    );
    for (i, link) in post.links.iter().enumerate() {
        assert!(link.len() <= MAX_LINK_BYTES, "link over the limit");
        let lower = link.to_ascii_lowercase();
        assert!(
            (lower.starts_with("http://") && link.len() > 7)
                || (lower.starts_with("https://") && link.len() > 8),
            "not a web link: {link:?}"
        );
        assert!(!post.links[..i].contains(link), "duplicate link {link:?}");
    }
    if !post.links.is_empty() {
        assert!(post.flags.link, "links without the link flag");
    }
}

/// Decodes `frame` with `decoder` along `path`, checking the invariants of the result: a
/// count equal to the posts handed on and at least one, every post well-formed, and (for the
/// padded path) the padding left as it was.
pub fn decode(decoder: &mut Decoder, frame: &[u8], path: Path) -> Outcome {
    let mut posts = Vec::new();
    let mut on_post = |p: Post<'_>| {
        check_post(&p);
        posts.push(serde_json::to_value(&p).expect("a post serializes"));
    };
    let result = match path {
        Path::Decode => decoder.decode(&mut frame.to_vec(), &mut on_post),
        Path::TapeOnly => decoder.decode_without_fast_reader(&mut frame.to_vec(), &mut on_post),
        Path::Padded => {
            let mut buf = frame.to_vec();
            buf.extend(std::iter::repeat_n(0xA5u8, FRAME_PADDING));
            let result = decoder.decode_padded(&mut buf, frame.len(), &mut on_post);
            assert!(
                buf[frame.len()..].iter().all(|&b| b == 0xA5),
                "the padding was written to"
            );
            result
        }
    };
    match result {
        Ok(n) => {
            assert!(n >= 1, "Ok(0) from a frame");
            assert_eq!(n, posts.len(), "the count differs from the posts handed on");
            Ok(posts)
        }
        Err(reason) => {
            assert!(posts.is_empty(), "posts handed on from a skipped frame");
            Err(reason)
        }
    }
}

/// A fresh decoder for `format` under `limits`.
pub fn decoder(format: Format, limits: DecodeLimits) -> Decoder {
    Decoder::new(format, limits)
}

/// Cuts `stream` into chunks whose lengths come from `seed` (a small generator, so one input
/// byte picks a whole cutting pattern): lengths 1 to 16 mostly, sometimes 0 or long.
pub fn chunks(stream: &[u8], seed: u8) -> Vec<&[u8]> {
    let mut state = u32::from(seed).wrapping_mul(2_654_435_761).wrapping_add(1);
    let mut out = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let len = match state % 8 {
            0 => 0,
            1 => 64 + (state >> 8) as usize % 512,
            _ => 1 + (state >> 8) as usize % 16,
        };
        let len = len.min(rest.len());
        out.push(&rest[..len]);
        rest = &rest[len..];
    }
    out
}

/// Whether `text` could name a file that never ends or blocks when read (`/dev/zero`,
/// `/proc/self/fd/0`, `/sys/…`). Rule and config files may name other files (terms files,
/// lists, the routing file) that loading reads; the targets skip such inputs so that a run
/// is never stuck in a read of a device, which says nothing about the parser.
pub fn names_a_device(text: &str) -> bool {
    ["dev", "proc", "sys", "fd"]
        .iter()
        .any(|w| text.contains(w))
}

/// A folder that does not exist: relative paths named by fuzzed files resolve into it, so
/// they name nothing on disk.
pub fn nowhere() -> &'static std::path::Path {
    std::path::Path::new("/nonexistent/earshot-fuzz")
}

/// A Bluesky post with `text` and nothing else, for matching.
pub fn post_with_text(text: &str) -> Post<'_> {
    Post {
        platform: earshot::post::Platform::Bluesky,
        id: "3kfuzz".into(),
        uri: None,
        url: None,
        author: earshot::post::Author {
            id: "did:plc:fuzz".into(),
            handle: Some("fuzz.bsky.social".into()),
            ..Default::default()
        },
        text: text.into(),
        lang: Some("en".into()),
        created_at: None,
        time_us: None,
        engagement: None,
        flags: Default::default(),
        links: Vec::new(),
        original: None,
        thread: Default::default(),
    }
}

/// The full sample mention templates are checked against (`rules/payloads/samples/`).
pub const SAMPLE_MENTION: &str = include_str!("../../rules/payloads/samples/mention.json");
/// The sample digest.
pub const SAMPLE_DIGEST: &str = include_str!("../../rules/payloads/samples/digest.json");
/// The sample spike event.
pub const SAMPLE_SPIKE: &str = include_str!("../../rules/payloads/samples/spike.json");

/// A first attempt of `data` as a mention for queue `fuzz`.
pub fn sample_outgoing(data: &serde_json::value::RawValue) -> earshot::sink::payload::Outgoing<'_> {
    earshot::sink::payload::Outgoing {
        id: "m_0123456789abcdef01234567",
        event: earshot::sink::payload::EventType::MentionCreated,
        data,
        queue: "fuzz",
        attempt: 1,
        timestamp: std::time::SystemTime::UNIX_EPOCH
            + std::time::Duration::from_secs(1_795_000_000),
        latency: Default::default(),
        case: None,
    }
}
