//! Shared pieces of earshot's benchmarks: finding and loading the reference corpus, building
//! the compiled stages from a rule file, and cutting the corpus into the batches sources make.
//!
//! The corpus is never committed: `../shared/bench/corpus.py` regenerates it (see
//! `benches/README.md`). Every benchmark checks the work it times against an expected count,
//! so a faster but wrong change cannot pass.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use earshot::compile::Compiled;
use earshot::config::{FormatChoice, LimitsSettings};
use earshot::rules::RuleSet;
use earshot::source::batch::Batch;
use earshot::stage::decode::Format;
use earshot::stage::matcher::Matcher;
use earshot::stage::route::{RouteConfig, Router};
use earshot::stage::score::{Scorer, ScoringConfig};

/// Where the corpus and rule lists are: `$EARSHOT_BENCH_DATA`, else `bench-data/` beside the
/// repository (the bench README's standard place).
pub fn data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("EARSHOT_BENCH_DATA") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench-data")
}

/// Reads up to `limit` lines of an NDJSON corpus.
pub fn load_lines(path: &Path, limit: usize) -> anyhow::Result<Vec<Vec<u8>>> {
    let bytes = std::fs::read(path).with_context(|| {
        format!(
            "reading {} (generate it with ../shared/bench/corpus.py, see benches/README.md)",
            path.display()
        )
    })?;
    let lines: Vec<Vec<u8>> = bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .take(limit)
        .map(<[u8]>::to_vec)
        .collect();
    if lines.is_empty() {
        bail!("{} holds no lines", path.display());
    }
    Ok(lines)
}

/// Cuts frames into batches of `per_batch` frames, as a source would.
pub fn batches(lines: &[Vec<u8>], per_batch: usize) -> Vec<Batch> {
    lines
        .chunks(per_batch.max(1))
        .map(|chunk| {
            let mut b = Batch::with_capacity(0, chunk.len(), 800);
            for line in chunk {
                b.push(line);
            }
            b
        })
        .collect()
}

/// A copy of `batch` to decode (decoding rewrites frames in place), with the spare capacity
/// for the padding a worker adds, as a source's batches have: without it every batch would
/// be reallocated when the worker pads it.
pub fn working_copy(batch: &Batch) -> Batch {
    let mut c = Batch::with_capacity(batch.source, batch.len(), 0);
    c.data
        .reserve(batch.data.len() + earshot::source::batch::BATCH_PADDING);
    c.data.extend_from_slice(&batch.data);
    c.ends.extend_from_slice(&batch.ends);
    c
}

/// A rule file holding one brand whose terms are the lines of `terms_file`
/// (`rules-{1k,10k,100k}.txt`), written next to it.
pub fn terms_rules(terms_file: &Path) -> anyhow::Result<PathBuf> {
    let name = terms_file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("terms");
    let path = terms_file.with_file_name(format!("{name}.bench.rules"));
    let terms = terms_file
        .file_name()
        .and_then(|s| s.to_str())
        .context("terms file name")?;
    std::fs::write(
        &path,
        format!("brand bench \"Reference corpus brands\"\n  terms {terms}\n"),
    )?;
    Ok(path)
}

/// A rule pack with one rule per line of `terms_file`, written next to it as
/// `{name}.pack.rules`: the scale test of the rule language. Rules come in blocks of 100 per
/// brand and cycle through the shapes a brand team writes — a lone term (half of them), a term
/// with support words and `lang:`, a term or its hashtag minus a shared list, a `NEAR/5`
/// complaint, exclusions, and field operators — so the pack exercises the evaluator, not only
/// the automaton. Every rule has its term as an anchor, so it can hit the corpus the same way
/// the terms-file form does.
pub fn rule_pack(terms_file: &Path) -> anyhow::Result<PathBuf> {
    let name = terms_file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("terms");
    let path = terms_file.with_file_name(format!("{name}.pack.rules"));
    let terms = std::fs::read_to_string(terms_file)
        .with_context(|| format!("reading {}", terms_file.display()))?;
    let mut out = String::from(
        "list jobs: hiring OR \"we're hiring\" OR careers OR \"apply now\"\n\
         list spam: giveaway OR airdrop OR \"free followers\"\n",
    );
    let written = terms
        .lines()
        .map(str::trim)
        .filter(|t| !t.is_empty() && !t.starts_with("# "));
    for (i, term) in written.enumerate() {
        if i % 100 == 0 {
            out.push_str(&format!("brand b{} \"Brand {}\"\n", i / 100, i / 100));
        }
        let q = if term.contains(char::is_whitespace) {
            format!("\"{term}\"")
        } else {
            term.to_string()
        };
        let is_word = !q.starts_with(['"', '#', '@', '$']);
        let rule = match i % 10 {
            0..=4 => q,
            5 => format!("{q} (help OR support OR refund*) lang:en,es"),
            6 if is_word => format!("({q} OR #{q}) -list:jobs"),
            6 => format!("{q} -list:jobs"),
            7 => format!("{q} NEAR/5 (broken OR \"not working\" OR down)"),
            8 => format!("{q} -giveaway -\"free followers\" -list:spam"),
            _ => format!("{q} (is:reply OR has:link OR followers:>1000)"),
        };
        out.push_str(&format!("  rule r{i} tags=t{}: {rule}\n", i % 16));
    }
    std::fs::write(&path, out)?;
    Ok(path)
}

/// Compiles rules, matcher, scorer and a router with one catch-all queue.
pub fn compile(rules: &Path) -> anyhow::Result<Compiled> {
    compile_with(rules, false)
}

/// [`compile`], with plain substring matching instead of word boundaries when `plain`.
pub fn compile_with(rules: &Path, plain: bool) -> anyhow::Result<Compiled> {
    compile_timed(rules, plain).map(|(compiled, _)| compiled)
}

/// Seconds spent in each part of compiling rules.
#[derive(Debug, Clone, Copy, Default)]
pub struct CompileTimes {
    /// Reading and parsing the rule files (`RuleSet::load`).
    pub load_s: f64,
    /// Building the automaton and tables (`Matcher::build`).
    pub matcher_s: f64,
    /// Peak resident set once the rules are loaded, before the matcher is built, in MB.
    pub rss_after_load_mb: u64,
}

/// [`compile_with`], also returning where the time went.
pub fn compile_timed(rules: &Path, plain: bool) -> anyhow::Result<(Compiled, CompileTimes)> {
    let started = std::time::Instant::now();
    let rules = RuleSet::load(&[rules.to_path_buf()]).map_err(|e| anyhow::anyhow!("{e}"))?;
    let load_s = started.elapsed().as_secs_f64();
    let rss_after_load_mb = peak_rss_mb();
    let started = std::time::Instant::now();
    let matcher = if plain {
        Matcher::build_plain_substring(&rules)?
    } else {
        Matcher::build(&rules)?
    };
    let times = CompileTimes {
        load_s,
        matcher_s: started.elapsed().as_secs_f64(),
        rss_after_load_mb,
    };
    let scorer = Scorer::build(&ScoringConfig::default(), &rules)?;
    let queues = vec!["all".to_string()];
    let routes = vec![RouteConfig {
        queue: "all".into(),
        ..RouteConfig::default()
    }];
    let router = Router::build(&routes, &queues, &rules).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let compiled = Compiled {
        rules,
        matcher,
        scorer,
        router,
    };
    Ok((compiled, times))
}

/// The decoder settings every benchmark uses: Jetstream, default limits.
pub fn jetstream() -> (Vec<FormatChoice>, earshot::stage::decode::DecodeLimits) {
    (
        vec![FormatChoice::Fixed(Format::Jetstream)],
        LimitsSettings::default().decode_limits(),
    )
}

/// This process's peak resident set so far (`VmHWM`), in MB; 0 where `/proc` is absent.
pub fn peak_rss_mb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}
