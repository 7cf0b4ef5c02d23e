//! Tests of the decode stage: golden files for every real fixture, the facts SOURCES.md states
//! about them, tables of synthetic events per format, the hard limits, and property tests
//! that no input makes a decoder panic or break its result contract.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use proptest::prelude::*;
use serde_json::Value;

use super::*;
use crate::post::{MAX_LINKS, MAX_LINK_BYTES};

/// What every decoded post's links must satisfy, whatever the input: web links only, none
/// too long, no duplicates, at most [`MAX_LINKS`], and never without the `link` flag.
pub(super) fn check_links(post: &Post<'_>) {
    let links = &post.links;
    assert!(links.len() <= MAX_LINKS, "too many links: {links:?}");
    for (i, link) in links.iter().enumerate() {
        assert!(is_web_link(link), "not a web link: {link}");
        assert!(link.len() <= MAX_LINK_BYTES, "link too long");
        assert!(!links[..i].contains(link), "duplicate link {link}");
    }
    assert!(
        links.is_empty() || post.flags.link,
        "links {links:?} without the link flag"
    );
}

// ---------------------------------------------------------------------------------------
// Fixtures and goldens
// ---------------------------------------------------------------------------------------

/// Files of the fixture folder that are not decode goldens: where the samples come from, and
/// Jetstream capture metadata.
const NOT_DECODED: [&str; 2] = ["SOURCES.md", "jetstream-sample.manifest.json"];

/// `core/tests/fixtures/formats`: the recorded format samples (see SOURCES.md there).
pub(super) fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/formats")
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/decode")
}

/// The format a fixture file is in, by its name.
fn fixture_format(name: &str) -> Format {
    let by_prefix = [
        ("jetstream-", Format::Jetstream),
        ("x-v2-", Format::XV2),
        ("x-v1-", Format::XV1),
        ("x-gnip-", Format::XActivity),
        ("mastodon-", Format::Mastodon),
        ("reddit-", Format::Reddit),
    ];
    by_prefix
        .into_iter()
        .find_map(|(prefix, format)| name.starts_with(prefix).then_some(format))
        .unwrap_or_else(|| {
            panic!("fixture {name}: no decode format; add one or list it in NOT_DECODED")
        })
}

/// Every decodable fixture file name, sorted.
pub(super) fn fixture_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures_dir())
        .expect("read fixture dir")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| !NOT_DECODED.contains(&n.as_str()))
        .collect();
    names.sort();
    names
}

/// Frames of a fixture with their 1-based line numbers: NDJSON one per non-empty line,
/// anything else the whole file.
pub(super) fn fixture_frames(name: &str) -> Vec<(usize, Vec<u8>)> {
    let bytes = std::fs::read(fixtures_dir().join(name)).expect("read fixture");
    if name.ends_with(".ndjson") {
        bytes
            .split(|&b| b == b'\n')
            .enumerate()
            .filter(|(_, line)| !line.is_empty())
            .map(|(i, line)| (i + 1, line.to_vec()))
            .collect()
    } else {
        vec![(1, bytes)]
    }
}

/// What one frame decoded to: its posts as JSON, or the skip, plus left-out page items.
#[derive(Debug)]
struct Decoded {
    line: usize,
    result: Result<Vec<Value>, SkipReason>,
    malformed: usize,
}

fn decode_all(decoder: &mut Decoder, frames: &[(usize, Vec<u8>)]) -> Vec<Decoded> {
    frames
        .iter()
        .map(|(line, frame)| {
            let mut frame = frame.clone();
            let mut posts = Vec::new();
            let result = decoder.decode(&mut frame, |post| {
                check_links(&post);
                posts.push(serde_json::to_value(&post).expect("a post serializes"));
            });
            let result = result.map(|n| {
                assert_eq!(
                    n,
                    posts.len(),
                    "line {line}: returned count = posts emitted"
                );
                assert!(n >= 1, "line {line}: Ok(0) breaks the accounting");
                posts
            });
            Decoded {
                line: *line,
                result,
                malformed: decoder.malformed_in_last_frame(),
            }
        })
        .collect()
}

fn decode_fixture(name: &str) -> Vec<Decoded> {
    let mut decoder = Decoder::new(fixture_format(name), DecodeLimits::default());
    if name.ends_with(".sse") {
        return decode_sse(&mut decoder, name);
    }
    decode_all(&mut decoder, &fixture_frames(name))
}

/// An SSE transcript read the way the SSE source reads it: every event, numbered from 1;
/// `update` data is decoded, every other event is the skip the source counts it under
/// ([`mastodon_event_skip`]). Heartbeats and comments are not events and do not appear.
///
/// The runtime's SSE parser handles the whole of the format (CR line ends, `id:`, `retry:`,
/// limits) and has its own tests on this transcript; this reads the recorded one: events
/// separated by a blank line, each an `event:` line and `data:` lines.
fn decode_sse(decoder: &mut Decoder, name: &str) -> Vec<Decoded> {
    let text = std::fs::read_to_string(fixtures_dir().join(name)).expect("read fixture");
    let mut events: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for block in text.split("\n\n") {
        let mut event = None;
        let mut data: Vec<&str> = Vec::new();
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("event:") {
                event = Some(v.strip_prefix(' ').unwrap_or(v));
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push(v.strip_prefix(' ').unwrap_or(v));
            }
        }
        if data.is_empty() {
            continue;
        }
        let event = event.unwrap_or("message");
        events.push((event.as_bytes().to_vec(), data.join("\n").into_bytes()));
    }
    let mut out = Vec::new();
    for (i, (event, data)) in events.into_iter().enumerate() {
        match mastodon_event_skip(&event) {
            Some(reason) => out.push(Decoded {
                line: i + 1,
                result: Err(reason),
                malformed: 0,
            }),
            None => out.extend(decode_all(decoder, &[(i + 1, data)])),
        }
    }
    out
}

/// The golden text: per frame, `N {post JSON}` per post or `N skip <reason>`, and
/// `N malformed <count>` when page items were left out.
fn render(decoded: &[Decoded]) -> String {
    let mut out = String::new();
    for d in decoded {
        match &d.result {
            Ok(posts) => {
                for post in posts {
                    writeln!(
                        out,
                        "{} {}",
                        d.line,
                        serde_json::to_string(post).expect("json")
                    )
                    .expect("write");
                }
            }
            Err(reason) => writeln!(out, "{} skip {}", d.line, reason.as_str()).expect("write"),
        }
        if d.malformed > 0 {
            writeln!(out, "{} malformed {}", d.line, d.malformed).expect("write");
        }
    }
    out
}

#[test]
fn fixtures_match_their_golden_files() {
    let update = std::env::var_os("EARSHOT_UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let dir = golden_dir();
    if update {
        std::fs::create_dir_all(&dir).expect("create golden dir");
    }
    let mut mismatches = Vec::new();
    for name in fixture_names() {
        let actual = render(&decode_fixture(&name));
        let path = dir.join(format!("{name}.golden"));
        if update {
            std::fs::write(&path, &actual).expect("write golden");
            continue;
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!("{}: {e} (run with EARSHOT_UPDATE_GOLDEN=1)", path.display())
        });
        if expected != actual {
            let first = expected
                .lines()
                .zip(actual.lines())
                .find(|(e, a)| e != a)
                .map(|(e, a)| format!("\n  expected: {e}\n  actual:   {a}"))
                .unwrap_or_else(|| "\n  (line count differs)".to_owned());
            mismatches.push(format!("{name}{first}"));
        }
    }
    assert!(
        mismatches.is_empty(),
        "golden mismatch:\n{}",
        mismatches.join("\n")
    );
    // No golden may outlive its fixture.
    let fixtures = fixture_names();
    for entry in std::fs::read_dir(&dir).expect("read golden dir") {
        let file = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        let fixture = file.strip_suffix(".golden").unwrap_or(&file);
        assert!(
            fixtures.iter().any(|f| f == fixture),
            "stale golden file {file}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Facts SOURCES.md states about the fixtures
// ---------------------------------------------------------------------------------------

fn skip_counts(decoded: &[Decoded]) -> BTreeMap<&'static str, usize> {
    let mut counts = BTreeMap::new();
    for d in decoded {
        let key = match &d.result {
            Ok(_) => "post_frames",
            Err(reason) => reason.as_str(),
        };
        *counts.entry(key).or_insert(0) += 1;
    }
    counts
}

fn posts(decoded: &[Decoded]) -> Vec<&Value> {
    decoded
        .iter()
        .filter_map(|d| d.result.as_ref().ok())
        .flatten()
        .collect()
}

#[test]
fn jetstream_sample_has_the_mix_sources_md_states() {
    let decoded = decode_fixture("jetstream-sample.ndjson");
    assert_eq!(decoded.len(), 152);
    let expected: BTreeMap<&str, usize> = [
        ("post_frames", 17),
        ("like", 105),
        ("repost", 15),
        ("follow", 6),
        // 3 follow deletes + 1 post delete
        ("delete", 4),
        ("graph", 1),
        // app.bsky.actor.status and fm.teal.alpha.actor.status
        ("update", 2),
        ("identity", 1),
        ("account", 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(skip_counts(&decoded), expected);

    let posts = posts(&decoded);
    assert_eq!(posts.len(), 17);
    assert!(posts
        .iter()
        .all(|p| p["platform"] == "bluesky" && p["time_us"].is_u64()));
    assert_eq!(
        posts.iter().filter(|p| p["text"] == "").count(),
        1,
        "one empty text"
    );
    assert_eq!(
        posts.iter().filter(|p| p.get("lang").is_none()).count(),
        1,
        "one without langs"
    );
    let mut langs: Vec<&str> = posts.iter().filter_map(|p| p["lang"].as_str()).collect();
    langs.sort_unstable();
    langs.dedup();
    assert_eq!(langs, ["de", "en", "en-US", "es", "ja", "ko", "ru", "tr"]);
    assert!(posts.iter().all(|p| p["author"]["id"]
        .as_str()
        .is_some_and(|d| d.starts_with("did:"))));
    assert!(posts.iter().all(|p| p["author"].get("handle").is_none()));
}

#[test]
fn jetstream_single_event_fixtures() {
    let cases: &[(&str, Result<(), SkipReason>)] = &[
        ("jetstream-post-create.json", Ok(())),
        ("jetstream-post-reply-create.json", Ok(())),
        ("jetstream-post-delete.json", Err(SkipReason::Delete)),
        ("jetstream-like-create.json", Err(SkipReason::Like)),
        ("jetstream-identity.json", Err(SkipReason::Identity)),
        ("jetstream-account.json", Err(SkipReason::Account)),
        ("jetstream-legacy-like-create.json", Err(SkipReason::Like)),
        (
            "jetstream-legacy-follow-delete.json",
            Err(SkipReason::Delete),
        ),
        ("jetstream-legacy-identity.json", Err(SkipReason::Identity)),
        ("jetstream-legacy-account.json", Err(SkipReason::Account)),
    ];
    for (name, want) in cases {
        let decoded = decode_fixture(name);
        assert_eq!(decoded.len(), 1, "{name}");
        assert_eq!(
            decoded[0].result.as_ref().map(|_| ()).map_err(|r| *r),
            *want,
            "{name}"
        );
    }
    let post = &decode_fixture("jetstream-post-create.json")[0];
    let post = &post.result.as_ref().expect("a post")[0];
    assert_eq!(post["id"], "3mptbyoigog2b");
    assert_eq!(post["lang"], "en-US");
    assert_eq!(post["created_at"], "2026-07-04T14:38:02+00:00");
    assert_eq!(post["time_us"], 1_783_175_888_267_182_u64);
    assert!(post["text"]
        .as_str()
        .is_some_and(|t| t.contains("\n\nhttps://www.ufofeed.com/")));
    assert_eq!(post["flags"]["link"], true);
    assert_eq!(post["flags"]["reply"], false);
    let reply = &decode_fixture("jetstream-post-reply-create.json")[0];
    let reply = &reply.result.as_ref().expect("a post")[0];
    assert_eq!(reply["text"], "이쁘시네용~~~");
    assert_eq!(reply["flags"]["reply"], true);

    let statuses = decode_fixture("jetstream-account-status.ndjson");
    assert_eq!(
        skip_counts(&statuses),
        [("account", 3)].into_iter().collect()
    );
}

#[test]
fn x_v2_stream_has_8_tweets_and_an_error_on_line_5() {
    let decoded = decode_fixture("x-v2-stream.ndjson");
    assert_eq!(decoded.len(), 9);
    assert_eq!(decoded[4].line, 5);
    assert_eq!(
        decoded[4].result.as_ref().err(),
        Some(&SkipReason::StreamError)
    );
    let posts = posts(&decoded);
    assert_eq!(posts.len(), 8);
    assert!(posts.iter().all(|p| p["platform"] == "x"));
    // Every author was found in includes.users.
    assert!(posts.iter().all(|p| p["author"]["handle"].is_string()));
    assert!(posts.iter().all(|p| p["author"]["followers"].is_u64()));
    // The last two lines are the same tweet delivered twice.
    assert_eq!(posts[6], posts[7]);
    // Line 1 quotes a tweet and carries media and links.
    assert_eq!(posts[0]["id"], "1377650090978992134");
    assert_eq!(posts[0]["flags"]["quote"], true);
    assert_eq!(posts[0]["flags"]["media"], true);
    assert_eq!(posts[0]["flags"]["link"], true);
}

#[test]
fn x_v2_truncated_stream_ends_in_invalid_json() {
    let decoded = decode_fixture("x-v2-stream-truncated.ndjson");
    assert_eq!(decoded.len(), 8);
    assert_eq!(posts(&decoded).len(), 7);
    assert_eq!(
        decoded[7].result.as_ref().err(),
        Some(&SkipReason::InvalidJson)
    );
}

#[test]
fn x_pages_yield_every_item() {
    // (fixture, posts, frames)
    let cases: &[(&str, usize)] = &[
        ("x-v2-search-page.json", 100),
        ("x-v2-search-page-with-errors.json", 100),
        ("x-v2-tweet-cashtags.json", 1),
        ("x-v1-search-tweets.json", 15),
        ("x-v1-tweet.json", 1),
        ("x-v1-enterprise-original-format.ndjson", 25),
        ("x-gnip-activity-streams.ndjson", 25),
    ];
    for (name, count) in cases {
        let decoded = decode_fixture(name);
        let posts = posts(&decoded);
        assert_eq!(posts.len(), *count, "{name}");
        assert!(
            decoded.iter().all(|d| d.result.is_ok() && d.malformed == 0),
            "{name}"
        );
        assert!(
            posts
                .iter()
                .all(|p| p["platform"] == "x" && p["author"]["id"] != ""),
            "{name}"
        );
    }
    // v2 page authors come from includes.users.
    let page = decode_fixture("x-v2-search-page.json");
    assert!(posts(&page)
        .iter()
        .all(|p| p["author"]["handle"].is_string()));
    // Text arrives with `&`, `<`, `>` escaped; none is left after decoding.
    for name in ["x-v2-search-page.json", "x-v2-search-page-with-errors.json"] {
        let decoded = decode_fixture(name);
        let texts: Vec<&str> = posts(&decoded)
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect();
        assert!(
            texts
                .iter()
                .all(|t| !t.contains("&amp;") && !t.contains("&lt;")),
            "{name}"
        );
        assert!(texts.iter().any(|t| t.contains(" & ")), "{name}");
    }
    // Retweets in the v1.1 search response carry the repost flag and their RT text.
    let search = decode_fixture("x-v1-search-tweets.json");
    let reposts: Vec<_> = posts(&search)
        .into_iter()
        .filter(|p| p["flags"]["repost"] == true)
        .collect();
    assert_eq!(reposts.len(), 6);
    assert!(reposts
        .iter()
        .all(|p| p["text"].as_str().is_some_and(|t| t.starts_with("RT @"))));
}

#[test]
fn x_v1_enterprise_uses_extended_text_and_flags() {
    let decoded = decode_fixture("x-v1-enterprise-original-format.ndjson");
    let posts = posts(&decoded);
    // Line 20: a 140+ character tweet with media; its full text is in extended_tweet.
    let long = posts[19];
    assert!(long["text"]
        .as_str()
        .is_some_and(|t| t.chars().count() > 140));
    assert_eq!(long["flags"]["media"], true);
    // Line 11: a retweet; line 3: a quote tweet; line 23: a reply.
    assert_eq!(posts[10]["flags"]["repost"], true);
    assert_eq!(posts[2]["flags"]["quote"], true);
    assert_eq!(posts[22]["flags"]["reply"], true);
    assert!(posts
        .iter()
        .all(|p| p["author"]["handle"] == "RobotPrincessFi"));
}

#[test]
fn gnip_activities_match_their_original_format_twins() {
    // The two enterprise fixtures hold the same 25 tweets in two formats.
    let original = decode_fixture("x-v1-enterprise-original-format.ndjson");
    let activity = decode_fixture("x-gnip-activity-streams.ndjson");
    for (o, a) in posts(&original).into_iter().zip(posts(&activity)) {
        assert_eq!(o["id"], a["id"]);
        assert_eq!(o["author"]["id"], a["author"]["id"]);
        assert_eq!(o["author"]["handle"], a["author"]["handle"]);
        assert_eq!(o["flags"]["repost"], a["flags"]["repost"], "{}", o["id"]);
        assert_eq!(o["flags"]["quote"], a["flags"]["quote"], "{}", o["id"]);
        assert_eq!(o["flags"]["reply"], a["flags"]["reply"], "{}", o["id"]);
        assert_eq!(o["flags"]["link"], a["flags"]["link"], "{}", o["id"]);
        assert_eq!(o["flags"]["media"], a["flags"]["media"], "{}", o["id"]);
        assert_eq!(o["engagement"], a["engagement"], "{}", o["id"]);
        // Retweet bodies were truncated differently by the two products; the rest agree.
        if o["flags"]["repost"] == false {
            assert_eq!(o["text"], a["text"], "{}", o["id"]);
        }
    }
    // X escapes `&` in text; both decode it.
    let g = posts(&activity)
        .into_iter()
        .find(|p| p["id"] == "867472736871866368")
        .expect("G)");
    assert!(g["text"]
        .as_str()
        .is_some_and(|t| t.contains("G) 140 chars & replies.")));
}

#[test]
fn mastodon_fixtures() {
    let status = decode_fixture("mastodon-status.json");
    let post = posts(&status)[0];
    assert_eq!(post["platform"], "mastodon");
    assert_eq!(
        post["text"],
        "\"I lost my inheritance with one wrong digit on my sort code\"\n\nhttps://www.theguardian.com/money/2019/dec/07/i-lost-my-193000-inheritance-with-one-wrong-digit-on-my-sort-code"
    );
    assert_eq!(post["author"]["handle"], "Gargron");
    assert_eq!(post["author"]["followers"], 322_930);
    assert_eq!(post["engagement"], 11 + 6 + 5);
    assert_eq!(post["flags"]["link"], true);
    assert_eq!(
        post["uri"],
        "https://mastodon.social/users/Gargron/statuses/103270115826048975"
    );

    let hello = decode_fixture("mastodon-status-hello-world.json");
    assert_eq!(posts(&hello)[0]["text"], "Hello world");
    assert_eq!(posts(&hello)[0]["flags"]["link"], false);

    let ws = decode_fixture("mastodon-stream-websocket.ndjson");
    assert_eq!(ws.len(), 3);
    let update = &ws[0].result.as_ref().expect("update is a post")[0];
    assert_eq!(update["id"], "108913983692647032");
    assert_eq!(update["author"]["handle"], "tobtobxx@fosstodon.org");
    assert_eq!(update["flags"]["reply"], true);
    assert_eq!(
        update["text"],
        "And now I can't exit the inner nvim because I mapped escape to the parent vim instance 😂"
    );
    assert_eq!(ws[1].result.as_ref().err(), Some(&SkipReason::Delete));
    assert_eq!(ws[2].result.as_ref().err(), Some(&SkipReason::StreamError));
}

#[test]
fn reddit_fixtures() {
    let comments = decode_fixture("reddit-comments-listing.json");
    let posts_ = posts(&comments);
    assert_eq!(posts_.len(), 16);
    assert!(posts_.iter().all(|p| p["flags"]["reply"] == true));
    assert!(posts_
        .iter()
        .all(|p| p["id"].as_str().is_some_and(|id| id.starts_with("t1_"))));
    assert_eq!(posts_[0]["text"], "i lick it");
    assert_eq!(posts_[0]["created_at"], "2017-04-15T16:48:28Z");

    let submissions = decode_fixture("reddit-submissions-listing.json");
    let subs = posts(&submissions);
    assert_eq!(subs.len(), 4);
    assert!(subs.iter().all(|p| p["flags"]["reply"] == false));
    assert_eq!(
        subs[0]["uri"],
        "https://www.reddit.com/r/UpliftingNews/comments/5jo144/newly_discovered_disease_could_hold_key_to/"
    );
    assert_eq!(subs[0]["flags"]["link"], true);
    assert_eq!(subs[2]["flags"]["link"], false, "a self post");
    assert!(subs[2]["text"]
        .as_str()
        .is_some_and(|t| t.contains("\n\n[casual]")));

    let one = decode_fixture("reddit-comment.json");
    let post = posts(&one)[0];
    assert_eq!(post["id"], "t1_cklhv0f");
    assert_eq!(post["author"]["handle"], "bboe");
    assert_eq!(post["created_at"], "2014-09-18T03:13:54Z");
    assert_eq!(
        post["uri"],
        "https://www.reddit.com/comments/2gmzqe/_/cklhv0f/"
    );
}

// ---------------------------------------------------------------------------------------
// Links, on the real fixtures (and on real frames edited where the fixtures lack a case)
// ---------------------------------------------------------------------------------------

/// A decoded post's links (empty when the field is left out).
fn links_of(post: &Value) -> Vec<&str> {
    post.get("links")
        .and_then(Value::as_array)
        .map(|l| l.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// The post with `id` among `posts`.
fn post_with_id<'v>(posts: &[&'v Value], id: &str) -> &'v Value {
    posts
        .iter()
        .find(|p| p["id"] == id)
        .unwrap_or_else(|| panic!("no post {id}"))
}

/// Decodes one frame given as JSON, returning its posts.
fn run_value(format: &Format, frame: &Value) -> Vec<Value> {
    run(format, &frame.to_string()).unwrap_or_else(|r| panic!("skipped: {r:?}"))
}

/// The first frame of a fixture as JSON, to be edited.
fn fixture_value(name: &str, line: usize) -> Value {
    let (_, frame) = fixture_frames(name)
        .into_iter()
        .find(|(l, _)| *l == line)
        .unwrap_or_else(|| panic!("{name}:{line}"));
    serde_json::from_slice(&frame).expect("fixture JSON")
}

#[test]
fn jetstream_links_come_from_link_facets_and_external_embeds() {
    let decoded = decode_fixture("jetstream-sample.ndjson");
    let posts = posts(&decoded);
    // (rkey, links): every post of the sample that has any. Lines 2 and 94 have an external
    // embed and a link facet with the same URI; line 131's embed URI is written with Go's
    // `\u0026` escapes; line 134 has a facet only; line 148 a facet beside an images embed.
    let expected: &[(&str, &[&str])] = &[
        ("3mptbyoeyc22k", &["https://www.youtube.com/watch?v=V5lDo-jw8mA"]),
        (
            "3mptbyoigog2b",
            &["https://www.ufofeed.com/266486/has-anyone-properly-debunked-tic-tac-video/"],
        ),
        (
            "3mptbyproxc2q",
            &["https://static.klipy.com/ii/f87f46a2c5aeaeed4c68910815f73eaf/7d/09/g1bpFVOm.gif?hh=498&ww=498&mp4=IrGBygbn&webm=1Tnl61JE"],
        ),
        ("3mptbypt22l26", &["https://denikn.cz/2113523"]),
        (
            "3mptbyo7tas2u",
            &["https://www.tumblr.com/tempo-tales/765681292369166336/behind-them-timmi-and-wankyu-follow-silently-but?source=share"],
        ),
    ];
    for post in &posts {
        let id = post["id"].as_str().expect("id");
        let want = expected
            .iter()
            .find(|(rkey, _)| *rkey == id)
            .map_or(&[][..], |(_, links)| *links);
        assert_eq!(links_of(post), want, "{id}");
    }
    // The text shows the facet's link shortened; the link is whole.
    let single = decode_fixture("jetstream-post-create.json");
    let post = posts_of_first(&single);
    assert_eq!(
        links_of(post),
        ["https://www.ufofeed.com/266486/has-anyone-properly-debunked-tic-tac-video/"]
    );
}

fn posts_of_first(decoded: &[Decoded]) -> &Value {
    &decoded[0].result.as_ref().expect("a post")[0]
}

#[test]
fn jetstream_links_from_edited_real_events() {
    let base = fixture_value("jetstream-post-create.json", 1);
    let record = |edit: &dyn Fn(&mut Value)| {
        let mut event = base.clone();
        edit(&mut event["commit"]["record"]);
        run_value(&Format::Jetstream, &event).remove(0)
    };
    let external = base["commit"]["record"]["embed"].clone();
    let facet_uri = "https://www.ufofeed.com/266486/has-anyone-properly-debunked-tic-tac-video/";

    // The external card as the media of a quote (recordWithMedia), and no facets.
    let post = record(&|r| {
        r["embed"] = serde_json::json!({
            "$type": "app.bsky.embed.recordWithMedia",
            "media": external.clone(),
            "record": {"$type": "app.bsky.embed.record", "record": {"cid": "c", "uri": "at://did:plc:x/app.bsky.feed.post/1"}},
        });
        r.as_object_mut().expect("record").remove("facets");
    });
    assert_eq!(links_of(&post), [facet_uri]);
    assert_eq!(post["flags"]["quote"], true);
    assert_eq!(post["flags"]["link"], true);

    // Facets that are not web links, a duplicate, a link too long, then a new one.
    let long = format!("https://example.com/{}", "a".repeat(MAX_LINK_BYTES));
    let post = record(&|r| {
        let facets = r["facets"].as_array_mut().expect("facets");
        let facet = facets[0].clone();
        for uri in [
            "at://did:plc:x/app.bsky.feed.post/1",
            "mailto:press@example.com",
            facet_uri,
            &long,
            "https://example.com/next",
        ] {
            let mut f = facet.clone();
            f["features"][0]["uri"] = Value::from(uri);
            facets.push(f);
        }
    });
    assert_eq!(links_of(&post), [facet_uri, "https://example.com/next"]);

    // Many distinct link facets: the first MAX_LINKS in order are kept.
    let post = record(&|r| {
        let facet = r["facets"][0].clone();
        let facets = r["facets"].as_array_mut().expect("facets");
        facets.clear();
        for n in 0..40 {
            let mut f = facet.clone();
            f["features"][0]["uri"] = Value::from(format!("https://example.com/{n}"));
            facets.push(f);
        }
        r.as_object_mut().expect("record").remove("embed");
    });
    let want: Vec<String> = (0..MAX_LINKS)
        .map(|n| format!("https://example.com/{n}"))
        .collect();
    assert_eq!(links_of(&post), want);

    // An external embed without a URI keeps its link flag and has no link.
    let post = record(&|r| {
        r["embed"]["external"]
            .as_object_mut()
            .expect("external")
            .remove("uri");
        r.as_object_mut().expect("record").remove("facets");
    });
    assert!(links_of(&post).is_empty());
    assert_eq!(post["flags"]["link"], true);
}

#[test]
fn x_v2_links_are_expanded_urls_without_the_tweets_own_pages() {
    let stream = decode_fixture("x-v2-stream.ndjson");
    let posts_ = posts(&stream);
    // Line 1: its own photo page and the quoted tweet; only the quoted tweet is a link.
    assert_eq!(
        links_of(post_with_id(&posts_, "1377650090978992134")),
        ["https://twitter.com/Manie_DS/status/1377640162566496258"]
    );
    assert_eq!(posts_[0]["flags"]["link"], true);
    // Line 3: an Instagram post behind a t.co link.
    assert_eq!(
        links_of(post_with_id(&posts_, "1377650277642338305")),
        ["https://www.instagram.com/p/CNIQbqSrZRL/?igshid=je3jmv61ndpu"]
    );
    // Line 4: only its own photo: the flag stays, no link.
    let photo = post_with_id(&posts_, "1377650387579248643");
    assert!(links_of(photo).is_empty());
    assert_eq!(photo["flags"]["link"], true);

    let page = decode_fixture("x-v2-search-page.json");
    let page = posts(&page);
    assert_eq!(
        links_of(post_with_id(&page, "1440716656943058945")),
        ["https://www.nytimes.com/2021/09/22/world/europe/france-submarines-biden.html"]
    );
    // Its own photo listed three times, then a quoted tweet.
    assert_eq!(
        links_of(post_with_id(&page, "1440713966649417731")),
        ["https://twitter.com/JavierBlas/status/1440670794103754762"]
    );
    assert_eq!(
        links_of(post_with_id(&page, "1440715564863791107")),
        ["http://www.tagesschau.de/wirtschaft/weltwirtschaft/grossbritannien-usa-handelsabkommen-101.html"]
    );
    let with_errors = decode_fixture("x-v2-search-page-with-errors.json");
    // A retweet lists the original's photo page: media, not a link.
    let retweet = post_with_id(&posts(&with_errors), "1440717092546756616");
    assert!(links_of(retweet).is_empty());
    assert_eq!(retweet["flags"]["repost"], true);
    assert_eq!(
        links_of(post_with_id(&posts(&with_errors), "1440716520372404238")),
        ["https://www.amazon.co.jp/dp/B09G2NSXZ1?&_encoding=UTF8&tag=issy4504-22"]
    );
    let cashtags = decode_fixture("x-v2-tweet-cashtags.json");
    assert_eq!(
        links_of(posts(&cashtags)[0]),
        ["http://go.trade-ideas.com/SHHb"]
    );

    // Without `expanded_url` the t.co `url` is the link.
    let mut line = fixture_value("x-v2-stream.ndjson", 3);
    line["data"]["entities"]["urls"][0]
        .as_object_mut()
        .expect("url entity")
        .remove("expanded_url");
    assert_eq!(
        links_of(&run_value(&Format::XV2, &line)[0]),
        ["https://t.co/QHp3Dk7OeK"]
    );
}

#[test]
fn x_v1_links_prefer_the_extended_tweet() {
    let one = decode_fixture("x-v1-tweet.json");
    assert_eq!(
        links_of(posts(&one)[0]),
        ["https://engineering.twitter.com/2012/11/bolstering-our-infrastructure.html"]
    );

    let search = decode_fixture("x-v1-search-tweets.json");
    let search = posts(&search);
    assert_eq!(
        links_of(post_with_id(&search, "1149698684646563840")),
        ["https://www.data-blogger.com/2017/02/24/gathering-tweets-with-python/"]
    );
    // A retweet carries the links of its RT text.
    assert_eq!(
        links_of(post_with_id(&search, "1149603041349259266")),
        ["https://www.independent.co.uk/travel/news-and-advice/air-canada-flight-turbulence-plane-hawaii-landing-vancouver-sydney-a9001731.html?utm_medium=Social&utm_source=Twitter#Echobox=1562921543"]
    );
    // Truncated without an extended_tweet: the only URL is "read more" to itself.
    let truncated = post_with_id(&search, "1149678185375600641");
    assert!(links_of(truncated).is_empty());
    assert_eq!(truncated["flags"]["link"], true);
    // Photos are media, not links.
    assert!(links_of(post_with_id(&search, "1149788838430224391")).is_empty());

    let enterprise = decode_fixture("x-v1-enterprise-original-format.ndjson");
    let enterprise = posts(&enterprise);
    // Line 10: the top-level entities hold only `i/web/status/<own id>`; the quoted tweet's
    // link is in extended_tweet.entities.
    assert_eq!(
        links_of(post_with_id(&enterprise, "867479301360205824")),
        ["https://twitter.com/notFromShrek/status/861652051016663040"]
    );
    assert_eq!(
        links_of(post_with_id(&enterprise, "867470833744191488")),
        ["https://smittenkitchen.com/2009/12/ridiculously-easy-butterscotch-sauce/"]
    );
    assert!(links_of(post_with_id(&enterprise, "867473446648676352")).is_empty());
    let with_links = enterprise
        .iter()
        .filter(|p| !links_of(p).is_empty())
        .count();
    assert_eq!(with_links, 9);
}

#[test]
fn gnip_links_match_their_original_format_twins() {
    let original = decode_fixture("x-v1-enterprise-original-format.ndjson");
    let activity = decode_fixture("x-gnip-activity-streams.ndjson");
    for (o, a) in posts(&original).into_iter().zip(posts(&activity)) {
        assert_eq!(links_of(o), links_of(a), "{}", o["id"]);
    }
}

#[test]
fn mastodon_links_are_plain_hrefs_and_the_card() {
    // The href and the card's url are the same article: one link.
    let status = decode_fixture("mastodon-status.json");
    assert_eq!(
        links_of(posts(&status)[0]),
        ["https://www.theguardian.com/money/2019/dec/07/i-lost-my-193000-inheritance-with-one-wrong-digit-on-my-sort-code"]
    );
    let hello = decode_fixture("mastodon-status-hello-world.json");
    assert!(links_of(posts(&hello)[0]).is_empty());
    // A mention is not a link.
    let sse = decode_fixture("mastodon-stream.sse");
    let mention = post_with_id(&posts(&sse), "108914327388663283");
    assert!(links_of(mention).is_empty());

    // The ruby.social edit in the SSE transcript is a Status with four hashtags and one
    // link; decoded as a status, only the link is.
    let transcript =
        std::fs::read_to_string(fixtures_dir().join("mastodon-stream.sse")).expect("fixture");
    let data = transcript
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .find(|d| d.contains("cstudios.bandcamp.com"))
        .expect("the ruby.social status");
    assert_eq!(
        links_of(&run(&Format::Mastodon, data.trim()).expect("a status")[0]),
        ["https://cstudios.bandcamp.com/track/celestia-gravity-assist-no-19-var-2"]
    );

    // The real status with a query in its link: `&amp;` in the href is decoded, and the
    // card's url (plain JSON) is then the same link. A second card URL would follow it.
    let mut edited = fixture_value("mastodon-status.json", 1);
    let article = edited["card"]["url"].as_str().expect("card url").to_owned();
    let content = edited["content"].as_str().expect("content").replace(
        &format!("href=\"{article}\""),
        &format!("href=\"{article}?utm_source=m&amp;utm_medium=s\""),
    );
    edited["content"] = Value::from(content);
    edited["card"]["url"] = Value::from(format!("{article}?utm_source=m&utm_medium=s"));
    let post = &run_value(&Format::Mastodon, &edited)[0];
    assert_eq!(
        links_of(post),
        [format!("{article}?utm_source=m&utm_medium=s")]
    );
    edited["card"]["url"] = Value::from("https://www.theguardian.com/");
    let post = &run_value(&Format::Mastodon, &edited)[0];
    assert_eq!(
        links_of(post),
        [
            format!("{article}?utm_source=m&utm_medium=s"),
            "https://www.theguardian.com/".to_owned()
        ]
    );
}

#[test]
fn reddit_links_are_link_submissions_urls() {
    let submissions = decode_fixture("reddit-submissions-listing.json");
    let subs = posts(&submissions);
    let links: Vec<Vec<&str>> = subs.iter().map(|p| links_of(p)).collect();
    assert_eq!(
        links,
        [
            vec!["http://www.independent.co.uk/news/science/dementia-alzheimers-parkinsons-disease-genetic-condition-ageing-a7489111.html"],
            vec!["https://i.imgur.com/zxSSOAS.png"],
            vec![], // a self post: its url is its own page
            vec!["https://clips.twitch.tv/pokelawls/UnusualOtterTheTarFu"],
        ]
    );
    // Comments carry no link fields of their own (link_url is their submission's).
    let comments = decode_fixture("reddit-comments-listing.json");
    assert!(posts(&comments).iter().all(|p| links_of(p).is_empty()));

    // Without raw_json=1 Reddit escapes `&` in the url; a link submission pointing at its
    // own page (as a crosspost stub can) has no link.
    let mut listing = fixture_value("reddit-submissions-listing.json", 1);
    listing["data"]["children"][0]["data"]["url"] =
        Value::from("https://www.youtube.com/watch?v=abc&amp;t=10");
    let fourth = &mut listing["data"]["children"][3]["data"];
    let permalink = fourth["permalink"].as_str().expect("permalink").to_owned();
    fourth["url"] = Value::from(format!("https://old.reddit.com{permalink}"));
    let edited = run_value(&Format::Reddit, &listing);
    assert_eq!(
        links_of(&edited[0]),
        ["https://www.youtube.com/watch?v=abc&t=10"]
    );
    assert!(links_of(&edited[3]).is_empty());
}

#[test]
fn links_keep_only_short_web_urls() {
    // (url, kept)
    let cases: &[(&str, bool)] = &[
        ("https://acme.example/a", true),
        ("http://acme.example", true),
        ("HTTPS://ACME.EXAMPLE/", true),
        ("https://", false),
        ("http:/acme.example", false),
        ("at://did:plc:x/app.bsky.feed.post/1", false),
        ("mailto:press@acme.example", false),
        ("ftp://acme.example/file", false),
        ("javascript:alert(1)", false),
        ("/relative/path", false),
        ("", false),
    ];
    for (url, kept) in cases {
        let mut links = Vec::new();
        push_link(&mut links, std::borrow::Cow::Borrowed(*url));
        assert_eq!(links.len() == 1, *kept, "{url}");
    }
    let longest = format!("https://a.example/{}", "x".repeat(MAX_LINK_BYTES - 18));
    assert_eq!(longest.len(), MAX_LINK_BYTES);
    let mut links = Vec::new();
    push_link(&mut links, longest.as_str().into());
    push_link(&mut links, format!("{longest}y").into());
    push_link(&mut links, longest.as_str().into());
    assert_eq!(links, [longest.as_str()]);
}

// ---------------------------------------------------------------------------------------
// The post a repost or quote refers to, on the real fixtures (and on real frames edited
// where the fixtures lack a case: no fixture holds a Bluesky quote, a Mastodon reblog or a
// Reddit crosspost)
// ---------------------------------------------------------------------------------------

/// A decoded post's `original` (`None` when the field is left out).
fn original_of(post: &Value) -> Option<&str> {
    post.get("original").and_then(Value::as_str)
}

#[test]
fn x_originals_on_real_fixtures() {
    // (fixture, tweet id, the original it names)
    let cases: &[(&str, &str, Option<&str>)] = &[
        // v2 stream line 1 quotes @Manie_DS's tweet.
        (
            "x-v2-stream.ndjson",
            "1377650090978992134",
            Some("x:1377640162566496258"),
        ),
        // v2 page: a retweet, a quote tweet, a tweet that is neither.
        (
            "x-v2-search-page.json",
            "1440716856763977732",
            Some("x:1440713161355583489"),
        ),
        (
            "x-v2-search-page.json",
            "1440715975020584960",
            Some("x:1440660748275834882"),
        ),
        ("x-v2-tweet-cashtags.json", "1611077073803841538", None),
        // v1.1 search: retweets.
        (
            "x-v1-search-tweets.json",
            "1149825924029980674",
            Some("x:1149803446704443392"),
        ),
        ("x-v1-search-tweets.json", "1149788838430224391", None),
        // Enterprise original format and Gnip activities: a retweet (line 11), a quote
        // (line 3), a plain tweet (line 1), the same in both formats.
        (
            "x-v1-enterprise-original-format.ndjson",
            "867478524235366400",
            Some("x:861651727614746624"),
        ),
        (
            "x-v1-enterprise-original-format.ndjson",
            "872836479608733696",
            Some("x:872836379595620353"),
        ),
        (
            "x-v1-enterprise-original-format.ndjson",
            "887453193294282752",
            None,
        ),
        (
            "x-gnip-activity-streams.ndjson",
            "867478524235366400",
            Some("x:861651727614746624"),
        ),
        (
            "x-gnip-activity-streams.ndjson",
            "872836479608733696",
            Some("x:872836379595620353"),
        ),
        ("x-gnip-activity-streams.ndjson", "887453193294282752", None),
        ("x-v1-tweet.json", "266367358078169089", None),
    ];
    for (fixture, id, want) in cases {
        let decoded = decode_fixture(fixture);
        let post = post_with_id(&posts(&decoded), id);
        assert_eq!(original_of(post), *want, "{fixture} {id}");
    }
    // Every repost and quote of the X fixtures names its original; nothing else does.
    for fixture in fixture_names().iter().filter(|n| n.starts_with("x-")) {
        for post in posts(&decode_fixture(fixture)) {
            let flagged = post["flags"]["repost"] == true || post["flags"]["quote"] == true;
            assert_eq!(
                original_of(post).is_some(),
                flagged,
                "{fixture} {}",
                post["id"]
            );
        }
    }
}

#[test]
fn x_originals_join_the_posts_they_name() {
    // The v2 page holds the quote tweet 1440714027773030407 and three retweets of it: their
    // `original` is that tweet's canonical id, so they can be rolled up onto it.
    let page = decode_fixture("x-v2-search-page.json");
    let posts = posts(&page);
    let quote = post_with_id(&posts, "1440714027773030407");
    let canonical = format!("x:{}", quote["id"].as_str().expect("id"));
    let mut reposts: Vec<&str> = posts
        .iter()
        .filter(|p| original_of(p) == Some(canonical.as_str()))
        .filter_map(|p| p["id"].as_str())
        .collect();
    reposts.sort_unstable();
    assert_eq!(
        reposts,
        [
            "1440714538064637965",
            "1440714821918359563",
            "1440715389520932865"
        ]
    );
    // And one tweet of the day was retweeted 17 times within the page.
    let storm = posts
        .iter()
        .filter(|p| original_of(p) == Some("x:1440713161355583489"))
        .count();
    assert_eq!(storm, 17);
}

#[test]
fn jetstream_quote_originals_from_edited_real_events() {
    let base = fixture_value("jetstream-post-create.json", 1);
    let quoted = "at://did:plc:k5nskatzhyxersjilvtnz4lh/app.bsky.feed.post/3lhjg47rc6c2o";
    let strong_ref = |uri: &str| serde_json::json!({"cid": "bafyreibox6hwfri43nvhrpmi4sznpzhpy3rvxr4pgkf6z6rtttjyiq27ua", "uri": uri});
    let images = serde_json::json!({"$type": "app.bsky.embed.images", "images": []});
    // (name, embed, original, quote flag)
    let cases: Vec<(&str, Value, Option<&str>, bool)> = vec![
        (
            "record",
            serde_json::json!({"$type": "app.bsky.embed.record", "record": strong_ref(quoted)}),
            Some(quoted),
            true,
        ),
        (
            "record with media",
            serde_json::json!({"$type": "app.bsky.embed.recordWithMedia", "media": images,
                "record": {"$type": "app.bsky.embed.record", "record": strong_ref(quoted)}}),
            Some(quoted),
            true,
        ),
        (
            "record with media names the inner record, not the outer",
            serde_json::json!({"$type": "app.bsky.embed.recordWithMedia", "media": images,
                "record": {"uri": "at://did:plc:x/app.bsky.feed.post/outer", "record": strong_ref(quoted)}}),
            Some(quoted),
            true,
        ),
        (
            "a quoted feed is not a post",
            serde_json::json!({"$type": "app.bsky.embed.record",
                "record": strong_ref("at://did:plc:x/app.bsky.feed.generator/whats-hot")}),
            None,
            true,
        ),
        (
            "a quoted list is not a post",
            serde_json::json!({"$type": "app.bsky.embed.record",
                "record": strong_ref("at://did:plc:x/app.bsky.graph.list/3k")}),
            None,
            true,
        ),
        (
            "not an at-uri",
            serde_json::json!({"$type": "app.bsky.embed.record",
                "record": strong_ref("https://bsky.app/profile/x/post/3k")}),
            None,
            true,
        ),
        (
            "a record without a uri",
            serde_json::json!({"$type": "app.bsky.embed.record", "record": {"cid": "c"}}),
            None,
            true,
        ),
        (
            "an external card names no post",
            base["commit"]["record"]["embed"].clone(),
            None,
            false,
        ),
    ];
    for (name, embed, want, quote) in cases {
        let mut event = base.clone();
        event["commit"]["record"]["embed"] = embed;
        let frame = event.to_string();
        let post = run_value(&Format::Jetstream, &event).remove(0);
        assert_eq!(original_of(&post), want, "{name}");
        assert_eq!(post["flags"]["quote"], quote, "{name}");
        // The fast reader and the tape decoder agree.
        super::reader_tests::assert_agree(frame.as_bytes(), DecodeLimits::default());
    }
    // A repost record is a skip, not a post: it has no text for a rule to match.
    let mut repost = base.clone();
    repost["commit"]["collection"] = Value::from("app.bsky.feed.repost");
    repost["commit"]["record"] = serde_json::json!({"$type": "app.bsky.feed.repost",
        "createdAt": "2026-07-04T14:38:02Z", "subject": strong_ref(quoted)});
    assert_eq!(
        run(&Format::Jetstream, &repost.to_string()).err(),
        Some(SkipReason::Repost)
    );
}

#[test]
fn mastodon_originals_from_edited_real_statuses() {
    let hello = fixture_value("mastodon-status-hello-world.json", 1);
    let hello_uri = hello["uri"].as_str().expect("uri").to_owned();
    let gargron = fixture_value("mastodon-status.json", 1);
    let gargron_uri = gargron["uri"].as_str().expect("uri").to_owned();
    // (name, edit of the Gargron status, original)
    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Edit, Option<String>)> = vec![
        (
            "as published: quote null, reblog null",
            Box::new(|_| {}),
            None,
        ),
        (
            "a reblog names the reblogged status's uri",
            Box::new({
                let hello = hello.clone();
                move |s| {
                    s["reblog"] = hello.clone();
                    s["content"] = Value::from("");
                }
            }),
            Some(hello_uri.clone()),
        ),
        (
            "a quote (Mastodon 4.4 Quote entity)",
            Box::new({
                let hello = hello.clone();
                move |s| {
                    s["quote"] = serde_json::json!({"state": "accepted", "quoted_status": hello})
                }
            }),
            Some(hello_uri.clone()),
        ),
        (
            "a quote whose status is not shown",
            Box::new(|s| {
                s["quote"] = serde_json::json!({"state": "deleted", "quoted_status": null})
            }),
            None,
        ),
        (
            "a shallow quote gives only a local id",
            Box::new(|s| {
                s["quote"] = serde_json::json!({"state": "accepted", "quoted_status_id": "1"})
            }),
            None,
        ),
        (
            "a server that puts the status itself in quote",
            Box::new({
                let hello = hello.clone();
                move |s| s["quote"] = hello.clone()
            }),
            Some(hello_uri.clone()),
        ),
        (
            "a reblog wins over a quote",
            Box::new({
                let hello = hello.clone();
                let gargron = gargron.clone();
                move |s| {
                    s["reblog"] = gargron.clone();
                    s["quote"] = serde_json::json!({"state": "accepted", "quoted_status": hello});
                }
            }),
            Some(gargron_uri.clone()),
        ),
    ];
    for (name, edit, want) in cases {
        let mut status = gargron.clone();
        edit(&mut status);
        let post = run_value(&Format::Mastodon, &status).remove(0);
        assert_eq!(original_of(&post), want.as_deref(), "{name}");
        // Inside the streaming envelope too.
        let envelope = serde_json::json!({"stream": ["public"], "event": "update", "payload": status.to_string()});
        let wrapped = run_value(&Format::Mastodon, &envelope).remove(0);
        assert_eq!(original_of(&wrapped), want.as_deref(), "{name} (streamed)");
    }
    // The reblog's original is what the reblogged status's own post gets as its id.
    let own = run_value(&Format::Mastodon, &hello).remove(0);
    assert_eq!(own["uri"], Value::from(hello_uri));
}

#[test]
fn reddit_crosspost_originals_from_an_edited_real_listing() {
    let mut listing = fixture_value("reddit-submissions-listing.json", 1);
    let parent = listing["data"]["children"][0]["data"].clone();
    let parent_permalink = parent["permalink"].as_str().expect("permalink").to_owned();
    {
        let second = &mut listing["data"]["children"][1]["data"];
        second["crosspost_parent"] = parent["name"].clone();
        second["crosspost_parent_list"] = Value::Array(vec![parent.clone()]);
        // A crosspost whose parent list is missing: only a fullname, which is not an id.
        let third = &mut listing["data"]["children"][2]["data"];
        third["crosspost_parent"] = parent["name"].clone();
    }
    let posts = run_value(&Format::Reddit, &listing);
    // The parent's own post has the original's id.
    assert_eq!(
        posts[0]["uri"],
        format!("https://www.reddit.com{parent_permalink}")
    );
    assert_eq!(original_of(&posts[0]), None);
    assert_eq!(posts[0]["flags"]["repost"], false);
    assert_eq!(original_of(&posts[1]), posts[0]["uri"].as_str());
    assert_eq!(posts[1]["flags"]["repost"], true);
    assert_eq!(original_of(&posts[2]), None);
    assert_eq!(posts[2]["flags"]["repost"], true);
    assert_eq!(original_of(&posts[3]), None);
    // Comments never crosspost.
    let comments = decode_fixture("reddit-comments-listing.json");
    assert!(posts_of_first(&comments).get("original").is_none());
}

#[test]
fn detect_names_the_format_of_every_fixture_frame() {
    for name in fixture_names() {
        if name.ends_with(".sse") {
            // An event stream, not frames: the SSE source extracts the frames.
            continue;
        }
        let want = fixture_format(&name);
        for (line, frame) in fixture_frames(&name) {
            if name == "x-v2-stream-truncated.ndjson" && line == 8 {
                assert_eq!(Format::detect(&frame), None, "truncated JSON");
                continue;
            }
            assert_eq!(Format::detect(&frame), Some(want.clone()), "{name}:{line}");
        }
    }
    assert_eq!(Format::detect(b"{\"hello\":1}"), None);
    assert_eq!(Format::detect(b"[1,2]"), None);
    assert_eq!(Format::detect(b"\xff"), None);
}

// ---------------------------------------------------------------------------------------
// Tables of synthetic events
// ---------------------------------------------------------------------------------------

/// Decodes `frame` with `format`, returning the posts as JSON or the skip.
fn run(format: &Format, frame: &str) -> Result<Vec<Value>, SkipReason> {
    let mut decoder = Decoder::new(format.clone(), DecodeLimits::default());
    let decoded = decode_all(&mut decoder, &[(1, frame.as_bytes().to_vec())]);
    decoded.into_iter().next().expect("one frame").result
}

fn jetstream_commit(operation: &str, collection: &str, record: &str) -> String {
    format!(
        r#"{{"did":"did:plc:a","time_us":1725911162329308,"kind":"commit","commit":{{"rev":"r","operation":"{operation}","collection":"{collection}","rkey":"k1","record":{record},"cid":"c"}}}}"#
    )
}

#[test]
fn jetstream_events_table() {
    let post = r#"{"$type":"app.bsky.feed.post","text":"hi","createdAt":"2024-01-01T00:00:00Z"}"#;
    // (name, frame, expected skip or None for a post)
    let cases: Vec<(&str, String, Option<SkipReason>)> = vec![
        (
            "post",
            jetstream_commit("create", "app.bsky.feed.post", post),
            None,
        ),
        (
            "like",
            jetstream_commit("create", "app.bsky.feed.like", "{}"),
            Some(SkipReason::Like),
        ),
        (
            "repost",
            jetstream_commit("create", "app.bsky.feed.repost", "{}"),
            Some(SkipReason::Repost),
        ),
        (
            "follow",
            jetstream_commit("create", "app.bsky.graph.follow", "{}"),
            Some(SkipReason::Follow),
        ),
        (
            "block",
            jetstream_commit("create", "app.bsky.graph.block", "{}"),
            Some(SkipReason::Graph),
        ),
        (
            "list",
            jetstream_commit("create", "app.bsky.graph.list", "{}"),
            Some(SkipReason::Graph),
        ),
        (
            "listitem",
            jetstream_commit("create", "app.bsky.graph.listitem", "{}"),
            Some(SkipReason::Graph),
        ),
        (
            "profile",
            jetstream_commit("create", "app.bsky.actor.profile", "{}"),
            Some(SkipReason::OtherRecord),
        ),
        (
            "other lexicon",
            jetstream_commit("create", "fm.teal.alpha.feed.play", "{}"),
            Some(SkipReason::OtherRecord),
        ),
        (
            "delete post",
            jetstream_commit("delete", "app.bsky.feed.post", "null"),
            Some(SkipReason::Delete),
        ),
        (
            "update post",
            jetstream_commit("update", "app.bsky.feed.post", post),
            Some(SkipReason::Update),
        ),
        (
            "delete like",
            jetstream_commit("delete", "app.bsky.feed.like", "null"),
            Some(SkipReason::Delete),
        ),
        (
            "unknown operation",
            jetstream_commit("upsert", "app.bsky.feed.post", post),
            Some(SkipReason::WrongShape),
        ),
        (
            "text missing",
            jetstream_commit("create", "app.bsky.feed.post", r#"{"langs":["en"]}"#),
            Some(SkipReason::WrongShape),
        ),
        (
            "text a number",
            jetstream_commit("create", "app.bsky.feed.post", r#"{"text":5}"#),
            Some(SkipReason::WrongShape),
        ),
        (
            "record not an object",
            jetstream_commit("create", "app.bsky.feed.post", "[]"),
            Some(SkipReason::WrongShape),
        ),
        (
            "empty text is a post",
            jetstream_commit("create", "app.bsky.feed.post", r#"{"text":""}"#),
            None,
        ),
        (
            "identity",
            r#"{"did":"did:plc:a","time_us":1,"kind":"identity","identity":{}}"#.into(),
            Some(SkipReason::Identity),
        ),
        (
            "account",
            r#"{"did":"did:plc:a","time_us":1,"kind":"account","account":{}}"#.into(),
            Some(SkipReason::Account),
        ),
        (
            "future kind",
            r#"{"did":"did:plc:a","time_us":1,"kind":"sync"}"#.into(),
            Some(SkipReason::OtherEvent),
        ),
        (
            "no kind",
            r#"{"did":"did:plc:a","time_us":1}"#.into(),
            Some(SkipReason::WrongShape),
        ),
        (
            "commit missing",
            r#"{"did":"did:plc:a","kind":"commit"}"#.into(),
            Some(SkipReason::WrongShape),
        ),
        (
            "not an object",
            "[1,2,3]".into(),
            Some(SkipReason::WrongShape),
        ),
        (
            "a string",
            r#""commit""#.into(),
            Some(SkipReason::WrongShape),
        ),
    ];
    for (name, frame, want) in cases {
        let got = run(&Format::Jetstream, &frame);
        match want {
            None => assert_eq!(got.map(|p| p.len()), Ok(1), "{name}"),
            Some(reason) => assert_eq!(got.err(), Some(reason), "{name}"),
        }
    }
}

#[test]
fn jetstream_flags_table() {
    // (name, record fields after "text", expected reply/quote/link/media)
    let cases: &[(&str, &str, [bool; 4])] = &[
        ("plain", "", [false, false, false, false]),
        (
            "reply",
            r#","reply":{"root":{},"parent":{}}"#,
            [true, false, false, false],
        ),
        (
            "quote",
            r#","embed":{"$type":"app.bsky.embed.record","record":{}}"#,
            [false, true, false, false],
        ),
        (
            "quote with images",
            r#","embed":{"$type":"app.bsky.embed.recordWithMedia","media":{"$type":"app.bsky.embed.images"}}"#,
            [false, true, false, true],
        ),
        (
            "quote with external",
            r#","embed":{"media":{"$type":"app.bsky.embed.external"},"$type":"app.bsky.embed.recordWithMedia"}"#,
            [false, true, true, false],
        ),
        (
            "external",
            r#","embed":{"$type":"app.bsky.embed.external"}"#,
            [false, false, true, false],
        ),
        (
            "images",
            r#","embed":{"$type":"app.bsky.embed.images","images":[]}"#,
            [false, false, false, true],
        ),
        (
            "video",
            r#","embed":{"$type":"app.bsky.embed.video"}"#,
            [false, false, false, true],
        ),
        (
            "link facet",
            r##","facets":[{"features":[{"$type":"app.bsky.richtext.facet#tag"}]},{"features":[{"$type":"app.bsky.richtext.facet#link","uri":"https://a"}]}]"##,
            [false, false, true, false],
        ),
        (
            "tag facet only",
            r##","facets":[{"features":[{"$type":"app.bsky.richtext.facet#tag","tag":"x"}]}]"##,
            [false, false, false, false],
        ),
    ];
    for (name, extra, [reply, quote, link, media]) in cases {
        let record = format!(r#"{{"text":"t"{extra},"langs":["pt-BR","en"]}}"#);
        let posts = run(
            &Format::Jetstream,
            &jetstream_commit("create", "app.bsky.feed.post", &record),
        )
        .unwrap_or_else(|r| panic!("{name}: {r:?}"));
        let flags = &posts[0]["flags"];
        assert_eq!(
            [
                &flags["reply"],
                &flags["quote"],
                &flags["link"],
                &flags["media"]
            ],
            [reply, quote, link, media],
            "{name}"
        );
        assert_eq!(posts[0]["lang"], "pt-BR", "{name}");
    }
}

#[test]
fn jetstream_unescapes_text_in_place() {
    let record = r#"{"text":"a\"b\\c\nd \u00e9 \ud83d\ude00"}"#;
    let posts = run(
        &Format::Jetstream,
        &jetstream_commit("create", "app.bsky.feed.post", record),
    )
    .expect("a post");
    assert_eq!(posts[0]["text"], "a\"b\\c\nd é 😀");
}

#[test]
fn x_v2_table() {
    let users = r#""includes":{"users":[{"id":"9","username":"other"},{"id":"1","username":"acme","name":"Acme","verified":true,"public_metrics":{"followers_count":42}}]}"#;
    let cases: Vec<(&str, String, Result<usize, SkipReason>)> = vec![
        (
            "stream tweet",
            format!(
                r#"{{"data":{{"id":"5","text":"hi","author_id":"1"}},{users},"matching_rules":[{{"id":"7","tag":"x"}}]}}"#
            ),
            Ok(1),
        ),
        (
            "numeric rule id",
            format!(
                r#"{{"data":{{"id":"5","text":"hi","author_id":"1"}},{users},"matching_rules":[{{"id":7,"tag":null}}]}}"#
            ),
            Ok(1),
        ),
        (
            "page",
            format!(
                r#"{{"data":[{{"id":"5","text":"a","author_id":"1"}},{{"id":"6","text":"b","author_id":"9"}}],{users},"meta":{{"result_count":2}}}}"#
            ),
            Ok(2),
        ),
        (
            "page with a bad item",
            format!(r#"{{"data":[{{"id":"5","text":"a","author_id":"1"}},{{"id":"6"}}],{users}}}"#),
            Ok(1),
        ),
        (
            "page of bad items",
            r#"{"data":[{"id":"6"}]}"#.into(),
            Err(SkipReason::WrongShape),
        ),
        (
            "empty page",
            r#"{"meta":{"result_count":0}}"#.into(),
            Err(SkipReason::OtherEvent),
        ),
        (
            "empty data array",
            r#"{"data":[],"meta":{"result_count":0}}"#.into(),
            Err(SkipReason::OtherEvent),
        ),
        (
            "errors only",
            r#"{"errors":[{"title":"operational-disconnect"}]}"#.into(),
            Err(SkipReason::StreamError),
        ),
        (
            "author not in includes",
            r#"{"data":{"id":"5","text":"hi","author_id":"3"}}"#.into(),
            Ok(1),
        ),
        (
            "no author id",
            r#"{"data":{"id":"5","text":"hi"}}"#.into(),
            Err(SkipReason::WrongShape),
        ),
        (
            "data a string",
            r#"{"data":"x"}"#.into(),
            Err(SkipReason::WrongShape),
        ),
        ("empty object", "{}".into(), Err(SkipReason::WrongShape)),
    ];
    for (name, frame, want) in cases {
        assert_eq!(run(&Format::XV2, &frame).map(|p| p.len()), want, "{name}");
    }
    let frame = format!(
        r#"{{"data":{{"id":"5","text":"short","note_tweet":{{"text":"the long text"}},"author_id":"1","lang":"en","created_at":"2021-04-01T15:52:31.000Z","public_metrics":{{"retweet_count":1,"reply_count":2,"like_count":3,"quote_count":4}},"referenced_tweets":[{{"type":"replied_to","id":"1"}},{{"type":"quoted","id":"2"}}],"entities":{{"urls":[{{"url":"https://t.co/x"}}]}},"attachments":{{"media_keys":["3_1"]}}}},{users}}}"#
    );
    let post = &run(&Format::XV2, &frame).expect("a post")[0];
    assert_eq!(post["text"], "the long text");
    assert_eq!(post["engagement"], 10);
    assert_eq!(post["author"]["handle"], "acme");
    assert_eq!(post["author"]["name"], "Acme");
    assert_eq!(post["author"]["followers"], 42);
    assert_eq!(post["author"]["verified"], true);
    assert_eq!(
        post["flags"],
        serde_json::json!({"reply":true,"repost":false,"quote":true,"link":true,"media":true})
    );
}

#[test]
fn x_v1_table() {
    let user = r#""user":{"id_str":"1","screen_name":"acme","name":"Acme","followers_count":7,"verified":false}"#;
    let cases: Vec<(&str, String, Result<usize, SkipReason>)> = vec![
        (
            "status",
            format!(r#"{{"id_str":"5","text":"hi",{user}}}"#),
            Ok(1),
        ),
        (
            "search response",
            format!(
                r#"{{"statuses":[{{"id_str":"5","text":"a",{user}}},{{"id_str":"6","full_text":"b",{user}}}],"search_metadata":{{}}}}"#
            ),
            Ok(2),
        ),
        (
            "empty search response",
            r#"{"statuses":[],"search_metadata":{}}"#.into(),
            Err(SkipReason::OtherEvent),
        ),
        (
            "statuses not an array",
            r#"{"statuses":{}}"#.into(),
            Err(SkipReason::WrongShape),
        ),
        (
            "delete notice",
            r#"{"delete":{"status":{"id_str":"5","user_id_str":"1"}}}"#.into(),
            Err(SkipReason::Delete),
        ),
        (
            "limit notice",
            r#"{"limit":{"track":5}}"#.into(),
            Err(SkipReason::StreamError),
        ),
        (
            "disconnect",
            r#"{"disconnect":{"code":4}}"#.into(),
            Err(SkipReason::StreamError),
        ),
        (
            "scrub_geo",
            r#"{"scrub_geo":{"user_id_str":"1"}}"#.into(),
            Err(SkipReason::OtherEvent),
        ),
        (
            "status without user",
            r#"{"id_str":"5","text":"hi"}"#.into(),
            Err(SkipReason::WrongShape),
        ),
        (
            "status without text",
            format!(r#"{{"id_str":"5",{user}}}"#),
            Err(SkipReason::WrongShape),
        ),
        ("not an object", "[]".into(), Err(SkipReason::WrongShape)),
    ];
    for (name, frame, want) in cases {
        assert_eq!(run(&Format::XV1, &frame).map(|p| p.len()), want, "{name}");
    }
    let frame = format!(
        r#"{{"id_str":"5","text":"trunc…","full_text":"full","extended_tweet":{{"full_text":"extended","entities":{{"urls":[],"media":[{{"id":1}}]}}}},"in_reply_to_status_id_str":"4","retweeted_status":null,"quoted_status_id_str":"3","favorite_count":1,"retweet_count":2,{user}}}"#
    );
    let post = &run(&Format::XV1, &frame).expect("a post")[0];
    assert_eq!(post["text"], "extended");
    let escaped = format!(r#"{{"id_str":"5","text":"a &amp; b &lt;3 &amp;amp;",{user}}}"#);
    assert_eq!(
        run(&Format::XV1, &escaped).expect("a post")[0]["text"],
        "a & b <3 &amp;"
    );
    assert_eq!(post["engagement"], 3);
    assert_eq!(
        post["flags"],
        serde_json::json!({"reply":true,"repost":false,"quote":true,"link":false,"media":true})
    );
}

#[test]
fn x_activity_table() {
    let actor =
        r#""actor":{"id":"id:twitter.com:1","preferredUsername":"acme","followersCount":3}"#;
    let cases: Vec<(&str, String, Result<usize, SkipReason>)> = vec![
        (
            "post",
            format!(
                r#"{{"verb":"post","id":"tag:search.twitter.com,2005:5","body":"hi",{actor}}}"#
            ),
            Ok(1),
        ),
        (
            "share",
            format!(
                r#"{{"verb":"share","id":"tag:search.twitter.com,2005:5","body":"RT hi",{actor}}}"#
            ),
            Ok(1),
        ),
        (
            "delete",
            r#"{"verb":"delete","id":"x"}"#.into(),
            Err(SkipReason::Delete),
        ),
        (
            "other verb",
            r#"{"verb":"favorite"}"#.into(),
            Err(SkipReason::OtherEvent),
        ),
        (
            "info",
            r#"{"info":{"message":"Replay Request Completed"}}"#.into(),
            Err(SkipReason::OtherEvent),
        ),
        (
            "error",
            r#"{"error":{"message":"Forced Disconnect"}}"#.into(),
            Err(SkipReason::StreamError),
        ),
        (
            "no body",
            format!(r#"{{"verb":"post","id":"tag:x:5",{actor}}}"#),
            Err(SkipReason::WrongShape),
        ),
        (
            "no actor id",
            r#"{"verb":"post","id":"tag:x:5","body":"b","actor":{}}"#.into(),
            Err(SkipReason::WrongShape),
        ),
    ];
    for (name, frame, want) in cases {
        assert_eq!(
            run(&Format::XActivity, &frame).map(|p| p.len()),
            want,
            "{name}"
        );
    }
    let post = &run(
        &Format::XActivity,
        &format!(
            r#"{{"verb":"share","id":"tag:search.twitter.com,2005:5","body":"RT hi",{actor}}}"#
        ),
    )
    .expect("a post")[0];
    assert_eq!(post["id"], "5");
    assert_eq!(post["author"]["id"], "1");
    assert_eq!(post["flags"]["repost"], true);
}

#[test]
fn mastodon_table() {
    let status = r#"{"id":"1","uri":"https://m.s/users/a/statuses/1","url":"https://m.s/@a/1","content":"<p>hi</p>","account":{"id":"2","acct":"a","display_name":"A","followers_count":3},"media_attachments":[],"card":null,"reblog":null,"in_reply_to_id":null}"#;
    let escaped = serde_json::to_string(status).expect("escape");
    let cases: Vec<(&str, String, Result<usize, SkipReason>)> = vec![
        ("status", status.into(), Ok(1)),
        (
            "update envelope",
            format!(r#"{{"stream":["public"],"event":"update","payload":{escaped}}}"#),
            Ok(1),
        ),
        (
            "edit",
            format!(r#"{{"stream":["public"],"event":"status.update","payload":{escaped}}}"#),
            Err(SkipReason::Update),
        ),
        (
            "delete",
            r#"{"stream":["public"],"event":"delete","payload":"1"}"#.into(),
            Err(SkipReason::Delete),
        ),
        (
            "filters_changed",
            r#"{"stream":["user"],"event":"filters_changed"}"#.into(),
            Err(SkipReason::StreamError),
        ),
        (
            "notification",
            r#"{"stream":["user"],"event":"notification","payload":"{}"}"#.into(),
            Err(SkipReason::OtherEvent),
        ),
        (
            "announcement",
            r#"{"stream":["user"],"event":"announcement","payload":"{}"}"#.into(),
            Err(SkipReason::OtherEvent),
        ),
        (
            "update without payload",
            r#"{"stream":["public"],"event":"update"}"#.into(),
            Err(SkipReason::WrongShape),
        ),
        (
            "update with bad payload",
            r#"{"event":"update","payload":"{\"id\":"}"#.into(),
            Err(SkipReason::InvalidJson),
        ),
        (
            "update with non-status payload",
            r#"{"event":"update","payload":"[1]"}"#.into(),
            Err(SkipReason::WrongShape),
        ),
        (
            "event not a string",
            r#"{"event":5}"#.into(),
            Err(SkipReason::WrongShape),
        ),
        (
            "status without account",
            r#"{"id":"1","content":""}"#.into(),
            Err(SkipReason::WrongShape),
        ),
    ];
    for (name, frame, want) in cases {
        assert_eq!(
            run(&Format::Mastodon, &frame).map(|p| p.len()),
            want,
            "{name}"
        );
    }
    let direct = run(&Format::Mastodon, status).expect("a post");
    let wrapped = run(
        &Format::Mastodon,
        &format!(r#"{{"stream":["public"],"event":"update","payload":{escaped}}}"#),
    )
    .expect("a post");
    assert_eq!(direct, wrapped, "envelope and raw status decode alike");
}

#[test]
fn mastodon_reblog_warning_and_flags() {
    let frame = r#"{"id":"10","content":"","spoiler_text":"","reblog":{"id":"9","content":"<p>original <a href=\"https://ex.com\">ex.com</a></p>","card":null,"media_attachments":[{"id":"m"}]},"account":{"id":"2","acct":"b@x.y"},"quote":{"id":"8"},"in_reply_to_id":null,"favourites_count":1,"reblogs_count":2,"replies_count":3}"#;
    let post = &run(&Format::Mastodon, frame).expect("a post")[0];
    assert_eq!(post["text"], "original ex.com");
    assert_eq!(post["engagement"], 6);
    assert_eq!(
        post["flags"],
        serde_json::json!({"reply":false,"repost":true,"quote":true,"link":true,"media":true})
    );
    let warned =
        r#"{"id":"1","content":"<p>body</p>","spoiler_text":"acme outage","account":{"id":"2"}}"#;
    assert_eq!(
        run(&Format::Mastodon, warned).expect("a post")[0]["text"],
        "acme outage\n\nbody"
    );
}

#[test]
fn reddit_table() {
    let comment = r#"{"kind":"t1","data":{"name":"t1_a","id":"a","author":"u","author_fullname":"t2_u","body":"hi","score":-3,"created_utc":1.5e9,"permalink":"/r/x/comments/b/t/a/"}}"#;
    let cases: Vec<(&str, String, Result<usize, SkipReason>)> = vec![
        ("comment", comment.into(), Ok(1)),
        (
            "listing",
            format!(r#"{{"kind":"Listing","data":{{"children":[{comment},{comment}]}}}}"#),
            Ok(2),
        ),
        (
            "listing with more",
            format!(
                r#"{{"kind":"Listing","data":{{"children":[{comment},{{"kind":"more","data":{{"count":3}}}}]}}}}"#
            ),
            Ok(1),
        ),
        (
            "listing of more",
            r#"{"kind":"Listing","data":{"children":[{"kind":"more","data":{}}]}}"#.into(),
            Err(SkipReason::OtherEvent),
        ),
        (
            "empty listing",
            r#"{"kind":"Listing","data":{"children":[]}}"#.into(),
            Err(SkipReason::OtherEvent),
        ),
        (
            "listing of broken comments",
            r#"{"kind":"Listing","data":{"children":[{"kind":"t1","data":{"name":"t1_a"}}]}}"#
                .into(),
            Err(SkipReason::WrongShape),
        ),
        (
            "account thing",
            r#"{"kind":"t2","data":{"name":"t2_u"}}"#.into(),
            Err(SkipReason::OtherEvent),
        ),
        (
            "comment without body",
            r#"{"kind":"t1","data":{"name":"t1_a","author":"u"}}"#.into(),
            Err(SkipReason::WrongShape),
        ),
        (
            "no kind",
            r#"{"data":{}}"#.into(),
            Err(SkipReason::WrongShape),
        ),
        (
            "children not an array",
            r#"{"kind":"Listing","data":{"children":{}}}"#.into(),
            Err(SkipReason::WrongShape),
        ),
    ];
    for (name, frame, want) in cases {
        assert_eq!(
            run(&Format::Reddit, &frame).map(|p| p.len()),
            want,
            "{name}"
        );
    }
    let post = &run(&Format::Reddit, comment).expect("a post")[0];
    assert_eq!(post["engagement"], 0, "negative score counts as 0");
    assert_eq!(post["author"]["id"], "t2_u");
    assert_eq!(post["created_at"], "2017-07-14T02:40:00Z");
    assert_eq!(post["url"], "https://www.reddit.com/r/x/comments/b/t/a/");

    let submission = r#"{"kind":"t3","data":{"name":"t3_b","author":"u","title":"T","selftext":"","is_self":false,"post_hint":"hosted:video","score":5,"num_comments":2}}"#;
    let post = &run(&Format::Reddit, submission).expect("a post")[0];
    assert_eq!(post["text"], "T");
    assert_eq!(post["engagement"], 7);
    assert_eq!(
        post["flags"],
        serde_json::json!({"reply":false,"repost":false,"quote":false,"link":true,"media":true})
    );
}

fn generic_fields() -> GenericFields {
    GenericFields {
        text: "msg.body".into(),
        id: "msg.id".into(),
        author_id: "user.id".into(),
        author_handle: Some("user.handle".into()),
        lang: Some("langs.0".into()),
        created_at: Some("ts".into()),
        followers: Some("user.followers".into()),
        url: Some("link".into()),
    }
}

#[test]
fn generic_table() {
    let format = Format::Generic(generic_fields());
    let cases: &[(&str, &str, Result<usize, SkipReason>)] = &[
        (
            "all fields",
            r#"{"msg":{"body":"hi","id":"7"},"user":{"id":"u","handle":"@acme","followers":5},"langs":["de","en"],"ts":"2024","link":"https://x"}"#,
            Ok(1),
        ),
        (
            "numeric ids",
            r#"{"msg":{"body":"hi","id":18446744073709551615},"user":{"id":-4}}"#,
            Ok(1),
        ),
        (
            "no text",
            r#"{"msg":{"id":"7"}}"#,
            Err(SkipReason::WrongShape),
        ),
        (
            "text not a string",
            r#"{"msg":{"body":1,"id":"7"}}"#,
            Err(SkipReason::WrongShape),
        ),
        (
            "no id",
            r#"{"msg":{"body":"hi"}}"#,
            Err(SkipReason::WrongShape),
        ),
        (
            "id an object",
            r#"{"msg":{"body":"hi","id":{}}}"#,
            Err(SkipReason::WrongShape),
        ),
        ("root an array", r#"[1]"#, Err(SkipReason::WrongShape)),
    ];
    for (name, frame, want) in cases {
        assert_eq!(run(&format, frame).map(|p| p.len()), *want, "{name}");
    }
    let post = &run(&format, cases[0].1).expect("a post")[0];
    assert_eq!(
        *post,
        serde_json::json!({
            "platform": "generic", "id": "7", "url": "https://x",
            "author": {"id": "u", "handle": "acme", "followers": 5},
            "text": "hi", "lang": "de", "created_at": "2024",
            "flags": {"reply":false,"repost":false,"quote":false,"link":false,"media":false}
        })
    );
    let post = &run(&format, cases[1].1).expect("a post")[0];
    assert_eq!(post["id"], "18446744073709551615");
    assert_eq!(post["author"]["id"], "-4");
    // A numeric segment is a key in an object.
    let format = Format::Generic(GenericFields {
        text: "a.0".into(),
        id: "b".into(),
        ..generic_fields()
    });
    assert_eq!(
        run(&format, r#"{"a":{"0":"zero"},"b":"1"}"#).expect("a post")[0]["text"],
        "zero"
    );
}

#[test]
fn generic_reads_a_jetstream_post_like_the_jetstream_decoder() {
    let fields = GenericFields {
        text: "commit.record.text".into(),
        id: "commit.rkey".into(),
        author_id: "did".into(),
        author_handle: None,
        lang: Some("commit.record.langs.0".into()),
        created_at: Some("commit.record.createdAt".into()),
        followers: None,
        url: None,
    };
    let frames = fixture_frames("jetstream-post-create.json");
    let generic = decode_all(
        &mut Decoder::new(Format::Generic(fields), DecodeLimits::default()),
        &frames,
    );
    let native = decode_fixture("jetstream-post-create.json");
    let (g, n) = (&posts(&generic)[0], &posts(&native)[0]);
    for key in ["id", "text", "lang", "created_at"] {
        assert_eq!(g[key], n[key], "{key}");
    }
    assert_eq!(g["author"]["id"], n["author"]["id"]);
}

#[test]
fn generic_fields_validation_reports_every_bad_path() {
    assert_eq!(generic_fields().validate(), Ok(()));
    let bad = GenericFields {
        text: String::new(),
        lang: Some("a..b".into()),
        ..generic_fields()
    };
    let errors = bad.validate().expect_err("two bad paths");
    assert_eq!(
        errors,
        vec![
            GenericFieldsError::EmptyPath { field: "text" },
            GenericFieldsError::EmptySegment {
                field: "lang",
                path: "a..b".into()
            },
        ]
    );
    let parsed: Result<GenericFields, _> =
        serde_json::from_str(r#"{"text":"a","id":"b","author_id":"c","bogus":"d"}"#);
    assert!(parsed.is_err(), "unknown keys are rejected");
}

#[test]
fn format_names_round_trip() {
    for format in [
        Format::Jetstream,
        Format::XV2,
        Format::XV1,
        Format::XActivity,
        Format::Mastodon,
        Format::Reddit,
    ] {
        assert_eq!(Format::from_name(format.name()), Some(format.clone()));
    }
    assert_eq!(Format::Generic(generic_fields()).name(), "generic");
    assert_eq!(Format::from_name("generic"), None);
    assert_eq!(Format::from_name("JETSTREAM"), None);
}

// ---------------------------------------------------------------------------------------
// Limits and malformed input
// ---------------------------------------------------------------------------------------

fn all_formats() -> Vec<Format> {
    vec![
        Format::Jetstream,
        Format::XV2,
        Format::XV1,
        Format::XActivity,
        Format::Mastodon,
        Format::Reddit,
        Format::Generic(generic_fields()),
    ]
}

fn decode_bytes(decoder: &mut Decoder, frame: &[u8]) -> Result<usize, SkipReason> {
    let mut frame = frame.to_vec();
    let mut emitted = 0;
    let result = decoder.decode(&mut frame, |post| {
        check_links(&post);
        emitted += 1;
    });
    if let Ok(n) = result {
        assert_eq!(n, emitted);
        assert!(n >= 1);
    }
    result
}

fn nested(open: &str, close: &str, depth: usize) -> Vec<u8> {
    format!("{}1{}", open.repeat(depth), close.repeat(depth)).into_bytes()
}

#[test]
fn malformed_frames_table() {
    let limits = DecodeLimits {
        max_frame_bytes: 200,
        max_depth: 64,
    };
    // (name, frame, reason) — the same for every format.
    let cases: Vec<(&str, Vec<u8>, SkipReason)> = vec![
        ("empty", b"".to_vec(), SkipReason::InvalidJson),
        ("whitespace", b"  \n".to_vec(), SkipReason::InvalidJson),
        (
            "truncated",
            br#"{"did":"did:plc:a","kind":"com"#.to_vec(),
            SkipReason::InvalidJson,
        ),
        (
            "trailing garbage",
            br#"{"a":1} x"#.to_vec(),
            SkipReason::InvalidJson,
        ),
        (
            "two documents",
            br#"{"a":1}{"a":2}"#.to_vec(),
            SkipReason::InvalidJson,
        ),
        (
            "bad escape",
            br#"{"a":"\q"}"#.to_vec(),
            SkipReason::InvalidJson,
        ),
        (
            "lone surrogate escape",
            br#"{"a":"\ud800"}"#.to_vec(),
            SkipReason::InvalidJson,
        ),
        (
            "control char in string",
            b"{\"a\":\"\x01\"}".to_vec(),
            SkipReason::InvalidJson,
        ),
        (
            "single quotes",
            b"{'a':1}".to_vec(),
            SkipReason::InvalidJson,
        ),
        (
            "invalid utf-8 in a string",
            b"{\"a\":\"\xff\"}".to_vec(),
            SkipReason::InvalidUtf8,
        ),
        (
            "overlong utf-8",
            b"{\"a\":\"\xc0\xaf\"}".to_vec(),
            SkipReason::InvalidUtf8,
        ),
        (
            "utf-8 surrogate",
            b"{\"a\":\"\xed\xa0\x80\"}".to_vec(),
            SkipReason::InvalidUtf8,
        ),
        (
            "invalid utf-8 and truncated",
            b"{\"a\":\"\xff".to_vec(),
            SkipReason::InvalidUtf8,
        ),
        (
            "invalid utf-8 outside strings",
            b"{\"a\":1\xfe}".to_vec(),
            SkipReason::InvalidUtf8,
        ),
        (
            "one byte over the limit",
            vec![b' '; 201],
            SkipReason::Oversize,
        ),
        ("65 arrays deep", nested("[", "]", 65), SkipReason::TooDeep),
        (
            "1000 arrays deep",
            nested("[", "]", 1000),
            SkipReason::TooDeep,
        ),
        (
            "1000 objects deep",
            nested("{\"a\":", "}", 1000),
            SkipReason::TooDeep,
        ),
        ("unclosed 150 deep", vec![b'['; 150], SkipReason::TooDeep),
        ("top-level scalar", b"42".to_vec(), SkipReason::WrongShape),
        ("top-level null", b"null".to_vec(), SkipReason::WrongShape),
        (
            "64 arrays deep is allowed",
            nested("[", "]", 64),
            SkipReason::WrongShape,
        ),
    ];
    for format in all_formats() {
        let mut decoder = Decoder::new(format.clone(), limits);
        for (name, frame, reason) in &cases {
            if frame.len() > limits.max_frame_bytes && *reason != SkipReason::Oversize {
                let mut big = Decoder::new(format.clone(), DecodeLimits::default());
                assert_eq!(
                    decode_bytes(&mut big, frame),
                    Err(*reason),
                    "{} {name}",
                    format.name()
                );
                continue;
            }
            assert_eq!(
                decode_bytes(&mut decoder, frame),
                Err(*reason),
                "{} {name}",
                format.name()
            );
        }
    }
}

#[test]
fn frame_at_the_size_limit_is_parsed() {
    let frame = br#"{"did":"d","kind":"identity"}"#;
    let limits = DecodeLimits {
        max_frame_bytes: frame.len(),
        max_depth: 64,
    };
    let mut decoder = Decoder::new(Format::Jetstream, limits);
    assert_eq!(decode_bytes(&mut decoder, frame), Err(SkipReason::Identity));
    let limits = DecodeLimits {
        max_frame_bytes: frame.len() - 1,
        max_depth: 64,
    };
    let mut decoder = Decoder::new(Format::Jetstream, limits);
    assert_eq!(decode_bytes(&mut decoder, frame), Err(SkipReason::Oversize));
}

#[test]
fn deep_nesting_is_rejected_without_recursion() {
    // A limit far above the default must still not overflow the stack: simd-json's stage 2
    // keeps an explicit stack and the tape walk never recurses.
    let limits = DecodeLimits {
        max_frame_bytes: 1 << 20,
        max_depth: 1 << 20,
    };
    let frame = nested("[", "]", 200_000);
    for format in all_formats() {
        let mut decoder = Decoder::new(format.clone(), limits);
        assert_eq!(
            decode_bytes(&mut decoder, &frame),
            Err(SkipReason::WrongShape),
            "{}",
            format.name()
        );
        let mut strict = Decoder::new(format.clone(), DecodeLimits::default());
        assert_eq!(
            decode_bytes(&mut strict, &frame),
            Err(SkipReason::TooDeep),
            "{}",
            format.name()
        );
    }
    // The depth limit applies to JSON carried in a Mastodon payload too.
    let inner = String::from_utf8(nested("[", "]", 100)).expect("ascii");
    let frame = format!(r#"{{"event":"update","payload":"{inner}"}}"#);
    let mut decoder = Decoder::new(Format::Mastodon, DecodeLimits::default());
    assert_eq!(
        decode_bytes(&mut decoder, frame.as_bytes()),
        Err(SkipReason::TooDeep)
    );
}

#[test]
fn decoding_is_independent_of_previous_frames() {
    // A large page, a failure and a skip in between must not change how a frame decodes.
    let reference = render(&decode_fixture("x-v2-stream.ndjson"));
    let mut decoder = Decoder::new(Format::XV2, DecodeLimits::default());
    let page = fixture_frames("x-v2-search-page.json");
    decode_all(&mut decoder, &page);
    assert_eq!(
        decode_bytes(&mut decoder, b"{\"data\":"),
        Err(SkipReason::InvalidJson)
    );
    assert_eq!(
        decode_bytes(&mut decoder, &nested("[", "]", 100)),
        Err(SkipReason::TooDeep)
    );
    let again = render(&decode_all(
        &mut decoder,
        &fixture_frames("x-v2-stream.ndjson"),
    ));
    assert_eq!(again, reference);
}

#[test]
fn decoder_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<Decoder>();
}

// ---------------------------------------------------------------------------------------
// Property tests: no input panics, results keep their contract
// ---------------------------------------------------------------------------------------

/// Every decodable fixture frame with its format.
fn corpus() -> &'static [(Format, Vec<u8>)] {
    static CORPUS: OnceLock<Vec<(Format, Vec<u8>)>> = OnceLock::new();
    CORPUS.get_or_init(|| {
        fixture_names()
            .iter()
            .flat_map(|name| {
                let format = fixture_format(name);
                fixture_frames(name)
                    .into_iter()
                    .map(move |(_, frame)| (format.clone(), frame))
            })
            .collect()
    })
}

/// Decodes with every format; checks the result contract.
fn decode_with_every_format(frame: &[u8]) {
    let limits = DecodeLimits {
        max_frame_bytes: 1 << 20,
        max_depth: 16,
    };
    for format in all_formats() {
        let mut decoder = Decoder::new(format, limits);
        let _ = decode_bytes(&mut decoder, frame);
    }
}

/// Bytes that make JSON structure, so random strings reach the parser's deeper states.
fn json_ish() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        Just(&b"{"[..]),
        Just(&b"}"[..]),
        Just(&b"["[..]),
        Just(&b"]"[..]),
        Just(&b"\""[..]),
        Just(&b":"[..]),
        Just(&b","[..]),
        Just(&b"\\"[..]),
        Just(&b"\\u"[..]),
        Just(&b"null"[..]),
        Just(&b"true"[..]),
        Just(&b"-1.5e3"[..]),
        Just(&b"18446744073709551616"[..]),
        Just(&b"\"kind\":\"commit\""[..]),
        Just(&b"\"data\":"[..]),
        Just(&b"\"event\":\"update\",\"payload\":"[..]),
        Just(&b"<p>&amp;</p>"[..]),
        Just(&b"\xff"[..]),
        Just(&b"\xe2\x82"[..]),
    ];
    proptest::collection::vec(token, 0..64).prop_map(|t| t.concat())
}

// 256 cases each by default; `PROPTEST_CASES=100000` for a longer fuzzing run.
proptest! {
    #[test]
    fn random_bytes_never_panic(frame in proptest::collection::vec(any::<u8>(), 0..1024)) {
        decode_with_every_format(&frame);
    }

    #[test]
    fn json_ish_bytes_never_panic(frame in json_ish()) {
        decode_with_every_format(&frame);
    }

    #[test]
    fn mutated_fixture_frames_never_panic(
        pick in any::<prop::sample::Index>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let (format, original) = &corpus()[pick.index(corpus().len())];
        let mut frame = original.clone();
        for (at, byte) in edits {
            if !frame.is_empty() {
                let at = at.index(frame.len());
                frame[at] = byte;
            }
        }
        if let Some(cut) = cut {
            frame.truncate(cut.index(frame.len() + 1));
        }
        // Its own format sees the most of it; the others must cope too.
        let mut decoder = Decoder::new(format.clone(), DecodeLimits::default());
        let _ = decode_bytes(&mut decoder, &frame);
        decode_with_every_format(&frame);
    }
}

/// A delete of a post names the post by its thread key, through the fast reader and the
/// tape alike, so the pipeline can drop or retract what it routed; every other frame names
/// none.
#[test]
fn deletes_name_the_post_they_delete() {
    let limits = DecodeLimits::default();
    let jetstream = std::fs::read_to_string(fixtures_dir().join("jetstream-post-delete.json"))
        .expect("fixture");
    let want = "at://did:plc:4smmjsqf6l5jkzczvw6vsrqc/app.bsky.feed.post/3mpt73z3ejc2p";
    let mut d = Decoder::new(Format::Jetstream, limits);
    let mut frame = jetstream.trim().as_bytes().to_vec();
    assert_eq!(d.decode(&mut frame, |_| {}), Err(SkipReason::Delete));
    assert_eq!(d.deleted(), Some(want));
    let mut frame = jetstream.trim().as_bytes().to_vec();
    assert_eq!(
        d.decode_without_fast_reader(&mut frame, |_| {}),
        Err(SkipReason::Delete)
    );
    assert_eq!(d.deleted(), Some(want), "the tape path");
    let like = r#"{"did":"did:plc:a","time_us":1,"kind":"commit","commit":{"operation":"delete","collection":"app.bsky.feed.like","rkey":"3x"}}"#;
    let mut frame = like.as_bytes().to_vec();
    assert_eq!(d.decode(&mut frame, |_| {}), Err(SkipReason::Delete));
    assert_eq!(d.deleted(), None, "a like's delete names no post");

    let mut x = Decoder::new(Format::XV1, limits);
    let mut frame =
        br#"{"delete":{"status":{"id":1234,"id_str":"1234","user_id":3,"user_id_str":"3"},"timestamp_ms":"1"}}"#
            .to_vec();
    assert_eq!(x.decode(&mut frame, |_| {}), Err(SkipReason::Delete));
    assert_eq!(x.deleted(), Some("x:1234"));

    let mut m = Decoder::new(Format::Mastodon, limits);
    let mut frame =
        br#"{"stream":["public"],"event":"delete","payload":"106692867363994015"}"#.to_vec();
    assert_eq!(m.decode(&mut frame, |_| {}), Err(SkipReason::Delete));
    assert_eq!(m.deleted(), Some("mastodon:106692867363994015"));
    let mut frame = br#"{"stream":["public"],"event":"filters_changed"}"#.to_vec();
    let _ = m.decode(&mut frame, |_| {});
    assert_eq!(m.deleted(), None);
}
