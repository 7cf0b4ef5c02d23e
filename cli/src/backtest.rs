//! `earshot replay --baseline-rules`: a rule change compared with the rules in force, over
//! recorded input.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use earshot::backtest::{Comparer, RuleSide, Side};
use earshot::config::{Config, FormatChoice};
use earshot::shutdown;
use earshot::source::file::FileOptions;

use crate::install_signals;

/// `earshot replay --baseline-rules`: compares the baseline rules with the config's (already
/// replaced by `--rules`) over `inputs`; the report goes to stdout. A rule set that does not
/// load prints every error and fails, naming its side.
pub(crate) async fn run(
    config: &Config,
    baseline: &[PathBuf],
    format: FormatChoice,
    inputs: Vec<FileOptions>,
    samples: usize,
    json: bool,
) -> anyhow::Result<ExitCode> {
    // Both sides load before either error is shown, so one run lists every mistake.
    let (baseline, new) = match (
        RuleSide::load(Side::Baseline, baseline),
        RuleSide::load(Side::New, &config.rules.paths),
    ) {
        (Ok(baseline), Ok(new)) => (baseline, new),
        (baseline, new) => {
            for e in [baseline.err(), new.err()].into_iter().flatten() {
                eprintln!("earshot: {e}");
            }
            return Ok(ExitCode::FAILURE);
        }
    };
    let comparer = Comparer::new(
        baseline,
        new,
        format,
        config.limits.decode_limits(),
        samples,
    );
    let options = earshot::backtest::RunOptions {
        inputs,
        batch_limits: config.pipeline.batch_limits(),
        channel_batches: config.pipeline.channel_batches,
    };
    let (trigger, shutdown) = shutdown::channel();
    install_signals(trigger.clone());
    let report = earshot::backtest::run(comparer, options, shutdown).await?;
    drop(trigger);
    let out = if json {
        serde_json::to_string_pretty(&report).context("writing the report")? + "\n"
    } else {
        report.to_string()
    };
    std::io::Write::write_all(&mut std::io::stdout().lock(), out.as_bytes())
        .context("writing the report")?;
    Ok(ExitCode::SUCCESS)
}
