//! `earshot-loadtest`: the firehose, the webhook receiver and the runner of earshot's load
//! test. The runner re-executes this binary for the firehose and the receiver so the three
//! roles and earshot run as four processes, and none of them steals the others' threads or
//! allocator; see `loadtest/README.md`.

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
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Firehose(args) => firehose::main(args),
        Command::Receiver(args) => receiver::main(args),
        Command::Run { case, earshot, out } => runner::main(&case, earshot, out),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("earshot-loadtest: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
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
