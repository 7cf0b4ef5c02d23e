//! The in-memory pipeline figure: frames already in memory, cut into batches as a source
//! would, run through complete workers (decode → normalize → match with word boundaries →
//! score → route), on one thread or on several. Prints one JSON line with events/s, MB/s,
//! posts, matched posts and elapsed time, and fails when `--expect` does not hold.
//!
//! Pin it with `taskset -c 0` for the one-core figure.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::bail;
use clap::Parser;
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
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let corpus = args
        .corpus
        .clone()
        .unwrap_or_else(|| b::data_dir().join("corpus-1m.ndjson"));
    let rules = if args.rules.extension().is_some_and(|e| e == "rules") {
        args.rules.clone()
    } else if args.pack {
        b::rule_pack(&args.rules)?
    } else {
        b::terms_rules(&args.rules)?
    };
    let compile_started = Instant::now();
    let (compiled, times) = b::compile_timed(&rules, args.plain)?;
    let compiled = Arc::new(compiled);
    let compile_s = compile_started.elapsed().as_secs_f64();
    let rss_after_compile_mb = b::peak_rss_mb();
    let lines = b::load_lines(&corpus, args.limit)?;
    let bytes: usize = lines.iter().map(Vec::len).sum();
    let pristine = b::batches(&lines, args.batch);
    drop(lines);
    let (formats, limits) = b::jetstream();

    let mut results = Vec::new();
    for _ in 0..args.rounds.max(1) {
        // Decoding is in place: every round works on fresh copies, made before the clock starts.
        let work: Vec<_> = pristine.iter().map(b::working_copy).collect();
        let totals = Arc::new(Totals::new(1));
        let workers: Vec<Worker> = (0..args.workers.max(1))
            .map(|i| {
                Worker::new(
                    i,
                    compiled.clone(),
                    &formats,
                    limits,
                    Outputs::default(),
                    totals.clone(),
                    earshot::metrics::Latencies::new(),
                )
            })
            .collect();
        let (tx, rx) = crossbeam_channel::bounded(work.len());
        for batch in work {
            tx.send(batch)?;
        }
        drop(tx);
        let started = Instant::now();
        let matched = std::thread::scope(|s| {
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
        let (matched, done) = matched;
        drop(done);
        let frames = totals.frames.load(std::sync::atomic::Ordering::Relaxed);
        let posts = totals.posts.load(std::sync::atomic::Ordering::Relaxed);
        results.push((secs, frames, posts, matched));
    }
    results.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (secs, frames, posts, matched) = results[results.len() / 2];
    if let Some(want) = args.expect {
        if matched != want {
            bail!("matched {matched} posts, expected {want}: the benchmark is measuring the wrong work");
        }
    }
    println!(
        "{}",
        serde_json::json!({
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
            "compile_s": compile_s,
            "load_s": times.load_s,
            "matcher_s": times.matcher_s,
            "peak_rss_mb_after_load": times.rss_after_load_mb,
            "peak_rss_mb_after_compile": rss_after_compile_mb,
            "peak_rss_mb": b::peak_rss_mb(),
        })
    );
    Ok(())
}
