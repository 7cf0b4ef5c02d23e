//! `earshot-loadtest run CASE`: runs one case end to end.
//!
//! Starts the receiver, the firehose (both this binary, re-executed) and `earshot run` with
//! the case's config filled in, as separate processes on loopback ports it picked; scrapes
//! earshot's `/metrics` each second while the firehose steps its rate; then stops them in
//! the order that loses nothing: the firehose once earshot has read everything it sent,
//! earshot with SIGTERM so its queues drain into webhooks, and the receiver last, after its
//! report is fetched. Every child is killed if the runner fails halfway, so a broken run
//! leaves no process behind.

use std::io::BufRead as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use earshot_loadtest::case::{fill_template, Case};
use earshot_loadtest::prom::{self, Scrape};
use earshot_loadtest::report::{RunReport, StepRow};
use earshot_loadtest::summary::{parse_expected, summarize, ReceiverReport};
use earshot_loadtest::verdict::{highest_sustained, judge};
use earshot_loadtest::{http, svg};

const HTTP_TIMEOUT: Duration = Duration::from_secs(5);
/// After the last step, how long earshot may go without reading a frame before the runner
/// stops waiting for it to catch up.
const STALL: Duration = Duration::from_secs(5);
/// How long earshot gets to drain after SIGTERM before it is killed.
const DRAIN: Duration = Duration::from_secs(60);

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
        _ => None,
    }
}

/// Per step: start and end seconds (runner clock), events generated, measured duration.
#[derive(Default, Clone)]
struct StepTimes {
    start: Option<f64>,
    end: Option<f64>,
    generated: u64,
    seconds: f64,
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

pub fn main(case_dir: &Path, earshot: Option<PathBuf>, out: Option<PathBuf>) -> anyhow::Result<()> {
    let case = Case::load(case_dir)?;
    let exe = std::env::current_exe().context("cannot find this binary's path")?;
    let earshot = earshot
        .unwrap_or_else(|| exe.with_file_name(format!("earshot{}", std::env::consts::EXE_SUFFIX)));
    if !earshot.is_file() {
        bail!(
            "earshot binary {} not found: build it with `cargo build --release -p earshot`, or pass --earshot",
            earshot.display()
        );
    }
    let dir = out.unwrap_or_else(|| case.dir.join("../../reports").join(&case.name));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = dir.canonicalize()?;
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

    let ports = free_ports(3)?;
    let addr = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
    let (firehose_addr, hook_addr, admin_addr) = (addr(ports[0]), addr(ports[1]), addr(ports[2]));
    let template = std::fs::read_to_string(&case.config)
        .with_context(|| format!("cannot read {}", case.config.display()))?;
    let config_path = dir.join("earshot.toml");
    std::fs::write(
        &config_path,
        fill_template(
            &template,
            &firehose_addr.to_string(),
            &hook_addr.to_string(),
            &admin_addr.to_string(),
            &rules,
        ),
    )
    .with_context(|| format!("cannot write {}", config_path.display()))?;
    let expected_path = dir.join("expected.tsv");
    let secret = earshot::demo::random_secret();
    let mut children = Children(Vec::new());

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
    let admin_token = earshot::demo::random_secret();
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
    children.0.push(("earshot", child));

    // Step loop: follow the firehose's progress and scrape once a second until it is done.
    let total = case.steps.len() as f64 * case.step_seconds;
    let deadline = started + Duration::from_secs_f64(total + 90.0);
    let mut times = vec![StepTimes::default(); case.steps.len()];
    let mut scrapes: Vec<Scrape> = Vec::new();
    let mut next_scrape = started;
    let wanted = loop {
        if Instant::now() >= next_scrape {
            next_scrape += Duration::from_secs(1);
            if let Ok(text) =
                http::get_with_token(admin_addr, "/metrics", Some(&admin_token), HTTP_TIMEOUT)
            {
                let mut s = prom::parse(&text);
                s.t = started.elapsed().as_secs_f64();
                scrapes.push(s);
            }
            children.check_alive("earshot", &earshot_log)?;
            children.check_alive("firehose", &firehose_log)?;
            children.check_alive("receiver", &receiver_log)?;
            if Instant::now() >= deadline {
                bail!("the steps did not finish within {:?}", deadline - started);
            }
        }
        let wait = next_scrape.saturating_duration_since(Instant::now());
        match events.recv_timeout(wait) {
            Ok(Event::StepStart(i)) if i < times.len() => {
                times[i].start = Some(started.elapsed().as_secs_f64());
                println!("  step {i}: {} events/s", case.steps[i]);
            }
            Ok(Event::StepEnd(i, n, secs)) if i < times.len() => {
                times[i].end = Some(started.elapsed().as_secs_f64());
                times[i].generated = n;
                times[i].seconds = secs;
            }
            Ok(Event::Done(n)) => break n,
            Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                children.check_alive("firehose", &firehose_log)?;
                bail!("firehose closed its stdout before finishing the steps");
            }
        }
    };

    // Catch-up: wait until earshot has read every frame sent, or stops making progress.
    let mut last = (
        Instant::now(),
        scrapes.last().map_or(0, |s| s.frames_received),
    );
    loop {
        let text = http::get_with_token(admin_addr, "/metrics", Some(&admin_token), HTTP_TIMEOUT)
            .context("scraping earshot's /metrics")?;
        let mut s = prom::parse(&text);
        s.t = started.elapsed().as_secs_f64();
        let frames = s.frames_received;
        scrapes.push(s);
        if frames >= wanted {
            break;
        }
        if frames > last.1 {
            last = (Instant::now(), frames);
        } else if last.0.elapsed() >= STALL {
            println!("  earshot stalled at {frames} of {wanted} frames; stopping");
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }

    children.stop("firehose", Duration::from_secs(10));
    let earshot_exit = children.stop("earshot", DRAIN);
    let report_text = http::get(hook_addr, "/report", Duration::from_secs(30))
        .context("fetching the receiver's report")?;
    let received: ReceiverReport =
        serde_json::from_str(&report_text).context("parsing the receiver's report")?;
    children.stop("receiver", Duration::from_secs(10));

    let expected_text = std::fs::read_to_string(&expected_path)
        .with_context(|| format!("cannot read {}", expected_path.display()))?;
    let expected = parse_expected(&expected_text)?;
    let (summary, unexpected) = summarize(&expected, &received.received, case.steps.len());
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
        scrapes,
    };
    let write = |name: &str, text: String| -> anyhow::Result<()> {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
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
    println!("report: {}", dir.join("report.md").display());
    Ok(())
}
