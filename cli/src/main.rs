//! The `earshot` command: parses the CLI, sets up logging, loads config and runs.
#![forbid(unsafe_code)]

mod admin_client;
mod backtest;
mod demo;
mod dlq;
mod probe;
mod receive;
mod xrules;

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use earshot::app::{self, Report, RunOptions};
use earshot::config::{Config, FormatChoice, SourceConfig, SourceKind};
use earshot::shutdown::{self, ShutdownTrigger};
use earshot::source::file::FileOptions;
use earshot::stage::decode::Format;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "earshot",
    version,
    about = "Streaming social listening: firehose in, routed CRM mentions out."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the pipeline (without --config: the embedded default, public Bluesky → stdout).
    Run {
        /// Configuration file.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Validate a configuration and its rules; print every error with file:line:col.
    Check {
        /// Configuration file (without it: the embedded default).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Check these rule files or folders instead of the config's.
        #[arg(long)]
        rules: Vec<PathBuf>,
    },
    /// Run the pipeline over recorded posts (NDJSON, JSON documents or JSON arrays, from files
    /// or stdin): one JSON line per matched post on stdout,
    /// a summary on stderr. Routes are evaluated but nothing is delivered.
    ///
    /// With --baseline-rules: backtest a rule change instead. Every post is matched by the
    /// baseline rules and by the new ones (--rules, or the config's), and a report per rule
    /// (hits under each, posts gained and lost, examples) goes to stdout.
    Replay {
        /// Configuration file for rules, scoring and routes (without it: the embedded default).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Use these rule files or folders instead of the config's (in a backtest: the new
        /// rules).
        #[arg(long)]
        rules: Vec<PathBuf>,
        /// Backtest: the rules in force (files or folders), compared with the new rules.
        #[arg(long)]
        baseline_rules: Vec<PathBuf>,
        /// Backtest: example posts per rule for each of gained, lost and hits.
        #[arg(long, default_value_t = earshot::backtest::DEFAULT_SAMPLES, requires = "baseline_rules")]
        samples: usize,
        /// Backtest: print the report as one JSON document.
        #[arg(long, requires = "baseline_rules")]
        json: bool,
        /// Input format: auto, jetstream, x_v2, x_v1, x_activity, mastodon, reddit.
        #[arg(long, default_value = "auto")]
        format: String,
        /// Worker threads (0 = one per core). A backtest matches on one thread.
        #[arg(long, conflicts_with = "baseline_rules")]
        workers: Option<usize>,
        /// Count only: do not print matched posts.
        #[arg(long, short, conflicts_with = "baseline_rules")]
        quiet: bool,
        /// Input files: NDJSON, JSON documents (pretty-printed or not), or JSON arrays of
        /// them (a page of statuses); none or `-` reads stdin.
        inputs: Vec<PathBuf>,
    },
    /// Dead letters: what a queue gave up on (attempts exhausted, refused by the endpoint, or
    /// a disabled queue). Works on the outbox file, or through the admin server of the
    /// earshot that has it open; with `[cluster]` in the config, on the cluster's stream.
    Dlq {
        #[command(subcommand)]
        action: dlq::DlqAction,
    },
    /// X's filtered-stream rules in step with the loaded rules: `diff` shows the change,
    /// `apply` validates it with X's dry run and makes it. The stream, its rules endpoint and
    /// token are those of the config's http_ndjson source on X's filtered stream.
    #[command(name = "x-rules")]
    XRules {
        #[command(subcommand)]
        action: xrules::XRulesAction,
    },
    /// Ask a running earshot whether it is alive (/healthz) or, with --ready, ready
    /// (/readyz): exit 0 when it is, 1 otherwise. For container health checks and exec probes.
    Probe(probe::ProbeArgs),
    /// Receive earshot's webhooks: verify each signature and body, print counts.
    Receive(receive::ReceiveArgs),
    /// Run everything in-process: simulated firehose → earshot → signed webhooks → receiver.
    Demo {
        /// Stop after this many seconds (default: until Ctrl-C).
        #[arg(long)]
        duration: Option<u64>,
        /// Simulated events per second.
        #[arg(long, default_value_t = 2000)]
        rate: u64,
        /// Share of posts that mention a brand.
        #[arg(long, default_value_t = 0.05)]
        mention_rate: f64,
        /// Rules (default: ./rules if present, else the embedded example pack).
        #[arg(long)]
        rules: Option<PathBuf>,
        /// Admin server address (the live dashboard is at /live on it).
        #[arg(long, default_value = "127.0.0.1:9464")]
        admin: std::net::SocketAddr,
        /// Seconds after the start when a 90-second wave of negative posts about acme
        /// begins, so the live page and the crisis queue show a spike (0: none).
        #[arg(long, default_value_t = 60)]
        spike_after: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_env("EARSHOT_LOG").unwrap_or_else(|_| {
        let default = if matches!(cli.command, Command::Demo { .. }) {
            "warn"
        } else {
            "info"
        };
        EnvFilter::new(default)
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    if let Command::Demo { .. } = &cli.command {
        if std::env::var(demo::SECRET_ENV).is_err() {
            // Set before the runtime starts, while this is the only thread.
            std::env::set_var(demo::SECRET_ENV, earshot_sim::random_secret());
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("earshot: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("earshot: {e:#}");
            ExitCode::FAILURE
        }
    };
    // A forced shutdown leaves threads blocked where they were (a worker waiting on a full
    // outbox): dropping the runtime would wait for them for ever.
    runtime.shutdown_timeout(FORCE_EXIT_AFTER);
    code
}

fn load_config(path: &Option<PathBuf>) -> anyhow::Result<Config> {
    match path {
        Some(p) => Config::load(p).map_err(|e| anyhow::anyhow!("invalid configuration:\n{e}")),
        None => Config::embedded(Path::new(".")).map_err(|e| anyhow::anyhow!("{e}")),
    }
}

/// [`load_config`] for tools that read the stores and never deliver (`earshot dlq`): the
/// queues' secrets need not be set where they run.
fn load_config_unchecked(path: &Option<PathBuf>) -> anyhow::Result<Config> {
    match path {
        Some(p) => Config::load_with(p, earshot::config::Secrets::Unchecked)
            .map_err(|e| anyhow::anyhow!("invalid configuration:\n{e}")),
        None => load_config(path),
    }
}

/// Ctrl-C and SIGTERM start a graceful shutdown; a second one (either) forces it: queues stop
/// where they are and the process exits with 130, saying what is left in the outbox. Should
/// anything still hold the process up, it exits [`FORCE_EXIT_AFTER`] later regardless. A panic
/// anywhere starts the graceful shutdown too ([`earshot::health`]).
fn install_signals(trigger: ShutdownTrigger) {
    earshot::health::install_panic_hook(trigger.clone());
    tokio::spawn(async move {
        #[cfg(unix)]
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        #[cfg(not(unix))]
        let mut term: Option<()> = None;
        next_signal(&mut term).await;
        tracing::info!(
            "shutting down: sources stop, queued work drains (a second signal stops at once)"
        );
        trigger.trigger();
        next_signal(&mut term).await;
        tracing::warn!("second signal: stopping now; undelivered entries stay in the outbox");
        trigger.force();
        tokio::time::sleep(FORCE_EXIT_AFTER).await;
        eprintln!(
            "earshot: still not stopped {}s after the second signal; exiting now",
            FORCE_EXIT_AFTER.as_secs()
        );
        std::process::exit(130);
    });
}

/// Completes at the next Ctrl-C or SIGTERM.
#[cfg(unix)]
async fn next_signal(term: &mut Option<tokio::signal::unix::Signal>) {
    let terminate = async {
        match term.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}

/// Completes at the next Ctrl-C.
#[cfg(not(unix))]
async fn next_signal(_: &mut Option<()>) {
    let _ = tokio::signal::ctrl_c().await;
}

/// How long a forced shutdown may take before the process exits regardless.
const FORCE_EXIT_AFTER: Duration = Duration::from_secs(5);

async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run { config } => {
            let config = load_config(&config)?;
            let compiled = earshot::compile::compile(&config)?;
            let (trigger, _) = shutdown::channel();
            install_signals(trigger.clone());
            let running = app::start(&config, compiled, RunOptions::default(), &trigger).await?;
            if let Some(login) = &running.admin_login {
                // On the terminal, not in the log: the link is a credential.
                eprintln!(
                    "earshot: live dashboard: open {login} (signs one browser in; works once, \
                     within {})",
                    humantime_secs(config.admin.login_code_ttl)
                );
            }
            let report = running.wait(earshot::worker::DRAIN_DEADLINE).await;
            print_summary(&report, None);
            Ok(exit_code(&report))
        }
        Command::Check { config, rules } => {
            let mut config = match load_config(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return Ok(ExitCode::FAILURE);
                }
            };
            if !rules.is_empty() {
                config.rules.paths = rules;
            }
            match earshot::compile::compile(&config) {
                Ok(compiled) => {
                    println!(
                        "ok: {} sources, {} queues, {} routes, {} brands, {} rules, {} terms, {} \
                         examples pass",
                        config.sources.len(),
                        config.queues.len(),
                        config.routes.len(),
                        compiled.rules.brands().len(),
                        compiled.rules.rules().len(),
                        compiled.matcher.term_count(),
                        compiled.rules.example_count()
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("{e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Replay {
            config,
            rules,
            baseline_rules,
            samples,
            json,
            format,
            workers,
            quiet,
            inputs,
        } => {
            let mut config = load_config(&config)?;
            if !rules.is_empty() {
                config.rules.paths = rules;
            }
            if let Some(w) = workers {
                config.pipeline.workers = w;
            }
            let format = match format.as_str() {
                "auto" => FormatChoice::Auto,
                name => FormatChoice::Fixed(
                    Format::from_name(name).with_context(|| format!("unknown format `{name}`"))?,
                ),
            };
            let inputs: Vec<FileOptions> = if inputs.is_empty() {
                vec![PathBuf::from("-")]
            } else {
                inputs
            }
            .into_iter()
            .map(|path| FileOptions {
                max_frame_bytes: config.limits.max_frame_bytes,
                max_json_depth: config.limits.max_json_depth,
                ..FileOptions::new(path)
            })
            .collect();
            if !baseline_rules.is_empty() {
                return backtest::run(&config, &baseline_rules, format, inputs, samples, json)
                    .await;
            }
            config.sources = inputs
                .into_iter()
                .enumerate()
                .map(|(i, file)| SourceConfig {
                    id: format!("input{i}"),
                    format: format.clone(),
                    kind: SourceKind::File(file),
                })
                .collect();
            let compiled = earshot::compile::compile(&config)?;
            let (trigger, _) = shutdown::channel();
            install_signals(trigger.clone());
            let (tap, printer) = if quiet {
                (None, None)
            } else {
                let (tx, rx) = tokio::sync::mpsc::channel(8192);
                let task = tokio::spawn(earshot::sink::file::print_mentions(rx));
                (Some(tx), Some(task))
            };
            let started = Instant::now();
            let options = RunOptions {
                deliver: false,
                tap,
                admin: false,
                reload: false,
                spike_clock: None,
            };
            let running = app::start(&config, compiled, options, &trigger).await?;
            let report = running.wait(Duration::from_secs(3600)).await;
            let elapsed = started.elapsed();
            if let Some(p) = printer {
                p.await.context("printing matched posts")??;
            }
            print_summary(&report, Some(elapsed));
            Ok(exit_code(&report))
        }
        Command::Dlq { action } => dlq::run(action).await,
        Command::XRules { action } => xrules::run(action).await,
        Command::Probe(args) => probe::run(args).await,
        Command::Receive(args) => receive::run(args).await,
        Command::Demo {
            duration,
            rate,
            mention_rate,
            rules,
            admin,
            spike_after,
        } => {
            let (trigger, _) = shutdown::channel();
            install_signals(trigger.clone());
            let options = demo::DemoOptions {
                rate,
                duration: duration.map(Duration::from_secs),
                rules,
                admin,
                mention_rate,
                spike_after: (spike_after > 0).then(|| Duration::from_secs(spike_after)),
            };
            demo::run(options, trigger).await?;
            Ok(if earshot::health::panicked() {
                ExitCode::from(70)
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}

/// A duration in whole minutes where it is one, else seconds (`10 min`, `90 s`).
fn humantime_secs(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 && s.is_multiple_of(60) {
        format!("{} min", s / 60)
    } else {
        format!("{s} s")
    }
}

/// Failure when any source stopped on an error (an unreadable input, a missing token).
/// 130 after a forced shutdown (as after an interrupt), 70 (`EX_SOFTWARE`) after a panic, 1
/// when a source failed, else 0.
fn exit_code(report: &Report) -> ExitCode {
    if report.forced {
        ExitCode::from(130)
    } else if earshot::health::panicked() {
        ExitCode::from(70)
    } else if report.source_errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn print_summary(r: &Report, elapsed: Option<Duration>) {
    let mut out = String::new();
    out.push_str(&format!(
        "frames={} posts={} matched={} routed={} skipped={}",
        r.frames_received,
        r.posts,
        r.matched,
        r.routed,
        r.skipped.total()
    ));
    if let Some(e) = elapsed {
        let secs = e.as_secs_f64().max(1e-9);
        out.push_str(&format!(
            " elapsed={:.3}s events/s={:.0} MB/s={:.1}",
            secs,
            r.frames_received as f64 / secs,
            r.bytes_received as f64 / secs / 1e6
        ));
    }
    out.push('\n');
    for (q, n) in &r.per_queue {
        out.push_str(&format!("  queue {q}: {n}\n"));
    }
    for (reason, n) in r.skipped.nonzero() {
        out.push_str(&format!("  skipped {}: {n}\n", reason.as_str()));
    }
    for e in &r.source_errors {
        out.push_str(&format!("  source failed: {e}\n"));
    }
    for (q, n) in &r.left_in_outbox {
        out.push_str(&format!(
            "  left in the outbox for the next start: queue {q}: {n}\n"
        ));
    }
    eprint!("{out}");
}
