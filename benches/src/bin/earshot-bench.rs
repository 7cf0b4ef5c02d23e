//! The in-memory pipeline figure: frames already in memory, cut into batches as a source
//! would, run through complete workers (decode → normalize → match with word boundaries →
//! score → route), on one thread or on several. Prints one JSON line with events/s, MB/s,
//! posts, matched posts and elapsed time, and fails when `--expect` does not hold.
//!
//! Pin it with `taskset -c 0` for the one-core figure.
//!
//! `score_share` is the share of the timed work spent scoring matched posts (every matched
//! post's scoring is timed), the figure behind the scoring budget of a worker's time.
//!
//! `--against OTHER` times a second rule set in the same process, its rounds interleaved with
//! the first's, and reports the ratio of the two: on a shared machine whose speed drifts by a
//! quarter between runs, only rounds taken side by side compare (how the scale target of
//! 100k against 1k terms is measured).
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::bail;
use clap::Parser;
use earshot::compile::Compiled;
use earshot::metrics::Stage;
use earshot::source::batch::Batch;
use earshot::worker::{Outputs, Totals, Worker};
use earshot_benches as b;

#[derive(Parser)]
struct Args {
    /// NDJSON corpus (default: bench-data/corpus-1m.ndjson).
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// A terms file (`rules-10k.txt`) or a rule file (`*.rules`).
    #[arg(long)]
    rules: PathBuf,
    /// Worker threads.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Use at most this many lines of the corpus.
    #[arg(long, default_value_t = usize::MAX)]
    limit: usize,
    /// Timed rounds; the median is reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Frames per batch.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Fail unless exactly this many posts match.
    #[arg(long)]
    expect: Option<u64>,
    /// Plain case-insensitive substring matching (no word boundaries), the peers' definition.
    #[arg(long)]
    plain: bool,
    /// Turn a terms file into a rule pack of one rule per term in mixed shapes
    /// (`earshot_benches::rule_pack`) instead of one terms-file rule.
    #[arg(long)]
    pack: bool,
    /// A second terms or rule file (read like `--rules`) timed in alternate rounds; adds its
    /// figures and the median of the per-round ratios (this set's events/s over the other's).
    #[arg(long)]
    against: Option<PathBuf>,
}

/// One timed round's figures.
#[derive(Clone, Copy)]
struct Round {
    secs: f64,
    frames: u64,
    posts: u64,
    matched: u64,
    /// Time spent scoring: every matched post's score stage is timed.
    score_secs: f64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let corpus = args
        .corpus
        .clone()
        .unwrap_or_else(|| b::data_dir().join("corpus-1m.ndjson"));
    let compile_started = Instant::now();
    let (compiled, times) = b::compile_timed(&rule_file(&args, &args.rules)?, args.plain)?;
    let compiled = Arc::new(compiled);
    let compile_s = compile_started.elapsed().as_secs_f64();
    let rss_after_compile_mb = b::peak_rss_mb();
    let against = match &args.against {
        Some(path) => Some(Arc::new(b::compile_with(
            &rule_file(&args, path)?,
            args.plain,
        )?)),
        None => None,
    };
    let lines = b::load_lines(&corpus, args.limit)?;
    let bytes: usize = lines.iter().map(Vec::len).sum();
    let pristine = b::batches(&lines, args.batch);
    drop(lines);

    let mut results = Vec::new();
    let mut others = Vec::new();
    for _ in 0..args.rounds.max(1) {
        results.push(time_round(&compiled, &pristine, args.workers)?);
        if let Some(other) = &against {
            others.push(time_round(other, &pristine, args.workers)?);
        }
    }
    // Each round against the other set's round taken right after it.
    let mut ratios: Vec<f64> = results
        .iter()
        .zip(&others)
        .map(|(a, b)| b.secs / a.secs)
        .collect();
    ratios.sort_by(f64::total_cmp);
    let Round {
        secs,
        frames,
        posts,
        matched,
        score_secs,
    } = median(results);
    if let Some(want) = args.expect {
        if matched != want {
            bail!("matched {matched} posts, expected {want}: the benchmark is measuring the wrong work");
        }
    }
    let mut report = serde_json::json!({
        "program": if args.plain { "earshot-inmem-plain" } else { "earshot-inmem" },
        "workers": args.workers,
        "rules": compiled.rules.rules().len(),
        "matcher_mb": compiled.matcher.memory_usage() / (1 << 20),
        "patterns": compiled.matcher.pattern_count(),
        "terms": compiled.matcher.term_count(),
        "events": frames,
        "posts": posts,
        "matched": matched,
        "seconds": secs,
        "events_per_s": (frames as f64 / secs).round(),
        "mb_per_s": (bytes as f64 / secs / 1e5).round() / 10.0,
        "score_share": (score_secs / secs * 1e4).round() / 1e4,
        "compile_s": compile_s,
        "load_s": times.load_s,
        "matcher_s": times.matcher_s,
        "peak_rss_mb_after_load": times.rss_after_load_mb,
        "peak_rss_mb_after_compile": rss_after_compile_mb,
        "peak_rss_mb": b::peak_rss_mb(),
    });
    if let Some(other) = &against {
        let o = median(others);
        report["against"] = serde_json::json!({
            "rules": other.rules.rules().len(),
            "terms": other.matcher.term_count(),
            "matched": o.matched,
            "events_per_s": (o.frames as f64 / o.secs).round(),
        });
        report["ratio"] = serde_json::json!((ratios[ratios.len() / 2] * 1000.0).round() / 1000.0);
        report["ratio_range"] = serde_json::json!([ratios[0], ratios[ratios.len() - 1]]);
    }
    println!("{report}");
    Ok(())
}

/// The rule file `path` names: itself when it is one, else a terms file made into a rule file
/// (`--pack` decides which kind).
fn rule_file(args: &Args, path: &std::path::Path) -> anyhow::Result<PathBuf> {
    if path.extension().is_some_and(|e| e == "rules") {
        Ok(path.to_path_buf())
    } else if args.pack {
        b::rule_pack(path)
    } else {
        b::terms_rules(path)
    }
}

/// The round of median time.
fn median(mut rounds: Vec<Round>) -> Round {
    rounds.sort_by(|a, b| a.secs.total_cmp(&b.secs));
    rounds[rounds.len() / 2]
}

/// Runs every batch of `pristine` (fresh copies, made before the clock starts: decoding is in
/// place) through `workers` workers of `compiled`, and times it.
fn time_round(
    compiled: &Arc<Compiled>,
    pristine: &[Batch],
    workers: usize,
) -> anyhow::Result<Round> {
    let (formats, limits) = b::jetstream();
    let work: Vec<_> = pristine.iter().map(b::working_copy).collect();
    let totals = Arc::new(Totals::new(1));
    let latencies = earshot::metrics::Latencies::new();
    let workers: Vec<Worker> = (0..workers.max(1))
        .map(|i| {
            Worker::new(
                i,
                compiled.clone(),
                &formats,
                limits,
                Outputs::default(),
                totals.clone(),
                latencies.clone(),
            )
        })
        .collect();
    let (tx, rx) = crossbeam_channel::bounded(work.len());
    for batch in work {
        tx.send(batch)?;
    }
    drop(tx);
    let started = Instant::now();
    let (matched, done) = std::thread::scope(|s| {
        let handles: Vec<_> = workers
            .into_iter()
            .map(|mut w| {
                let rx = rx.clone();
                s.spawn(move || {
                    let mut matched = 0;
                    // Processed batches are kept until the clock stops: in the pipeline
                    // they go back to their source for reuse, never to the allocator.
                    let mut done = Vec::new();
                    for mut batch in rx.iter() {
                        w.process(&mut batch);
                        matched += w.take_mentions().len() as u64;
                        done.push(batch);
                    }
                    w.flush();
                    (matched, done)
                })
            })
            .collect();
        let mut matched = 0;
        let mut done = Vec::new();
        for h in handles {
            let (m, batches) = h.join().expect("worker thread");
            matched += m;
            done.push(batches);
        }
        (matched, done)
    });
    let secs = started.elapsed().as_secs_f64();
    drop(done);
    let stages = latencies.snapshot().stages;
    let score = Stage::ALL
        .iter()
        .position(|s| *s == Stage::Score)
        .and_then(|i| stages.get(i))
        .map_or(0.0, |h| h.mean() * h.len() as f64 / 1e9);
    Ok(Round {
        score_secs: score,
        secs,
        frames: totals.frames.load(std::sync::atomic::Ordering::Relaxed),
        posts: totals.posts.load(std::sync::atomic::Ordering::Relaxed),
        matched,
    })
}
