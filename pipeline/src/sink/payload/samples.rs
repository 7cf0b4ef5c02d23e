//! The sample messages every template is rendered against at load.
//!
//! A template is only known to work on the data it has seen, so the samples span what real
//! messages vary in: a mention with every optional field present, one with none of them (no
//! handle, URL, language, links, tags, customer, recommended team), one from a customer known only by id, a
//! full digest and an empty one, and a spike of negative mentions as it starts, is updated
//! and ends, and a spike of all of a competitor's mentions with no driving terms, no posts
//! and no negative share. `rules/payloads/samples/` holds the full ones, so template writers
//! can read exactly what the variables hold.

use std::time::{Duration, SystemTime};

use serde_json::value::RawValue;
use serde_json::Value as Json;

use super::{CaseRef, EventType, Latency, Outgoing};

const MENTION: &str = include_str!("../../../../rules/payloads/samples/mention.json");
const DIGEST: &str = include_str!("../../../../rules/payloads/samples/digest.json");
const SPIKE: &str = include_str!("../../../../rules/payloads/samples/spike.json");

/// One sample message: what it is called in errors, and the message.
pub(super) struct Sample {
    /// "the full sample mention", for the message of an error it shows up.
    pub name: &'static str,
    pub event: EventType,
    pub data: Box<RawValue>,
    pub latency: Latency,
    /// The case of a follow-up sample.
    pub case: Option<(&'static str, Option<&'static str>)>,
}

impl Sample {
    /// The sample as an attempt of queue `sample`.
    pub fn outgoing(&self) -> Outgoing<'_> {
        Outgoing {
            id: "m_0123456789abcdef01234567",
            event: self.event,
            data: &self.data,
            queue: "sample",
            attempt: 1,
            timestamp: SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000),
            latency: self.latency,
            case: self.case.map(|(mention_id, ticket_id)| CaseRef {
                mention_id,
                ticket_id,
            }),
        }
    }
}

/// Every sample: mentions, digests, spike events.
pub(super) fn all() -> Vec<Sample> {
    let full: Json = serde_json::from_str(MENTION).expect("the sample mention is JSON");
    let mut bare = full.clone();
    strip_optional(&mut bare);
    let mut id_only = bare.clone();
    id_only["customer"] = serde_json::json!({ "customer_id": "C-1" });
    let digest: Json = serde_json::from_str(DIGEST).expect("the sample digest is JSON");
    let mut empty = digest.clone();
    empty["total"] = 0.into();
    empty["by_reason"] = serde_json::json!({});
    empty["rate_limited"] = serde_json::json!({ "count": 0, "top": [] });
    for list in ["reposts", "storms", "cooldown"] {
        empty[list] = serde_json::json!([]);
    }
    let spike: Json = serde_json::from_str(SPIKE).expect("the sample spike is JSON");
    let mut updated = spike.clone();
    for (key, value) in [
        ("event", Json::from("updated")),
        ("at", Json::from("2026-11-24T10:00:37.000Z")),
        ("rate", Json::from(9.0)),
        ("ratio", Json::from(8.2)),
        ("mentions", Json::from(301)),
    ] {
        updated[key] = value;
    }
    let mut ended = updated.clone();
    for (key, value) in [
        ("event", Json::from("ended")),
        ("at", Json::from("2026-11-24T10:04:12.000Z")),
        ("ended_at", Json::from("2026-11-24T10:04:12.000Z")),
        ("rate", Json::from(1.4)),
        ("ratio", Json::from(1.3)),
        ("mentions", Json::from(512)),
    ] {
        ended[key] = value;
    }
    let mut sparse = spike.clone();
    for (key, value) in [
        ("spike_id", Json::from("spk_roadrunner_all_1795514400")),
        ("brand", Json::from("roadrunner")),
        ("brand_kind", Json::from("competitor")),
        ("series", Json::from("all")),
        ("negative_share", Json::Null),
        ("terms", serde_json::json!([])),
        ("posts", serde_json::json!([])),
    ] {
        sparse[key] = value;
    }
    let late = Latency {
        elapsed_ms: 91_000,
        budget_ms: Some(60_000),
        over_budget: true,
    };
    let on_time = Latency {
        elapsed_ms: 850,
        budget_ms: None,
        over_budget: false,
    };
    let sample = |name, event, data: &Json, latency| Sample {
        name,
        event,
        data: RawValue::from_string(data.to_string()).expect("a JSON value is JSON"),
        latency,
        case: None,
    };
    let follow_up = |name, data: &Json, latency, case| Sample {
        case: Some(case),
        ..sample(name, EventType::MentionFollowup, data, latency)
    };
    let deletion = serde_json::json!({
        "mention_id": full["mention_id"],
        "post": {
            "id": full["post"]["id"],
            "platform": full["post"]["platform"],
            "url": full["post"]["url"],
            "thread_key": full["post"]["thread"]["key"],
        },
        "deleted_at": "2026-11-24T11:02:13.000Z",
    });
    let mut deletion_bare = deletion.clone();
    if let Some(p) = deletion_bare["post"].as_object_mut() {
        p.remove("url");
    }
    vec![
        follow_up(
            "the sample mention as a follow-up of ticket 4711",
            &full,
            late,
            ("m_00000000000000000000cafe", Some("4711")),
        ),
        follow_up(
            "a sample mention without the optional fields as a follow-up of ticket 4711",
            &bare,
            on_time,
            ("m_00000000000000000000cafe", Some("4711")),
        ),
        sample(
            "the sample mention (rules/payloads/samples/mention.json)",
            EventType::MentionCreated,
            &full,
            late,
        ),
        sample(
            "a sample mention without the optional fields (no handle, url, lang, links, tags, customer, team)",
            EventType::MentionCreated,
            &bare,
            on_time,
        ),
        sample(
            "a sample mention from a customer known only by id",
            EventType::MentionCreated,
            &id_only,
            late,
        ),
        sample(
            "the sample digest (rules/payloads/samples/digest.json)",
            EventType::MentionDigest,
            &digest,
            late,
        ),
        sample(
            "an empty sample digest",
            EventType::MentionDigest,
            &empty,
            on_time,
        ),
        sample(
            "the sample spike (rules/payloads/samples/spike.json)",
            EventType::SpikeStarted,
            &spike,
            on_time,
        ),
        sample(
            "a sample spike update",
            EventType::SpikeUpdated,
            &updated,
            late,
        ),
        sample(
            "a sample ended spike",
            EventType::SpikeEnded,
            &ended,
            on_time,
        ),
        sample(
            "a sample spike of all mentions without terms, posts or a negative share",
            EventType::SpikeStarted,
            &sparse,
            on_time,
        ),
        Sample {
            case: Some(("m_00000000000000000000cafe", Some("4711"))),
            ..sample(
                "a sample deletion of a mention of ticket 4711",
                EventType::MentionDeleted,
                &deletion,
                on_time,
            )
        },
        Sample {
            case: Some(("m_00000000000000000000cafe", Some("4711"))),
            ..sample(
                "a sample deletion of a post without a url",
                EventType::MentionDeleted,
                &deletion_bare,
                late,
            )
        },
    ]
}

/// Takes out of a mention everything the contract allows to be missing or null.
fn strip_optional(m: &mut Json) {
    let post = &mut m["post"];
    for key in ["url", "lang", "created_at"] {
        post[key] = Json::Null;
    }
    if let Some(p) = post.as_object_mut() {
        p.remove("links");
    }
    if let Some(t) = post["thread"].as_object_mut() {
        t.remove("parent");
        t.remove("root");
    }
    post["author"]["handle"] = Json::Null;
    if let Some(a) = post["author"].as_object_mut() {
        a.remove("followers");
    }
    if let Some(matches) = m["matches"].as_array_mut() {
        for each in matches {
            if let Some(each) = each.as_object_mut() {
                each.remove("tags");
            }
        }
    }
    // A recommendation that names no team (`ignore`, `monitor`) leaves the field out.
    if let Some(r) = m["recommendation"].as_object_mut() {
        r.remove("team");
    }
    m["cues"] = serde_json::json!([]);
    m["queues"] = serde_json::json!([]);
    m["customer"] = Json::Null;
}
