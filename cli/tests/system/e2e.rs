//! Loopback Jetstream simulator → earshot → loopback webhook receiver, with bad frames mixed in
//! and a dropped connection in the middle: exactly the expected mentions arrive, once each,
//! with valid signatures, and every frame is accounted for.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use earshot::app::{self, RunOptions};
use earshot::config::Config;
use earshot::mention::mention_id;
use earshot::post::Platform;
use earshot::shutdown;
use earshot::sink::signature::SigningKey;
use earshot::skip::SkipReason;
use earshot_sim::generator::{GenSettings, Generator};
use earshot_sim::receiver::Receiver;
use earshot_sim::simulator::{self, EventLog};

use crate::support;

/// Bad frame number `n`, each kind with the reason it must be counted under. Every frame is
/// distinct (the source drops byte-identical frames as replays).
fn bad_frame(n: usize) -> (Vec<u8>, SkipReason) {
    let tag = format!("{n:06}");
    match n % 5 {
        0 => (
            format!(r#"{{"did":"did:plc:{tag}","time_us":1,"kind":"commit","commit":{{"#)
                .into_bytes(),
            SkipReason::InvalidJson,
        ),
        1 => (
            format!("not json at all {tag}").into_bytes(),
            SkipReason::InvalidJson,
        ),
        2 => (
            [
                format!(r#"{{"did":"did:plc:{tag}","text":""#).as_bytes(),
                b"\xff\xfe\"}",
            ]
            .concat(),
            SkipReason::InvalidUtf8,
        ),
        3 => {
            let mut big = format!(
                r#"{{"did":"did:plc:{tag}","time_us":1,"kind":"commit","commit":{{"operation":"create","collection":"app.bsky.feed.post","rkey":"x","record":{{"text":""#
            )
            .into_bytes();
            big.extend(std::iter::repeat_n(b'a', 2 << 20));
            big.extend(br#""}}}"#);
            (big, SkipReason::Oversize)
        }
        _ => {
            let mut deep = vec![b'['; 1000];
            deep.extend(format!(r#""{tag}""#).bytes());
            deep.extend(vec![b']'; 1000]);
            (deep, SkipReason::TooDeep)
        }
    }
}

fn config(sim: std::net::SocketAddr, hook: std::net::SocketAddr) -> Config {
    let head = support::jetstream_config_head(&support::rules_dir(), sim, "", "");
    let queue = support::catch_all_queue(&format!(
        "sink = \"webhook\"\nurl = \"http://{hook}/all\"\nsecret_env = \"{}\"\n\
         retry_schedule = [\"10ms\", \"200ms\"]\nbreaker_cooldown = \"50ms\"\n\
         [queue.noise]\nreposts = false\nstorm = false",
        support::SECRET_ENV
    ));
    let text = head + &queue;
    Config::parse("e2e.toml", &text, Path::new(".")).expect("test config is valid")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_to_signed_webhooks_with_bad_frames_and_a_reconnect() {
    support::set_secret();
    // 2,000 generated events less the likes (~1,700 posts, ~170 mentions) and 100 bad frames.
    let mut generator = Generator::new(GenSettings {
        seed: 42,
        mention_rate: 0.1,
    });
    let mut frames = Vec::new();
    let mut expected = BTreeSet::new();
    let mut expected_skips = std::collections::BTreeMap::<SkipReason, u64>::new();
    let mut posts = 0u64;
    let base = simulator::now_us();
    for i in 0..2000u64 {
        let event = generator.next_event(base + i * 10_000);
        if event.json.contains("app.bsky.feed.like") {
            // Not in `wantedCollections`: the server would not send it.
            continue;
        }
        if let Some(uri) = &event.post_uri {
            posts += 1;
            if event.mentions.is_some() {
                expected.insert(mention_id(Platform::Bluesky, uri));
            }
        } else {
            let v: serde_json::Value = serde_json::from_str(&event.json).unwrap();
            let reason = match (
                v["kind"].as_str(),
                v["commit"]["operation"].as_str(),
                v["commit"]["collection"].as_str(),
            ) {
                (Some("identity"), _, _) => SkipReason::Identity,
                (Some("account"), _, _) => SkipReason::Account,
                (_, Some("delete"), _) => SkipReason::Delete,
                other => panic!("unexpected generated event {other:?}"),
            };
            *expected_skips.entry(reason).or_default() += 1;
        }
        frames.push(event.json.into_bytes());
        if i % 20 == 19 {
            let (frame, reason) = bad_frame(i as usize / 20);
            frames.push(frame);
            *expected_skips.entry(reason).or_default() += 1;
        }
    }
    let total_frames = frames.len() as u64;
    assert!(total_frames > 1800, "{total_frames}");
    assert!(
        expected.len() > 100,
        "the generator must produce mentions: {}",
        expected.len()
    );

    let (trigger, _) = shutdown::channel();
    let log = EventLog::from_frames(frames);
    // Drop the connection once after 700 frames: the client must resume from its cursor.
    log.drop_after.store(700, Ordering::Relaxed);
    let sim = simulator::start(0, log.clone(), trigger.subscribe())
        .await
        .unwrap();
    let receiver = Receiver::new(SigningKey::from_secret(support::SECRET).unwrap());
    let hook = receiver.start(0, trigger.subscribe()).await.unwrap();

    let config = config(sim, hook);
    let compiled = earshot::compile::compile(&config).expect("rules compile");
    let running = app::start(&config, compiled, RunOptions::default(), &trigger)
        .await
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let r = running.report();
        let done = receiver.count() >= expected.len()
            && r.frames_received - r.skipped.0[SkipReason::Duplicate.index()] >= total_frames;
        if done || Instant::now() > deadline {
            break;
        }
        if log.connections.load(Ordering::Relaxed) >= 2 {
            // After the resume, later connections replay the whole script; stop them dropping.
            log.drop_after.store(0, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    running.shutdown();
    let report = running.wait(Duration::from_secs(20)).await;

    // Exactly the expected mentions, once each, all signatures valid.
    let got: BTreeSet<String> = receiver
        .received
        .lock()
        .unwrap()
        .by_id
        .keys()
        .cloned()
        .collect();
    let missing: Vec<_> = expected.difference(&got).collect();
    let extra: Vec<_> = got.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}\nextra {extra:?}"
    );
    assert_eq!(receiver.duplicates.load(Ordering::Relaxed), 0);
    assert_eq!(receiver.rejected.load(Ordering::Relaxed), 0);
    assert!(
        log.connections.load(Ordering::Relaxed) >= 2,
        "the source must have reconnected"
    );
    assert!(
        log.requests
            .lock()
            .unwrap()
            .iter()
            .skip(1)
            .any(|p| p.contains("cursor=")),
        "the reconnect must carry a cursor: {:?}",
        log.requests.lock().unwrap()
    );

    // Accounting: every frame received is a post or a counted skip.
    let dups = report.skipped.0[SkipReason::Duplicate.index()];
    assert_eq!(
        report.frames_received,
        report.posts + report.skipped.total(),
        "{report:#?}"
    );
    assert_eq!(report.frames_received - dups, total_frames, "{report:#?}");
    assert_eq!(report.posts, posts);
    assert_eq!(report.matched, expected.len() as u64);
    for (reason, n) in &expected_skips {
        assert_eq!(
            report.skipped.0[reason.index()],
            *n,
            "skips for {}: {report:#?}",
            reason.as_str()
        );
    }
}

/// A source that stops on an error retrying cannot fix (here a file that is not there) is
/// named in readiness and in the run's report with its error, logged, and counted under its
/// reason in
/// `earshot_source_errors_total` (registered at 0 for every reason at start), which is what
/// the `EarshotSourceStopped` alert reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_that_stops_on_an_error_is_counted_by_reason_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("gone.ndjson");
    let text = format!(
        "[rules]\npaths = [\"{}\"]\n\n[admin]\nenabled = false\n\n[outbox]\npath = \"{}\"\n\n\
         [[source]]\nid = \"gone-file\"\ntype = \"file\"\npath = \"{}\"\n\n{}",
        support::rules_dir().display(),
        dir.path().join("outbox.redb").display(),
        missing.display(),
        support::catch_all_queue(&format!(
            "sink = \"file\"\npath = \"{}\"",
            dir.path().join("out.ndjson").display()
        )),
    );
    let config = Config::parse("t.toml", &text, dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let compiled = earshot::compile::compile(&config).expect("rules compile");
    let (trigger, _) = shutdown::channel();
    let running = app::start(&config, compiled, RunOptions::default(), &trigger)
        .await
        .unwrap();
    // What `/readyz` answers names the stopped source and why, and keeps saying so.
    let deadline = Instant::now() + Duration::from_secs(10);
    let problems = loop {
        let problems = running.health.problems();
        if !problems.is_empty() || Instant::now() > deadline {
            break problems;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("source gone-file: stopped: ")
            && problems[0].contains("gone.ndjson"),
        "{problems:?}"
    );
    let report = running.wait(Duration::from_secs(20)).await;
    assert_eq!(report.source_errors.len(), 1, "{:?}", report.source_errors);
    assert!(
        report.source_errors[0].starts_with("gone-file: ")
            && report.source_errors[0].contains("gone.ndjson"),
        "{:?}",
        report.source_errors
    );
    let metrics = earshot::metrics::prometheus().render();
    let count = |reason: &str| {
        let series =
            format!("earshot_source_errors_total{{source=\"gone-file\",reason=\"{reason}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&series))
            .unwrap_or_else(|| panic!("no {series} in\n{metrics}"))
            .trim()
            .to_string()
    };
    assert_eq!(count("io"), "1");
    assert_eq!(count("bad_url"), "0");
    assert_eq!(count("panicked"), "0");
}
