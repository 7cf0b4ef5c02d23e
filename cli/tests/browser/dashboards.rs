//! The Grafana dashboards and Prometheus alerting rules in `dashboards/` against the real
//! thing:
//!
//! - `promtool check rules` accepts the rules and `promtool test rules` passes their unit
//!   tests (each alert firing on synthetic series, and staying quiet on healthy ones);
//! - every metric name written anywhere in `dashboards/` (panel queries, rules, rule tests,
//!   docs) is exported by a running `earshot run`, both right after it starts and after it has
//!   routed and delivered mentions. A panel or alert over a name earshot does not export shows
//!   "no data" or never fires, silently; this catches a renamed metric, and a series that only
//!   appears after its first event.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use earshot::shutdown;
use earshot::sink::signature::SigningKey;
use earshot_sim::receiver::Receiver;

use crate::support::{self, FileRun};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("the repository root exists")
}

/// Runs `promtool` with `args` from the repository root; panics with its output unless it
/// succeeds.
fn promtool(args: &[&str]) {
    let out = match Command::new("promtool")
        .args(args)
        .current_dir(repo_root())
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "promtool is not installed: scripts/test.sh installs it (Debian package `prometheus`)"
        ),
        Err(e) => panic!("cannot run promtool: {e}"),
    };
    assert!(
        out.status.success(),
        "promtool {} failed ({}):\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn promtool_accepts_the_alerting_rules() {
    promtool(&["check", "rules", "dashboards/prometheus/alerts.yml"]);
}

#[test]
fn the_alerting_rules_pass_their_promtool_unit_tests() {
    promtool(&["test", "rules", "dashboards/prometheus/alerts_test.yml"]);
}

/// Every value under an `expr` key in a JSON document, depth first.
fn exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr", serde_json::Value::String(e)) => out.push(e.clone()),
                    _ => exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

/// The Grafana dashboards are importable as they are: one Prometheus data source chosen at
/// import (`${datasource}`, never a fixed uid), unique panel ids, no links out, and every query
/// valid PromQL (promtool parses them as recording rules, Grafana's variables replaced by
/// plain values).
#[test]
fn the_grafana_dashboards_are_self_contained_and_their_queries_parse() {
    let dir = repo_root().join("dashboards/grafana");
    let mut rules = String::from("groups:\n  - name: dashboards\n    rules:\n");
    let mut n = 0;
    for name in ["overview.json", "crisis.json"] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        assert!(
            !text.contains("http://") && !text.contains("https://"),
            "{name} links out"
        );
        let d: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(d["schemaVersion"].as_u64().unwrap() >= 36, "{name}");
        assert_eq!(d["links"], serde_json::json!([]), "{name}");
        let vars = d["templating"]["list"].as_array().unwrap();
        assert!(
            vars.iter().any(|v| v["name"] == "datasource"
                && v["type"] == "datasource"
                && v["query"] == "prometheus"),
            "{name}: no `datasource` variable of type prometheus"
        );
        let mut ids = BTreeSet::new();
        for panel in d["panels"].as_array().unwrap() {
            assert!(
                ids.insert(panel["id"].as_u64().unwrap()),
                "{name}: duplicate panel id"
            );
            if panel["type"] != "row" {
                assert_eq!(
                    panel["datasource"]["uid"], "${datasource}",
                    "{name}: panel {}",
                    panel["title"]
                );
                assert!(panel["targets"].as_array().is_some_and(|t| !t.is_empty()));
            }
        }
        let mut found = Vec::new();
        exprs(&d, &mut found);
        for e in found {
            let e = e
                .replace("$__rate_interval", "1m")
                .replace("$__range", "1h")
                .replace("$__interval", "1m")
                .replace("$instance", ".*")
                .replace("$brand", ".*");
            assert!(!e.contains('$'), "{name}: an unknown variable in {e}");
            rules.push_str(&format!(
                "      - record: dashboard:query_{n}\n        expr: {}\n",
                serde_json::to_string(&e).unwrap()
            ));
            n += 1;
        }
    }
    assert!(n > 20, "only {n} queries found");
    let file = support::scratch_dir().join("dashboard-queries.yml");
    std::fs::write(&file, rules).unwrap();
    promtool(&["check", "rules", file.to_str().unwrap()]);
}

/// Every `earshot_[a-z0-9_]+` in `text` that starts a word.
fn metric_names(text: &str, out: &mut BTreeSet<String>) {
    const PREFIX: &str = "earshot_";
    let word = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_';
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(at) = text[from..].find(PREFIX).map(|i| from + i) {
        let mut end = at + PREFIX.len();
        while end < bytes.len() && word(bytes[end]) {
            end += 1;
        }
        if (at == 0 || !word(bytes[at - 1])) && end > at + PREFIX.len() {
            out.insert(text[at..end].to_string());
        }
        from = end;
    }
}

/// The metric names written in every file under `dir`, with the files naming each.
fn names_in(dir: &Path) -> Vec<(String, Vec<String>)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut by_name = std::collections::BTreeMap::<String, Vec<String>>::new();
    for file in files {
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let mut names = BTreeSet::new();
        metric_names(&text, &mut names);
        let shown = file
            .strip_prefix(dir)
            .unwrap_or(&file)
            .display()
            .to_string();
        for name in names {
            by_name.entry(name).or_default().push(shown.clone());
        }
    }
    by_name.into_iter().collect()
}

/// The metric names with at least one sample in a Prometheus text exposition.
fn exported(body: &str) -> BTreeSet<String> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

/// The value of the sample `name{labels}` (labels exactly as rendered), if present.
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// The admin token the scraped earshot runs with: `/metrics` needs it, as Prometheus sends it
/// (`authorization: {credentials_file: …}` in its scrape config).
const ADMIN_TOKEN: &str = "dashboards-test-token";

/// An `earshot run` process, killed when dropped.
struct Earshot {
    child: Child,
    log: PathBuf,
}

impl Earshot {
    fn start(dir: &Path, config: &Path) -> Self {
        let log = dir.join("earshot.log");
        let child = support::earshot()
            .args(["run", "--config"])
            .arg(config)
            .env("EARSHOT_LOG", "info")
            .env("EARSHOT_ADMIN_TOKEN", ADMIN_TOKEN)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("earshot starts");
        Self { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The admin server's address, from the log line it writes once it listens on the port
    /// the OS chose (`listen = "127.0.0.1:0"`).
    async fn admin_addr(&mut self, limit: Duration) -> std::net::SocketAddr {
        let start = Instant::now();
        loop {
            let log = self.log();
            let found = log
                .lines()
                .filter(|l| l.contains("admin server listening"))
                .find_map(|l| {
                    l.split("addr=")
                        .nth(1)?
                        .split_whitespace()
                        .next()?
                        .parse()
                        .ok()
                });
            if let Some(addr) = found {
                return addr;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("earshot exited ({status}) before listening:\n{log}");
            }
            assert!(
                start.elapsed() < limit,
                "earshot did not log its admin address within {limit:?}:\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Earshot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Jetstream post frame number `i`, in English, with `text`.
fn post(i: u64, text: &str) -> String {
    serde_json::json!({
        "did": format!("did:plc:dash{i:04}"),
        "time_us": 1_700_000_000_000_000u64 + i,
        "kind": "commit",
        "commit": {"rev": "r", "operation": "create", "collection": "app.bsky.feed.post",
            "rkey": format!("3dash{i:06}"), "cid": "c",
            "record": {"$type": "app.bsky.feed.post", "text": text,
                "createdAt": "2026-11-24T10:00:00.000Z", "langs": ["en"]}}
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_dashboards_name_is_exported_from_the_start() {
    let wanted = names_in(&repo_root().join("dashboards"));
    let names: BTreeSet<&str> = wanted.iter().map(|(n, _)| n.as_str()).collect();
    // Guards against a scan that finds nothing (and so checks nothing).
    for core in [
        "earshot_source_frames_received_total",
        "earshot_webhook_deliveries_total",
        "earshot_queue_dead_letters",
        "earshot_spike_active",
    ] {
        assert!(names.contains(core), "{core} not found in dashboards/");
    }

    support::set_secret();
    let (trigger, _) = shutdown::channel();
    let receiver = Receiver::new(SigningKey::from_secret(support::SECRET).unwrap());
    let hook = receiver.start(0, trigger.subscribe()).await.unwrap();

    // A webhook queue and a file queue (each kind exports its own series), every mention
    // routed to both, noise control off so each post is one delivery.
    let FileRun { dir, input, config } = FileRun::new(
        "127.0.0.1:0",
        &format!(
            r#"[[queue]]
id = "support"
sink = "webhook"
url = "http://{hook}/support"
secret_env = "{secret}"
retry_schedule = ["100ms"]
[queue.noise]
reposts = false
storm = false
[[queue]]
id = "archive"
sink = "file"
path = "archive.ndjson"
[queue.noise]
reposts = false
storm = false
[[route]]
queue = "support"
[[route]]
queue = "archive"
"#,
            secret = support::SECRET_ENV,
        ),
    );

    let mut earshot = Earshot::start(&dir, &config);
    let admin = earshot.admin_addr(Duration::from_secs(60)).await;
    earshot::tls::ensure_crypto_provider();
    let client = reqwest::Client::new();
    let url = format!("http://{admin}/metrics");
    let scrape = || async {
        let response = client
            .get(&url)
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("/metrics answers");
        assert!(response.status().is_success(), "{}", response.status());
        response.text().await.unwrap()
    };

    // Right after the start, before any post.
    let at_start = exported(&scrape().await);

    // A few posts the example rules match, among them negative ones, then wait (bounded) until
    // the webhook receiver has them and the counters say so.
    let texts = [
        "Acme support has been ignoring my ticket for three days, this is unacceptable",
        "@acmehq my rocket skates are broken, I need help with a refund",
        "is Acme Cloud down for anyone else? outage since this morning",
        "Acme's new anvil is great, best purchase this year",
        "Acme support kept me on hold, still waiting, worst service ever",
    ];
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&input)
        .unwrap();
    for (i, text) in texts.iter().enumerate() {
        writeln!(f, "{}", post(i as u64, text)).unwrap();
    }
    f.sync_all().unwrap();
    let limit = Duration::from_secs(60);
    let start = Instant::now();
    let body = loop {
        let body = scrape().await;
        let delivered = sample(
            &body,
            r#"earshot_webhook_deliveries_total{queue="support",outcome="delivered"}"#,
        )
        .unwrap_or(0.0);
        let written = sample(
            &body,
            r#"earshot_file_mentions_written_total{queue="archive"}"#,
        )
        .unwrap_or(0.0);
        if receiver.count() >= texts.len() && delivered >= texts.len() as f64 && written > 0.0 {
            break body;
        }
        assert!(
            start.elapsed() < limit,
            "no deliveries within {limit:?} (receiver has {}, delivered counter {delivered}, \
             file sink {written}):\n{}",
            receiver.count(),
            earshot.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let after = exported(&body);
    trigger.trigger();

    let missing = |exported: &BTreeSet<String>| -> Vec<String> {
        wanted
            .iter()
            .filter(|(name, _)| !exported.contains(name))
            .map(|(name, files)| format!("{name} (in {})", files.join(", ")))
            .collect()
    };
    let (missing_at_start, missing_after) = (missing(&at_start), missing(&after));
    assert!(
        missing_at_start.is_empty() && missing_after.is_empty(),
        "metrics named in dashboards/ that a running earshot does not export \
         (every metric must be registered at start, at 0):\n\
         missing right after the start:\n  {}\n\
         missing after delivering mentions:\n  {}",
        missing_at_start.join("\n  "),
        missing_after.join("\n  ")
    );
    drop(earshot);
}
