//! Rule reloads while a stream flows: a live loopback Jetstream feeds earshot while the test
//! swaps the rule files between two generations (and once to a broken file) through the
//! admin endpoint. Every expected mention arrives exactly once, each is matched by the rules
//! of one generation only, a broken reload changes nothing, and a caller without the token
//! is turned away.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use earshot::app::{self, RunOptions};
use earshot::config::Config;
use earshot::mention::{mention_id, Mention};
use earshot::post::Platform;
use earshot::shutdown;
use earshot_sim::generator::{GenSettings, Generator};
use earshot_sim::simulator::{self, EventLog, LogEntry};

use crate::support;

const TOKEN_ENV: &str = "EARSHOT_TEST_ADMIN_TOKEN";
const TOKEN: &str = "test-token-4f1c9a";

/// The repository's rule pack with every `rule ID:` renamed `PREFIX-ID` (terms-file rules
/// keep their `<brand>-terms` id in both generations).
fn rules_generation(prefix: &str) -> String {
    let read = |name: &str| std::fs::read_to_string(support::rules_dir().join(name)).unwrap();
    let pack = read("lists.rules") + &read("acme.rules") + &read("competitors.rules");
    pack.lines()
        .map(|line| match line.trim_start().strip_prefix("rule ") {
            Some(rest) => format!("  rule {prefix}-{rest}"),
            None => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Replaces the rule file whole (write, then rename), as a deploy tool would.
fn install(dir: &Path, text: &str) {
    let tmp = dir.join("pack.rules.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join("pack.rules")).unwrap();
}

fn config(rules: &Path, sim: std::net::SocketAddr, out: &Path) -> Config {
    let head = support::jetstream_config_head(
        rules,
        sim,
        r#"watch = "0""#,
        &format!(r#"token_env = "{TOKEN_ENV}""#),
    );
    let queue = support::catch_all_queue(&format!("sink = \"file\"\npath = \"{}\"", out.display()));
    let text = head + &queue;
    Config::parse("reload.toml", &text, Path::new(".")).expect("test config is valid")
}

async fn post_reload(
    client: &reqwest::Client,
    admin: std::net::SocketAddr,
    token: Option<&str>,
) -> (u16, String) {
    let mut request = client.post(format!("http://{admin}/rules/reload"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("admin endpoint answers");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_during_a_stream_lose_nothing_and_never_mix_generations() {
    std::env::set_var(TOKEN_ENV, TOKEN);
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        support::rules_dir().join("acme-products.txt"),
        dir.path().join("acme-products.txt"),
    )
    .unwrap();
    let (gen_a, gen_b) = (rules_generation("a"), rules_generation("b"));
    install(dir.path(), &gen_a);

    let (trigger, _) = shutdown::channel();
    let log = EventLog::new(100_000);
    let sim = simulator::start(0, log.clone(), trigger.subscribe())
        .await
        .unwrap();
    let config = config(dir.path(), sim, &dir.path().join("mentions.ndjson"));
    let compiled = earshot::compile::compile(&config).expect("rules compile");
    let (tap_tx, mut tap_rx) = tokio::sync::mpsc::channel::<Arc<Mention>>(1024);
    let options = RunOptions {
        tap: Some(tap_tx),
        ..RunOptions::default()
    };
    let running = app::start(&config, compiled, options, &trigger)
        .await
        .unwrap();
    let admin = running.admin_addr.expect("admin server runs");
    let mentions = Arc::new(Mutex::new(Vec::new()));
    let collector = {
        let mentions = mentions.clone();
        tokio::spawn(async move {
            while let Some(m) = tap_rx.recv().await {
                mentions.lock().unwrap().push(m);
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while log.connections.load(Ordering::Relaxed) == 0 {
        assert!(Instant::now() < deadline, "the source never connected");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The stream: 6,000 events, 60 every 5 ms, while the rules change underneath.
    let expected = Arc::new(Mutex::new(BTreeSet::new()));
    let feeder = {
        let (log, expected) = (log.clone(), expected.clone());
        tokio::spawn(async move {
            let mut generator = Generator::new(GenSettings {
                seed: 9,
                mention_rate: 0.2,
            });
            for _ in 0..100 {
                let base = simulator::now_us();
                for i in 0..60 {
                    let event = generator.next_event(base + i);
                    if let (Some(uri), Some(_)) = (&event.post_uri, event.mentions) {
                        expected
                            .lock()
                            .unwrap()
                            .insert(mention_id(Platform::Bluesky, uri));
                    }
                    log.push(LogEntry {
                        time_us: event.time_us,
                        collection: None,
                        frame: event.json.into_bytes().into(),
                    });
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };

    let client = reqwest::Client::new();
    // No token, a wrong token: refused, and nothing reloads.
    assert_eq!(post_reload(&client, admin, None).await.0, 401);
    assert_eq!(post_reload(&client, admin, Some("wrong")).await.0, 401);
    let mut generation = 1;
    let mut reloads = 0;
    let mut broken_tried = false;
    while !feeder.is_finished() {
        if reloads == 5 && !broken_tried {
            broken_tried = true;
            install(
                dir.path(),
                &(gen_b.clone() + "\n  rule broken: (acme OR\n  rule also-broken: -spam\n"),
            );
            let (status, body) = post_reload(&client, admin, Some(TOKEN)).await;
            assert_eq!(status, 422, "{body}");
            let failed: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(failed["generation"], generation, "{body}");
            let errors = failed["errors"].as_array().unwrap();
            assert!(errors.len() >= 2, "every error is reported: {body}");
            assert!(
                errors
                    .iter()
                    .all(|e| e.as_str().unwrap().contains("pack.rules:")),
                "errors carry file:line:col: {body}"
            );
        }
        let next = if reloads % 2 == 0 { &gen_b } else { &gen_a };
        install(dir.path(), next);
        let (status, body) = post_reload(&client, admin, Some(TOKEN)).await;
        assert_eq!(status, 200, "{body}");
        let reloaded: serde_json::Value = serde_json::from_str(&body).unwrap();
        generation += 1;
        assert_eq!(reloaded["generation"], generation, "{body}");
        reloads += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    feeder.await.unwrap();
    let expected = expected.lock().unwrap().clone();
    assert!(expected.len() > 500, "{}", expected.len());
    assert!(
        reloads >= 5,
        "the rules changed during the stream: {reloads}"
    );

    while mentions.lock().unwrap().len() < expected.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running.shutdown();
    let report = running.wait(Duration::from_secs(20)).await;
    collector.await.unwrap();

    let mentions = mentions.lock().unwrap();
    let mut seen = BTreeMap::<String, usize>::new();
    let mut by_generation = BTreeMap::<&str, usize>::new();
    for m in mentions.iter() {
        *seen.entry(m.mention_id.clone()).or_default() += 1;
        let prefixes: BTreeSet<&str> = m
            .matches
            .iter()
            .filter(|hit| !hit.rule.ends_with("-terms"))
            .map(|hit| &hit.rule[..2])
            .collect();
        assert!(
            prefixes.len() <= 1,
            "{} was matched by two generations: {:?}",
            m.mention_id,
            m.matches.iter().map(|h| &h.rule).collect::<Vec<_>>()
        );
        if let Some(prefix) = prefixes.into_iter().next() {
            *by_generation.entry(prefix).or_default() += 1;
        }
    }
    let got: BTreeSet<String> = seen.keys().cloned().collect();
    let missing: Vec<_> = expected.difference(&got).collect();
    let extra: Vec<_> = got.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}\nextra {extra:?}"
    );
    assert!(seen.values().all(|&n| n == 1), "a mention came out twice");
    assert!(
        by_generation.get("a-").copied().unwrap_or(0) > 0
            && by_generation.get("b-").copied().unwrap_or(0) > 0,
        "both generations matched posts: {by_generation:?}"
    );
    assert!(
        report.source_errors.is_empty(),
        "{:?}",
        report.source_errors
    );
    assert_eq!(report.matched as usize, expected.len());
}
