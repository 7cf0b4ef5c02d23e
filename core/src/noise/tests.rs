//! Tests of the noise gate: a table of named cases on an injected clock, the digest's exact
//! JSON, the fingerprint and its LSH index, configuration, and property tests that no
//! mention is lost and that SimHash keeps a one-word edit close.

use std::time::Duration;

use proptest::prelude::*;
use serde_json::json;

use super::memory::StormIndex;
use super::*;
use crate::mention::mention_id;
use crate::mention::testing::{spec, Spec};
use crate::post::Platform;

const SECOND: u64 = 1_000;
const MINUTE: u64 = 60 * SECOND;

// ---------------------------------------------------------------------------------------
// Building mentions
// ---------------------------------------------------------------------------------------

/// Text number `n`: ten made-up words drawn from `n`, so that different numbers give
/// unrelated texts (about 32 bits apart), never a storm.
fn unique_text(n: usize) -> String {
    let mut state = (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5851_f42d_4c95_7f2d;
    let mut words = Vec::new();
    for _ in 0..10 {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let mut x = state >> 20;
        let mut word = String::new();
        for _ in 0..6 {
            word.push(char::from(b'a' + (x % 26) as u8));
            x /= 26;
        }
        words.push(word);
    }
    words.join(" ")
}

const STORM: &str = "Acme charged me twice for the same order and nobody answers the phone, \
                     boycott Acme until they refund everyone";

// ---------------------------------------------------------------------------------------
// The gate: a table of named cases
// ---------------------------------------------------------------------------------------

/// The verdict a step expects: delivered, or held for a reason (and key, when given).
#[derive(Debug, Clone, PartialEq)]
enum Want {
    Deliver,
    Hold(HoldReason),
    HoldKey(HoldReason, &'static str),
}

use Want::{Deliver, Hold, HoldKey};

struct Case {
    name: &'static str,
    config: NoiseConfig,
    /// (time in ms, mention, expected verdict)
    steps: Vec<(u64, Spec, Want)>,
}

fn config(edit: impl FnOnce(&mut NoiseConfig)) -> NoiseConfig {
    let mut c = NoiseConfig::default();
    edit(&mut c);
    c
}

fn check(verdict: &Verdict, want: &Want) -> bool {
    match (verdict, want) {
        (Verdict::Deliver, Deliver) => true,
        (Verdict::Hold(h), Hold(reason)) => h.reason == *reason,
        (Verdict::Hold(h), HoldKey(reason, key)) => {
            h.reason == *reason && h.key.as_deref() == Some(*key)
        }
        _ => false,
    }
}

fn cases() -> Vec<Case> {
    let mut storm_steps = Vec::new();
    for i in 0..20u64 {
        // Each copy has its own link and @-mention, some shout, some add punctuation.
        let text = match i % 4 {
            0 => format!("{STORM} https://t.co/link{i} @acmehelp"),
            1 => format!("@friend{i} {} https://bit.ly/x{i}", STORM.to_uppercase()),
            2 => format!("{STORM}!!! acme.example/r/{i}"),
            _ => format!("{STORM} @acme @press{i}"),
        };
        let want = if i == 0 {
            Deliver
        } else {
            Hold(HoldReason::Storm)
        };
        storm_steps.push((
            i * SECOND,
            spec(&format!("s{i}"), &format!("bot{i}"), &text),
            want,
        ));
    }

    let mut rate_steps = Vec::new();
    for i in 0..10u64 {
        let want = if i < 3 {
            Deliver
        } else {
            Hold(HoldReason::RateLimited)
        };
        rate_steps.push((
            i,
            spec(&format!("r{i}"), &format!("a{i}"), &unique_text(i as usize)),
            want,
        ));
    }
    // A minute after the first, the bucket is full again: three more, then held.
    for i in 10..14u64 {
        let want = if i < 13 {
            Deliver
        } else {
            Hold(HoldReason::RateLimited)
        };
        rate_steps.push((
            MINUTE + 9 + i,
            spec(&format!("r{i}"), &format!("a{i}"), &unique_text(i as usize)),
            want,
        ));
    }

    vec![
        Case {
            name: "a repost of a delivered post is held onto it",
            config: NoiseConfig::default(),
            steps: vec![
                (
                    0,
                    spec("1", "acme_fan", "acme support fixed my order in minutes"),
                    Deliver,
                ),
                (
                    SECOND,
                    spec(
                        "2",
                        "b",
                        "RT @acme_fan: acme support fixed my order in minutes",
                    )
                    .of("1"),
                    HoldKey(HoldReason::Repost, "x:1"),
                ),
                (
                    2 * SECOND,
                    spec(
                        "3",
                        "c",
                        "RT @acme_fan: acme support fixed my order in minutes",
                    )
                    .of("1"),
                    HoldKey(HoldReason::Repost, "x:1"),
                ),
            ],
        },
        Case {
            name: "a repost after the window is delivered, and remembered again",
            config: NoiseConfig::default(),
            steps: vec![
                (
                    0,
                    spec("1", "a", "acme support fixed my order in minutes"),
                    Deliver,
                ),
                (
                    10 * MINUTE - 1,
                    spec("2", "b", "great news from acme today").of("1"),
                    Hold(HoldReason::Repost),
                ),
                (
                    10 * MINUTE,
                    spec("3", "c", "even better news from acme today").of("1"),
                    Deliver,
                ),
                (
                    10 * MINUTE + 1,
                    spec("4", "d", "the best news from acme today").of("1"),
                    Hold(HoldReason::Repost),
                ),
            ],
        },
        Case {
            name: "the first repost of an unseen original is delivered; a quote of it is held",
            config: NoiseConfig::default(),
            steps: vec![
                (
                    0,
                    spec("2", "b", "RT @acme: our servers are down in Europe").of("1"),
                    Deliver,
                ),
                (
                    SECOND,
                    spec("3", "c", "this is the third time this month acme").of("1"),
                    HoldKey(HoldReason::Repost, "x:1"),
                ),
            ],
        },
        Case {
            name: "a repost of a repost collapses onto the delivered repost",
            config: NoiseConfig::default(),
            steps: vec![
                (
                    0,
                    spec("2", "b", "acme finally answered me after a week of silence"),
                    Deliver,
                ),
                (
                    SECOND,
                    spec("5", "e", "same here with acme support, a week of nothing").of("2"),
                    HoldKey(HoldReason::Repost, "x:2"),
                ),
            ],
        },
        Case {
            name: "reposts are delivered when repost collapse is off",
            config: config(|c| c.reposts = false),
            steps: vec![
                (
                    0,
                    spec("1", "a", "acme support fixed my order in minutes"),
                    Deliver,
                ),
                (
                    SECOND,
                    spec("2", "b", "wow so acme can be fast after all").of("1"),
                    Deliver,
                ),
            ],
        },
        Case {
            name: "a storm of 20 copies with different links and handles: 1 delivered, 19 held",
            config: NoiseConfig::default(),
            steps: storm_steps,
        },
        Case {
            name: "two unrelated texts are both delivered",
            config: NoiseConfig::default(),
            steps: vec![
                (
                    0,
                    spec(
                        "1",
                        "a",
                        "acme charged me twice for the same order and nobody answers",
                    ),
                    Deliver,
                ),
                (
                    SECOND,
                    spec(
                        "2",
                        "b",
                        "loving the new acme headphones, the battery lasts all week",
                    ),
                    Deliver,
                ),
            ],
        },
        Case {
            name: "texts of fewer than four words never storm",
            config: NoiseConfig::default(),
            steps: vec![
                (0, spec("1", "a", "love it @acme"), Deliver),
                (
                    SECOND,
                    spec("2", "b", "love it @acme https://t.co/x"),
                    Deliver,
                ),
                (2 * SECOND, spec("3", "c", "Love it!!"), Deliver),
            ],
        },
        Case {
            name: "storms are delivered when storm collapse is off",
            config: config(|c| c.storm = false),
            steps: vec![
                (0, spec("1", "a", STORM), Deliver),
                (SECOND, spec("2", "b", STORM), Deliver),
            ],
        },
        Case {
            name: "a storm is remembered for the window from its first copy",
            config: NoiseConfig::default(),
            steps: vec![
                (0, spec("1", "a", STORM), Deliver),
                (9 * MINUTE, spec("2", "b", STORM), Hold(HoldReason::Storm)),
                (10 * MINUTE, spec("3", "c", STORM), Deliver),
                (11 * MINUTE, spec("4", "d", STORM), Hold(HoldReason::Storm)),
            ],
        },
        Case {
            name: "an author is cooled down after a delivery, from that delivery",
            config: config(|c| c.author_cooldown = Duration::from_secs(300)),
            steps: vec![
                (0, spec("1", "angry", &unique_text(1)), Deliver),
                (
                    MINUTE,
                    spec("2", "angry", &unique_text(2)),
                    HoldKey(HoldReason::Cooldown, "x:angry"),
                ),
                (MINUTE, spec("3", "calm", &unique_text(3)), Deliver),
                (
                    4 * MINUTE,
                    spec("4", "angry", &unique_text(4)),
                    Hold(HoldReason::Cooldown),
                ),
                (5 * MINUTE, spec("5", "angry", &unique_text(5)), Deliver),
                (
                    6 * MINUTE,
                    spec("6", "angry", &unique_text(6)),
                    Hold(HoldReason::Cooldown),
                ),
            ],
        },
        Case {
            name: "rate limit 3/1m: 10 mentions give 3 delivered and 7 held, a minute later 3 more",
            config: config(|c| c.rate_limit = Some("3/1m".parse().expect("rate"))),
            steps: rate_steps,
        },
        Case {
            name: "the bucket refills continuously: one token every 20 s at 3/1m",
            config: config(|c| c.rate_limit = Some("3/1m".parse().expect("rate"))),
            steps: vec![
                (0, spec("1", "a", &unique_text(1)), Deliver),
                (0, spec("2", "b", &unique_text(2)), Deliver),
                (0, spec("3", "c", &unique_text(3)), Deliver),
                (
                    19_999,
                    spec("4", "d", &unique_text(4)),
                    Hold(HoldReason::RateLimited),
                ),
                (20_000, spec("5", "e", &unique_text(5)), Deliver),
                (
                    20_001,
                    spec("6", "f", &unique_text(6)),
                    Hold(HoldReason::RateLimited),
                ),
            ],
        },
        Case {
            name: "an exempt escalation bypasses the rate limit",
            config: config(|c| {
                c.rate_limit = Some("1/1m".parse().expect("rate"));
                c.exempt = vec![Action::Escalate];
            }),
            steps: vec![
                (
                    0,
                    spec("1", "a", &unique_text(1)).action(Action::Monitor),
                    Deliver,
                ),
                (
                    1,
                    spec("2", "b", &unique_text(2)).action(Action::Monitor),
                    Hold(HoldReason::RateLimited),
                ),
                (
                    2,
                    spec("3", "c", &unique_text(3)).action(Action::Escalate),
                    Deliver,
                ),
                (
                    3,
                    spec("4", "d", &unique_text(4)).action(Action::Escalate),
                    Deliver,
                ),
                (
                    4,
                    spec("5", "e", &unique_text(5)).action(Action::Respond),
                    Hold(HoldReason::RateLimited),
                ),
            ],
        },
        Case {
            name: "an exempt escalation bypasses the cool-down but starts it",
            config: config(|c| {
                c.author_cooldown = Duration::from_secs(60);
                c.exempt = vec![Action::Escalate];
            }),
            steps: vec![
                (
                    0,
                    spec("1", "a", &unique_text(1)).action(Action::Escalate),
                    Deliver,
                ),
                (
                    1,
                    spec("2", "a", &unique_text(2)).action(Action::Escalate),
                    Deliver,
                ),
                (
                    2,
                    spec("3", "a", &unique_text(3)),
                    Hold(HoldReason::Cooldown),
                ),
            ],
        },
        Case {
            name: "an exempt escalation is still collapsed as a repost and as a storm",
            config: config(|c| c.exempt = vec![Action::Escalate]),
            steps: vec![
                (0, spec("1", "a", STORM).action(Action::Escalate), Deliver),
                (
                    1,
                    spec("2", "b", "RT @a: boycott")
                        .of("1")
                        .action(Action::Escalate),
                    Hold(HoldReason::Repost),
                ),
                (
                    2,
                    spec("3", "c", STORM).action(Action::Escalate),
                    Hold(HoldReason::Storm),
                ),
            ],
        },
        Case {
            name: "reposts and copies of a rate-limited post collapse onto it",
            config: config(|c| c.rate_limit = Some("1/1m".parse().expect("rate"))),
            steps: vec![
                (0, spec("1", "a", &unique_text(1)), Deliver),
                (1, spec("2", "b", STORM), Hold(HoldReason::RateLimited)),
                (
                    2,
                    spec("3", "c", "RT @b: boycott").of("2"),
                    HoldKey(HoldReason::Repost, "x:2"),
                ),
                (3, spec("4", "d", STORM), Hold(HoldReason::Storm)),
            ],
        },
        Case {
            name: "reposts are checked before storms",
            config: NoiseConfig::default(),
            steps: vec![
                (0, spec("1", "a", STORM), Deliver),
                (1, spec("2", "b", STORM).of("1"), Hold(HoldReason::Repost)),
            ],
        },
        Case {
            name: "a clock that goes back is taken as the latest time",
            config: NoiseConfig::default(),
            steps: vec![
                (
                    10 * MINUTE,
                    spec("1", "a", "acme support fixed my order in minutes"),
                    Deliver,
                ),
                (
                    0,
                    spec("2", "b", "wow so acme can be fast after all").of("1"),
                    Hold(HoldReason::Repost),
                ),
            ],
        },
        Case {
            name: "everything off delivers everything",
            config: config(|c| {
                c.reposts = false;
                c.storm = false;
            }),
            steps: vec![
                (0, spec("1", "a", STORM), Deliver),
                (0, spec("2", "a", STORM).of("1"), Deliver),
                (0, spec("2", "a", STORM).of("1"), Deliver),
            ],
        },
    ]
}

#[test]
fn gate_table() {
    for case in cases() {
        let mut gate = NoiseGate::new(&case.config);
        let (mut delivered, mut held) = (0, 0);
        for (i, (now, spec, want)) in case.steps.iter().enumerate() {
            let verdict = gate.admit(&spec.build(), *now);
            assert!(
                check(&verdict, want),
                "{}: step {i} ({}): got {verdict:?}, want {want:?}",
                case.name,
                spec.id
            );
            match verdict {
                Verdict::Deliver => delivered += 1,
                Verdict::Hold(h) => {
                    held += 1;
                    assert_eq!(h.at_ms, gate.now, "{}: held at the gate's time", case.name);
                    assert_eq!(
                        h.key.is_none(),
                        h.reason == HoldReason::RateLimited,
                        "{}: only the rate limit holds without a key",
                        case.name
                    );
                    assert_eq!(h.summary.mention_id, spec.build().mention_id);
                }
            }
        }
        assert_eq!(delivered + held, case.steps.len(), "{}", case.name);
        assert_eq!(gate.held_in_window(), held, "{}", case.name);
    }
}

#[test]
fn the_storm_of_20_is_one_delivery_and_one_digest_group() {
    let case = cases()
        .into_iter()
        .find(|c| c.name.starts_with("a storm of 20"))
        .expect("the storm case");
    let mut gate = NoiseGate::new(&case.config);
    let mut held = Vec::new();
    let mut delivered = 0;
    for (now, spec, _) in &case.steps {
        match gate.admit(&spec.build(), *now) {
            Verdict::Deliver => delivered += 1,
            Verdict::Hold(h) => held.push(h),
        }
    }
    assert_eq!((delivered, held.len()), (1, 19));
    let keys: std::collections::BTreeSet<_> = held.iter().map(|h| h.key.clone()).collect();
    assert_eq!(keys.len(), 1, "one cluster: {keys:?}");
    let digest = Digest::build("support", SECOND, 30 * SECOND, &held);
    assert_eq!(digest.storms.len(), 1);
    assert_eq!(digest.storms[0].count, 19);
    assert_eq!(digest.storms[0].examples.len(), EXAMPLES_PER_GROUP);
}

// ---------------------------------------------------------------------------------------
// Digest windows and the digest
// ---------------------------------------------------------------------------------------

#[test]
fn digest_window_opens_at_the_first_hold_and_closes_when_sent() {
    let cfg = config(|c| c.digest_every = Duration::from_secs(60));
    let mut gate = NoiseGate::new(&cfg);
    assert!(!gate.digest_due(10 * MINUTE), "nothing held, nothing due");
    assert_eq!(
        gate.admit(&spec("1", "a", STORM).build(), 5 * MINUTE),
        Verdict::Deliver
    );
    assert!(!gate.digest_due(10 * MINUTE), "a delivery opens no window");
    let Verdict::Hold(_) = gate.admit(&spec("2", "b", STORM).build(), 6 * MINUTE) else {
        panic!("a copy is held");
    };
    assert_eq!(gate.window_start(), Some(6 * MINUTE));
    assert!(!gate.digest_due(7 * MINUTE - 1));
    assert!(gate.digest_due(7 * MINUTE));
    let Verdict::Hold(_) = gate.admit(&spec("3", "c", STORM).build(), 6 * MINUTE + 30 * SECOND)
    else {
        panic!("a copy is held");
    };
    assert_eq!(
        gate.window_start(),
        Some(6 * MINUTE),
        "the window stays open"
    );
    assert_eq!(gate.held_in_window(), 2);
    gate.digest_sent(7 * MINUTE);
    assert_eq!((gate.window_start(), gate.held_in_window()), (None, 0));
    assert!(!gate.digest_due(20 * MINUTE));
    let Verdict::Hold(_) = gate.admit(&spec("4", "d", STORM).build(), 8 * MINUTE) else {
        panic!("still the same storm");
    };
    assert_eq!(gate.window_start(), Some(8 * MINUTE));
}

/// Held entries as a gate would make them, for the digest tests.
fn held(reason: HoldReason, key: Option<&str>, spec: &Spec, at_ms: u64) -> Held {
    Held {
        reason,
        key: key.map(str::to_owned),
        summary: Summary::of(&spec.build()),
        at_ms,
    }
}

#[test]
fn digest_json_has_exactly_the_contract_shape() {
    let a = spec("10", "alice", "acme lost my parcel again").urgency(70);
    let b = spec("11", "bob", "RT @acme: outage update")
        .of("1")
        .urgency(20);
    let c = spec("12", "carol", "RT @acme: outage update")
        .of("1")
        .urgency(30);
    let d = spec("13", "dan", "RT @acme: sale").of("2").urgency(10);
    let e = spec("14", "erin", STORM).urgency(55);
    let f = spec("15", "angry", "acme again and again").urgency(5);
    let entries = vec![
        held(HoldReason::RateLimited, None, &a, 1_000),
        held(HoldReason::Repost, Some("x:1"), &b, 2_000),
        held(HoldReason::Repost, Some("x:1"), &c, 3_000),
        held(HoldReason::Repost, Some("x:2"), &d, 4_000),
        held(
            HoldReason::Storm,
            Some("simhash:00000000000000ff"),
            &e,
            5_000,
        ),
        held(HoldReason::Cooldown, Some("x:angry"), &f, 6_000),
        held(HoldReason::Cooldown, Some("x:angry"), &f, 7_000),
    ];
    let start = 1_795_434_526_120; // 2026-11-23T11:48:46.120Z
    let digest = Digest::build("support", start, start + 60_000, &entries);
    let summary = |s: &Spec, urgency: u8| {
        let tweet = s.id.strip_prefix("x:").expect("x id");
        json!({
            "mention_id": mention_id(Platform::X, &s.id),
            "url": format!("https://x.com/{}/status/{tweet}", s.author),
            "author": {"id": s.author, "handle": format!("{}_handle", s.author)},
            "text": s.text,
            "urgency": urgency,
            "category": "complaint",
            "sentiment": "negative",
            "brand": "acme",
        })
    };
    let want = json!({
        "digest_id": digest.digest_id,
        "queue": "support",
        "window_start": "2026-11-23T11:48:46.120Z",
        "window_end": "2026-11-23T11:49:46.120Z",
        "total": 7,
        "by_reason": {"rate_limited": 1, "repost": 3, "storm": 1, "cooldown": 2},
        "rate_limited": {"count": 1, "top": [summary(&a, 70)]},
        "reposts": [
            {"original": "x:1", "count": 2, "examples": [summary(&c, 30), summary(&b, 20)]},
            {"original": "x:2", "count": 1, "examples": [summary(&d, 10)]},
        ],
        "storms": [{"count": 1, "examples": [summary(&e, 55)]}],
        "cooldown": [{"author": "angry", "handle": "angry_handle", "count": 2}],
    });
    assert_eq!(serde_json::to_value(&digest).expect("json"), want);
    assert!(digest.digest_id.starts_with("d_"));
    assert_eq!(digest.digest_id.len(), 26);
    assert!(digest.digest_id[2..].chars().all(|c| c.is_ascii_hexdigit()));

    // An empty window is an empty digest, not an error.
    let empty = serde_json::to_value(Digest::build("support", start, start, &[])).expect("json");
    assert_eq!(empty["total"], 0);
    assert_eq!(empty["reposts"], json!([]));
    assert_eq!(empty["rate_limited"], json!({"count": 0, "top": []}));
}

#[test]
fn digest_id_depends_only_on_queue_and_window_start() {
    let entries = [held(HoldReason::RateLimited, None, &spec("1", "a", "x"), 5)];
    let id = |queue: &str, start: u64, end: u64, held: &[Held]| {
        Digest::build(queue, start, end, held).digest_id
    };
    let base = id("support", 1_000, 2_000, &entries);
    // (name, id, same as base)
    let cases = [
        (
            "same window again",
            id("support", 1_000, 2_000, &entries),
            true,
        ),
        ("a later end", id("support", 1_000, 9_000, &entries), true),
        ("other entries", id("support", 1_000, 2_000, &[]), true),
        ("another queue", id("sales", 1_000, 2_000, &entries), false),
        (
            "another start",
            id("support", 1_001, 2_000, &entries),
            false,
        ),
    ];
    for (name, other, same) in cases {
        assert_eq!(other == base, same, "{name}");
    }
}

#[test]
fn digest_orders_top_groups_and_examples() {
    // Rate-limited: the five most urgent, ties by earliest.
    let urgencies = [10u8, 90, 50, 90, 20, 70, 30];
    let entries: Vec<Held> = urgencies
        .iter()
        .enumerate()
        .map(|(i, &u)| {
            let s = spec(&format!("{i}"), &format!("a{i}"), "text").urgency(u);
            held(HoldReason::RateLimited, None, &s, 100 - i as u64)
        })
        .collect();
    let digest = Digest::build("q", 0, 100, &entries);
    let top: Vec<(u8, u64)> = digest
        .rate_limited
        .top
        .iter()
        .map(|s| {
            let e = entries
                .iter()
                .find(|e| e.summary.mention_id == s.mention_id)
                .expect("entry");
            (e.summary.urgency, e.at_ms)
        })
        .collect();
    assert_eq!(digest.rate_limited.count, 7);
    assert_eq!(top, [(90, 97), (90, 99), (70, 95), (50, 98), (30, 94)]);

    // Groups: most reposted first, ties by the earliest held; examples at most three.
    let mut entries = Vec::new();
    for (original, n, first_at) in [("x:a", 2, 50), ("x:b", 5, 60), ("x:c", 2, 40)] {
        for k in 0..n {
            let s = spec(&format!("{original}{k}"), "r", "RT")
                .of(original)
                .urgency(k as u8);
            entries.push(held(HoldReason::Repost, Some(original), &s, first_at + k));
        }
    }
    let digest = Digest::build("q", 0, 100, &entries);
    let order: Vec<(&str, usize, usize)> = digest
        .reposts
        .iter()
        .map(|g| (g.original.as_str(), g.count, g.examples.len()))
        .collect();
    assert_eq!(order, [("x:b", 5, 3), ("x:c", 2, 2), ("x:a", 2, 2)]);
    let urgencies: Vec<u8> = digest.reposts[0]
        .examples
        .iter()
        .map(|s| s.urgency)
        .collect();
    assert_eq!(urgencies, [4, 3, 2]);

    // The same entries in another order give the same digest.
    let mut shuffled = entries.clone();
    shuffled.reverse();
    assert_eq!(Digest::build("q", 0, 100, &shuffled), digest);
}

#[test]
fn held_round_trips_through_json() {
    let h = held(
        HoldReason::Cooldown,
        Some("x:angry"),
        &spec("1", "angry", "t"),
        42,
    );
    let text = serde_json::to_string(&h).expect("json");
    assert!(text.contains(r#""reason":"cooldown""#), "{text}");
    let back: Held = serde_json::from_str(&text).expect("parse");
    assert_eq!(back, h);
    for (reason, name) in [
        (HoldReason::Repost, "repost"),
        (HoldReason::Storm, "storm"),
        (HoldReason::Cooldown, "cooldown"),
        (HoldReason::RateLimited, "rate_limited"),
    ] {
        assert_eq!(reason.as_str(), name);
        assert_eq!(serde_json::to_value(reason).expect("json"), json!(name));
    }
}

#[test]
fn summary_text_is_cut_on_a_character_boundary() {
    // (text, expected chars, ends with an ellipsis)
    let long_ascii = "a".repeat(400);
    let long_multibyte = "é🙂".repeat(200);
    let exact = "b".repeat(SUMMARY_TEXT_CHARS);
    let cases: [(&str, usize, bool); 4] = [
        ("short", 5, false),
        (&exact, SUMMARY_TEXT_CHARS, false),
        (&long_ascii, SUMMARY_TEXT_CHARS, true),
        (&long_multibyte, SUMMARY_TEXT_CHARS, true),
    ];
    for (text, chars, cut) in cases {
        let s = Summary::of(&spec("1", "a", text).build());
        assert_eq!(s.text.chars().count(), chars, "{text:.10}");
        assert_eq!(s.text.ends_with('…'), cut, "{text:.10}");
        assert!(text.starts_with(s.text.trim_end_matches('…')));
    }
}

#[test]
fn restore_rebuilds_the_window_and_the_memory() {
    let cfg = NoiseConfig::default();
    let mut before = NoiseGate::new(&cfg);
    let mut persisted = Vec::new();
    let steps = [
        (MINUTE, spec("1", "a", STORM)),
        (MINUTE + 1, spec("2", "b", STORM)),
        (MINUTE + 2, spec("3", "c", "a second look at it").of("1")),
        (MINUTE + 3, spec("4", "d", STORM)),
    ];
    for (now, s) in &steps {
        if let Verdict::Hold(h) = before.admit(&s.build(), *now) {
            persisted.push(serde_json::to_string(&h).expect("json"));
        }
    }
    assert_eq!(persisted.len(), 3);

    let mut after = NoiseGate::new(&cfg);
    let restored: Vec<Held> = persisted
        .iter()
        .map(|line| serde_json::from_str(line).expect("parse"))
        .collect();
    for h in &restored {
        after.restore(h);
    }
    assert_eq!(after.window_start(), before.window_start());
    assert_eq!(after.held_in_window(), before.held_in_window());
    let end = MINUTE * 2;
    assert_eq!(
        Digest::build(
            "support",
            after.window_start().expect("open"),
            end,
            &restored
        )
        .digest_id,
        Digest::build(
            "support",
            before.window_start().expect("open"),
            end,
            &restored
        )
        .digest_id,
        "the same window gives the same digest id after a restart"
    );
    // The storm and the repost wave go on being held.
    assert!(matches!(
        after.admit(&spec("5", "e", STORM).build(), MINUTE + 4),
        Verdict::Hold(Held {
            reason: HoldReason::Storm,
            ..
        })
    ));
    assert!(matches!(
        after.admit(
            &spec("6", "f", "yet another look").of("1").build(),
            MINUTE + 5
        ),
        Verdict::Hold(Held {
            reason: HoldReason::Repost,
            ..
        })
    ));
}

// ---------------------------------------------------------------------------------------
// Memory bounds
// ---------------------------------------------------------------------------------------

#[test]
fn memory_is_bounded_and_forgets_the_oldest_first() {
    let cap = 50;
    let mut gate = NoiseGate::with_cap(&NoiseConfig::default(), cap);
    for i in 0..200u64 {
        let verdict = gate.admit(
            &spec(&format!("p{i}"), "a", &unique_text(i as usize)).build(),
            i,
        );
        assert_eq!(verdict, Verdict::Deliver);
        let (originals, storms, authors) = gate.remembered();
        assert!(originals <= cap && storms <= cap && authors <= cap);
    }
    // The oldest were evicted: a repost of the first is delivered; of the last, held.
    assert_eq!(
        gate.admit(&spec("r0", "b", "first again").of("p0").build(), 300),
        Verdict::Deliver
    );
    assert!(matches!(
        gate.admit(&spec("r199", "c", "last again").of("p199").build(), 301),
        Verdict::Hold(_)
    ));
    // After the window everything is forgotten.
    gate.admit(&spec("late", "d", "late").build(), 300 + 10 * MINUTE + 1);
    assert_eq!(gate.remembered().0, 1, "only the late post itself");
    assert_eq!(
        gate.remembered().1,
        0,
        "a one-word text opens no storm cluster"
    );
}

#[test]
fn a_post_remembered_again_keeps_the_memory_bounded() {
    // The same original reposted after every window: its key is refreshed many times.
    let mut gate = NoiseGate::with_cap(&NoiseConfig::default(), 4);
    for i in 0..100u64 {
        let now = i * (10 * MINUTE);
        assert_eq!(
            gate.admit(&spec(&format!("r{i}"), "a", "again").of("1").build(), now),
            Verdict::Deliver
        );
        assert!(gate.remembered().0 <= 4);
    }
}

// ---------------------------------------------------------------------------------------
// Fingerprints and the LSH index
// ---------------------------------------------------------------------------------------

#[test]
fn simhash_ignores_links_handles_case_and_punctuation() {
    let base = simhash(STORM).expect("long enough");
    // (name, text, expected distance at most)
    let same: &[(&str, String)] = &[
        ("a link appended", format!("{STORM} https://t.co/abc")),
        (
            "a bare shortened link",
            format!("{STORM} acme.example/blog/…"),
        ),
        ("a www link", format!("{STORM} www.acme.example")),
        ("handles around it", format!("@a @b.bsky.social {STORM} @c")),
        ("shouted", STORM.to_uppercase()),
        ("punctuated", format!("{STORM}!!!")),
        ("spaced", STORM.replace(' ', "  \n")),
    ];
    for (name, text) in same {
        assert_eq!(simhash(text), Some(base), "{name}");
    }
    let other =
        simhash("loving the new acme headphones, the battery lasts all week").expect("long enough");
    assert!(
        hamming(base, other) > MAX_STORM_DISTANCE,
        "unrelated texts are far apart"
    );
    // Short texts have none.
    for text in ["", "acme", "love it @acme https://t.co/x", "one two three"] {
        assert_eq!(simhash(text), None, "{text:?}");
    }
    assert!(simhash("one two three four").is_some());
    assert_eq!(word_count("don't #acme $AMD @x https://y"), 4);
}

#[test]
fn simhash_is_fixed_across_runs() {
    // A fingerprint is persisted in held entries: it must never change between versions.
    assert_eq!(simhash(STORM), Some(simhash(STORM).expect("some")));
    assert_eq!(
        simhash("the quick brown fox jumps over the lazy dog").map(|f| format!("{f:016x}")),
        Some(FIXED_FINGERPRINT.to_owned())
    );
}

/// The fingerprint of "the quick brown fox jumps over the lazy dog", as first computed.
const FIXED_FINGERPRINT: &str = "f225dc15b2cb6339";

#[test]
fn storm_index_finds_exactly_the_fingerprints_within_the_distance() {
    let mut rng = 0x1234_5678_9abc_def0u64;
    let mut next = move || {
        // xorshift64*
        rng ^= rng >> 12;
        rng ^= rng << 25;
        rng ^= rng >> 27;
        rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    for distance in 0..=MAX_STORM_DISTANCE {
        let mut index = StormIndex::new(distance, 1_000);
        let base = next();
        index.insert(base, 0);
        for _ in 0..50 {
            // Flip k distinct bits.
            for k in 0..=(distance + 2) {
                let mut fp = base;
                let mut flipped = 0;
                while flipped < k {
                    let bit = next() % 64;
                    if (fp ^ base) >> bit & 1 == 0 {
                        fp ^= 1 << bit;
                        flipped += 1;
                    }
                }
                let found = index.find(fp);
                assert_eq!(
                    found.is_some(),
                    k <= distance,
                    "distance {distance}, {k} bits"
                );
            }
        }
        // Expired clusters are gone from every band.
        index.expire(1, 1);
        assert_eq!(index.find(base), None);
        assert_eq!(index.len(), 0);
    }
}

// ---------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------

#[test]
fn rates_parse_or_say_what_is_wrong() {
    let ok: &[(&str, u32, Duration)] = &[
        ("60/1m", 60, Duration::from_secs(60)),
        ("100/1h", 100, Duration::from_secs(3600)),
        ("5/1s", 5, Duration::from_secs(1)),
        (" 5 / 500ms ", 5, Duration::from_millis(500)),
        ("60/m", 60, Duration::from_secs(60)),
    ];
    for (text, count, per) in ok {
        assert_eq!(
            text.parse::<Rate>(),
            Ok(Rate {
                count: *count,
                per: *per
            }),
            "{text}"
        );
    }
    let bad: &[(&str, &str)] = &[
        ("60", "no_slash"),
        ("0/1m", "bad_count"),
        ("-1/1m", "bad_count"),
        ("x/1m", "bad_count"),
        ("99999999999/1m", "bad_count"),
        ("60/", "bad_period"),
        ("60/60", "bad_period"),
        ("60/1y", "bad_period"),
        ("60/0", "period_too_short"),
        ("60/10us", "period_too_short"),
    ];
    for (text, reason) in bad {
        let err = text.parse::<Rate>().expect_err(text);
        let kind = match err {
            RateError::NoSlash(_) => "no_slash",
            RateError::BadCount(_) => "bad_count",
            RateError::BadPeriod { .. } => "bad_period",
            RateError::PeriodTooShort(_) => "period_too_short",
        };
        assert_eq!(kind, *reason, "{text}: {err}");
        assert!(
            err.to_string().contains(text.trim()),
            "{err} names the rate"
        );
    }
}

#[test]
fn config_reads_toml_with_defaults_and_rejects_unknown_keys() {
    let c: NoiseConfig = toml::from_str("").expect("empty is all defaults");
    assert_eq!(c, NoiseConfig::default());
    assert!(c.reposts && c.storm);
    assert_eq!(c.window, Duration::from_secs(600));
    assert_eq!(c.storm_distance, 3);
    assert_eq!(c.author_cooldown, Duration::ZERO);
    assert_eq!(c.rate_limit, None);
    assert_eq!(c.digest_every, Duration::from_secs(60));
    assert!(c.exempt.is_empty());

    let c: NoiseConfig = toml::from_str(
        r#"
        reposts = false
        window = "5m"
        storm_distance = 4
        author_cooldown = "30s"
        rate_limit = "100/1h"
        digest_every = "2m"
        exempt = ["escalate", "do_not_engage"]
        "#,
    )
    .expect("a full table");
    assert!(!c.reposts);
    assert_eq!(c.window, Duration::from_secs(300));
    assert_eq!(c.author_cooldown, Duration::from_secs(30));
    assert_eq!(
        c.rate_limit,
        Some(Rate {
            count: 100,
            per: Duration::from_secs(3600)
        })
    );
    assert_eq!(c.exempt, [Action::Escalate, Action::DoNotEngage]);

    // (toml, a word the error must contain)
    let bad: &[(&str, &str)] = &[
        ("repost = true", "repost"),
        (r#"rate_limit = "60""#, "N/period"),
        (r#"window = "10""#, "unit"),
        (r#"exempt = ["panic"]"#, "panic"),
    ];
    for (text, word) in bad {
        let err = toml::from_str::<NoiseConfig>(text)
            .expect_err(text)
            .to_string();
        assert!(err.contains(word), "{text}: {err}");
    }
}

#[test]
fn config_validation_reports_every_problem() {
    let ok = NoiseConfig::default();
    assert_eq!(ok.validate(), Ok(()));
    let bad = config(|c| {
        c.storm_distance = 9;
        c.window = Duration::ZERO;
    });
    let errors = bad.validate().expect_err("two problems");
    assert!(
        matches!(
            errors.as_slice(),
            [
                NoiseConfigError::StormDistanceTooLarge { .. },
                NoiseConfigError::ZeroWindow
            ]
        ),
        "{errors:?}"
    );
    let off = config(|c| {
        c.reposts = false;
        c.storm = false;
        c.window = Duration::ZERO;
    });
    assert_eq!(
        off.validate(),
        Ok(()),
        "a zero window is fine when nothing uses it"
    );
}

// ---------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------

/// A mention drawn from small pools, so that reposts, copies and repeat authors happen.
fn arb_spec() -> impl Strategy<Value = Spec> {
    let texts = prop_oneof![
        Just(STORM.to_owned()),
        Just(format!("{STORM} https://t.co/x @someone")),
        Just("acme lost my parcel".to_owned()),
        (0usize..40).prop_map(unique_text),
    ];
    let actions = prop_oneof![
        Just(Action::Respond),
        Just(Action::Escalate),
        Just(Action::Monitor)
    ];
    (
        0u32..60,
        0u32..6,
        texts,
        proptest::option::of(0u32..10),
        0u8..=100,
        actions,
    )
        .prop_map(|(id, author, text, original, urgency, action)| {
            let s = spec(&id.to_string(), &format!("u{author}"), &text)
                .urgency(urgency)
                .action(action);
            match original {
                Some(o) => s.of(&o.to_string()),
                None => s,
            }
        })
}

fn arb_config() -> impl Strategy<Value = NoiseConfig> {
    (
        any::<bool>(),
        any::<bool>(),
        0u32..=MAX_STORM_DISTANCE,
        prop_oneof![Just(0u64), Just(5_000), Just(60_000)],
        proptest::option::of((1u32..5, 1u64..120_000)),
        prop_oneof![Just(0u64), Just(1_000), Just(60_000)],
        any::<bool>(),
    )
        .prop_map(
            |(reposts, storm, distance, cooldown, rate, every, exempt)| NoiseConfig {
                reposts,
                window: Duration::from_secs(600),
                storm,
                storm_distance: distance,
                author_cooldown: Duration::from_millis(cooldown),
                rate_limit: rate.map(|(count, per)| Rate {
                    count,
                    per: Duration::from_millis(per),
                }),
                digest_every: Duration::from_millis(every),
                exempt: if exempt {
                    vec![Action::Escalate]
                } else {
                    Vec::new()
                },
            },
        )
}

/// `n` words from a vocabulary of made-up words.
fn words(n: std::ops::Range<usize>) -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec("[a-z]{2,9}", n)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Every admitted mention is delivered or held, and every held one is counted in exactly
    /// one digest, as the caller would send them.
    #[test]
    fn no_mention_is_lost(
        cfg in arb_config(),
        steps in proptest::collection::vec((arb_spec(), 0u64..20_000), 1..200),
    ) {
        let mut gate = NoiseGate::new(&cfg);
        let mut now = 1_700_000_000_000u64;
        let (mut delivered, mut digested) = (0usize, 0usize);
        let mut pending: Vec<Held> = Vec::new();
        let mut flush = |gate: &mut NoiseGate,
                         pending: &mut Vec<Held>,
                         now: u64|
         -> Result<(), TestCaseError> {
            let start = gate.window_start().expect("something is held");
            let digest = Digest::build("q", start, now, pending);
            let r = &digest.by_reason;
            prop_assert_eq!(digest.total, pending.len());
            prop_assert_eq!(r.rate_limited + r.repost + r.storm + r.cooldown, digest.total);
            prop_assert_eq!(digest.rate_limited.count, r.rate_limited);
            prop_assert_eq!(digest.reposts.iter().map(|g| g.count).sum::<usize>(), r.repost);
            prop_assert_eq!(digest.storms.iter().map(|g| g.count).sum::<usize>(), r.storm);
            prop_assert_eq!(digest.cooldown.iter().map(|g| g.count).sum::<usize>(), r.cooldown);
            prop_assert!(digest.rate_limited.top.len() <= TOP_RATE_LIMITED);
            digested += digest.total;
            pending.clear();
            gate.digest_sent(now);
            Ok(())
        };
        for (spec, step) in &steps {
            now += step;
            match gate.admit(&spec.build(), now) {
                Verdict::Deliver => delivered += 1,
                Verdict::Hold(h) => {
                    prop_assert_eq!(h.at_ms, now);
                    pending.push(h);
                }
            }
            prop_assert_eq!(gate.held_in_window(), pending.len());
            if gate.digest_due(now) {
                flush(&mut gate, &mut pending, now)?;
            }
        }
        if !pending.is_empty() {
            flush(&mut gate, &mut pending, now)?;
        }
        prop_assert_eq!(delivered + digested, steps.len());
    }

    /// On long texts, changing one word moves the fingerprint a few bits, where unrelated
    /// texts are about 32 apart.
    #[test]
    fn one_changed_word_stays_close(
        text in words(60..120),
        at in any::<prop::sample::Index>(),
        replacement in "[a-z]{2,9}",
    ) {
        let mut edited = text.clone();
        let i = at.index(edited.len());
        edited[i] = replacement;
        let a = simhash(&text.join(" ")).expect("long");
        let b = simhash(&edited.join(" ")).expect("long");
        prop_assert!(hamming(a, b) <= 16, "distance {}", hamming(a, b));
    }

    /// The same text always has the same fingerprint, whatever links and handles it carries.
    #[test]
    fn links_and_handles_never_move_the_fingerprint(
        text in words(4..40),
        handle in "@[a-z0-9_.]{1,15}",
        link in "https://[a-z]{1,8}\\.example/[a-z0-9]{0,8}",
        at in any::<prop::sample::Index>(),
    ) {
        let mut decorated = text.clone();
        let i = at.index(decorated.len() + 1);
        decorated.insert(i, format!("{link} {handle}"));
        prop_assert_eq!(simhash(&text.join(" ")), simhash(&decorated.join(" ")));
    }
}
