//! `earshot-loadtest`: the firehose, the webhook receiver and the runner of earshot's load
//! test. The runner re-executes this binary for the firehose and the receiver so the three
//! roles and earshot run as four processes, and none of them steals the others' threads or
//! allocator; see `loadtest/README.md`.
// Unsafe code only where a module allows it (the runner's kill(2)), and every block says why
// it is sound.
#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod firehose;
mod receiver;
mod runner;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Step-load test of the earshot binary.
#[derive(Parser)]
#[command(name = "earshot-loadtest", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a generated Jetstream firehose on 127.0.0.1 at a target rate, or rate steps.
    Firehose(firehose::Args),
    /// Receive signed webhooks, time each mention from send to receipt, report on request.
    Receiver(receiver::Args),
    /// Run a case folder: firehose, receiver and earshot as processes, stepped, reported.
    Run {
        /// The case folder (holds `case.toml` and the earshot config template).
        case: PathBuf,
        /// The earshot binary (default: `earshot` next to this binary).
        #[arg(long)]
        earshot: Option<PathBuf>,
        /// Where to write the report (default: `<case>/../../reports/<case name>`).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Seconds per step instead of the case's `step_seconds` (e.g. a 10-minute soak).
        #[arg(long)]
        duration: Option<f64>,
        /// A sentence for the soak and overload reports: the machine and what else ran on it.
        #[arg(long)]
        note: Option<String>,
    },
    /// Evaluate the spike detector on simulated hours of Poisson traffic with surges injected
    /// at known seconds: detection delay and false alarms (no process, no clock).
    Spikes(SpikesArgs),
}

/// `earshot-loadtest spikes`.
#[derive(clap::Args)]
struct SpikesArgs {
    /// Simulated hours.
    #[arg(long, default_value_t = 48.0)]
    hours: f64,
    /// Seed of the schedule and the traffic: the same seed writes the same report.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where to write report.md and report.json (default: loadtest/reports/spikes).
    #[arg(long)]
    out: Option<PathBuf>,
    /// A TOML file whose `[spikes]` table overrides the detector's defaults (an earshot
    /// config works; nothing else in it is read).
    #[arg(long)]
    settings: Option<PathBuf>,
    /// Amplitude of the daily rhythm of every brand's rate (0 for flat traffic).
    #[arg(long, default_value_t = 0.3)]
    diurnal: f64,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Firehose(args) => firehose::main(args),
        Command::Receiver(args) => receiver::main(args),
        Command::Run {
            case,
            earshot,
            out,
            duration,
            note,
        } => runner::main(
            &case,
            runner::Options {
                earshot,
                out,
                duration,
                note,
            },
        ),
        Command::Spikes(args) => spikes(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("earshot-loadtest: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs the spike evaluation, writes its report and prints the verdicts. Exits 0 whatever
/// the verdicts, like `run`: the report is the result.
fn spikes(args: SpikesArgs) -> anyhow::Result<()> {
    use earshot_loadtest::spikes;
    if !(args.hours > 0.0 && args.hours <= 24.0 * 365.0) {
        anyhow::bail!("--hours must be above 0 and at most a year");
    }
    if !(0.0..1.0).contains(&args.diurnal) {
        anyhow::bail!("--diurnal must be at least 0 and below 1");
    }
    let (settings, source) = match &args.settings {
        Some(path) => (spikes::load_settings(path)?, path.display().to_string()),
        None => (Default::default(), "default".to_string()),
    };
    let mut sim = spikes::Simulation::new(args.hours, args.seed);
    sim.diurnal = args.diurnal;
    let out = args
        .out
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("reports/spikes"));
    let started = std::time::Instant::now();
    let report = spikes::run(&sim, &settings, &source);
    let took = started.elapsed();
    report.write(&out)?;
    println!(
        "spikes: {} simulated hours, seed {}, settings {} ({:.1} s)",
        args.hours,
        args.seed,
        source,
        took.as_secs_f64()
    );
    print!("{}", report.summary());
    println!("report: {}", out.join("report.md").display());
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM: the runner stops the firehose and the receiver with
/// SIGTERM, and a person stops them with Ctrl-C.
pub(crate) async fn terminated() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
