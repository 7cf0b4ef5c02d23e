//! Criterion benchmarks of each stage on a slice of the reference corpus (the first
//! `EARSHOT_BENCH_LINES` lines, 20,000 by default): decode, normalize, match at 1k / 10k / 100k
//! terms, score and route. Before timing, each checks its result against an independent
//! count, so a faster but wrong change cannot pass.
#![forbid(unsafe_code)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use earshot::normalize::{normalize, Normalized};
use earshot::post::{Author, Post};
use earshot::stage::decode::{DecodeLimits, Decoder, Format};
use earshot::stage::matcher::{Hit, MatchScratch};
use earshot::stage::score::{ScoreInput, ScoreScratch};
use earshot_benches as b;

fn lines() -> Vec<Vec<u8>> {
    let n = std::env::var("EARSHOT_BENCH_LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    b::load_lines(&b::data_dir().join("corpus-1m.ndjson"), n).expect("the reference corpus")
}

/// The reference count of post creates, by a plain serde_json reading of every line.
fn reference_posts(lines: &[Vec<u8>]) -> usize {
    lines
        .iter()
        .filter(|l| {
            serde_json::from_slice::<serde_json::Value>(l).is_ok_and(|v| {
                v["kind"] == "commit"
                    && v["commit"]["operation"] == "create"
                    && v["commit"]["collection"] == "app.bsky.feed.post"
            })
        })
        .count()
}

/// A decoded post made independent of its frame, so later stages can be timed alone.
fn owned(p: &Post<'_>) -> Post<'static> {
    let own = |c: &std::borrow::Cow<'_, str>| std::borrow::Cow::Owned(c.to_string());
    Post {
        platform: p.platform,
        id: own(&p.id),
        uri: p.uri.as_ref().map(own),
        url: p.url.as_ref().map(own),
        author: Author {
            id: own(&p.author.id),
            handle: p.author.handle.as_ref().map(own),
            name: p.author.name.as_ref().map(own),
            followers: p.author.followers,
            verified: p.author.verified,
            description: p.author.description.as_ref().map(own),
        },
        text: own(&p.text),
        lang: p.lang.as_ref().map(own),
        created_at: p.created_at.as_ref().map(own),
        time_us: p.time_us,
        engagement: p.engagement,
        flags: p.flags,
        links: p.links.iter().map(own).collect(),
        original: p.original.as_ref().map(own),
        thread: Default::default(),
    }
}

/// Every post of the slice, decoded once, with its normalized text.
fn decoded(lines: &[Vec<u8>]) -> Vec<(Post<'static>, Normalized)> {
    let mut decoder = Decoder::new(Format::Jetstream, DecodeLimits::default());
    let mut out = Vec::new();
    for line in lines {
        let mut frame = line.clone();
        let _ = decoder.decode(&mut frame, |p| {
            let mut n = Normalized::new();
            normalize(&p.text, &mut n);
            out.push((owned(&p), n));
        });
    }
    out
}

/// Owned post texts and languages, decoded once.
fn texts(lines: &[Vec<u8>]) -> Vec<String> {
    let mut decoder = Decoder::new(Format::Jetstream, DecodeLimits::default());
    let mut out = Vec::new();
    for line in lines {
        let mut frame = line.clone();
        let _ = decoder.decode(&mut frame, |p| out.push(p.text.to_string()));
    }
    out
}

fn decode(c: &mut Criterion) {
    let lines = lines();
    let bytes: usize = lines.iter().map(Vec::len).sum();
    let mut decoder = Decoder::new(Format::Jetstream, DecodeLimits::default());
    let mut work = lines.clone();
    let mut count = |work: &mut Vec<Vec<u8>>| {
        let mut posts = 0;
        for (frame, line) in work.iter_mut().zip(&lines) {
            frame.copy_from_slice(line);
            let _ = decoder.decode(frame, |_| posts += 1);
        }
        posts
    };
    assert_eq!(
        count(&mut work),
        reference_posts(&lines),
        "decode finds every post"
    );
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("jetstream", |bench| bench.iter(|| count(&mut work)));
    g.finish();
}

fn normalize_texts(c: &mut Criterion) {
    let texts = texts(&lines());
    let mut norm = Normalized::new();
    let mut g = c.benchmark_group("normalize");
    g.throughput(Throughput::Elements(texts.len() as u64));
    g.bench_function("casefold+tokens", |bench| {
        bench.iter(|| {
            let mut n = 0;
            for t in &texts {
                normalize(t, &mut norm);
                n += norm.text().len();
            }
            n
        })
    });
    g.finish();
}

fn match_posts(c: &mut Criterion) {
    let posts = decoded(&lines());
    let mut g = c.benchmark_group("match");
    g.throughput(Throughput::Elements(posts.len() as u64));
    for terms in ["1k", "10k", "100k"] {
        let list = b::data_dir().join(format!("rules-{terms}.txt"));
        if !list.exists() {
            eprintln!("skipping match/{terms}: {} is missing", list.display());
            continue;
        }
        let compiled =
            b::compile(&b::terms_rules(&list).expect("rule file")).expect("rules compile");
        let mut scratch = MatchScratch::new();
        let mut hits: Vec<Hit> = Vec::new();
        let mut run = || {
            let mut matched = 0;
            for (p, n) in &posts {
                compiled.matcher.match_post(p, n, &mut scratch, &mut hits);
                matched += usize::from(!hits.is_empty());
            }
            matched
        };
        // Word boundaries only remove matches: never more than the plain substring count.
        let matched = run();
        let lists: Vec<String> = std::fs::read_to_string(&list)
            .expect("terms")
            .lines()
            .map(|l| l.trim().to_lowercase())
            .filter(|l| !l.is_empty())
            .collect();
        let substring = posts
            .iter()
            .filter(|(_, n)| lists.iter().any(|t| n.text().contains(t.as_str())))
            .count();
        assert!(
            matched > 0 && matched <= substring,
            "match/{terms}: {matched} of {substring}"
        );
        g.bench_function(terms, |bench| bench.iter(&mut run));
    }
    g.finish();
}

fn score_and_route(c: &mut Criterion) {
    let list = b::data_dir().join("rules-10k.txt");
    let compiled = b::compile(&b::terms_rules(&list).expect("rule file")).expect("rules compile");
    let mut scratch = MatchScratch::new();
    let mut hits = Vec::new();
    let matched: Vec<(Post<'static>, Normalized, Vec<Hit>)> = decoded(&lines())
        .into_iter()
        .filter_map(|(p, n)| {
            compiled.matcher.match_post(&p, &n, &mut scratch, &mut hits);
            (!hits.is_empty()).then(|| (p, n, hits.clone()))
        })
        .collect();
    assert!(!matched.is_empty(), "the slice has mentions");
    let mut score_scratch = ScoreScratch::default();
    let mut queues = Vec::new();
    let mut g = c.benchmark_group("score+route");
    g.throughput(Throughput::Elements(matched.len() as u64));
    g.bench_function("matched posts", |bench| {
        bench.iter(|| {
            let mut routed = 0;
            for (p, n, hits) in &matched {
                let input = ScoreInput {
                    post: p,
                    norm: n,
                    hits,
                    rules: &compiled.rules,
                    customer_tier: None,
                    in_spike: false,
                };
                let s = compiled.scorer.score(&input, &mut score_scratch);
                compiled
                    .router
                    .route(p, hits, &compiled.rules, &s, &mut queues);
                routed += queues.len();
            }
            assert_eq!(
                routed,
                matched.len(),
                "the catch-all route takes every mention"
            );
            routed
        })
    });
    g.finish();
}

/// The spike monitor's work per mention (counting, tokens for driving terms, top posts) and
/// its once-a-second tick, on the mentions the worker makes of the slice with 10k terms: how
/// many mentions a second one monitor thread keeps up with.
fn spike_monitor(c: &mut Criterion) {
    use earshot::monitor::{BrandInfo, Monitor, MonitorClock, SpikeFlags};
    use earshot::worker::{Outputs, Totals, Worker};
    use std::sync::Arc;
    let list = b::data_dir().join("rules-10k.txt");
    let compiled =
        Arc::new(b::compile(&b::terms_rules(&list).expect("rule file")).expect("rules compile"));
    let (formats, limits) = b::jetstream();
    let mut worker = Worker::new(
        0,
        compiled.clone(),
        &formats,
        limits,
        Outputs::default(),
        Arc::new(Totals::new(compiled.router.queues().len())),
        earshot::metrics::Latencies::new(),
    );
    for batch in b::batches(&lines(), 256) {
        worker.process(&mut b::working_copy(&batch));
    }
    let mentions = worker.take_mentions();
    assert!(!mentions.is_empty(), "the slice has mentions");
    let brands: Vec<BrandInfo> = compiled.rules.brands().iter().map(BrandInfo::of).collect();
    let mut monitor = Monitor::new(
        earshot::spike::SpikeSettings::default(),
        &brands,
        compiled.router.queues().to_vec(),
        SpikeFlags::new(),
        MonitorClock::starting_at(std::time::SystemTime::now()),
    );
    let mut second = earshot::spike::unix_s(std::time::SystemTime::now());
    let mut g = c.benchmark_group("spike monitor");
    g.throughput(Throughput::Elements(mentions.len() as u64));
    g.bench_function("mentions + tick", |bench| {
        bench.iter(|| {
            for m in &mentions {
                monitor.take(m);
            }
            second += 1;
            monitor.tick(second);
        })
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(std::time::Duration::from_secs(1))
}

criterion_group! { name = stages; config = config(); targets = decode, normalize_texts, match_posts, score_and_route, spike_monitor }
criterion_main!(stages);
