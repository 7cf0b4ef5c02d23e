//! `earshot-loadtest run CASE`: runs one case end to end.
//!
//! Starts the receiver, the firehose (both this binary, re-executed) and `earshot run` with
//! the case's config filled in, as separate processes on loopback ports it picked; scrapes
//! earshot's `/metrics` each second while the firehose steps its rate; then stops them in
//! the order that loses nothing: the firehose once earshot has read everything it sent,
//! earshot with SIGTERM so its queues drain into webhooks, and the receiver last, after its
//! report is fetched. Every child is killed if the runner fails halfway, so a broken run
//! leaves no process behind.
//!
//! A case whose config template holds `{NATS}` runs earshot as a one-node cluster: the runner
//! first starts a `nats-server -js` on loopback ports it picked, with its store in the report
//! folder, and stops it after earshot. Each step's cost is read at its start and end: CPU
//! seconds of earshot (and of the NATS server), and the server's `/varz` message counters.

use std::io::BufRead as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use earshot_loadtest::case::{fill_template, Case, Kind};
use earshot_loadtest::longrun::{Delivery, Limits, OverloadReport, RunFacts, SoakReport};
use earshot_loadtest::nats::{self, Varz};
use earshot_loadtest::prom::{self, Scrape};
use earshot_loadtest::report::{Cost, RunReport, StepRow};
use earshot_loadtest::sample::{self, Sample};
use earshot_loadtest::summary::{parse_expected, summarize, ReceiverReport};
use earshot_loadtest::verdict::{highest_sustained, judge};
use earshot_loadtest::{http, svg};

const HTTP_TIMEOUT: Duration = Duration::from_secs(5);
/// After the last step, how long earshot may go without reading a frame before the runner
/// stops waiting for it to catch up.
const STALL: Duration = Duration::from_secs(5);
/// How long earshot gets to drain after SIGTERM before it is killed.
const DRAIN: Duration = Duration::from_secs(60);
/// Longest `--duration`.
const MAX_DURATION_S: f64 = 24.0 * 3600.0;

/// The children, killed on drop unless already stopped.
struct Children(Vec<(&'static str, Child)>);

impl Children {
    fn get(&mut self, name: &str) -> &mut Child {
        &mut self
            .0
            .iter_mut()
            .find(|(n, _)| *n == name)
            .expect("child names are fixed")
            .1
    }

    /// SIGTERM, then wait up to `grace`, then kill. Returns how it ended.
    fn stop(&mut self, name: &str, grace: Duration) -> String {
        let child = self.get(name);
        terminate(child);
        let deadline = Instant::now() + grace;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return status.to_string(),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return format!("killed after {grace:?} without exiting");
                }
            }
        }
    }

    /// Fails with the log's tail if the child has exited.
    fn check_alive(&mut self, name: &str, log: &Path) -> anyhow::Result<()> {
        if let Some(status) = self.get(name).try_wait()? {
            bail!(
                "{name} exited early ({status}); last lines of {}:\n{}",
                log.display(),
                tail(log)
            );
        }
        Ok(())
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for (_, child) in &mut self.0 {
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

#[cfg(unix)]
#[allow(unsafe_code)] // kill(2) through libc: see SAFETY below
fn terminate(child: &mut Child) {
    // SAFETY: kill(2) on the pid of a child we own and have not reaped.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
}

#[cfg(not(unix))]
fn terminate(child: &mut Child) {
    let _ = child.kill();
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Free loopback ports: all bound at once so they differ, then released for the children.
fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .context("cannot bind a loopback port")?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

fn log_file(dir: &Path, name: &str) -> anyhow::Result<(PathBuf, Stdio)> {
    let path = dir.join(name);
    let file = std::fs::File::create(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    Ok((path, Stdio::from(file)))
}

/// Polls `GET path` until it answers 200.
fn wait_http(addr: SocketAddr, path: &str, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        match http::get(addr, path, HTTP_TIMEOUT) {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                return Err(e.context(format!("http://{addr}{path} not up within {within:?}")))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// What the firehose said on stdout.
enum Event {
    Listening,
    StepStart(usize),
    StepEnd(usize, u64, f64),
    Done(u64),
    Progress(u64, u64, u64),
}

fn parse_event(line: &str) -> Option<Event> {
    let w: Vec<&str> = line.split_whitespace().collect();
    match w.as_slice() {
        ["listening", _] => Some(Event::Listening),
        ["step-start", i, _] => Some(Event::StepStart(i.parse().ok()?)),
        ["step-end", i, n, s] => Some(Event::StepEnd(
            i.parse().ok()?,
            n.parse().ok()?,
            s.parse().ok()?,
        )),
        ["done", n] => Some(Event::Done(n.parse().ok()?)),
        ["progress", ..] => {
            let (g, s, b) = sample::parse_progress(line)?;
            Some(Event::Progress(g, s, b))
        }
        _ => None,
    }
}

/// Per step: start and end seconds (runner clock), events generated, measured duration, and
/// the cost meters read at its start and end.
#[derive(Default, Clone)]
struct StepTimes {
    start: Option<f64>,
    end: Option<f64>,
    generated: u64,
    seconds: f64,
    meters: (Option<Meters>, Option<Meters>),
}

/// What the cost of a stretch of the run is read from, at one moment.
#[derive(Debug, Clone, Copy, Default)]
struct Meters {
    earshot_cpu_s: Option<f64>,
    nats_cpu_s: Option<f64>,
    varz: Option<Varz>,
}

/// The NATS server of a cluster case: its pid and monitoring address.
struct NatsServer {
    pid: u32,
    monitor: SocketAddr,
}

impl NatsServer {
    fn varz(&self) -> Option<Varz> {
        http::get(self.monitor, "/varz", HTTP_TIMEOUT)
            .ok()
            .and_then(|text| Varz::parse(&text).ok())
    }
}

impl Meters {
    fn read(earshot_pid: u32, nats: Option<&NatsServer>) -> Meters {
        Meters {
            earshot_cpu_s: sample::cpu_seconds_of(earshot_pid),
            nats_cpu_s: nats.and_then(|n| sample::cpu_seconds_of(n.pid)),
            varz: nats.and_then(NatsServer::varz),
        }
    }

    /// The cost between `start` and `end` of `events` generated events.
    fn cost(start: Option<&Meters>, end: Option<&Meters>, events: u64) -> Cost {
        let (Some(a), Some(b)) = (start, end) else {
            return Cost {
                events,
                ..Cost::default()
            };
        };
        let diff = |x: Option<f64>, y: Option<f64>| Some(y? - x?);
        Cost {
            events,
            earshot_cpu_s: diff(a.earshot_cpu_s, b.earshot_cpu_s),
            nats_cpu_s: diff(a.nats_cpu_s, b.nats_cpu_s),
            nats: match (a.varz, b.varz) {
                (Some(x), Some(y)) => Some(y.since(&x)),
                _ => None,
            },
        }
    }
}

/// Frames per second earshot received between `from` and `to` (runner seconds).
fn ingest_rate(scrapes: &[Scrape], from: f64, to: f64) -> f64 {
    let a = scrapes.iter().rfind(|s| s.t <= from).or(scrapes.first());
    let b = scrapes.iter().rfind(|s| s.t <= to);
    match (a, b) {
        (Some(a), Some(b)) if b.t > a.t => {
            (b.frames_received.saturating_sub(a.frames_received)) as f64 / (b.t - a.t)
        }
        _ => 0.0,
    }
}

/// What `run` was asked for beyond the case.
pub struct Options {
    /// The earshot binary.
    pub earshot: Option<PathBuf>,
    /// The report folder.
    pub out: Option<PathBuf>,
    /// Seconds per step instead of the case's `step_seconds` (a short soak).
    pub duration: Option<f64>,
    /// A note for the long reports: where the run happened and alongside what.
    pub note: Option<String>,
}

/// Samples earshot's process and the latest scrape and firehose progress.
struct Sampler {
    pid: u32,
    outbox: PathBuf,
    every: Duration,
    next: Instant,
    progress: (u64, u64, u64),
    samples: Vec<Sample>,
}

impl Sampler {
    /// Takes a sample if one is due; none before earshot's first scrape (before that the
    /// process may not even have finished starting).
    fn take(&mut self, started: Instant, last: Option<&Scrape>) {
        if Instant::now() < self.next || last.is_none() {
            return;
        }
        self.next = Instant::now() + self.every;
        let last = last.cloned().unwrap_or_default();
        self.samples.push(Sample {
            t: started.elapsed().as_secs_f64(),
            rss_bytes: sample::rss_of(self.pid),
            open_fds: sample::open_fds_of(self.pid),
            outbox_bytes: sample::file_size(&self.outbox),
            delivered: last.delivered(),
            queue_depth: last.queue_depth,
            channel_batches: last.channel_batches,
            generated: self.progress.0,
            sent: self.progress.1,
            blocked_ms: self.progress.2,
        });
    }
}

/// A key of the filled config, or `default` when it is not set.
fn config_u64(config: &toml::Table, table: &str, key: &str, default: u64) -> u64 {
    config
        .get(table)
        .and_then(|t| t.get(key))
        .and_then(toml::Value::as_integer)
        .map_or(default, |v| v.max(0) as u64)
}

/// The 1-minute load average.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// Cores and load average, for the long reports: other work on the machine changes them.
fn machine_line(note: Option<&str>, load_at_start: &str) -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = load_average();
    let date = earshot::timestamp::rfc3339_micros(earshot_loadtest::time::now_us());
    let mut line = format!(
        "Run ended {} on a {cores}-core machine (1-minute load average {load_at_start} before \
         the run, {load} at its end).",
        &date[..date.len().min(19)]
    );
    if let Some(n) = note {
        line.push(' ');
        line.push_str(n);
    }
    line
}

pub fn main(case_dir: &Path, options: Options) -> anyhow::Result<()> {
    let Options {
        earshot,
        out,
        duration,
        note,
    } = options;
    let load_at_start = load_average();
    let mut case = Case::load(case_dir)?;
    if let Some(d) = duration {
        if !(1.0..=MAX_DURATION_S).contains(&d) {
            bail!("--duration {d} must be between 1 and {MAX_DURATION_S} seconds");
        }
        case.step_seconds = d;
    }
    let exe = std::env::current_exe().context("cannot find this binary's path")?;
    let earshot = earshot
        .unwrap_or_else(|| exe.with_file_name(format!("earshot{}", std::env::consts::EXE_SUFFIX)));
    if !earshot.is_file() {
        bail!(
            "earshot binary {} not found: build it with `cargo build --release -p earshot-cli`, or pass --earshot",
            earshot.display()
        );
    }
    let dir = out.unwrap_or_else(|| case.dir.join("../../reports").join(&case.name));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = dir.canonicalize()?;
    // Charts of an earlier run of another kind would otherwise sit beside this report.
    for entry in std::fs::read_dir(&dir)?.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if (name.starts_with("soak-") || name.starts_with("overload-")) && name.ends_with(".svg") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    // Every run starts from an empty outbox: a previous run's undelivered entries and source
    // checkpoint would otherwise be picked up (the case templates keep it in `state/`).
    let state = dir.join("state");
    if state.exists() {
        std::fs::remove_dir_all(&state)
            .with_context(|| format!("cannot clear {}", state.display()))?;
    }
    let rules = case
        .rules
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", case.rules.display()))?;

    // A cluster case also needs the NATS server's client and monitoring ports.
    let ports = free_ports(if case.uses_nats { 5 } else { 3 })?;
    let addr = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
    let (firehose_addr, hook_addr, admin_addr) = (addr(ports[0]), addr(ports[1]), addr(ports[2]));
    let nats_url = case.uses_nats.then(|| nats::client_url(ports[3]));
    let template = std::fs::read_to_string(&case.config)
        .with_context(|| format!("cannot read {}", case.config.display()))?;
    let config_path = dir.join("earshot.toml");
    let filled = fill_template(
        &template,
        &firehose_addr.to_string(),
        &hook_addr.to_string(),
        &admin_addr.to_string(),
        &rules,
        nats_url.as_deref(),
    );
    std::fs::write(&config_path, &filled)
        .with_context(|| format!("cannot write {}", config_path.display()))?;
    let config: toml::Table = filled
        .parse()
        .with_context(|| format!("{} is not TOML", config_path.display()))?;
    let outbox_path = dir.join(
        config
            .get("outbox")
            .and_then(|o| o.get("path"))
            .and_then(toml::Value::as_str)
            .unwrap_or("earshot-state/outbox.redb"),
    );
    let limits = Limits {
        channel_batches: config_u64(&config, "pipeline", "channel_batches", 64),
        max_entries: config_u64(
            &config,
            "outbox",
            "max_entries",
            earshot::outbox::OutboxSettings::default().max_entries,
        ),
        receiver_delay_ms: case.receiver_delay_ms,
    };
    let expected_path = dir.join("expected.tsv");
    let secret = earshot_sim::random_secret();
    let mut children = Children(Vec::new());

    // The NATS server first, so that earshot finds its cluster when it starts; an empty store
    // every run, as the outbox is (a previous run's streams would be read again).
    let mut nats_server = None;
    let nats_log = dir.join("nats.log");
    if case.uses_nats {
        let binary = nats::server_binary()?;
        let store = dir.join("nats");
        if store.exists() {
            std::fs::remove_dir_all(&store)
                .with_context(|| format!("cannot clear {}", store.display()))?;
        }
        let (_, log) = log_file(&dir, "nats.log")?;
        let child = nats::server_command(&binary, ports[3], ports[4], &store)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let server = NatsServer {
            pid: child.id(),
            monitor: addr(ports[4]),
        };
        children.0.push(("nats", child));
        // `/healthz` answers 200 once the server, JetStream included, is ready.
        wait_http(server.monitor, "/healthz", Duration::from_secs(15)).with_context(|| {
            format!(
                "nats-server did not start; last lines of {}:\n{}",
                nats_log.display(),
                tail(&nats_log)
            )
        })?;
        println!(
            "  nats-server {} with JetStream on {} (store {})",
            binary.display(),
            nats_url.as_deref().unwrap_or_default(),
            store.display()
        );
        nats_server = Some(server);
    }
    let run_start_varz = nats_server.as_ref().and_then(NatsServer::varz);

    println!(
        "case {}: steps {:?} events/s, {} s each, p99 budget {} ms; reports in {}",
        case.name,
        case.steps,
        case.step_seconds,
        case.p99_budget_ms,
        dir.display()
    );
    let (receiver_log, stderr) = log_file(&dir, "receiver.log")?;
    let child = Command::new(&exe)
        .args([
            "receiver",
            "--port",
            &ports[1].to_string(),
            "--secret-env",
            &case.secret_env,
            "--delay-ms",
            &case.receiver_delay_ms.to_string(),
        ])
        .arg("--out")
        .arg(dir.join("receiver.json"))
        .arg("--expected")
        .arg(&expected_path)
        .env(&case.secret_env, &secret)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .context("cannot start the receiver")?;
    children.0.push(("receiver", child));
    wait_http(hook_addr, "/report", Duration::from_secs(10))
        .with_context(|| format!("receiver did not start; see {}", receiver_log.display()))?;

    let (firehose_log, stderr) = log_file(&dir, "firehose.log")?;
    let steps: Vec<String> = case.steps.iter().map(u64::to_string).collect();
    let mut child = Command::new(&exe)
        .args([
            "firehose",
            "--port",
            &ports[0].to_string(),
            "--steps",
            &steps.join(","),
        ])
        .args(["--step-seconds", &case.step_seconds.to_string()])
        .args(["--seed", &case.seed.to_string()])
        .args(["--mention-rate", &case.mention_rate.to_string()])
        .args(["--max-lag", &case.firehose_max_lag.to_string()])
        .arg("--expected")
        .arg(&expected_path)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .context("cannot start the firehose")?;
    let stdout = child.stdout.take().context("firehose stdout")?;
    children.0.push(("firehose", child));
    let (tx, events) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(e) = parse_event(&line) {
                if tx.send(e).is_err() {
                    break;
                }
            }
        }
    });
    match events.recv_timeout(Duration::from_secs(10)) {
        Ok(Event::Listening) => {}
        _ => bail!(
            "firehose did not start; last lines of {}:\n{}",
            firehose_log.display(),
            tail(&firehose_log)
        ),
    }

    let (earshot_log, stderr) = log_file(&dir, "earshot.log")?;
    let started = Instant::now();
    // earshot's /metrics needs its admin token: a random one for this run.
    let admin_token = earshot_sim::random_secret();
    let child = Command::new(&earshot)
        .arg("run")
        .arg("--config")
        .arg(&config_path)
        .env(&case.secret_env, &secret)
        .env("EARSHOT_ADMIN_TOKEN", &admin_token)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .with_context(|| format!("cannot start {}", earshot.display()))?;
    let earshot_pid = child.id();
    let run_start = Meters::read(earshot_pid, nats_server.as_ref());
    let mut sampler = Sampler {
        pid: child.id(),
        outbox: outbox_path,
        every: Duration::from_secs_f64(case.sample_seconds),
        next: started,
        progress: (0, 0, 0),
        samples: Vec::new(),
    };
    children.0.push(("earshot", child));
    let scrape = || {
        http::get_with_token(admin_addr, "/metrics", Some(&admin_token), HTTP_TIMEOUT).map(|text| {
            let mut s = prom::parse(&text);
            s.t = started.elapsed().as_secs_f64();
            s
        })
    };

    // Step loop: follow the firehose's progress and scrape once a second until it is done.
    let total = case.steps.len() as f64 * case.step_seconds;
    let deadline = started + Duration::from_secs_f64(total + 90.0);
    let mut times = vec![StepTimes::default(); case.steps.len()];
    let mut scrapes: Vec<Scrape> = Vec::new();
    let mut next_scrape = started;
    let wanted = loop {
        if Instant::now() >= next_scrape {
            next_scrape += Duration::from_secs(1);
            if let Ok(s) = scrape() {
                scrapes.push(s);
            }
            sampler.take(started, scrapes.last());
            children.check_alive("earshot", &earshot_log)?;
            children.check_alive("firehose", &firehose_log)?;
            children.check_alive("receiver", &receiver_log)?;
            if nats_server.is_some() {
                children.check_alive("nats", &nats_log)?;
            }
            if Instant::now() >= deadline {
                bail!("the steps did not finish within {:?}", deadline - started);
            }
        }
        let wait = next_scrape.saturating_duration_since(Instant::now());
        match events.recv_timeout(wait) {
            Ok(Event::StepStart(i)) if i < times.len() => {
                times[i].meters.0 = Some(Meters::read(earshot_pid, nats_server.as_ref()));
                times[i].start = Some(started.elapsed().as_secs_f64());
                println!("  step {i}: {} events/s", case.steps[i]);
            }
            Ok(Event::StepEnd(i, n, secs)) if i < times.len() => {
                times[i].meters.1 = Some(Meters::read(earshot_pid, nats_server.as_ref()));
                times[i].end = Some(started.elapsed().as_secs_f64());
                times[i].generated = n;
                times[i].seconds = secs;
            }
            Ok(Event::Done(n)) => break n,
            Ok(Event::Progress(g, s, b)) => sampler.progress = (g, s, b),
            Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                children.check_alive("firehose", &firehose_log)?;
                bail!("firehose closed its stdout before finishing the steps");
            }
        }
    };

    let input_end = started.elapsed().as_secs_f64();
    let expected_count = std::fs::read_to_string(&expected_path)
        .with_context(|| format!("cannot read {}", expected_path.display()))?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count() as u64;

    // Catch-up: wait until earshot has read every frame sent, or stops making progress; with
    // a drain wait, also until it has delivered every expected mention (or the wait is over).
    let draining = case.drain_timeout_seconds > 0.0;
    let drain_deadline = Instant::now() + Duration::from_secs_f64(case.drain_timeout_seconds);
    let mut drain_seconds = None;
    // A cluster node's workers read the frames back from the stream, behind its source: it
    // has caught up once they have run every frame the source read and did not skip (what a
    // single node's workers finish after SIGTERM, a cluster node's leave in the stream).
    let cluster = nats_server.is_some();
    let mut last = (Instant::now(), 0);
    if draining {
        println!("  input stopped; waiting for {expected_count} mentions to be delivered");
    }
    let mut next_note = Instant::now() + Duration::from_secs(30);
    loop {
        while let Ok(e) = events.try_recv() {
            if let Event::Progress(g, s, b) = e {
                sampler.progress = (g, s, b);
            }
        }
        let s = scrape().context("scraping earshot's /metrics")?;
        let (frames, delivered) = (s.frames_received, s.delivered());
        let processed = s.frames_processed + s.source_skipped;
        scrapes.push(s);
        sampler.take(started, scrapes.last());
        let caught_up = frames >= wanted && (!cluster || processed >= frames);
        if draining {
            if caught_up && delivered >= expected_count {
                drain_seconds = Some(started.elapsed().as_secs_f64() - input_end);
                break;
            }
            if Instant::now() >= drain_deadline {
                println!(
                    "  not drained after {} s: {delivered} of {expected_count} delivered, {frames} of {wanted} frames read; stopping",
                    case.drain_timeout_seconds
                );
                break;
            }
            if Instant::now() >= next_note {
                next_note = Instant::now() + Duration::from_secs(30);
                println!("  draining: {delivered} of {expected_count} delivered");
            }
            children.check_alive("earshot", &earshot_log)?;
        } else {
            if caught_up {
                break;
            }
            if frames + processed > last.1 {
                last = (Instant::now(), frames + processed);
            } else if last.0.elapsed() >= STALL {
                println!(
                    "  earshot stalled at {frames} of {wanted} frames read, {processed} processed; stopping"
                );
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    // A last sample of the drained state.
    sampler.next = Instant::now();
    sampler.take(started, scrapes.last());

    // earshot's CPU before it is stopped (once it has exited it cannot be read).
    let run_end = Meters::read(earshot_pid, nats_server.as_ref());
    children.stop("firehose", Duration::from_secs(10));
    let earshot_exit = children.stop("earshot", DRAIN);
    // The server's counters once earshot has drained, then the server itself.
    let run_end_varz = nats_server.as_ref().and_then(NatsServer::varz);
    if nats_server.is_some() {
        children.stop("nats", Duration::from_secs(10));
    }
    let report_text = http::get(hook_addr, "/report", Duration::from_secs(30))
        .context("fetching the receiver's report")?;
    let received: ReceiverReport =
        serde_json::from_str(&report_text).context("parsing the receiver's report")?;
    children.stop("receiver", Duration::from_secs(10));

    let expected_text = std::fs::read_to_string(&expected_path)
        .with_context(|| format!("cannot read {}", expected_path.display()))?;
    let expected = parse_expected(&expected_text)?;
    let (summary, unexpected) = summarize(&expected, &received.received, case.steps.len());
    let write = |name: &str, text: String| -> anyhow::Result<()> {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    };
    if case.kind != Kind::Steps {
        let delivery = Delivery {
            expected: summary.iter().map(|s| s.expected).sum(),
            delivered: summary.iter().map(|s| s.delivered).sum(),
            lost: summary.iter().map(|s| s.lost).sum(),
            duplicates: received.duplicates,
            rejected: received.rejected,
            unexpected,
            // Percentiles of the whole run: a soak has one step, an overload is judged on
            // completeness, not latency.
            p50_ms: summary.iter().filter_map(|s| s.p50_ms).reduce(f64::max),
            p99_ms: summary.iter().filter_map(|s| s.p99_ms).reduce(f64::max),
            max_ms: summary.iter().filter_map(|s| s.max_ms).reduce(f64::max),
        };
        let run = RunFacts {
            case: case.name.clone(),
            description: case.description.clone(),
            offered_rate: case.steps.iter().copied().max().unwrap_or(0),
            input_seconds: times.iter().map(|t| t.seconds).sum(),
            generated: times.iter().map(|t| t.generated).sum(),
            mention_rate: case.mention_rate,
            sample_seconds: case.sample_seconds,
            earshot_exit,
            machine: machine_line(note.as_deref(), &load_at_start),
        };
        let samples = std::mem::take(&mut sampler.samples);
        let (markdown, json, charts, verdict) = if case.kind == Kind::Soak {
            let r = SoakReport::new(run, delivery, samples, input_end);
            let verdict = if r.pass() { "PASS" } else { "FAIL" };
            (
                r.markdown(),
                serde_json::to_string_pretty(&r)?,
                r.charts(),
                verdict.to_string(),
            )
        } else {
            let r = OverloadReport {
                run,
                delivery,
                limits,
                input_end,
                drain_seconds,
                samples,
            };
            let verdict = r
                .verdicts()
                .iter()
                .map(|(q, ok, _)| format!("{q}: {}", if *ok { "yes" } else { "NO" }))
                .collect::<Vec<_>>()
                .join("; ");
            (
                r.markdown(),
                serde_json::to_string_pretty(&r)?,
                r.charts(),
                verdict,
            )
        };
        write("report.json", json)?;
        write("report.md", markdown)?;
        for (file, svg) in charts {
            write(&file, svg)?;
        }
        println!("{verdict}");
        println!("report: {}", dir.join("report.md").display());
        return Ok(());
    }
    let generated: Vec<f64> = times
        .iter()
        .map(|t| {
            if t.seconds > 0.0 {
                t.generated as f64 / t.seconds
            } else {
                0.0
            }
        })
        .collect();
    let verdicts = judge(&case.steps, &generated, &summary, case.p99_budget_ms);
    let rows: Vec<StepRow> = summary
        .iter()
        .zip(&verdicts)
        .zip(times.iter().zip(&generated))
        .map(|((s, v), (t, &generated_per_s))| StepRow {
            delivery: s.clone(),
            rate: v.rate,
            generated: t.generated,
            generated_per_s,
            ingested_per_s: match (t.start, t.end) {
                (Some(a), Some(b)) => ingest_rate(&scrapes, a, b),
                _ => 0.0,
            },
            pass: v.pass,
            why: v.why.clone(),
        })
        .collect();
    let last_scrape = scrapes.last().cloned().unwrap_or_default();
    let costs = times
        .iter()
        .map(|t| Meters::cost(t.meters.0.as_ref(), t.meters.1.as_ref(), t.generated))
        .collect();
    let mut run_cost = Meters::cost(
        Some(&run_start),
        Some(&run_end),
        times.iter().map(|t| t.generated).sum(),
    );
    run_cost.nats = match (run_start_varz, run_end_varz) {
        (Some(a), Some(b)) => Some(b.since(&a)),
        _ => None,
    };
    let report = RunReport {
        case: case.name.clone(),
        description: case.description.clone(),
        seed: case.seed,
        mention_rate: case.mention_rate,
        step_seconds: case.step_seconds,
        p99_budget_ms: case.p99_budget_ms,
        sustained_rate: highest_sustained(&verdicts),
        steps: rows,
        duplicates: received.duplicates,
        rejected: received.rejected,
        unexpected,
        earshot_exit,
        dropped: last_scrape.dropped.clone(),
        deliveries: last_scrape.deliveries.clone(),
        costs,
        run_cost,
        cluster: nats_server.is_some(),
        scrapes,
    };
    write("report.json", serde_json::to_string_pretty(&report)?)?;
    write("report.md", report.markdown())?;
    write(
        "report.svg",
        svg::render(
            &format!("earshot load test: {}", case.name),
            &report.points(),
            case.p99_budget_ms,
        ),
    )?;
    println!("\n{}", report.table());
    println!(
        "highest sustained rate: {}; duplicates {}, rejected {}, unexpected {}; earshot: {}",
        report
            .sustained_rate
            .map_or("none".to_string(), |r| format!("{r} events/s")),
        report.duplicates,
        report.rejected,
        report.unexpected,
        report.earshot_exit
    );
    if report.sustained_rate.is_some() {
        println!("{}", report.at_half_line());
    }
    println!("\n{}", report.cost_table());
    println!("report: {}", dir.join("report.md").display());
    Ok(())
}
