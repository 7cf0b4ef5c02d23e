//! Cluster mode with real processes on loopback: three `nats-server`s clustered with
//! JetStream, three `earshot run` nodes taking every role, generated posts from the simulated
//! Jetstream firehose (the fault table; the other tests follow a growing NDJSON file), and a
//! webhook receiver in this process verifying every delivery.
//!
//! One fault at a time, each followed by more posts that must all arrive: kill -9 of the node
//! reading the source, of a node that only works, of the node delivering the queue, and of a
//! NATS server; the receiver down for sixty times the queue's longest backoff while the
//! delivering node is killed; a rolling restart of every node. At the end every expected
//! mention has been delivered, nothing else has, and every repeat carried the same
//! `webhook-id`. The takeover times after each kill are printed (`cargo test -- --nocapture`)
//! and bounded: the lease's time to live and 4 s.
//!
//! The leases are 2 s here so that the test takes seconds; `EARSHOT_TEST_LEASE_TTL` (e.g.
//! `6s`, the default) runs the same faults with another lease.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};

use crate::delivery::{append, posts, terminate, wait_for, Endpoint};
use crate::support::nats::{NatsCluster, NatsServer};
use crate::support::{self, free_port};
use earshot_sim::simulator::{self, EventLog, LogEntry};

/// The test's earshot nodes and what they share.
struct Nodes {
    dir: PathBuf,
    input: PathBuf,
    configs: Vec<PathBuf>,
    children: Vec<Option<Child>>,
    starts: Vec<u32>,
    /// The simulated firehose the nodes read instead of `input`, when they do.
    firehose: Option<EventLog>,
}

impl Nodes {
    /// Writes one config per node: the same source file, queue (with `queue_extra` lines)
    /// and cluster, each node with its own name and admin port, and `tail` (more sections)
    /// at the end.
    fn with(
        n: usize,
        urls: &str,
        hook_port: u16,
        lease_ttl: &str,
        lease_renew: &str,
        queue_extra: &str,
        tail: &str,
    ) -> Self {
        support::set_secret();
        let dir = support::scratch_dir();
        let input = dir.join("input.ndjson");
        std::fs::write(&input, "").unwrap();
        let configs = (0..n)
            .map(|i| {
                let config = dir.join(format!("node-{i}.toml"));
                let text = format!(
                    r#"[pipeline]
workers = 1
[rules]
paths = ["{rules}"]
watch = "0"
[admin]
listen = "127.0.0.1:{admin}"
[[source]]
id = "posts"
type = "file"
format = "jetstream"
path = "{input}"
follow = true
poll_interval = "50ms"
[[queue]]
id = "all"
sink = "webhook"
url = "http://127.0.0.1:{hook_port}/all"
secret_env = "{secret}"
concurrency = 4
max_attempts = 1000
retry_schedule = ["20ms", "50ms", "100ms"]
breaker_failures = 3
breaker_cooldown = "25ms"
breaker_max_cooldown = "100ms"
{queue_extra}
[[route]]
queue = "all"
[cluster]
node = "node-{i}"
url = "{urls}"
replicas = 3
lease_ttl = "{lease_ttl}"
lease_renew = "{lease_renew}"
timeout = "2s"
{tail}
"#,
                    rules = support::rules_dir().display(),
                    admin = free_port(),
                    input = input.display(),
                    secret = support::SECRET_ENV,
                );
                std::fs::write(&config, text).unwrap();
                config
            })
            .collect();
        Self {
            dir,
            input,
            configs,
            children: (0..n).map(|_| None).collect(),
            starts: vec![0; n],
            firehose: None,
        }
    }

    /// Rewrites every node's config as the compose set's node config
    /// (`deploy/compose/earshot.toml`, laid out as mounted: `rules/` and `nats/ca.pem` beside
    /// it), keeping of the test's own only the addresses (the servers at `urls`, each node's
    /// admin port), the lease timings, the outbox path, the source and the queue (its short
    /// retry timings and noise off, in place of the compose set's routing file).
    fn as_compose(&mut self, urls: &str, ca: &Path, lease_ttl: &str, lease_renew: &str) {
        let repo = support::rules_dir().join("..");
        let shipped = std::fs::read_to_string(repo.join("deploy/compose/earshot.toml")).unwrap();
        support::copy_dir(&support::rules_dir(), &self.dir.join("rules"));
        std::fs::create_dir_all(self.dir.join("nats")).unwrap();
        std::fs::copy(ca, self.dir.join("nats/ca.pem")).unwrap();
        for (i, config) in self.configs.iter().enumerate() {
            let ours = std::fs::read_to_string(config).unwrap();
            let admin = ours.lines().find(|l| l.starts_with("listen = ")).unwrap();
            let source_and_queue =
                &ours[ours.find("[[source]]").unwrap()..ours.find("[cluster]").unwrap()];
            let text = shipped
                .replace(
                    "tls://nats-1:4222,tls://nats-2:4222,tls://nats-3:4222",
                    urls,
                )
                .replace(
                    "lease_ttl = \"6s\"",
                    &format!("lease_ttl = \"{lease_ttl}\""),
                )
                .replace(
                    "lease_renew = \"2s\"",
                    &format!("lease_renew = \"{lease_renew}\""),
                )
                .replace("listen = \"0.0.0.0:9464\"", admin)
                .replace(
                    "/var/lib/earshot/outbox.redb",
                    &format!("state/outbox-{i}.redb"),
                );
            assert!(
                text.contains(urls) && text.contains(admin),
                "the compose config moved"
            );
            // Everything from the public firehose on is the test's.
            let text = text[..text.find("[[source]]").unwrap()].to_string() + source_and_queue;
            // The routing file's queue gives way to the test's.
            let text = drop_section(&text, "[routing]\n");
            std::fs::write(config, text).unwrap();
        }
    }

    /// Points every node at the simulated Jetstream firehose at `addr`, serving `log`,
    /// instead of the file: a reader that takes the source over resumes from the stored
    /// cursor less the source's overlap.
    fn read_firehose(&mut self, log: EventLog, addr: std::net::SocketAddr) {
        let file = format!(
            "[[source]]\nid = \"posts\"\ntype = \"file\"\nformat = \"jetstream\"\npath = \"{}\"\n\
             follow = true\npoll_interval = \"50ms\"\n",
            self.input.display()
        );
        let jetstream = format!(
            "[[source]]\nid = \"posts\"\ntype = \"jetstream\"\nurl = \"ws://{addr}/subscribe\"\n"
        );
        for config in &self.configs {
            let text = std::fs::read_to_string(config).unwrap();
            assert!(text.contains(&file), "the file source block moved");
            std::fs::write(config, text.replace(&file, &jetstream)).unwrap();
        }
        self.firehose = Some(log);
    }

    fn start(&mut self, i: usize) {
        self.starts[i] += 1;
        let log = std::fs::File::create(self.dir.join(format!("node-{i}.{}.log", self.starts[i])))
            .unwrap();
        let child = support::earshot()
            .args(["run", "--config"])
            .arg(&self.configs[i])
            .env("EARSHOT_LOG", "info")
            .env("EARSHOT_ADMIN_TOKEN", "test-token")
            // Read by configs that name neither (the compose set's).
            .env("HOSTNAME", format!("node-{i}"))
            .env("EARSHOT_NATS_TOKEN", NATS_TOKEN)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.children[i] = Some(child);
    }

    fn kill_9(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    fn stop(&mut self, i: usize) {
        if let Some(c) = self.children[i].take() {
            terminate(c);
        }
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for (i, starts) in self.starts.iter().enumerate() {
            for s in 1..=*starts {
                let text = std::fs::read_to_string(self.dir.join(format!("node-{i}.{s}.log")))
                    .unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                out += &format!("--- node-{i} start {s}\n");
                out += &lines[lines.len().saturating_sub(15)..].join("\n");
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill_9(i);
        }
    }
}

/// The node index holding `key` in the lease bucket, if any.
async fn holder(leases: &kv::Store, key: &str) -> Option<usize> {
    let v = leases.get(key).await.ok()??;
    std::str::from_utf8(&v)
        .ok()?
        .strip_prefix("node-")?
        .parse()
        .ok()
}

/// Waits until `key` is held by a node other than `old`; returns it and how long that took.
async fn takeover(leases: &kv::Store, key: &str, old: usize, limit: Duration) -> (usize, Duration) {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(h) = holder(leases, key).await {
            if h != old {
                return (h, start.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("`{key}` was not taken over from node-{old} within {limit:?}");
}

/// `text` without the table headed `header` (up to the next header).
fn drop_section(text: &str, header: &str) -> String {
    let Some(start) = text.find(header) else {
        return text.to_string();
    };
    let rest = &text[start + header.len()..];
    let end = rest
        .find("\n[")
        .map_or(text.len(), |e| start + header.len() + e + 1);
    format!("{}{}", &text[..start], &text[end..])
}

/// The NATS token of the tests' TLS servers (`$EARSHOT_NATS_TOKEN` of the compose config).
const NATS_TOKEN: &str = "nats-test-token";

/// A CA and a server certificate for `localhost`, made by the compose set's
/// `make-certs.sh`: the folder it wrote (`server/`, `ca/`).
fn make_certs() -> PathBuf {
    let certs = support::scratch_dir().join("certs");
    let made = std::process::Command::new("sh")
        .arg(support::rules_dir().join("../deploy/compose/nats/make-certs.sh"))
        .arg(&certs)
        .arg("localhost")
        .output()
        .expect("sh");
    assert!(made.status.success(), "{made:?}");
    certs
}

/// A server's arguments for TLS with the certificate in `certs` and [`NATS_TOKEN`].
fn tls_args(certs: &Path) -> Vec<String> {
    vec![
        "--tls".into(),
        "--tlscert".into(),
        certs.join("server/server.pem").display().to_string(),
        "--tlskey".into(),
        certs.join("server/server-key.pem").display().to_string(),
        "--auth".into(),
        NATS_TOKEN.into(),
    ]
}

/// Sends `n` generated posts to the nodes (their firehose or their file); adds the mentions they must become to
/// `expected` and returns how many.
fn feed(nodes: &Nodes, expected: &mut BTreeSet<String>, seed: u64, n: usize) -> usize {
    let (frames, ids) = posts(seed, n);
    match &nodes.firehose {
        Some(log) => {
            for frame in frames {
                let v: serde_json::Value = serde_json::from_str(&frame).unwrap();
                log.push(LogEntry {
                    time_us: v["time_us"].as_u64().unwrap(),
                    collection: v["commit"]["collection"].as_str().map(str::to_string),
                    frame: frame.into_bytes().into(),
                });
            }
        }
        None => append(&nodes.input, &frames),
    }
    expected.extend(ids.iter().cloned());
    ids.len()
}

/// A verifying webhook receiver on a free port, up: it and its port.
async fn receiver() -> (Endpoint, u16) {
    let port = free_port();
    let mut endpoint = Endpoint::new(port);
    endpoint.up().await;
    (endpoint, port)
}

/// Three servers, a receiver, and the configs of two nodes with 2 s leases (not started).
async fn two_nodes(queue_extra: &str, tail: &str) -> (NatsCluster, Endpoint, Nodes) {
    let servers = NatsCluster::start(3);
    let (endpoint, hook_port) = receiver().await;
    let nodes = Nodes::with(
        2,
        &servers.urls(),
        hook_port,
        "2s",
        "500ms",
        queue_extra,
        tail,
    );
    (servers, endpoint, nodes)
}

/// Waits up to `limit` for every expected mention (failing with the nodes' logs), then
/// counts `row`'s deliveries.
async fn settle(
    endpoint: &Endpoint,
    expected: &BTreeSet<String>,
    nodes: &Nodes,
    limit: Duration,
    mut row: Row,
) -> Row {
    let all = wait_for(limit, || endpoint.ids() == *expected).await;
    assert!(
        all,
        "not delivered after `{}`:\n{}",
        row.fault,
        nodes.logs()
    );
    row.delivered = endpoint.ids().len();
    row
}

/// How much longer than the lease's time to live a takeover may take: a poll, the write,
/// and a busy machine's scheduling. With the default 6 s lease that is the issue's 10 s goal.
const TAKEOVER_SLACK: Duration = Duration::from_secs(4);

/// One row of the fault table.
struct Row {
    fault: String,
    sent: usize,
    delivered: usize,
    takeover: Option<Duration>,
}

impl Row {
    fn new(fault: &str, sent: usize, takeover: Option<Duration>) -> Self {
        Self {
            fault: fault.into(),
            sent,
            delivered: 0,
            takeover,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_lose_no_mention_through_kills_a_server_loss_an_outage_and_a_rolling_restart() {
    let lease_ttl = std::env::var("EARSHOT_TEST_LEASE_TTL").unwrap_or_else(|_| "2s".into());
    let ttl = earshot::duration::parse(&lease_ttl).expect("EARSHOT_TEST_LEASE_TTL");
    let lease_renew = format!("{}ms", ttl.as_millis() / 4);
    let limit = ttl * 4 + Duration::from_secs(10);
    // The servers as the compose set runs them: TLS (a certificate from its make-certs.sh)
    // and a token.
    let certs = make_certs();
    let mut servers = NatsCluster::start_with(3, &tls_args(&certs));
    let urls = servers
        .servers
        .iter()
        .map(|s| format!("tls://localhost:{}", s.port))
        .collect::<Vec<_>>()
        .join(",");
    let (mut endpoint, hook_port) = receiver().await;
    let mut nodes = Nodes::with(
        3,
        &urls,
        hook_port,
        &lease_ttl,
        &lease_renew,
        "[queue.noise]\nreposts = false\nstorm = false",
        "",
    );
    let ca = certs.join("ca/ca.pem");
    nodes.as_compose(&urls, &ca, &lease_ttl, &lease_renew);
    let log = EventLog::scripted(100_000);
    let (sim_stop, _) = earshot::shutdown::channel();
    let sim = simulator::start(0, log.clone(), sim_stop.subscribe())
        .await
        .expect("the simulated firehose");
    nodes.read_firehose(log, sim);
    for i in 0..3 {
        nodes.start(i);
    }
    std::env::set_var("EARSHOT_NATS_TOKEN", NATS_TOKEN);
    let auth = earshot::sink::nats::NatsAuth {
        kind: earshot::sink::nats::NatsAuthKind::Token,
        env: "EARSHOT_NATS_TOKEN".into(),
    };
    let connect = earshot::sink::nats::NatsConnect {
        queue: "test",
        url: &urls,
        auth: Some(&auth),
        ca: Some(&ca),
        timeout: Duration::from_secs(5),
    };
    let client = earshot::sink::nats::client(&connect, "earshot-test")
        .await
        .expect("connect");
    let js = jetstream::new(client);

    let mut expected = BTreeSet::new();
    let mut rows: Vec<Row> = Vec::new();
    // Steady state.
    let sent = feed(&nodes, &mut expected, 1000, 400);
    // The first wait includes the nodes' start (joining a fresh cluster).
    let row = Row::new("none (3 nodes up)", sent, None);
    rows.push(settle(&endpoint, &expected, &nodes, Duration::from_secs(120), row).await);
    let leases = loop {
        if let Ok(kv) = js.get_key_value("earshot_leases").await {
            break kv;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // Every node has joined (its admin server starts once it has) before the first fault,
    // so a takeover is timed from the kill alone.
    all_ready(&nodes).await;

    // kill -9 of the node reading the source.
    let reader = holder(&leases, "source.posts").await.expect("a reader");
    nodes.kill_9(reader);
    let sent = feed(&nodes, &mut expected, 2000, 300);
    let (_, took) = takeover(&leases, "source.posts", reader, limit).await;
    assert!(
        took <= ttl + TAKEOVER_SLACK,
        "reader taken over in {took:?}"
    );
    let row = Row::new("kill -9 of the reading node", sent, Some(took));
    rows.push(settle(&endpoint, &expected, &nodes, limit * 2, row).await);
    nodes.start(reader);

    // kill -9 of a node holding no lease: it only works.
    let r = holder(&leases, "source.posts").await;
    let d = holder(&leases, "queue.all").await;
    let worker = (0..3).find(|i| Some(*i) != r && Some(*i) != d).unwrap_or(0);
    let sent = feed(&nodes, &mut expected, 3000, 300);
    tokio::time::sleep(Duration::from_millis(300)).await;
    nodes.kill_9(worker);
    let row = Row::new("kill -9 of a working node", sent, None);
    rows.push(settle(&endpoint, &expected, &nodes, limit * 2, row).await);
    nodes.start(worker);

    // kill -9 of the node delivering the queue, with the receiver down for sixty backoffs.
    let deliverer = holder(&leases, "queue.all").await.expect("a deliverer");
    endpoint.down();
    let sent = feed(&nodes, &mut expected, 4000, 300);
    tokio::time::sleep(Duration::from_secs(2)).await;
    nodes.kill_9(deliverer);
    let (_, took) = takeover(&leases, "queue.all", deliverer, limit).await;
    assert!(
        took <= ttl + TAKEOVER_SLACK,
        "deliverer taken over in {took:?}"
    );
    // 6 s down in all by default: 60 × the queue's longest backoff (100 ms);
    // `EARSHOT_TEST_OUTAGE_S` sets another length.
    let outage = std::env::var("EARSHOT_TEST_OUTAGE_S")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(6)
        .max(2);
    tokio::time::sleep(Duration::from_secs(outage - 2)).await;
    endpoint.up().await;
    let row = Row::new(
        &format!("receiver down {outage} s + kill -9 of the delivering node"),
        sent,
        Some(took),
    );
    rows.push(settle(&endpoint, &expected, &nodes, limit * 3, row).await);
    nodes.start(deliverer);

    // kill -9 of a NATS server (not the test's own).
    servers.servers[0].kill();
    let sent = feed(&nodes, &mut expected, 5000, 300);
    let row = Row::new("kill -9 of a NATS server", sent, None);
    rows.push(settle(&endpoint, &expected, &nodes, limit * 3, row).await);
    servers.servers[0].restart();

    // A rolling restart, posts arriving throughout.
    let mut sent = 0;
    for i in 0..3 {
        sent += feed(&nodes, &mut expected, 6000 + i as u64, 100);
        nodes.stop(i);
        nodes.start(i);
        tokio::time::sleep(ttl).await;
    }
    let row = Row::new("rolling restart of the 3 nodes", sent, None);
    rows.push(settle(&endpoint, &expected, &nodes, limit * 3, row).await);

    let got = endpoint.ids();
    let duplicates = endpoint.receiver.duplicates.load(Ordering::Relaxed);
    eprintln!("lease {lease_ttl}; fault | mentions sent | delivered so far | takeover");
    for r in &rows {
        eprintln!(
            "{} | {} | {} | {}",
            r.fault,
            r.sent,
            r.delivered,
            r.takeover
                .map(|d| format!("{:.2} s", d.as_secs_f64()))
                .unwrap_or_else(|| "-".into())
        );
    }
    eprintln!(
        "in all: {} expected, {} delivered, {} duplicates (same webhook-id)",
        expected.len(),
        got.len(),
        duplicates
    );
    assert_eq!(got, expected, "nothing delivered that was not routed");
    assert_eq!(endpoint.receiver.rejected.load(Ordering::Relaxed), 0);
    for i in 0..3 {
        nodes.stop(i);
    }
    // Readers that took the firehose over started at the stored cursor.
    let logs: String = std::fs::read_dir(&nodes.dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    assert!(
        logs.contains("resuming from the checkpoint source=posts cursor="),
        "no reader resumed from a stored cursor"
    );
}

/// Noise control on a cluster: a copy-paste storm reaching two nodes arrives as one mention and
/// one digest counting the rest, as on a single node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_through_the_cluster_arrives_as_one_mention_and_a_digest() {
    let (_servers, endpoint, mut nodes) = two_nodes(
        "[queue.noise]\nreposts = true\nstorm = true\ndigest_every = \"1s\"",
        "",
    )
    .await;
    nodes.start(0);
    nodes.start(1);
    let frames = crate::delivery::storm_frames(20);
    append(&nodes.input, &frames);
    let digest = wait_for(Duration::from_secs(120), || endpoint.digests() > 0).await;
    assert!(digest, "no digest:\n{}", nodes.logs());
    // Nothing more comes: the held mentions are counted once.
    tokio::time::sleep(Duration::from_secs(2)).await;
    nodes.stop(0);
    nodes.stop(1);
    assert_eq!(
        endpoint.receiver.count(),
        1,
        "one mention of the storm is delivered"
    );
    let rec = endpoint.receiver.received.lock().unwrap();
    assert_eq!(rec.digests.len(), 1, "one digest");
    let d = rec.digests.values().next().unwrap();
    assert_eq!(d["queue"], "all");
    assert_eq!(d["total"], 19, "{d}");
    assert_eq!(d["by_reason"]["storm"], 19, "{d}");
}

/// `n` different posts about Acme, from `n` authors, numbered from `from`.
fn acme_frames(from: u64, n: u64) -> Vec<String> {
    (from..from + n)
        .map(|i| {
            serde_json::json!({
                "did": format!("did:plc:wave{i:05}"),
                "time_us": 1_700_000_000_000_000u64 + i,
                "kind": "commit",
                "commit": {"rev": "r", "operation": "create", "collection": "app.bsky.feed.post",
                    "rkey": format!("3wave{i:07}"), "cid": "c",
                    "record": {"$type": "app.bsky.feed.post",
                        "text": format!("Acme checkout broken again, order {i} stuck, refund please"),
                        "createdAt": "2026-11-24T10:00:00.000Z", "langs": ["en"]}}
            })
            .to_string()
        })
        .collect()
}

/// Spike detection on a cluster: two nodes read, route and send their sightings; the node
/// holding the detector's lease sees a wave of Acme posts spread over both and announces it
/// once, through the queue stream, as a single node would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wave_seen_by_two_nodes_is_one_spike() {
    let (_servers, endpoint, mut nodes) = two_nodes(
        "[queue.noise]\nreposts = false\nstorm = false",
        "[spikes]\nqueues = [\"all\"]\nwindows = [\"2s\", \"4s\"]\nwarmup = \"8s\"\n\
         baseline_half_life = \"60s\"\nend_after = \"2s\"\n",
    )
    .await;
    nodes.start(0);
    nodes.start(1);
    // Wait for both nodes to be working: the first posts delivered.
    append(&nodes.input, &acme_frames(0, 2));
    assert!(
        wait_for(Duration::from_secs(120), || endpoint.receiver.count() >= 2).await,
        "the cluster did not start:\n{}",
        nodes.logs()
    );
    // A quiet baseline past the warmup, then a wave.
    let mut next = 2;
    for _ in 0..12 {
        append(&nodes.input, &acme_frames(next, 1));
        next += 1;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    append(&nodes.input, &acme_frames(next, 120));
    let spiked = wait_for(Duration::from_secs(30), || {
        endpoint
            .receiver
            .received
            .lock()
            .unwrap()
            .spikes
            .iter()
            .any(|(_, event, _)| event == "spike.started")
    })
    .await;
    nodes.stop(0);
    nodes.stop(1);
    assert!(spiked, "no spike announced:\n{}", nodes.logs());
    let rec = endpoint.receiver.received.lock().unwrap();
    let started: Vec<_> = rec
        .spikes
        .iter()
        .filter(|(_, event, _)| event == "spike.started")
        .collect();
    // One spike per series (all mentions, negative ones), each announced once, counting
    // the whole wave whichever node routed each post.
    let series: BTreeSet<&str> = started
        .iter()
        .map(|(_, _, doc)| doc["series"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        started.len(),
        series.len(),
        "announced once: {:?}",
        rec.spikes
    );
    assert!(series.contains("all"), "{:?}", rec.spikes);
    for (_, _, doc) in &started {
        assert_eq!(doc["brand"], "acme", "{doc}");
        assert!(doc["mentions"].as_u64().unwrap_or(0) >= 100, "{doc}");
    }
}

/// Points node `i`'s config at the rules in `rules`, watched every `watch`.
fn use_rules(nodes: &Nodes, i: usize, rules: &Path, watch: &str) {
    let text = std::fs::read_to_string(&nodes.configs[i]).unwrap();
    let text = text
        .replace(
            &format!("paths = [\"{}\"]", support::rules_dir().display()),
            &format!("paths = [\"{}\"]", rules.display()),
        )
        .replace("watch = \"0\"", &format!("watch = \"{watch}\""));
    std::fs::write(&nodes.configs[i], text).unwrap();
}

/// Node `i`'s admin address, from its config.
fn admin_of(nodes: &Nodes, i: usize) -> String {
    let text = std::fs::read_to_string(&nodes.configs[i]).unwrap();
    let line = text.lines().find(|l| l.starts_with("listen = ")).unwrap();
    line.trim_start_matches("listen = ")
        .trim_matches('"')
        .to_string()
}

/// A value of node `i`'s `/metrics`, if it answers.
async fn metric(nodes: &Nodes, i: usize, name: &str) -> Option<f64> {
    crate::support::metric(&admin_of(nodes, i), name).await
}

/// Waits until every node answers `/readyz` with 200 (within 120 s).
async fn all_ready(nodes: &Nodes) {
    let deadline = Instant::now() + Duration::from_secs(120);
    for i in 0..nodes.configs.len() {
        loop {
            let (status, body) = readyz(nodes, i).await;
            if status == 200 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node-{i} not ready: {status} {body}\n{}",
                nodes.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Node `i`'s `/readyz`: its status and body.
async fn readyz(nodes: &Nodes, i: usize) -> (u16, String) {
    support::readyz(&admin_of(nodes, i)).await
}

/// Rules on a cluster: a reload on one node (its files changed) puts the same generation in
/// force on a node that does not watch its files; a node whose files differ from the
/// cluster's keeps its rules, says so in `/readyz`, and joins the generation once its files
/// match.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_on_one_node_reaches_every_node_with_one_generation() {
    let (_servers, endpoint, mut nodes) =
        two_nodes("[queue.noise]\nreposts = false\nstorm = false", "").await;
    let (rules_0, rules_1) = (nodes.dir.join("rules-0"), nodes.dir.join("rules-1"));
    support::copy_dir(&support::rules_dir(), &rules_0);
    support::copy_dir(&support::rules_dir(), &rules_1);
    use_rules(&nodes, 0, &rules_0, "200ms");
    use_rules(&nodes, 1, &rules_1, "0");
    nodes.start(0);
    nodes.start(1);
    earshot::tls::ensure_crypto_provider();
    let generation = |i: usize| {
        let nodes = &nodes;
        async move { metric(nodes, i, "earshot_rules_cluster_generation").await }
    };
    let both_at = |want: f64| async move {
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if generation(0).await == Some(want) && generation(1).await == Some(want) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        false
    };
    assert!(
        both_at(1.0).await,
        "not both at generation 1:\n{}",
        nodes.logs()
    );

    // A new product on both nodes' disks; only node 0 watches.
    for dir in [&rules_0, &rules_1] {
        let path = dir.join("acme-products.txt");
        let text = std::fs::read_to_string(&path).unwrap() + "Zorble Blaster\n";
        std::fs::write(path, text).unwrap();
    }
    assert!(
        both_at(2.0).await,
        "not both at generation 2:\n{}",
        nodes.logs()
    );
    // Every post about the new product is routed, whichever node works its batch.
    let frames: Vec<String> = acme_frames(0, 40)
        .into_iter()
        .map(|f| f.replace("Acme checkout broken again", "my zorble blaster is broken"))
        .collect();
    append(&nodes.input, &frames);
    assert!(
        wait_for(Duration::from_secs(60), || endpoint.receiver.count() >= 40).await,
        "{} of 40 posts about the new product delivered:\n{}",
        endpoint.receiver.count(),
        nodes.logs()
    );

    // Node 0's files move on alone: node 1 keeps its rules and says so.
    let path = rules_0.join("acme-products.txt");
    std::fs::write(
        &path,
        std::fs::read_to_string(&path).unwrap() + "Quux Hammer\n",
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut status, mut body) = (0, String::new());
    while Instant::now() < deadline {
        (status, body) = readyz(&nodes, 1).await;
        if status == 503 && body.contains("differ from the cluster's generation 3") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("differ from the cluster's generation 3"),
        "{body}"
    );
    assert_eq!(generation(1).await, Some(0.0));
    // Its files catch up: it joins generation 3 (it retries every 10 s).
    std::fs::copy(&path, rules_1.join("acme-products.txt")).unwrap();
    assert!(
        both_at(3.0).await,
        "not both at generation 3:\n{}",
        nodes.logs()
    );
    assert_eq!(readyz(&nodes, 1).await.0, 200);
    nodes.stop(0);
    nodes.stop(1);
}

/// The compose set's node config, as its containers mount it, on loopback: a NATS server
/// with TLS (its certificate from the compose set's `make-certs.sh`, for `localhost`) and a
/// token, and one node running `deploy/compose/earshot.toml` with its routing file. Only
/// addresses change (the servers' URL, the admin port, the receiver's port), the replicas
/// (one server here), and the source (a file instead of the public firehose); the
/// credentials, the CA, the leases and the routes are the shipped ones. Every mention
/// arrives, signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_node_config_runs_over_tls_with_a_token() {
    support::set_secret();
    let repo = support::rules_dir().join("..");
    let dir = support::scratch_dir();
    let certs = make_certs();
    let token = NATS_TOKEN;
    let server = NatsServer::start_with(&tls_args(&certs));
    let (endpoint, hook_port) = receiver().await;
    // The node's folder as the image and the compose file lay it out.
    let etc = dir.join("etc");
    support::copy_dir(&support::rules_dir(), &etc.join("rules"));
    std::fs::create_dir_all(etc.join("nats")).unwrap();
    std::fs::copy(certs.join("ca/ca.pem"), etc.join("nats/ca.pem")).unwrap();
    let routing = std::fs::read_to_string(repo.join("deploy/compose/routing.toml")).unwrap();
    let routing = routing.replace("127.0.0.1:8080", &format!("127.0.0.1:{hook_port}"))
        + "[queue.noise]\nreposts = false\nstorm = false\n";
    std::fs::write(etc.join("routing.toml"), routing).unwrap();
    let shipped = std::fs::read_to_string(repo.join("deploy/compose/earshot.toml")).unwrap();
    let input = dir.join("input.ndjson");
    std::fs::write(&input, "").unwrap();
    let source = format!(
        "[[source]]\nid = \"posts\"\ntype = \"file\"\nformat = \"jetstream\"\npath = \"{}\"\n\
         follow = true\npoll_interval = \"50ms\"\n",
        input.display()
    );
    let admin = format!("127.0.0.1:{}", free_port());
    let config = shipped
        .replace(
            "tls://nats-1:4222,tls://nats-2:4222,tls://nats-3:4222",
            &format!("tls://localhost:{}", server.port),
        )
        .replace("replicas = 3", "replicas = 1")
        .replace(
            "listen = \"0.0.0.0:9464\"",
            &format!("listen = \"{admin}\""),
        )
        .replace("/var/lib/earshot/outbox.redb", "state/outbox.redb");
    let config = config[..config.find("[[source]]").expect("a source")].to_string() + &source;
    std::fs::write(etc.join("earshot.toml"), &config).unwrap();
    let log = std::fs::File::create(dir.join("node.log")).unwrap();
    let child = support::earshot()
        .args(["run", "--config"])
        .arg(etc.join("earshot.toml"))
        .env("EARSHOT_LOG", "info")
        .env("HOSTNAME", "earshot-1")
        .env("EARSHOT_NATS_TOKEN", token)
        .env("EARSHOT_ADMIN_TOKEN", "test-token")
        .env("EARSHOT_WEBHOOK_SECRET", support::SECRET)
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let frames = acme_frames(0, 50);
    append(&input, &frames);
    let all = wait_for(Duration::from_secs(120), || endpoint.receiver.count() >= 50).await;
    let (status, body) = support::readyz(&admin).await;
    terminate(child);
    let log = std::fs::read_to_string(dir.join("node.log")).unwrap_or_default();
    assert!(all, "{} of 50 delivered:\n{log}", endpoint.receiver.count());
    assert_eq!(status, 200, "{body}");
    assert!(
        log.contains("node=earshot-1"),
        "named after HOSTNAME:\n{log}"
    );
    assert!(!log.contains(token), "the token is never logged");
    assert_eq!(endpoint.receiver.rejected.load(Ordering::Relaxed), 0);
}
