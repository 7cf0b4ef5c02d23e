//! Delivery guarantees with real processes on loopback: an `earshot run` process reads a
//! growing NDJSON file of generated Jetstream posts and delivers every routed mention to a
//! webhook receiver in this process, which verifies each signature.
//!
//! - The endpoint goes away for sixty times the longest wait between two tries (its port
//!   refuses connections) while posts keep arriving, then comes back: every mention is
//!   delivered. The queue's retry and breaker timings are ten times shorter than in the
//!   other tests, so sixty of them take 6 s instead of a minute: the dispatcher goes
//!   through the same states (its decisions take the time as an input, see `sink::breaker`),
//!   and a separate process has no clock a test could drive.
//! - earshot is killed with SIGKILL in the middle of delivering and started again: every
//!   mention is delivered, and a mention delivered twice always carries the same
//!   `webhook-id` (the receiver refuses a body whose `mention_id` differs from the header).
//! - An endpoint refusing everything fills the dead-letter store; `earshot dlq list`,
//!   `replay` (on the file, and through the admin server of a running earshot) and `purge`
//!   work, and a replay delivers.
//! - Noise control: a copy-paste storm arrives as one mention and one digest counting the
//!   rest.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use earshot::mention::mention_id;
use earshot::post::Platform;
use earshot::shutdown::{self, ShutdownTrigger};
use earshot::sink::signature::SigningKey;
use earshot_sim::generator::{GenSettings, Generator};
use earshot_sim::receiver::Receiver;
use earshot_sim::simulator;

use crate::support::{self, free_port, FileRun};

/// Generated Jetstream post frames (likes left out) and the mention ids the catch-all route
/// must deliver.
pub(crate) fn posts(seed: u64, n: usize) -> (Vec<String>, BTreeSet<String>) {
    let tagged = tagged_posts(seed, n);
    let expected = tagged.iter().filter_map(|(_, id)| id.clone()).collect();
    (tagged.into_iter().map(|(f, _)| f).collect(), expected)
}

/// [`posts`], each frame with the id of the mention it must become, if any.
pub(crate) fn tagged_posts(seed: u64, n: usize) -> Vec<(String, Option<String>)> {
    let mut generator = Generator::new(GenSettings {
        seed,
        mention_rate: 0.2,
    });
    let base = simulator::now_us();
    let mut out = Vec::new();
    let mut i = 0u64;
    while out.len() < n {
        let event = generator.next_event(base + i * 1000);
        i += 1;
        let Some(uri) = &event.post_uri else { continue };
        let id = event
            .mentions
            .is_some()
            .then(|| mention_id(Platform::Bluesky, uri));
        out.push((event.json, id));
    }
    out
}

pub(crate) fn append(path: &Path, frames: &[String]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for frame in frames {
        writeln!(f, "{frame}").unwrap();
    }
    f.sync_all().unwrap();
}

/// `n` copies of one complaint about Acme by `n` authors, each with a link of its own: a
/// copy-paste storm.
pub(crate) fn storm_frames(n: u64) -> Vec<String> {
    let text = "Acme support has been ignoring my ticket for three days, this is unacceptable";
    (0..n)
        .map(|i| {
            serde_json::json!({
                "did": format!("did:plc:storm{i:03}"),
                "time_us": 1_700_000_000_000_000u64 + i,
                "kind": "commit",
                "commit": {"rev": "r", "operation": "create", "collection": "app.bsky.feed.post",
                    "rkey": format!("3storm{i:06}"), "cid": "c",
                    "record": {"$type": "app.bsky.feed.post", "text": format!("{text} https://x.example/{i}"),
                        "createdAt": "2026-11-24T10:00:00.000Z", "langs": ["en"]}}
            })
            .to_string()
        })
        .collect()
}

/// One test's folder, config and input.
pub(crate) struct Setup {
    pub(crate) dir: PathBuf,
    pub(crate) config: PathBuf,
    pub(crate) input: PathBuf,
    pub(crate) hook_port: u16,
    pub(crate) admin_port: u16,
}

/// The test queue's retries and breaker: the longest wait between two tries of an endpoint
/// is 1 s.
const TIMING: &str = r#"retry_schedule = ["200ms", "500ms", "1s"]
breaker_failures = 3
breaker_cooldown = "250ms"
breaker_max_cooldown = "1s""#;

/// [`TIMING`] ten times faster: the longest wait is 100 ms.
const TIMING_FAST: &str = r#"retry_schedule = ["20ms", "50ms", "100ms"]
breaker_failures = 3
breaker_cooldown = "25ms"
breaker_max_cooldown = "100ms""#;

impl Setup {
    /// A config reading `input.ndjson` (followed as it grows) and delivering every mention to
    /// `http://127.0.0.1:<hook_port>/all` with `queue_extra` lines added to the queue.
    pub(crate) fn new(queue_extra: &str) -> Self {
        Self::timed(TIMING, queue_extra)
    }

    /// [`Setup::new`] with the queue's retry and breaker lines `timing` instead of [`TIMING`].
    pub(crate) fn timed(timing: &str, queue_extra: &str) -> Self {
        support::set_secret();
        let hook_port = free_port();
        let admin_port = free_port();
        let FileRun { dir, input, config } = FileRun::new(
            &format!("127.0.0.1:{admin_port}"),
            &format!(
                r#"[[queue]]
id = "all"
sink = "webhook"
url = "http://127.0.0.1:{hook_port}/all"
secret_env = "{secret}"
concurrency = 4
max_attempts = 50
{timing}
{queue_extra}
[[route]]
queue = "all"
"#,
                secret = support::SECRET_ENV,
            ),
        );
        Self {
            dir,
            config,
            input,
            hook_port,
            admin_port,
        }
    }

    /// Starts `earshot run` on the config; its log goes to `earshot-<n>.log`.
    pub(crate) fn start(&self, n: u32) -> Child {
        self.start_with(n, &[])
    }

    /// [`Setup::start`] with more environment variables.
    pub(crate) fn start_with(&self, n: u32, env: &[(&str, &str)]) -> Child {
        let log = std::fs::File::create(self.dir.join(format!("earshot-{n}.log"))).unwrap();
        support::earshot()
            .args(["run", "--config"])
            .arg(&self.config)
            .env("EARSHOT_LOG", "info")
            .env("EARSHOT_ADMIN_TOKEN", "test-token")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    pub(crate) fn dlq(&self, args: &[&str]) -> (bool, String, String) {
        let out = support::earshot()
            .arg("dlq")
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .env("EARSHOT_ADMIN_TOKEN", "test-token")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// A receiver on a fixed port that can be taken down and brought back.
pub(crate) struct Endpoint {
    pub(crate) receiver: Receiver,
    port: u16,
    trigger: Option<ShutdownTrigger>,
}

impl Endpoint {
    pub(crate) fn new(port: u16) -> Self {
        Self {
            receiver: Receiver::new(SigningKey::from_secret(support::SECRET).unwrap()),
            port,
            trigger: None,
        }
    }

    pub(crate) async fn up(&mut self) {
        let (trigger, _) = shutdown::channel();
        // The port was just released by the previous incarnation: retry the bind briefly.
        for _ in 0..50 {
            if self
                .receiver
                .start(self.port, trigger.subscribe())
                .await
                .is_ok()
            {
                self.trigger = Some(trigger);
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("cannot bind the receiver to port {}", self.port);
    }

    pub(crate) fn down(&mut self) {
        if let Some(t) = self.trigger.take() {
            t.trigger();
        }
    }

    /// Digests received so far.
    pub(crate) fn digests(&self) -> usize {
        self.receiver.received.lock().unwrap().digests.len()
    }

    pub(crate) fn ids(&self) -> BTreeSet<String> {
        self.receiver
            .received
            .lock()
            .unwrap()
            .by_id
            .keys()
            .cloned()
            .collect()
    }
}

/// Polls `done` every 100 ms until it holds or `limit` passes; returns whether it held.
pub(crate) async fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    done()
}

pub(crate) fn terminate(mut child: Child) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("earshot did not stop within 30 s of SIGTERM");
}

pub(crate) fn log_tail(setup: &Setup, n: u32) -> String {
    let text =
        std::fs::read_to_string(setup.dir.join(format!("earshot-{n}.log"))).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_down_for_sixty_backoffs_loses_nothing() {
    let setup = Setup::timed(TIMING_FAST, "[queue.noise]\nreposts = false\nstorm = false");
    let (frames, expected) = posts(61, 3000);
    let (before, during) = frames.split_at(1500);
    let mut endpoint = Endpoint::new(setup.hook_port);
    endpoint.up().await;
    append(&setup.input, before);
    let child = setup.start(1);
    // Some mentions delivered while the endpoint is up…
    assert!(
        wait_for(Duration::from_secs(60), || endpoint.receiver.count() >= 50).await,
        "no deliveries before the outage:\n{}",
        log_tail(&setup, 1)
    );
    // …then it goes away for 60 × the longest wait (100 ms) while posts keep coming.
    endpoint.down();
    let down_at = Instant::now();
    let delivered_before = endpoint.receiver.count();
    append(&setup.input, during);
    tokio::time::sleep(Duration::from_secs(6)).await;
    let during_outage = endpoint.receiver.count() - delivered_before;
    endpoint.up().await;
    let all = wait_for(Duration::from_secs(90), || endpoint.ids() == expected).await;
    let recovered = down_at.elapsed();
    terminate(child);
    let got = endpoint.ids();
    let missing: Vec<_> = expected.difference(&got).take(5).collect();
    eprintln!(
        "outage: {} mentions sent, {} delivered ({} before the outage, {} during it), {} duplicates, all delivered {:.1} s after the outage began",
        expected.len(),
        got.len(),
        delivered_before,
        during_outage,
        endpoint.receiver.duplicates.load(Ordering::Relaxed),
        recovered.as_secs_f64()
    );
    assert!(all, "missing {missing:?}…\n{}", log_tail(&setup, 1));
    assert_eq!(got, expected, "nothing delivered that was not routed");
    assert_eq!(endpoint.receiver.rejected.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_delivery_then_restart_delivers_everything_with_stable_ids() {
    let setup = Setup::new("[queue.noise]\nreposts = false\nstorm = false");
    let (frames, expected) = posts(99, 3000);
    let mut endpoint = Endpoint::new(setup.hook_port);
    endpoint.up().await;
    // A slow endpoint, so the kill lands in the middle of delivering.
    endpoint.receiver.delay_ms.store(25, Ordering::Relaxed);
    append(&setup.input, &frames);
    let mut first = setup.start(1);
    let third = expected.len() / 3;
    assert!(
        wait_for(Duration::from_secs(60), || endpoint.receiver.count()
            >= third)
        .await,
        "no deliveries before the kill:\n{}",
        log_tail(&setup, 1)
    );
    first.kill().unwrap(); // SIGKILL: no shutdown, no flush.
    first.wait().unwrap();
    let at_kill = endpoint.receiver.count();
    assert!(
        at_kill < expected.len(),
        "the kill came after the last delivery"
    );
    endpoint.receiver.delay_ms.store(0, Ordering::Relaxed);
    let second = setup.start(2);
    let all = wait_for(Duration::from_secs(90), || endpoint.ids() == expected).await;
    terminate(second);
    let got = endpoint.ids();
    let duplicates = endpoint.receiver.duplicates.load(Ordering::Relaxed);
    eprintln!(
        "kill -9: {} mentions sent, {} delivered before the kill, {} delivered in all, {} duplicates (same webhook-id)",
        expected.len(),
        at_kill,
        got.len(),
        duplicates
    );
    let missing: Vec<_> = expected.difference(&got).take(5).collect();
    assert!(all, "missing {missing:?}…\n{}", log_tail(&setup, 2));
    assert_eq!(got, expected);
    // Every accepted request had a body whose mention_id equals its webhook-id, so a
    // duplicate can only be the same id again.
    assert_eq!(endpoint.receiver.rejected.load(Ordering::Relaxed), 0);
    // At most the deliveries in flight at the kill, and the acks not yet made durable, repeat.
    assert!(duplicates <= 64, "{duplicates} duplicates");
    // The restart resumed from the checkpoint instead of reading the file again.
    let log = std::fs::read_to_string(setup.dir.join("earshot-2.log")).unwrap();
    assert!(log.contains("resuming from the checkpoint"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_replayed_and_purged() {
    let setup = Setup::new("[queue.noise]\nreposts = false\nstorm = false");
    // More dead letters than one page of the admin server's `GET /dlq` (100): the CLI must
    // follow the pages.
    let (frames, expected) = posts(7, 700);
    assert!(expected.len() > 100, "{} mentions", expected.len());
    let mut endpoint = Endpoint::new(setup.hook_port);
    endpoint.up().await;
    // The endpoint refuses everything: each mention is dead-lettered after one attempt.
    endpoint.receiver.fail_status.store(400, Ordering::Relaxed);
    endpoint
        .receiver
        .fail_next
        .store(u64::MAX / 2, Ordering::Relaxed);
    append(&setup.input, &frames);
    let child = setup.start(1);
    let n = expected.len() as u64;
    assert!(
        wait_for(Duration::from_secs(60), || endpoint
            .receiver
            .failed
            .load(Ordering::Relaxed)
            >= n)
        .await,
        "{}",
        log_tail(&setup, 1)
    );
    // While earshot runs, the CLI goes through its admin server.
    let (ok, out, err) = setup.dlq(&["list"]);
    assert!(ok, "{err}");
    assert!(err.contains("in use by a running earshot"), "{err}");
    assert_eq!(out.lines().count(), expected.len(), "{out}");
    assert!(
        out.lines()
            .all(|l| l.starts_with("all\tm_") && l.contains("HTTP 400")),
        "{out}"
    );
    terminate(child);

    // Stopped: the CLI opens the file itself.
    let (ok, out, err) = setup.dlq(&["list", "--json"]);
    assert!(ok, "{err}");
    let ids: BTreeSet<String> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(ids, expected);
    let (ok, _, err) = setup.dlq(&["purge"]);
    assert!(
        !ok && err.contains("--all"),
        "purge without a filter is refused: {err}"
    );
    let one = ids.iter().next().unwrap().clone();
    let (ok, out, err) = setup.dlq(&["purge", "--id", &one]);
    assert!(ok && out.contains("purged 1"), "{out}{err}");
    let (ok, out, err) = setup.dlq(&["replay", "--queue", "all"]);
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("replayed {}", expected.len() - 1)),
        "{out}"
    );

    // The endpoint works again: the next start delivers the replayed letters.
    endpoint.receiver.fail_next.store(0, Ordering::Relaxed);
    let child = setup.start(2);
    let mut want = expected.clone();
    want.remove(&one);
    let all = wait_for(Duration::from_secs(60), || endpoint.ids() == want).await;
    // Through the admin server: nothing is dead any more.
    let (ok, out, err) = setup.dlq(&["list"]);
    terminate(child);
    assert!(all, "{}", log_tail(&setup, 2));
    assert!(ok && out.is_empty(), "{out}{err}");
    let _ = setup.admin_port;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_paste_storm_arrives_as_one_mention_and_a_digest() {
    let setup = Setup::new("[queue.noise]\nreposts = true\nstorm = true\ndigest_every = \"1s\"");
    let frames = storm_frames(20);
    let mut endpoint = Endpoint::new(setup.hook_port);
    endpoint.up().await;
    append(&setup.input, &frames);
    let child = setup.start(1);
    let digest = wait_for(Duration::from_secs(30), || endpoint.digests() > 0).await;
    terminate(child);
    assert!(digest, "{}", log_tail(&setup, 1));
    assert_eq!(
        endpoint.receiver.count(),
        1,
        "one mention of the storm is delivered"
    );
    let rec = endpoint.receiver.received.lock().unwrap();
    let d = rec.digests.values().next().unwrap();
    assert_eq!(d["queue"], "all");
    assert_eq!(d["total"], 19, "{d}");
    assert_eq!(d["by_reason"]["storm"], 19, "{d}");
    assert_eq!(d["storms"][0]["count"], 19, "{d}");
    assert!(!d["storms"][0]["examples"].as_array().unwrap().is_empty());
}

/// A Jetstream delete of `did`'s post `rkey`.
fn delete_frame(did: &str, rkey: &str) -> String {
    serde_json::json!({
        "did": did, "time_us": 1_765_000_000_000_001u64, "kind": "commit",
        "commit": {"rev": "r2", "operation": "delete", "collection": "app.bsky.feed.post", "rkey": rkey},
    })
    .to_string()
}

/// Deletes: a post deleted after its mention was delivered is followed by `mention.deleted`;
/// one deleted while its mention waits (the endpoint down) is never sent at all, and neither
/// is its deletion. Counted by outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_post_is_retracted_or_never_sent() {
    earshot::tls::ensure_crypto_provider();
    let setup = Setup::timed(TIMING_FAST, "[queue.noise]\nreposts = false\nstorm = false");
    let mut endpoint = Endpoint::new(setup.hook_port);
    endpoint.up().await;
    let frames = storm_frames(2);
    let (first, second) = (frames[0].clone(), frames[1].clone());
    let id = |n: u64| {
        earshot::mention::mention_id(
            earshot::post::Platform::Bluesky,
            &format!("at://did:plc:storm{n:03}/app.bsky.feed.post/3storm{n:06}"),
        )
    };
    let child = setup.start(1);
    append(&setup.input, &[first]);
    assert!(
        wait_for(Duration::from_secs(30), || endpoint.ids().contains(&id(0))).await,
        "the first mention arrives:\n{}",
        log_tail(&setup, 1)
    );
    append(
        &setup.input,
        &[delete_frame("did:plc:storm000", "3storm000000")],
    );
    let retracted = |e: &Endpoint| e.receiver.received.lock().unwrap().deletions.clone();
    assert!(
        wait_for(Duration::from_secs(30), || retracted(&endpoint) == [id(0)]).await,
        "a mention.deleted follows it:\n{}",
        log_tail(&setup, 1)
    );
    // The endpoint goes down: the second mention waits, and its post is deleted meanwhile.
    endpoint.down();
    append(&setup.input, &[second]);
    append(
        &setup.input,
        &[delete_frame("did:plc:storm001", "3storm000001")],
    );
    let admin = format!("127.0.0.1:{}", setup.admin_port);
    let dropped = "earshot_queue_deletes_total{queue=\"all\",outcome=\"dropped\"}";
    let deadline = Instant::now() + Duration::from_secs(30);
    while support::metric(&admin, dropped).await != Some(1.0) {
        assert!(
            Instant::now() < deadline,
            "the waiting mention is dropped:\n{}",
            log_tail(&setup, 1)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    endpoint.up().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let notified = support::metric(
        &admin,
        "earshot_queue_deletes_total{queue=\"all\",outcome=\"notified\"}",
    )
    .await;
    let deleted = support::metric(&admin, "earshot_deleted_posts_total").await;
    let depth = support::metric(&admin, "earshot_queue_depth{queue=\"all\"}").await;
    terminate(child);
    assert!(
        !endpoint.ids().contains(&id(1)),
        "the deleted post's mention was never sent"
    );
    assert_eq!(
        retracted(&endpoint),
        [id(0)],
        "no deletion for a mention never sent"
    );
    assert_eq!(
        (notified, deleted, depth),
        (Some(1.0), Some(2.0), Some(0.0))
    );
}
