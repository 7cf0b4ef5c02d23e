//! `earshot demo`: the whole pipeline on an embedded default, with nothing outside the process.
//!
//! An in-process firehose simulator serves generated Jetstream events on a real loopback
//! websocket; earshot reads it with its Jetstream client, runs the example rules, scores and
//! routes, and delivers signed webhooks to an in-process receiver that verifies every
//! signature. A status line each second shows events/s, mentions, per-queue deliveries and
//! latency, followed by the mentions delivered since the last line.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use earshot::app::{self, RunOptions};
use earshot::config::Config;
use earshot::shutdown::ShutdownTrigger;
use earshot::sink::signature::SigningKey;
use earshot_sim::{generator, receiver, simulator};

/// The environment variable the demo's webhook queues read their secret from.
pub const SECRET_ENV: &str = "EARSHOT_DEMO_WEBHOOK_SECRET";

/// The demo's config; `{SIM}`, `{HOOK}`, `{RULES}` and `{ADMIN}` are filled in at start.
const DEMO_TOML: &str = include_str!("../../config/demo.toml");

/// The example rule pack, compiled in so the demo runs from any directory.
const EMBEDDED_RULES: &[(&str, &str)] = &[
    ("acme.rules", include_str!("../../rules/acme.rules")),
    (
        "competitors.rules",
        include_str!("../../rules/competitors.rules"),
    ),
    ("lists.rules", include_str!("../../rules/lists.rules")),
    (
        "acme-products.txt",
        include_str!("../../rules/acme-products.txt"),
    ),
];

/// Demo settings.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Events per second the simulator generates.
    pub rate: u64,
    /// Stop after this long (None: until Ctrl-C).
    pub duration: Option<Duration>,
    /// Rules to use (None: `./rules` if present, else the embedded pack).
    pub rules: Option<PathBuf>,
    /// Admin server address (`127.0.0.1:0` picks a free port).
    pub admin: std::net::SocketAddr,
    /// Share of posts that mention a brand.
    pub mention_rate: f64,
    /// When to start a 90-second wave of negative posts about `acme` (None: never), so the
    /// live page and the crisis queue show a spike.
    pub spike_after: Option<Duration>,
}

/// How long the injected crisis wave lasts.
const SURGE_LASTING: Duration = Duration::from_secs(90);

/// Where the demo's rules come from: the given path, `./rules`, or the embedded pack
/// written to a temporary folder.
fn rules_dir(option: &Option<PathBuf>) -> std::io::Result<(PathBuf, Option<tempfile::TempDir>)> {
    if let Some(p) = option {
        return Ok((p.clone(), None));
    }
    if Path::new("rules").join("acme.rules").exists() {
        return Ok((PathBuf::from("rules"), None));
    }
    let dir = tempfile::tempdir()?;
    for (name, text) in EMBEDDED_RULES {
        std::fs::write(dir.path().join(name), text)?;
    }
    Ok((dir.path().to_path_buf(), Some(dir)))
}

/// Runs the demo until Ctrl-C or the duration; the secret must already be in [`SECRET_ENV`].
pub async fn run(options: DemoOptions, trigger: ShutdownTrigger) -> anyhow::Result<()> {
    let secret = std::env::var(SECRET_ENV)?;
    let key = SigningKey::from_secret(&secret)?;

    let log = simulator::EventLog::new(500_000);
    let sim = simulator::start(0, log.clone(), trigger.subscribe()).await?;
    let settings = generator::GenSettings {
        seed: fastrand::u64(..),
        mention_rate: options.mention_rate,
    };
    {
        let log = log.clone();
        let shutdown = trigger.subscribe();
        let rate = options.rate;
        // Four times acme's usual rate on top of it (a third of the mentioning posts, which
        // are 85% of events times the mention rate), and never fewer than 15 a second.
        let surge = options.spike_after.map(|after| simulator::Surge {
            after,
            lasting: SURGE_LASTING,
            rate: (rate as f64 * 0.85 * options.mention_rate / 3.0 * 4.0).max(15.0),
        });
        tokio::spawn(async move {
            log.generate_with_surge(rate, settings, surge, shutdown, |_| {})
                .await
        });
    }
    let receiver = receiver::Receiver::new(key);
    let hook = receiver.start(0, trigger.subscribe()).await?;

    let (rules, _tmp) = rules_dir(&options.rules)?;
    let text = DEMO_TOML
        .replace("{SIM}", &sim.to_string())
        .replace("{HOOK}", &hook.to_string())
        .replace("{RULES}", &rules.display().to_string().replace('\\', "/"))
        .replace("{ADMIN}", &options.admin.to_string());
    let mut config = Config::parse("<embedded demo.toml>", &text, Path::new("."))
        .map_err(|e| anyhow::anyhow!("demo config:\n{e}"))?;
    // The demo's mentions are made up and its receiver lives as long as it does: its outbox
    // is a scratch one, gone with the demo, so a later run does not redeliver old mentions.
    let state = tempfile::tempdir()?;
    config.outbox.path = state.path().join("outbox.redb");
    let compiled = earshot::compile::compile(&config)?;
    let running = app::start(&config, compiled, RunOptions::default(), &trigger).await?;

    println!(
        "earshot demo: simulated Jetstream at ws://{sim}/subscribe, {} events/s",
        options.rate
    );
    println!("              webhook receiver at http://{hook}/ (verifies every signature)");
    if let (Some(admin), Some(login)) = (running.admin_addr, &running.admin_login) {
        // A one-time sign-in link, not the address: every admin endpoint needs a login.
        println!("              live dashboard at {login}");
        println!(
            "              (opens the page in one browser, once, within {} min; \
             metrics at http://{admin}/metrics need the token in ${})   (Ctrl-C to stop)",
            config.admin.login_code_ttl.as_secs() / 60,
            config.admin.token_env
        );
    }
    if let Some(after) = options.spike_after {
        println!(
            "              a wave of negative posts about acme starts after {} s and lasts {} s",
            after.as_secs(),
            SURGE_LASTING.as_secs()
        );
    }
    let started = Instant::now();
    let mut last = (Instant::now(), 0u64);
    let mut shown = 0usize;
    let mut spikes_shown = 0usize;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let mut stop = trigger.subscribe();
    loop {
        tokio::select! {
            _ = stop.recv() => break,
            _ = tick.tick() => {}
        }
        let report = running.report();
        let now = Instant::now();
        let rate = (report.frames_received - last.1) as f64 / (now - last.0).as_secs_f64();
        last = (now, report.frames_received);
        let delivery = running.latencies.snapshot().delivery;
        let p99 = if delivery.is_empty() {
            0.0
        } else {
            delivery.value_at_quantile(0.99) as f64 / 1e6
        };
        let queues: Vec<String> = report
            .per_queue
            .iter()
            .map(|(q, n)| format!("{q}={n}"))
            .collect();
        println!(
            "[{:>4}s] {:>7.0} events/s  posts={} mentions={} routed={} [{}] delivered={} p99={:.1}ms rejected={}",
            started.elapsed().as_secs(),
            rate,
            report.posts,
            report.matched,
            report.routed,
            queues.join(" "),
            receiver.count(),
            p99,
            receiver.rejected.load(Ordering::Relaxed),
        );
        {
            let rec = receiver.received.lock().unwrap_or_else(|e| e.into_inner());
            let new = rec.order.len().saturating_sub(shown);
            let skip = new.saturating_sub(5);
            for id in rec.order.iter().skip(shown + skip) {
                if let Some(m) = rec.by_id.get(id) {
                    println!("    {}", describe(m));
                }
            }
            if skip > 0 {
                println!("    … and {skip} more");
            }
            shown = rec.order.len();
            for (_, kind, doc) in rec.spikes.iter().skip(spikes_shown) {
                println!("  {}", describe_spike(kind, doc));
            }
            spikes_shown = rec.spikes.len();
        }
        let _ = std::io::stdout().flush();
        if options.duration.is_some_and(|d| started.elapsed() >= d) {
            trigger.trigger();
        }
    }
    let report = running.wait(earshot::worker::DRAIN_DEADLINE).await;
    println!(
        "earshot demo: {} events, {} posts, {} mentions, {} routed, {} delivered with valid signatures, {} duplicates, {} rejected",
        report.frames_received,
        report.posts,
        report.matched,
        report.routed,
        receiver.count(),
        receiver.duplicates.load(Ordering::Relaxed),
        receiver.rejected.load(Ordering::Relaxed)
    );
    Ok(())
}

/// One line about a delivered spike event: what, how big, and what drives it.
fn describe_spike(kind: &str, d: &serde_json::Value) -> String {
    let terms: Vec<&str> = d["terms"]
        .as_array()
        .map(|a| a.iter().filter_map(|t| t["term"].as_str()).collect())
        .unwrap_or_default();
    let mark = if kind == "spike.ended" { "✓" } else { "⚠" };
    format!(
        "{mark} {kind}: {} {} mentions {:.1}/s, {:.1}× baseline, {} so far; driving terms: {}",
        d["brand"].as_str().unwrap_or("?"),
        d["series"].as_str().unwrap_or("?"),
        d["rate"].as_f64().unwrap_or(0.0),
        d["ratio"].as_f64().unwrap_or(0.0),
        d["mentions"].as_u64().unwrap_or(0),
        if terms.is_empty() {
            "none".to_string()
        } else {
            terms.join(", ")
        }
    )
}

/// One line about a delivered mention: queues, urgency, category, brand, author and text.
fn describe(m: &serde_json::Value) -> String {
    let queues: Vec<&str> = m["queues"]
        .as_array()
        .map(|a| a.iter().filter_map(|q| q.as_str()).collect())
        .unwrap_or_default();
    let brand = m["matches"][0]["brand"].as_str().unwrap_or("?");
    let text: String = m["post"]["text"]
        .as_str()
        .unwrap_or("")
        .chars()
        .take(80)
        .collect();
    format!(
        "→ {:<14} urgency {:>3} {:<9} {:<8} {:<9} “{}”",
        queues.join(","),
        m["urgency"]["score"].as_u64().unwrap_or(0),
        m["category"].as_str().unwrap_or("?"),
        m["sentiment"]["label"].as_str().unwrap_or("?"),
        brand,
        text.replace('\n', " ")
    )
}
