//! The Jetstream fast reader ([`super::scan`], [`jetstream::read`]) against the tape decoder:
//! for every frame, what the decoder gives (the fast reader, falling back to the tape when it
//! is unsure) equals what the tape decoder alone gives, links included, and the fast reader
//! handles every ordinary event itself.

use std::sync::OnceLock;

use proptest::prelude::*;
use serde_json::{json, Value};

use super::tests::{check_links, fixture_frames, fixture_names};
use super::*;
use crate::generator::{GenSettings, Generator};

/// The posts, or the skip with the post a delete names.
type Outcome = Result<Vec<Value>, (SkipReason, Option<String>)>;

fn collect(result: Result<usize, SkipReason>, posts: Vec<Value>, deleted: Option<&str>) -> Outcome {
    result
        .map(|n| {
            assert_eq!(n, posts.len(), "returned count = posts emitted");
            posts
        })
        .map_err(|skip| (skip, deleted.map(str::to_string)))
}

/// The decoder's result: fast reader first, tape when it is unsure.
fn by_decoder(frame: &[u8], limits: DecodeLimits) -> Outcome {
    let mut decoder = Decoder::new(Format::Jetstream, limits);
    let mut frame = frame.to_vec();
    let mut posts = Vec::new();
    let result = decoder.decode(&mut frame, |p| {
        check_links(&p);
        posts.push(serde_json::to_value(&p).unwrap());
    });
    collect(result, posts, decoder.deleted())
}

/// The tape decoder's result alone.
fn by_tape(frame: &[u8], limits: DecodeLimits) -> Outcome {
    let mut decoder = Decoder::new(Format::Jetstream, limits);
    let mut frame = frame.to_vec();
    let len = frame.len();
    let mut posts = Vec::new();
    let result = decoder.decode_tape(&mut frame, len, |p| {
        check_links(&p);
        posts.push(serde_json::to_value(&p).unwrap());
    });
    collect(result, posts, decoder.deleted())
}

/// The fast reader's result alone; `None` when it is unsure. Checks that an unsure reader
/// left the frame as it was.
fn by_reader(frame: &[u8], limits: DecodeLimits) -> Option<Outcome> {
    let mut copy = frame.to_vec();
    let mut posts = Vec::new();
    let mut spans = Vec::new();
    let mut deleted = String::new();
    let result = jetstream::read(
        &mut copy,
        limits.max_depth,
        &mut spans,
        &mut deleted,
        &mut |p: Post<'_>| {
            posts.push(serde_json::to_value(&p).unwrap());
        },
    );
    if result.is_none() {
        assert_eq!(copy, frame, "an unsure reader must not change the frame");
    }
    result.map(|r| collect(r, posts, (!deleted.is_empty()).then_some(deleted.as_str())))
}

/// Asserts that the decoder (fast reader first) and the tape decoder give the same outcome.
pub(super) fn assert_agree(frame: &[u8], limits: DecodeLimits) {
    assert_eq!(
        by_decoder(frame, limits),
        by_tape(frame, limits),
        "frame: {}",
        String::from_utf8_lossy(frame)
    );
}

fn jetstream_fixture_frames() -> Vec<Vec<u8>> {
    fixture_names()
        .iter()
        .filter(|name| name.starts_with("jetstream-"))
        .flat_map(|name| fixture_frames(name).into_iter().map(|(_, frame)| frame))
        .collect()
}

fn generated_frames(n: usize) -> Vec<Vec<u8>> {
    let mut generator = Generator::new(GenSettings {
        seed: 7,
        mention_rate: 0.3,
    });
    (0..n)
        .map(|i| {
            generator
                .next_event(1_725_911_162_000_000 + i as u64)
                .json
                .into_bytes()
        })
        .collect()
}

#[test]
fn reader_handles_every_real_event_itself() {
    let frames = jetstream_fixture_frames();
    assert!(frames.len() > 100, "the Jetstream sample is there");
    let limits = DecodeLimits::default();
    for frame in frames.iter().chain(&generated_frames(2_000)) {
        let fast = by_reader(frame, limits);
        assert_eq!(
            fast.as_ref(),
            Some(&by_tape(frame, limits)),
            "frame: {}",
            String::from_utf8_lossy(frame)
        );
    }
}

#[test]
fn reader_follows_the_tape_on_repeated_and_odd_keys() {
    let event = |commit: &str| {
        format!(r#"{{"did":"did:plc:a","time_us":17,"kind":"commit","commit":{commit}}}"#)
    };
    let record = |record: &str| {
        event(&format!(
            r#"{{"operation":"create","collection":"app.bsky.feed.post","rkey":"k","record":{record}}}"#
        ))
    };
    let frames = [
        // Later scalars replace earlier ones, including with a non-string.
        record(r#"{"text":"a","text":"b"}"#),
        record(r#"{"text":"a","text":1}"#),
        record(r#"{"text":"a","langs":["en"],"langs":[1,"de"]}"#),
        record(r#"{"text":"a","langs":"en"}"#),
        record(r#"{"text":"a","reply":{},"reply":null}"#),
        record(r#"{"text":"a","reply":false}"#),
        // Embeds and facets add up; inside one, the first $type / media / features counts.
        record(r#"{"text":"a","embed":{"$type":"app.bsky.embed.images"},"embed":{"$type":"app.bsky.embed.record"}}"#),
        record(r#"{"text":"a","embed":{"$type":1,"$type":"app.bsky.embed.images"}}"#),
        record(r#"{"text":"a","embed":{"$type":"app.bsky.embed.recordWithMedia","media":{"$type":"app.bsky.embed.external"},"media":{}}}"#),
        record(r#"{"text":"a","embed":{"media":{"$type":"app.bsky.embed.external"},"$type":"app.bsky.embed.recordWithMedia"}}"#),
        record(r#"{"text":"a","embed":{"$type":"app.bsky.embed.recordWithMedia","media":[]}}"#),
        record(r#"{"text":"a","embed":"app.bsky.embed.images"}"#),
        record(r#"{"text":"a","facets":[{"features":[{"$type":"x"}]},{"features":[{"$type":"app.bsky.richtext.facet#link"}]}]}"#),
        record(r#"{"text":"a","facets":[{"features":[{"$type":"x"}],"features":[{"$type":"app.bsky.richtext.facet#link"}]}]}"#),
        record(r#"{"text":"a","facets":{"features":[]}}"#),
        // Links: the first `external` / `uri` counts, in embeds, media and features alike;
        // a non-string first `uri` means none; every embed and facet adds its link.
        record(r#"{"text":"a","embed":{"$type":"app.bsky.embed.external","external":{"uri":"https://a.example/1","uri":"https://a.example/2"},"external":{"uri":"https://a.example/3"}}}"#),
        record(r#"{"text":"a","embed":{"external":{"uri":1,"uri":"https://a.example/2"},"$type":"app.bsky.embed.external"}}"#),
        record(r#"{"text":"a","embed":{"external":[],"$type":"app.bsky.embed.external","external":{"uri":"https://a.example/3"}}}"#),
        record(r#"{"text":"a","embed":{"$type":"app.bsky.embed.images","external":{"uri":"https://a.example/1"}}}"#),
        record(r#"{"text":"a","embed":{"$type":"app.bsky.embed.recordWithMedia","media":{"external":{"uri":"https://a.example/m"},"$type":"app.bsky.embed.external","external":{"uri":"https://a.example/n"}},"external":{"uri":"https://a.example/x"}}}"#),
        record(r#"{"text":"a","embed":{"$type":"app.bsky.embed.recordWithMedia","media":{"$type":"app.bsky.embed.images","external":{"uri":"https://a.example/m"}}}}"#),
        record(r#"{"text":"a","embed":{"$type":"app.bsky.embed.external","external":{"uri":"https://a.example/e"}},"facets":[{"features":[{"uri":"https://a.example/f","$type":"app.bsky.richtext.facet#link","uri":"https://a.example/g"},{"$type":"app.bsky.richtext.facet#tag","uri":"https://a.example/t"},{"$type":"app.bsky.richtext.facet#link","uri":null}]}],"embed":{"$type":"app.bsky.embed.external","external":{"uri":"https://a.example/e2"}},"facets":[{"features":[{"$type":"app.bsky.richtext.facet#link","uri":"https://a.example/e"}]}]}"#),
        // The quoted post: the first embed that quotes counts, inside it the first `record`
        // and `uri`; a recordWithMedia's is `record.record.uri`; only post URIs are kept,
        // after unescaping.
        record(r#"{"text":"a","embed":{"$type":"app.bsky.embed.record","record":{"uri":"at://did:plc:x/app.bsky.feed.post/1"}},"embed":{"$type":"app.bsky.embed.record","record":{"uri":"at://did:plc:x/app.bsky.feed.post/2"}}}"#),
        record(r#"{"text":"a","embed":{"$type":"app.bsky.embed.images"},"embed":{"$type":"app.bsky.embed.record","record":{"uri":"at://did:plc:x/app.bsky.feed.post/2"}}}"#),
        record(r#"{"text":"a","embed":{"record":{"uri":1,"uri":"at://did:plc:x/app.bsky.feed.post/1"},"$type":"app.bsky.embed.record","record":{"uri":"at://did:plc:x/app.bsky.feed.post/2"}}}"#),
        record(r#"{"text":"a","embed":{"$type":"app.bsky.embed.record","record":[],"record":{"uri":"at://did:plc:x/app.bsky.feed.post/2"}}}"#),
        record(r#"{"text":"a","embed":{"$type":"app.bsky.embed.recordWithMedia","media":{"$type":"app.bsky.embed.images"},"record":{"uri":"at://did:plc:x/app.bsky.feed.post/outer","record":{"uri":"at://did:plc:x/app.bsky.feed.post/inner","uri":"at://did:plc:x/app.bsky.feed.post/later"},"record":{"uri":"at://did:plc:x/app.bsky.feed.post/second"}}}}"#),
        record(r#"{"text":"a","embed":{"$type":"app.bsky.embed.recordWithMedia","record":{"uri":"at://did:plc:x/app.bsky.feed.post/outer"}}}"#),
        record(r#"{"text":"a","embed":{"$type":"app.bsky.embed.record","record":{"uri":"at:\/\/did:plc:x\/app.bsky.feed.post\/\u0031"}}}"#),
        record(r#"{"text":"a","embed":{"$type":"app.bsky.embed.record","record":{"uri":"at://did:plc:x/app.bsky.feed.generator/hot"}}}"#),
        record(r#"{"text":"a","embed":{"$type":"app.bsky.embed.record","record":{"uri":"at://did:plc:x/app.bsky.feed.post/1/extra"}}}"#),
        record(r#"{"text":"a","embed":{"$type":"app.bsky.embed.external","record":{"uri":"at://did:plc:x/app.bsky.feed.post/1"}}}"#),
        // Escaped URIs are unescaped before they are compared, kept or left out.
        record(r#"{"text":"a","facets":[{"features":[{"$type":"app.bsky.richtext.facet#link","uri":"https:\/\/a.example\/?q=1\u0026r=\u00e9"},{"$type":"app.bsky.richtext.facet#link","uri":"https://a.example/?q=1&r=é"},{"$type":"app.bsky.richtext.facet#link","uri":"\u0061t://did:plc:x/app.bsky.feed.post/1"},{"$type":"app.bsky.richtext.facet#link","uri":"\u0068ttps://b.example"}]}]}"#),
        record(r#"{"text":"a","facets":[{"features":[{"$type":"app.bsky.richtext.facet\u0023link","uri":"https://a.example"}]}]}"#),
        // Escapes: in values read (unescaped in place), in values compared, in keys.
        record(r#"{"text":"line\none \"q\" caf\u00e9 \ud83d\ude00 \u0026"}"#),
        record(r#"{"text":"a","createdAt":"2024\u002d01","langs":["p\u0074"]}"#),
        event(r#"{"operation":"cr\u0065ate","collection":"app.bsky.feed.post","rkey":"k","record":{"text":"a"}}"#),
        record(r#"{"t\u0065xt":"a"}"#),
        // Repeated containers, containers of the wrong type, missing fields.
        r#"{"did":"d","kind":"commit","commit":{},"commit":{"operation":"create","collection":"app.bsky.feed.post","rkey":"k","record":{"text":"a"}}}"#.to_owned(),
        event(r#"{"operation":"create","collection":"app.bsky.feed.post","rkey":"k","record":{"text":"a"},"record":{"text":"b"}}"#),
        event(r#"{"operation":"create","collection":"app.bsky.feed.post","rkey":"k","record":[]}"#),
        event(r#"[]"#),
        event(r#"{"operation":"create","collection":"app.bsky.feed.post","record":{"text":"a"}}"#),
        record(r#"{"createdAt":"x"}"#),
        // Numbers and kinds.
        r#"{"did":"d","time_us":-5,"kind":"identity"}"#.to_owned(),
        r#"{"did":"d","time_us":1.5,"kind":"commit","commit":{"operation":"create","collection":"app.bsky.feed.post","rkey":"k","record":{"text":"a"}}}"#.to_owned(),
        r#"{"did":"d","time_us":"17","kind":"commit","commit":{"operation":"create","collection":"app.bsky.feed.post","rkey":"k","record":{"text":"a"}}}"#.to_owned(),
        r#"{"kind":"account"}"#.to_owned(),
        r#"{"kind":"mystery"}"#.to_owned(),
        r#"{"kind":7}"#.to_owned(),
        r#"[1,2]"#.to_owned(),
        r#"  {"kind":"identity"}  "#.to_owned(),
    ];
    for frame in &frames {
        assert_agree(frame.as_bytes(), DecodeLimits::default());
    }
}

#[test]
fn reader_leaves_events_with_many_link_uris_to_the_tape() {
    let feature = |n: usize| {
        format!(r#"{{"$type":"app.bsky.richtext.facet#link","uri":"https://a.example/{n}"}}"#)
    };
    let frame = |links: usize| {
        let features: Vec<String> = (0..links).map(|n| feature(n % 20)).collect();
        format!(
            r#"{{"did":"d","kind":"commit","commit":{{"operation":"create","collection":"app.bsky.feed.post","rkey":"k","record":{{"text":"a","facets":[{{"features":[{}]}}]}}}}}}"#,
            features.join(",")
        )
    };
    let limits = DecodeLimits::default();
    for links in [0, 1, 16, 17, 63, 64, 65, 200] {
        let frame = frame(links);
        let fast = by_reader(frame.as_bytes(), limits);
        assert_eq!(fast.is_some(), links <= 64, "{links} link URIs");
        let tape = by_tape(frame.as_bytes(), limits).expect("a post");
        let kept = tape[0]["links"].as_array().map_or(0, Vec::len);
        assert_eq!(kept, links.min(16), "{links} link URIs");
        assert_agree(frame.as_bytes(), limits);
    }
}

#[test]
fn reader_leaves_the_depth_limit_to_the_tape() {
    for max_depth in [1, 2, 3, 4, 5, 8, 16, 63, 64, 65, 100] {
        let limits = DecodeLimits {
            max_depth,
            ..DecodeLimits::default()
        };
        for nesting in 0..70 {
            let extra = format!("{}{}", "[".repeat(nesting), "]".repeat(nesting));
            let frame = format!(
                r#"{{"did":"d","kind":"commit","commit":{{"operation":"create","collection":"app.bsky.feed.post","rkey":"k","record":{{"text":"a","x":{}}}}}}}"#,
                if nesting == 0 { "0" } else { &extra }
            );
            assert_agree(frame.as_bytes(), limits);
        }
    }
}

/// JSON text for `s` with every non-ASCII character (and `&`, `<`, `>`, as Go's encoder
/// writes them) as a `\u` escape (surrogate pairs above the BMP), as some relays write it.
fn ascii_escaped(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 || !c.is_ascii() || matches!(c, '&' | '<' | '>') => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Serialized JSON with every non-ASCII character and `&`, `<`, `>` (in strings or not, which
/// only strings hold) rewritten as `\u` escapes.
fn go_escaped(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if !c.is_ascii() || matches!(c, '&' | '<' | '>') {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A post text: words, punctuation, emoji, CJK, accents, escapes-to-be and control
/// characters.
fn text() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("acme"),
            Just(" "),
            Just("café"),
            Just("日本語"),
            Just("🙂"),
            Just("👩‍💻"),
            Just("\""),
            Just("\\"),
            Just("\n"),
            Just("\u{1}"),
            Just("/"),
            Just("&<>"),
            Just("\u{2028}"),
        ],
        0..24,
    )
    .prop_map(|parts| parts.concat())
}

/// A link URI: web links and others, duplicates, characters written escaped, one too long.
fn link_uri() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => Just(json!("https://acme.example/a")),
        2 => Just(json!("https://acme.example/b?x=1&y=<2>")),
        2 => Just(json!("http://café.example/é🙂")),
        1 => Just(json!("HTTPS://ACME.EXAMPLE/A")),
        1 => Just(json!("at://did:plc:abc/app.bsky.feed.post/3l3qo2v6show4")),
        1 => Just(json!("mailto:press@acme.example")),
        1 => Just(json!("https://")),
        1 => Just(json!(format!("https://acme.example/{}", "l".repeat(2030)))),
        1 => Just(json!(7)),
        1 => "https://[a-z]{1,3}\\.example/[a-z]{0,2}".prop_map(Value::from),
    ]
}

/// A facet: a link feature with a URI, or a tag.
fn facet() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => link_uri().prop_map(|uri| json!({"features": [{"$type": "app.bsky.richtext.facet#link", "uri": uri}], "index": {"byteEnd": 3, "byteStart": 0}})),
        1 => Just(json!({"features": [{"$type": "app.bsky.richtext.facet#tag", "tag": "acme"}], "index": {"byteEnd": 3, "byteStart": 0}})),
        1 => Just(json!({"features": [{"$type": "app.bsky.richtext.facet#link"}]})),
    ]
}

/// An embed: none, media, a quote, or a link card (alone or as a quote's media).
fn embed() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        Just(None),
        Just(Some(json!({"$type": "app.bsky.embed.images", "images": [{"alt": "é", "image": {"size": 10}}]}))),
        Just(Some(json!({"$type": "app.bsky.embed.record", "record": {"uri": "at://x"}}))),
        Just(Some(json!({"$type": "app.bsky.embed.record", "record": {"cid": "c", "uri": "at://did:plc:abc/app.bsky.feed.post/3l3qo2v6show4"}}))),
        Just(Some(json!({"$type": "app.bsky.embed.recordWithMedia", "media": {"$type": "app.bsky.embed.images", "images": []}, "record": {"$type": "app.bsky.embed.record", "record": {"cid": "c", "uri": "at://did:plc:abc/app.bsky.feed.post/3l3qo2v6show4"}}}))),
        link_uri().prop_map(|uri| Some(json!({"$type": "app.bsky.embed.external", "external": {"description": "d", "title": "t", "uri": uri}}))),
        link_uri().prop_map(|uri| Some(json!({"$type": "app.bsky.embed.recordWithMedia", "media": {"$type": "app.bsky.embed.external", "external": {"uri": uri}}, "record": {"record": {"uri": "at://x"}}}))),
        Just(Some(json!({"$type": "app.bsky.embed.recordWithMedia", "media": {"$type": "app.bsky.embed.external"}}))),
    ]
}

/// A random value where the event puts one of the fields the reader reads.
fn odd_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        Just(json!(true)),
        Just(json!(-3)),
        Just(json!(2.5)),
        Just(json!(1_725_911_162_329_308_u64)),
        Just(json!([])),
        Just(json!({})),
        Just(json!(["en", "ja"])),
        Just(json!({"$type": "app.bsky.embed.images"})),
        "[a-z]{0,6}".prop_map(Value::from),
    ]
}

prop_compose! {
    /// A Jetstream-like event: real field names with random values and random order.
    fn event()(
        kind in prop_oneof![Just("commit"), Just("identity"), Just("account"), Just("x")],
        operation in prop_oneof![Just("create"), Just("delete"), Just("update")],
        collection in prop_oneof![
            4 => Just("app.bsky.feed.post"),
            1 => Just("app.bsky.feed.like"),
            1 => Just("app.bsky.graph.block"),
            1 => Just("com.example.thing"),
        ],
        text in text(),
        escape_all in any::<bool>(),
        embed in embed(),
        facets in proptest::collection::vec(facet(), 0..24),
        odd in proptest::option::of((0usize..6, odd_value())),
        shuffle in any::<u64>(),
    ) -> String {
        let mut record = serde_json::Map::new();
        record.insert("$type".into(), json!("app.bsky.feed.post"));
        record.insert("createdAt".into(), json!("2024-09-09T19:46:03.190Z"));
        record.insert("langs".into(), json!(["en"]));
        if let Some(embed) = embed {
            record.insert("embed".into(), embed);
        }
        if !facets.is_empty() {
            record.insert("facets".into(), Value::from(facets));
        }
        let fields = ["text", "langs", "reply", "embed", "facets", "createdAt"];
        let odd_text = odd.as_ref().is_some_and(|(at, _)| *at == 0);
        if let Some((at, value)) = odd {
            record.insert(fields[at].into(), value);
        }
        // The text goes in last, as raw JSON, so it can be written with every non-ASCII
        // character escaped.
        let mut keys: Vec<String> = record.keys().cloned().collect();
        keys.sort_by_key(|k| (k.len() as u64).wrapping_mul(shuffle) % 7);
        // With `escape_all`, every value is written with non-ASCII and `&<>` escaped.
        let write = |value: &Value| {
            let plain = value.to_string();
            if escape_all { go_escaped(&plain) } else { plain }
        };
        let mut record_json: Vec<String> = keys
            .iter()
            .map(|k| format!("{}:{}", json!(k), write(&record[k])))
            .collect();
        let text_json = if escape_all { ascii_escaped(&text) } else { json!(text).to_string() };
        if !odd_text {
            record_json.insert((shuffle % (record_json.len() as u64 + 1)) as usize, format!("\"text\":{text_json}"));
        }
        format!(
            r#"{{"did":"did:plc:abc","time_us":1725911162329308,"kind":"{kind}","commit":{{"rev":"r","operation":"{operation}","collection":"{collection}","rkey":"3l3qo2v6show4","record":{{{}}},"cid":"c"}}}}"#,
            record_json.join(",")
        )
    }
}

/// The frames edits start from: the real events and some generated ones.
fn edit_bases() -> &'static [Vec<u8>] {
    static BASES: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    BASES.get_or_init(|| {
        let mut frames = jetstream_fixture_frames();
        frames.extend(generated_frames(50));
        frames
    })
}

/// Edits that reach the reader's corners: JSON punctuation, escapes, bad UTF-8.
fn edit_token() -> impl Strategy<Value = &'static [u8]> {
    prop_oneof![
        Just(&b"\""[..]),
        Just(&b"\\"[..]),
        Just(&b"\\u00e9"[..]),
        Just(&b"\\ud83d"[..]),
        Just(&b"\\ude00"[..]),
        Just(&b"{"[..]),
        Just(&b"}"[..]),
        Just(&b"["[..]),
        Just(&b"]"[..]),
        Just(&b","[..]),
        Just(&b":"[..]),
        Just(&b" "[..]),
        Just(&b"\t"[..]),
        Just(&b"\x01"[..]),
        Just(&b"-0"[..]),
        Just(&b"1e5"[..]),
        Just(&b"null"[..]),
        Just(&b"\xff"[..]),
        Just(&b"\xc3"[..]),
        Just("é".as_bytes()),
        Just(&b"\"kind\":\"identity\","[..]),
        Just(&b"\"text\":\"x\","[..]),
        Just(&b""[..]),
    ]
}

// 256 cases each by default; `PROPTEST_CASES=100000` for a longer fuzzing run.
proptest! {
    #[test]
    fn reader_agrees_with_tape_on_random_events(frame in event()) {
        let limits = DecodeLimits::default();
        let fast = by_reader(frame.as_bytes(), limits);
        prop_assert!(fast.is_some(), "unsure of {}", frame);
        prop_assert_eq!(by_decoder(frame.as_bytes(), limits), by_tape(frame.as_bytes(), limits), "frame: {}", frame);
    }

    #[test]
    fn reader_agrees_with_tape_on_edited_events(
        pick in any::<prop::sample::Index>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 0usize..3, edit_token()), 1..4),
    ) {
        let frames = edit_bases();
        let mut frame = frames[pick.index(frames.len())].clone();
        for (at, how, token) in edits {
            let at = at.index(frame.len() + 1);
            match how {
                0 => { frame.splice(at..at, token.iter().copied()); }
                1 => { let end = (at + token.len().max(1)).min(frame.len()); frame.splice(at..end, token.iter().copied()); }
                _ => frame.truncate(at),
            }
        }
        let limits = DecodeLimits::default();
        prop_assert_eq!(by_decoder(&frame, limits), by_tape(&frame, limits), "frame: {}", String::from_utf8_lossy(&frame));
    }
}
