//! `earshot-loadtest firehose`: serves generated Jetstream events over a loopback websocket
//! with earshot's own simulator ([`earshot_sim::simulator`]), at a target rate or a series
//! of rate steps.
//!
//! Each event is stamped with its send time (`time_us`, and `createdAt` for posts), so the
//! receiver can time a mention from the moment it was offered to the moment its webhook
//! arrived. The ids of the posts that mention a brand are written to the expected file with
//! their step, so the runner can tell what was lost. Progress goes to stdout, one line per
//! event of interest, for the runner: `listening ADDR`, `step-start I RATE`,
//! `step-end I GENERATED SECONDS`, `done WANTED` (frames that pass earshot's
//! `wantedCollections`, so the runner knows when earshot has caught up), and once a second
//! `progress GENERATED SENT BLOCKED_MS` (events generated and frames written to the client
//! so far, and how long generation has waited on `--max-lag`).
//!
//! Events are rendered once into a [`Pool`] and then restamped per send, so the generator
//! costs little of the machine the process under test runs on.
//!
//! Generation starts only once the first client has connected: the simulator sends a client
//! without a cursor the live tail, so events generated before it connects would be lost to
//! the test, not to earshot.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use earshot_loadtest::pool::Pool;
use earshot_loadtest::time::now_us;
use earshot_sim::generator::{GenSettings, Generator};
use earshot_sim::simulator::{self, EventLog, LogEntry};

/// `firehose` arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Port on 127.0.0.1 (0 = any).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Events per second, when no `--steps` are given.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Rates of successive steps, comma-separated (events per second).
    #[arg(long, value_delimiter = ',')]
    steps: Vec<u64>,
    /// Seconds per step.
    #[arg(long, default_value_t = 10.0)]
    step_seconds: f64,
    /// Generator seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Share of posts that mention a brand.
    #[arg(long, default_value_t = 0.05)]
    mention_rate: f64,
    /// Where to write `<step>\t<uri>` for each mentioning post sent.
    #[arg(long)]
    expected: PathBuf,
    /// Distinct events rendered before the first step and then sent in a cycle, restamped.
    #[arg(long, default_value_t = 50_000)]
    pool: usize,
    /// Stop generating while the client is this many events behind what was generated (0:
    /// never). With it the firehose is a source that backpressure reaches: the offered rate
    /// is a ceiling, and what is generated is what earshot takes. Without it a client that
    /// falls further behind than the replay window loses events.
    #[arg(long, default_value_t = 0)]
    max_lag: u64,
}

/// The collection earshot's config asks for; other commits are filtered by the simulator.
const WANTED: &str = "app.bsky.feed.post";

/// How long to wait for earshot to connect before giving up.
const CONNECT_WAIT: Duration = Duration::from_secs(60);

/// Tick of the generation loop: each tick generates what is due since the step started, so a
/// slow tick is caught up on the next rather than lowering the offered rate.
const TICK: Duration = Duration::from_millis(1);

pub fn main(args: Args) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    rt.block_on(serve(args))
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let rates = if args.steps.is_empty() {
        vec![args.rate]
    } else {
        args.steps.clone()
    };
    if rates.contains(&0) || args.step_seconds.is_nan() || args.step_seconds <= 0.0 {
        bail!("rates and --step-seconds must be positive");
    }
    // Keep up to 30 s of the fastest step, so a client that falls behind still gets every
    // event unless it is more than that far behind (then the loss is earshot's to report).
    let fastest = rates.iter().copied().max().unwrap_or(1);
    // With --max-lag nothing unsent is more than that far back, so a few times it is enough.
    let capacity = if args.max_lag > 0 {
        (args.max_lag as usize).saturating_mul(3).max(10_000)
    } else {
        (fastest as usize)
            .saturating_mul(30)
            .clamp(10_000, 2_000_000)
    };
    let log = EventLog::new(capacity);
    // Rendered before anything listens, so no step pays for JSON rendering; never more events
    // than the run sends.
    let total = rates
        .iter()
        .map(|&r| r as f64 * args.step_seconds)
        .sum::<f64>() as usize
        + 1;
    let pool = Pool::new(
        &mut Generator::new(GenSettings {
            seed: args.seed,
            mention_rate: args.mention_rate,
        })
        .stamp_created_at(true),
        args.pool.min(total),
    )
    .context("cannot render the event pool")?;
    let (trigger, _shutdown) = earshot::shutdown::channel();
    let addr = simulator::start(args.port, log.clone(), trigger.subscribe())
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{}", args.port))?;
    let mut expected = std::io::BufWriter::new(
        std::fs::File::create(&args.expected)
            .with_context(|| format!("cannot create {}", args.expected.display()))?,
    );
    let stop = terminated_flag();
    println!("listening {addr}");

    let waited = Instant::now();
    while log.connections.load(Ordering::Relaxed) == 0 {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        if waited.elapsed() > CONNECT_WAIT {
            bail!("no client connected to ws://{addr} within {CONNECT_WAIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The connection picks its start position just after it is counted; let it.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut sent = 0u64;
    let mut last_us = 0u64;
    let mut wanted = 0u64;
    let mut blocked = Duration::ZERO;
    let mut blocked_since: Option<Instant> = None;
    let mut next_progress = Instant::now();
    'steps: for (step, &rate) in rates.iter().enumerate() {
        println!("step-start {step} {rate}");
        let started = Instant::now();
        let mut generated = 0u64;
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tick.tick().await;
            if stop.load(Ordering::Relaxed) {
                break 'steps;
            }
            let elapsed = started.elapsed().as_secs_f64().min(args.step_seconds);
            let due = (rate as f64 * elapsed) as u64;
            while generated < due {
                // Checked inside the loop too: at rates beyond what this machine can generate
                // one tick runs for seconds, and the runner samples these lines.
                if sent.is_multiple_of(1024) && Instant::now() >= next_progress {
                    next_progress = Instant::now() + Duration::from_secs(1);
                    let waited = blocked + blocked_since.map_or(Duration::ZERO, |b| b.elapsed());
                    print_progress(sent, &log, waited);
                }
                if args.max_lag > 0
                    && wanted.saturating_sub(log.sent.load(Ordering::Relaxed)) >= args.max_lag
                {
                    blocked_since.get_or_insert_with(Instant::now);
                    break;
                }
                if let Some(since) = blocked_since.take() {
                    blocked += since.elapsed();
                }
                // Strictly increasing, so `time_us` stays a usable resume cursor.
                let t = now_us().max(last_us + 1);
                last_us = t;
                let event = pool.render(sent, t);
                sent += 1;
                if let Some(uri) = &event.mention_uri {
                    writeln!(expected, "{step}\t{uri}").context("writing the expected file")?;
                }
                if event.collection.is_none_or(|c| c == WANTED) {
                    wanted += 1;
                }
                log.push(LogEntry {
                    time_us: t,
                    collection: event.collection.map(str::to_owned),
                    frame: event.frame.into(),
                });
                generated += 1;
            }
            if Instant::now() >= next_progress {
                next_progress = Instant::now() + Duration::from_secs(1);
                let waited = blocked + blocked_since.map_or(Duration::ZERO, |b| b.elapsed());
                print_progress(sent, &log, waited);
            }
            if elapsed >= args.step_seconds {
                break;
            }
        }
        expected.flush().context("writing the expected file")?;
        println!(
            "step-end {step} {generated} {:.3}",
            started.elapsed().as_secs_f64()
        );
    }
    expected.flush().context("writing the expected file")?;
    if let Some(since) = blocked_since.take() {
        blocked += since.elapsed();
    }
    println!("done {wanted}");
    // Keep serving (a lagging client still reads its backlog) until told to stop.
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if Instant::now() >= next_progress {
            next_progress = Instant::now() + Duration::from_secs(1);
            print_progress(sent, &log, blocked);
        }
    }
    trigger.trigger();
    Ok(())
}

/// The progress line the runner samples: generated, sent, and time spent waiting on the client.
fn print_progress(generated: u64, log: &EventLog, waited: Duration) {
    println!(
        "progress {generated} {} {}",
        log.sent.load(Ordering::Relaxed),
        waited.as_millis()
    );
}

/// A flag set on Ctrl-C / SIGTERM, checked between ticks.
fn terminated_flag() -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let set = flag.clone();
    tokio::spawn(async move {
        crate::terminated().await;
        set.store(true, Ordering::Relaxed);
    });
    flag
}
