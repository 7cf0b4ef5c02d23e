//! What profile enrichment costs a worker: a cached lookup, and the wait for a profile the
//! cache lacks, against a loopback `app.bsky.actor.getProfiles` that answers after a set
//! latency (the public API's is tens to a few hundred milliseconds).
//!
//! ```sh
//! cargo run --release -p earshot-benches --bin enrich-cost -- --latency-ms 120 --new-authors 0.5
//! ```
//!
//! `--workers` threads look up `--lookups` authors back to back (every lookup a matched
//! Bluesky post whose author the post does not describe, with `--work-us` of other work per
//! post), a share `--new-authors` of them not seen before and the rest drawn from those seen;
//! enrichment runs with its shipped settings (10 calls a second of up to 25 actors, a 300 ms
//! deadline) and each worker waits at most `--wait-share` of its time. Printed: nanoseconds
//! per cached lookup, the wait per lookup (p50, p90, p99, max), the share that got a profile
//! in time, the API calls and actors per call, and the posts a second the workers got
//! through.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::extract::{RawQuery, State};
use clap::Parser;
use earshot::enrich::{EnrichSettings, Profiles};

#[derive(Parser)]
struct Args {
    /// How long the stand-in takes to answer a call.
    #[arg(long, default_value_t = 120)]
    latency_ms: u64,
    /// Worker threads looking profiles up at once.
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// Lookups in all.
    #[arg(long, default_value_t = 4000)]
    lookups: usize,
    /// Share of lookups for an author not seen before.
    #[arg(long, default_value_t = 0.5)]
    new_authors: f64,
    /// The share of a worker's time it may wait (`enrichment.max_wait_share`; 1: wait every
    /// time, up to the deadline).
    #[arg(long, default_value_t = 1.0)]
    wait_share: f64,
    /// Work per matched post besides the lookup, in microseconds (spun, on the worker).
    #[arg(long, default_value_t = 0)]
    work_us: u64,
}

#[derive(Default)]
struct Api {
    calls: AtomicUsize,
    actors: AtomicUsize,
    latency_ms: u64,
}

async fn get_profiles(State(api): State<Arc<Api>>, RawQuery(q): RawQuery) -> String {
    let actors: Vec<String> = url::form_urlencoded::parse(q.unwrap_or_default().as_bytes())
        .filter(|(k, _)| k == "actors")
        .map(|(_, v)| v.into_owned())
        .collect();
    api.calls.fetch_add(1, Ordering::Relaxed);
    api.actors.fetch_add(actors.len(), Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(api.latency_ms)).await;
    let profiles: Vec<serde_json::Value> = actors
        .iter()
        .map(|did| {
            serde_json::json!({"did": did, "handle": format!("{}.bsky.social", &did[8..]),
                "displayName": "Someone", "description": "Coffee, cameras, and trains",
                "followersCount": 1234, "followsCount": 321, "postsCount": 4567})
        })
        .collect();
    serde_json::json!({ "profiles": profiles }).to_string()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    earshot::tls::ensure_crypto_provider();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let api = Arc::new(Api {
        latency_ms: args.latency_ms,
        ..Api::default()
    });
    let addr: SocketAddr = runtime.block_on(async {
        let app = axum::Router::new()
            .route(
                "/xrpc/app.bsky.actor.getProfiles",
                axum::routing::get(get_profiles),
            )
            .with_state(api.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move { axum::serve(listener, app).await });
        anyhow::Ok(addr)
    })?;
    let settings = EnrichSettings {
        enabled: true,
        url: format!("http://{addr}/xrpc/app.bsky.actor.getProfiles"),
        max_wait_share: args.wait_share,
        ..EnrichSettings::default()
    };
    let profiles = Profiles::start(&settings, runtime.handle()).context("enrichment")?;

    // Cached lookups.
    profiles
        .lookup("did:plc:warm")
        .context("the warm-up profile")?;
    let rounds = 1_000_000u32;
    let started = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(profiles.lookup(std::hint::black_box("did:plc:warm")));
    }
    let hit_ns = started.elapsed().as_nanos() as f64 / f64::from(rounds);
    let calls_before = api.calls.load(Ordering::Relaxed);
    let actors_before = api.actors.load(Ordering::Relaxed);

    // Lookups of a stream of authors, some new, some seen.
    let mut rng = fastrand::Rng::with_seed(7);
    let mut seen = 0usize;
    let dids: Vec<String> = (0..args.lookups)
        .map(|_| {
            let n = if seen == 0 || rng.f64() < args.new_authors {
                seen += 1;
                seen
            } else {
                rng.usize(1..=seen)
            };
            format!("did:plc:author{n:08}")
        })
        .collect();
    let per_worker = dids.len().div_ceil(args.workers.max(1));
    let started = Instant::now();
    let results: Vec<(Duration, bool)> = std::thread::scope(|s| {
        let handles: Vec<_> = dids
            .chunks(per_worker)
            .map(|chunk| {
                let profiles = profiles.clone();
                let work = Duration::from_micros(args.work_us);
                s.spawn(move || {
                    let mut budget = profiles.budget();
                    chunk
                        .iter()
                        .map(|did| {
                            let busy = Instant::now();
                            while busy.elapsed() < work {
                                std::hint::spin_loop();
                            }
                            let t = Instant::now();
                            let got = profiles.lookup_within(did, &mut budget).is_some();
                            (t.elapsed(), got)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("worker"))
            .collect()
    });
    let wall = started.elapsed();
    let mut waits: Vec<Duration> = results.iter().map(|r| r.0).collect();
    waits.sort();
    let enriched = results.iter().filter(|r| r.1).count();
    let calls = api.calls.load(Ordering::Relaxed) - calls_before;
    let actors = api.actors.load(Ordering::Relaxed) - actors_before;
    let mean = waits.iter().sum::<Duration>() / waits.len() as u32;
    println!(
        "cached lookup: {hit_ns:.0} ns\n\
         stream: {} lookups by {} workers, {} distinct authors ({:.0}% new), API latency {} ms, \
         wait share {}, {} µs of other work a post\n\
         wait per lookup: mean {:.1} ms, p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms\n\
         profiles in time: {enriched} of {} ({:.1}%); API calls {calls}, {:.1} actors a call; \
         {:.0} lookups/s over {:.1} s",
        dids.len(),
        args.workers,
        seen,
        100.0 * seen as f64 / dids.len() as f64,
        args.latency_ms,
        args.wait_share,
        args.work_us,
        mean.as_secs_f64() * 1e3,
        percentile(&waits, 0.5).as_secs_f64() * 1e3,
        percentile(&waits, 0.9).as_secs_f64() * 1e3,
        percentile(&waits, 0.99).as_secs_f64() * 1e3,
        waits.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        dids.len(),
        100.0 * enriched as f64 / dids.len() as f64,
        actors as f64 / calls.max(1) as f64,
        dids.len() as f64 / wall.as_secs_f64(),
        wall.as_secs_f64(),
    );
    Ok(())
}
