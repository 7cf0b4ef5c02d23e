//! Spikes through the whole pipeline: a simulated Jetstream firehose with steady brand
//! traffic and then a wave of negative posts about one brand. The spike detector must tell
//! the crisis queue (signed webhooks through the outbox, like any mention) when the spike
//! starts and when it ends, with its driving terms and top posts, and the posts in the spike
//! must carry the `spike` urgency reason.
//!
//! The monitor runs on a clock the test drives ([`DrivenClock`]): the test writes one second
//! of posts to the firehose, waits until the pipeline has counted them, and moves the clock
//! on, so a spike's minute of life (warmup, baseline, a wave of 8 s, its end) takes as long
//! as the pipeline needs for its posts. Windows of 2 s and 4 s keep that minute short.

use std::path::Path;
use std::time::{Duration, Instant};

use earshot::app::{self, RunOptions};
use earshot::config::Config;
use earshot::monitor::{DrivenClock, MonitorClock};
use earshot::shutdown;
use earshot::sink::signature::SigningKey;
use earshot_sim::generator::{GenSettings, Generator};
use earshot_sim::receiver::Receiver;
use earshot_sim::simulator::{self, EventLog};

use crate::support;

fn config(sim: std::net::SocketAddr, hook: std::net::SocketAddr) -> Config {
    let head = support::jetstream_config_head(&support::rules_dir(), sim, "", "");
    let queue = |id: &str| {
        format!(
            "[[queue]]\nid = \"{id}\"\nsink = \"webhook\"\nurl = \"http://{hook}/{id}\"\n\
             secret_env = \"{}\"\nretry_schedule = [\"10ms\", \"200ms\"]\n\
             [queue.noise]\nreposts = false\nstorm = false\n",
            support::SECRET_ENV
        )
    };
    let text = format!(
        "{head}{}{}[[route]]\nqueue = \"all\"\n\
         [spikes]\nqueues = [\"crisis\"]\nwindows = [\"2s\", \"4s\"]\nwarmup = \"8s\"\n\
         baseline_half_life = \"40s\"\nend_after = \"2s\"\nupdate_every = \"3s\"\n",
        queue("all"),
        queue("crisis"),
    );
    Config::parse("spikes.toml", &text, Path::new(".")).expect("test config is valid")
}

/// Steady traffic: 400 events a second, a tenth of the posts mentioning a brand (about 11
/// acme mentions a second).
const EVENTS_PER_SECOND: u64 = 400;
/// The wave: 60 crisis posts about acme a second, from the 12th second for 8 seconds.
const WAVE: std::ops::Range<u64> = 12..20;
const WAVE_PER_SECOND: u64 = 60;
/// The driven seconds at most: the spike has ended well before.
const SECONDS: u64 = 60;

/// Whether the firehose sends `event` to earshot, which asks for posts only
/// (`wantedCollections`): events without a collection, and post commits.
fn sent_to_earshot(event: &earshot_sim::generator::GenEvent) -> bool {
    !event.json.contains("\"collection\":")
        || event.json.contains("\"collection\":\"app.bsky.feed.post\"")
}

/// Waits (in real time, up to 30 s) until `done`; false if it never is.
async fn until(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wave_of_negative_posts_is_a_spike_on_the_crisis_queue_and_raises_urgency() {
    support::set_secret();
    let (trigger, _) = shutdown::channel();
    let log = EventLog::scripted(200_000);
    let sim = simulator::start(0, log.clone(), trigger.subscribe())
        .await
        .unwrap();
    let receiver = Receiver::new(SigningKey::from_secret(support::SECRET).unwrap());
    let hook = receiver.start(0, trigger.subscribe()).await.unwrap();
    let config = config(sim, hook);
    let compiled = earshot::compile::compile(&config).expect("rules compile");
    // 2026-12-07T00:00:00Z.
    let clock = DrivenClock::new(1_796_601_600);
    let options = RunOptions {
        spike_clock: Some(MonitorClock::driven(clock.clone())),
        ..RunOptions::default()
    };
    let running = app::start(&config, compiled, options, &trigger)
        .await
        .unwrap();
    let mut generator = Generator::new(GenSettings {
        seed: 7,
        mention_rate: 0.1,
    });
    let spikes = || receiver.received.lock().unwrap().spikes.clone();
    let ended = || {
        spikes()
            .iter()
            .any(|(_, kind, d)| kind == "spike.ended" && d["brand"] == "acme")
    };
    let mut pushed = 0;
    for second in 0..SECONDS {
        let base_us = clock.now_s() * 1_000_000;
        let wave = if WAVE.contains(&second) {
            WAVE_PER_SECOND
        } else {
            0
        };
        let step = 1_000_000 / (EVENTS_PER_SECOND + wave);
        for i in 0..EVENTS_PER_SECOND + wave {
            let at = base_us + i * step;
            let event = if i < EVENTS_PER_SECOND {
                generator.next_event(at)
            } else {
                generator.crisis_event(at)
            };
            pushed += u64::from(sent_to_earshot(&event));
            log.push_event(event);
        }
        // The second is in when the workers have finished its frames (they hand the mentions
        // to the monitor first) and the monitor has counted every mention.
        let counted = until(|| {
            let r = running.report();
            r.frames_processed == pushed && clock.taken() == r.matched
        })
        .await;
        assert!(counted, "second {second}: {:#?}", running.report());
        clock.advance(1);
        assert!(
            until(|| clock.caught_up()).await,
            "the monitor never closed second {second}"
        );
        if second > WAVE.end && ended() {
            break;
        }
    }
    // The last events go through the outbox like any mention.
    until(ended).await;
    running.shutdown();
    let report = running.wait(Duration::from_secs(20)).await;
    let spikes = spikes();
    let summary: Vec<String> = spikes
        .iter()
        .map(|(id, kind, d)| format!("{id} {kind} ratio={} rate={}", d["ratio"], d["rate"]))
        .collect();
    eprintln!("spike events: {summary:#?}");
    assert!(report.routed > 100, "{report:#?}");

    // Only acme spiked, and its spike started, then ended.
    assert!(
        spikes.iter().all(|(_, _, d)| d["brand"] == "acme"),
        "a steady brand alarmed: {summary:#?}"
    );
    let started: Vec<_> = spikes
        .iter()
        .filter(|(_, kind, _)| kind == "spike.started")
        .collect();
    assert!(!started.is_empty(), "no spike.started: {summary:#?}");
    let (id, _, doc) = started[0];
    let spike_id = doc["spike_id"].as_str().unwrap();
    assert_eq!(id, &format!("{spike_id}.started"));
    assert!(doc["ratio"].as_f64().unwrap() >= 3.0, "{doc}");
    assert!(doc["p_value"].as_f64().unwrap() < 1e-7, "{doc}");
    let terms: Vec<&str> = doc["terms"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["term"].as_str())
        .collect();
    assert!(
        terms
            .iter()
            .any(|t| ["outage", "checkout", "payment", "failed", "broken"].contains(t)),
        "driving terms {terms:?} miss the wave's words: {doc:#}"
    );
    let posts = doc["posts"].as_array().unwrap();
    assert!(!posts.is_empty() && posts.len() <= 5, "{doc}");
    assert!(posts
        .iter()
        .all(|p| p["mention_id"].as_str().unwrap().starts_with("m_")));
    assert!(
        spikes.iter().any(|(id, kind, d)| kind == "spike.ended"
            && d["spike_id"].as_str() == Some(spike_id)
            && id == &format!("{spike_id}.ended")),
        "the spike never ended: {summary:#?}"
    );
    assert_eq!(
        receiver
            .duplicates
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    assert_eq!(
        receiver.rejected.load(std::sync::atomic::Ordering::Relaxed),
        0
    );

    // Posts that arrived while acme was in a spike carry the `spike` urgency reason; posts
    // before it do not.
    let rec = receiver.received.lock().unwrap();
    let with_spike = rec
        .by_id
        .values()
        .filter(|m| {
            m["urgency"]["reasons"]
                .as_array()
                .is_some_and(|r| r.iter().any(|x| x["feature"] == "spike"))
        })
        .collect::<Vec<_>>();
    assert!(
        with_spike.len() > 20,
        "only {} mentions carry the spike reason",
        with_spike.len()
    );
    assert!(
        with_spike.iter().all(|m| m["matches"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["brand"] == "acme")),
        "a mention of another brand got the spike reason"
    );
}
