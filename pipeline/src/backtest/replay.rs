//! Replaying recorded input through both rule sets: the stages and the reading that feed
//! [`Backtest`].
//!
//! - [`RuleSide`] loads and compiles one rule set; an error names its [`Side`].
//! - [`Comparer`] runs one frame through decode (with the worker's format detection, so a
//!   frame decodes here exactly as in `earshot replay`) → normalize → match by both sets →
//!   [`Backtest::record`]. No I/O, no clock.
//! - [`run`] reads the inputs through the file source (same framing, `max_frame_bytes`
//!   and skip reasons as `earshot replay`) and times the whole. One thread matches, so posts
//!   are recorded in input order and the examples kept are the first ones.
//!
//! Accounting, as in `earshot replay`: frames read = frames that yielded posts + Σ skipped by
//! reason. A frame that does not decode (or is over `max_frame_bytes`) is counted under its
//! [`SkipReason`], never dropped silently.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use super::{Backtest, InputTotals, Report, SideHits};
use crate::config::FormatChoice;
use crate::normalize::{normalize, Normalized};
use crate::rules::{RuleErrors, RuleSet};
use crate::shutdown::Shutdown;
use crate::skip::{SkipCounts, SkipReason};
use crate::source::batch::{Batch, BatchLimits, SourceIndex};
use crate::source::emit::{Emitter, SourceStats};
use crate::source::error::SourceError;
use crate::source::file::FileOptions;
use crate::stage::decode::{DecodeLimits, Decoder, FRAME_PADDING};
use crate::stage::matcher::{Hit, MatchScratch, Matcher, MatcherError};
use crate::worker::decoder_for;

/// Which of the two rule sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The rules in force (`--baseline-rules`).
    Baseline,
    /// The proposed rules (`--rules`, or the config's).
    New,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::Baseline => "baseline",
            Side::New => "new",
        })
    }
}

/// Why a backtest could not run to its end.
#[derive(Debug, thiserror::Error)]
pub enum BacktestError {
    /// A rule set does not load; every mistake is listed, each with `file:line:col`.
    #[error("{side} rules do not load:\n{errors}")]
    Rules {
        /// Which set.
        side: Side,
        /// Every mistake found.
        errors: RuleErrors,
    },
    /// A rule set loads but its matcher cannot be built.
    #[error("{side} rules: {error}")]
    Matcher {
        /// Which set.
        side: Side,
        /// Why (shown in this error's message, so not chained as its source).
        error: MatcherError,
    },
    /// An input could not be read.
    #[error("input {index}: {error}")]
    Input {
        /// Its position among the inputs.
        index: usize,
        /// Why, naming the path (shown in this error's message, so not chained).
        error: SourceError,
    },
    /// More inputs than source indices.
    #[error("{0} inputs; at most {max} can be compared in one run", max = SourceIndex::MAX)]
    TooManyInputs(usize),
    /// The matching thread could not start or did not finish.
    #[error("matching thread: {0}")]
    Thread(String),
}

/// One rule set, loaded and compiled.
#[derive(Debug)]
pub struct RuleSide {
    /// The rules.
    pub rules: RuleSet,
    /// Their matcher.
    pub matcher: Matcher,
}

impl RuleSide {
    /// Loads and compiles the rule files and folders at `paths` as `side`.
    pub fn load(side: Side, paths: &[PathBuf]) -> Result<RuleSide, BacktestError> {
        let rules = RuleSet::load(paths).map_err(|errors| BacktestError::Rules { side, errors })?;
        RuleSide::build(side, rules)
    }

    /// Compiles an already loaded rule set as `side`.
    pub fn build(side: Side, rules: RuleSet) -> Result<RuleSide, BacktestError> {
        let matcher =
            Matcher::build(&rules).map_err(|error| BacktestError::Matcher { side, error })?;
        Ok(RuleSide { rules, matcher })
    }
}

/// Decode → normalize → match by both sets → [`Backtest::record`], frame by frame. One per
/// run; it holds every buffer the stages reuse.
#[derive(Debug)]
pub struct Comparer {
    baseline: RuleSide,
    new: RuleSide,
    backtest: Backtest,
    format: FormatChoice,
    limits: DecodeLimits,
    /// Per input: its decoder, once its format is known.
    decoders: Vec<Option<Decoder>>,
    normalized: Normalized,
    scratch: [MatchScratch; 2],
    hits: [Vec<Hit>; 2],
    skipped: SkipCounts,
}

impl Comparer {
    /// A comparer of `new` against `baseline` over frames of `format` (or detected per input).
    pub fn new(
        baseline: RuleSide,
        new: RuleSide,
        format: FormatChoice,
        limits: DecodeLimits,
        samples: usize,
    ) -> Comparer {
        let backtest = Backtest::new(&baseline.rules, &new.rules, samples);
        Comparer {
            baseline,
            new,
            backtest,
            format,
            limits,
            decoders: Vec::new(),
            normalized: Normalized::new(),
            scratch: [MatchScratch::new(), MatchScratch::new()],
            hits: [Vec::with_capacity(16), Vec::with_capacity(16)],
            skipped: SkipCounts::default(),
        }
    }

    /// Compares every frame of a batch read from input `batch.source`.
    pub fn batch(&mut self, batch: &mut Batch) {
        let input = usize::from(batch.source);
        batch.for_each_frame_padded(FRAME_PADDING, |buf, len| self.frame(input, buf, len));
    }

    /// Compares the posts of the frame `buf[..len]` read from input `input` (see
    /// [`Decoder::decode_padded`] for the padding after `len`).
    pub fn frame(&mut self, input: usize, buf: &mut [u8], len: usize) {
        let Comparer {
            baseline,
            new,
            backtest,
            format,
            limits,
            decoders,
            normalized,
            scratch,
            hits,
            skipped,
        } = self;
        if decoders.len() <= input {
            decoders.resize_with(input + 1, || match format {
                FormatChoice::Fixed(f) => Some(Decoder::new(f.clone(), *limits)),
                FormatChoice::Auto => None,
            });
        }
        let auto = matches!(format, FormatChoice::Auto);
        let len = len.min(buf.len());
        let decoder = match decoder_for(&mut decoders[input], auto, &buf[..len], *limits) {
            Ok(d) => d,
            Err(reason) => {
                skipped.add(reason);
                return;
            }
        };
        let [scratch_b, scratch_n] = scratch;
        let [hits_b, hits_n] = hits;
        let result = decoder.decode_padded(buf, len, |post| {
            normalize(&post.text, normalized);
            baseline
                .matcher
                .match_post(&post, normalized, scratch_b, hits_b);
            new.matcher.match_post(&post, normalized, scratch_n, hits_n);
            backtest.record(
                &post,
                SideHits {
                    matcher: &baseline.matcher,
                    hits: hits_b,
                },
                SideHits {
                    matcher: &new.matcher,
                    hits: hits_n,
                },
            );
        });
        match result {
            // Items of a page that were not posts are counted, as the worker does.
            Ok(_) => {
                for _ in 0..decoder.malformed_in_last_frame() {
                    skipped.add(SkipReason::WrongShape);
                }
            }
            Err(reason) => skipped.add(reason),
        }
    }

    /// The report: `input`'s frames and skips (those counted at the source) plus the skips
    /// counted here.
    pub fn finish(self, mut input: InputTotals) -> Report {
        input.skipped.merge(&self.skipped);
        self.backtest.finish(input)
    }
}

/// Where [`run`] reads and how it batches.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The inputs, read one after another (`-` is stdin). Each has its own format detection.
    pub inputs: Vec<FileOptions>,
    /// Batching between the reader and the matching thread.
    pub batch_limits: BatchLimits,
    /// Batches in flight between them (backpressure beyond).
    pub channel_batches: usize,
}

/// Reads every input through the file source, compares its posts on one thread and reports.
/// On shutdown it stops reading and reports what it read, marked interrupted.
pub async fn run(
    comparer: Comparer,
    options: RunOptions,
    shutdown: Shutdown,
) -> Result<Report, BacktestError> {
    if options.inputs.len() > usize::from(SourceIndex::MAX) {
        return Err(BacktestError::TooManyInputs(options.inputs.len()));
    }
    let started = Instant::now();
    let capacity = options.channel_batches.max(1);
    let (tx, rx) = crossbeam_channel::bounded::<Batch>(capacity);
    let (recycle_tx, recycle_rx) = crossbeam_channel::bounded::<Batch>(capacity);
    let matching = std::thread::Builder::new()
        .name("earshot-backtest".into())
        .spawn(move || {
            let mut comparer = comparer;
            for mut batch in rx.iter() {
                comparer.batch(&mut batch);
                // A full recycle channel means the reader has spares: drop this one.
                let _ = recycle_tx.try_send(batch);
            }
            comparer
        })
        .map_err(|e| BacktestError::Thread(e.to_string()))?;
    let mut totals = InputTotals::default();
    let mut failure = None;
    for (index, file) in options.inputs.into_iter().enumerate() {
        if shutdown.is_shutdown() {
            break;
        }
        let stats = Arc::new(SourceStats::default());
        let emitter = Emitter::new(
            index as SourceIndex,
            tx.clone(),
            options.batch_limits,
            stats.clone(),
        )
        .with_recycler(recycle_rx.clone());
        let result = file.run(emitter, shutdown.clone()).await;
        totals.frames += stats.frames();
        totals.skipped.merge(&stats.skip_counts());
        if let Err(error) = result {
            failure = Some(BacktestError::Input { index, error });
            break;
        }
    }
    totals.interrupted = shutdown.is_shutdown();
    // Closing the channel ends the matching thread once it has compared every batch.
    drop(tx);
    let joined = tokio::task::spawn_blocking(move || matching.join()).await;
    let comparer = match joined {
        Ok(Ok(comparer)) => comparer,
        _ => return Err(BacktestError::Thread("it stopped before the end".into())),
    };
    if let Some(e) = failure {
        return Err(e);
    }
    totals.elapsed = started.elapsed();
    Ok(comparer.finish(totals))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn side(text: &str) -> RuleSide {
        let rules = RuleSet::parse_str("test.rules", text, Path::new(".")).expect("rules load");
        RuleSide::build(Side::New, rules).expect("matcher builds")
    }

    const BASELINE: &str = "brand acme \"Acme\"\nrule acme-support: acme (help OR broken)\n";
    const NEW: &str = "brand acme \"Acme\"\nrule acme-support: acme (help OR refund)\n";

    #[test]
    fn comparer_counts_frames_that_do_not_decode_by_reason() {
        let mut c = Comparer::new(
            side(BASELINE),
            side(NEW),
            FormatChoice::Auto,
            DecodeLimits::default(),
            3,
        );
        let frames: &[&[u8]] = &[
            b"not json",
            br#"{"did":"did:plc:a","time_us":1,"kind":"commit","commit":{"rev":"r","operation":"create","collection":"app.bsky.feed.post","rkey":"k1","record":{"$type":"app.bsky.feed.post","createdAt":"2024-09-09T19:46:03.190Z","langs":["en"],"text":"acme refund"},"cid":"c"}}"#,
            br#"{"did":"did:plc:a","time_us":2,"kind":"commit","commit":{"rev":"r","operation":"create","collection":"app.bsky.feed.like","rkey":"k2","record":{"$type":"app.bsky.feed.like","createdAt":"2024-09-09T19:46:03.190Z","subject":{"uri":"at://x","cid":"c"}},"cid":"c"}}"#,
            br#"{"did":"did:plc:a","time_us":3,"kind":"commit""#,
        ];
        for f in frames {
            let mut buf = f.to_vec();
            let len = buf.len();
            c.frame(0, &mut buf, len);
        }
        let r = c.finish(InputTotals {
            frames: frames.len() as u64,
            ..InputTotals::default()
        });
        assert_eq!(r.summary.posts, 1);
        let skipped: Vec<(SkipReason, u64)> =
            r.summary.skipped.iter().map(|(k, v)| (*k, *v)).collect();
        // Before a format is detected, a frame that names none is WrongShape (as in the
        // worker); after, the truncated frame is InvalidJson.
        assert_eq!(
            skipped,
            [
                (SkipReason::InvalidJson, 1),
                (SkipReason::WrongShape, 1),
                (SkipReason::Like, 1)
            ]
        );
        assert_eq!(r.rules[0].gained, 1);
    }

    fn jetstream_post(rkey: &str, text: &str) -> String {
        format!(
            r#"{{"did":"did:plc:a","time_us":1,"kind":"commit","commit":{{"rev":"r","operation":"create","collection":"app.bsky.feed.post","rkey":"{rkey}","record":{{"$type":"app.bsky.feed.post","createdAt":"2024-09-09T19:46:03.190Z","langs":["en"],"text":"{text}"}},"cid":"c"}}}}"#
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn run_reads_inputs_in_order_and_counts_oversize_lines_against_the_limit() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = dir.path().join("first.ndjson");
        let second = dir.path().join("second.ndjson");
        let long = "acme refund ".repeat(40);
        let lines = [
            jetstream_post("k1", "acme refund"),
            jetstream_post("k2", &long),
            "{}".to_string(),
        ];
        std::fs::write(&first, lines.join("\n")).expect("write");
        std::fs::write(&second, jetstream_post("k3", "acme refund please") + "\n").expect("write");
        let max_frame_bytes = lines[0].len() + 100;
        let inputs = [&first, &second]
            .map(|p| FileOptions {
                max_frame_bytes,
                ..FileOptions::new(p.as_path())
            })
            .to_vec();
        let comparer = Comparer::new(
            side(BASELINE),
            side(NEW),
            FormatChoice::Auto,
            DecodeLimits::default(),
            3,
        );
        let options = RunOptions {
            inputs,
            batch_limits: BatchLimits::default(),
            channel_batches: 1,
        };
        let (_trigger, shutdown) = crate::shutdown::channel();
        let r = run(comparer, options, shutdown).await.expect("runs");
        let s = &r.summary;
        assert_eq!((s.frames, s.posts), (4, 2));
        let skipped: Vec<(SkipReason, u64)> = s.skipped.iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(
            skipped,
            [(SkipReason::Oversize, 1), (SkipReason::WrongShape, 1)]
        );
        assert!(!s.interrupted);
        let gained: Vec<&str> = r.rules[0]
            .samples
            .gained
            .iter()
            .map(|s| s.id.as_str())
            .collect();
        assert_eq!(
            gained,
            [
                "at://did:plc:a/app.bsky.feed.post/k1",
                "at://did:plc:a/app.bsky.feed.post/k3"
            ]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn run_fails_on_an_unreadable_input_and_names_it() {
        let comparer = Comparer::new(
            side(BASELINE),
            side(NEW),
            FormatChoice::Auto,
            DecodeLimits::default(),
            3,
        );
        let options = RunOptions {
            inputs: vec![FileOptions::new("/definitely/not/here.ndjson")],
            batch_limits: BatchLimits::default(),
            channel_batches: 4,
        };
        let (_trigger, shutdown) = crate::shutdown::channel();
        let err = run(comparer, options, shutdown).await.expect_err("fails");
        assert!(matches!(err, BacktestError::Input { .. }), "{err}");
        assert!(
            err.to_string()
                .starts_with("input 0: cannot read /definitely/not/here.ndjson"),
            "{err}"
        );
    }
}
