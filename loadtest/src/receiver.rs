//! `earshot-loadtest receiver`: accepts earshot's signed webhooks and times each mention.
//!
//! Verification is earshot's own demo receiver check ([`earshot_sim::receiver::verify`]:
//! Standard Webhooks signature within tolerance, envelope, mention contract), so the load
//! test accepts exactly what a CRM would. On top of it this receiver records, for each
//! accepted post, receipt time − `data.post.created_at` (the firehose stamps `createdAt` with
//! the send time), counts repeat deliveries and refusals, and answers `GET /report` with a
//! [`ReceiverReport`] (per-step percentiles when given the firehose's expected file). On
//! Ctrl-C / SIGTERM it writes the same report to `--out` and exits. `--delay-ms` makes it a
//! slow endpoint (each answer held that long), for the overload case.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use earshot::sink::signature::SigningKey;
use earshot_loadtest::summary::{parse_expected, summarize, Received, ReceiverReport};
use earshot_loadtest::time::{now_us, parse_rfc3339_us};

/// `receiver` arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Port on 127.0.0.1 (0 = any).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Environment variable holding the webhook secret (`whsec_…` or any string).
    #[arg(long)]
    secret_env: String,
    /// Where to write the report on exit.
    #[arg(long)]
    out: PathBuf,
    /// The firehose's expected file, for per-step percentiles in the report.
    #[arg(long)]
    expected: Option<PathBuf>,
    /// Hold each webhook this long before answering: an endpoint slower than the input.
    /// Receipt time is taken before the wait, so latency is earshot's, not this delay's.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
}

#[derive(Default)]
struct Seen {
    /// (path, webhook-id) of every accepted delivery: a repeat at the same path is a
    /// duplicate (a mention routed to two queues arrives once at each).
    deliveries: HashSet<(String, String)>,
    /// Post ids already recorded.
    posts: HashSet<String>,
    report: ReceiverReport,
}

struct Shared {
    key: SigningKey,
    seen: Mutex<Seen>,
    expected: Option<PathBuf>,
    delay: std::time::Duration,
}

pub fn main(args: Args) -> anyhow::Result<()> {
    let secret = std::env::var(&args.secret_env)
        .with_context(|| format!("environment variable {} is not set", args.secret_env))?;
    let key = SigningKey::from_secret(&secret)
        .with_context(|| format!("the secret in {} is not usable", args.secret_env))?;
    let shared = Arc::new(Shared {
        key,
        seen: Mutex::default(),
        expected: args.expected.clone(),
        delay: std::time::Duration::from_millis(args.delay_ms),
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], args.port)))
            .await
            .with_context(|| format!("cannot listen on 127.0.0.1:{}", args.port))?;
        let addr = listener.local_addr()?;
        let app = Router::new()
            .route("/report", get(report))
            .route("/{*path}", post(hook))
            .route("/", post(hook))
            .with_state(shared.clone());
        println!("listening {addr}");
        axum::serve(listener, app)
            .with_graceful_shutdown(crate::terminated())
            .await
            .context("receiver server failed")
    })?;
    let report = build_report(&shared)?;
    let json = serde_json::to_string_pretty(&report)?;
    std::fs::write(&args.out, json).with_context(|| format!("cannot write {}", args.out.display()))
}

fn build_report(shared: &Shared) -> anyhow::Result<ReceiverReport> {
    let mut report = shared
        .seen
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .report
        .clone();
    if let Some(path) = &shared.expected {
        // Not there yet before the firehose starts: nothing is expected so far.
        let text = match std::fs::read_to_string(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            other => other.with_context(|| format!("cannot read {}", path.display()))?,
        };
        let expected = parse_expected(&text)?;
        report.steps = summarize(&expected, &report.received, 0).0;
    }
    Ok(report)
}

async fn report(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    match build_report(&shared).and_then(|r| Ok(serde_json::to_string(&r)?)) {
        Ok(json) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            json,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain")],
            format!("{e:#}\n"),
        ),
    }
}

async fn hook(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    // Receipt time before verification: the latency measured is earshot's, not this receiver's.
    let received_us = now_us();
    if !shared.delay.is_zero() {
        tokio::time::sleep(shared.delay).await;
    }
    let now_s = (received_us / 1_000_000) as i64;
    let verified = earshot_sim::receiver::verify(&shared.key, &headers, &body, now_s);
    let mut seen = shared.seen.lock().unwrap_or_else(|e| e.into_inner());
    match verified {
        Err(why) => {
            seen.report.rejected += 1;
            (StatusCode::BAD_REQUEST, why + "\n")
        }
        Ok((id, envelope)) => {
            if !seen.deliveries.insert((uri.path().to_string(), id)) {
                seen.report.duplicates += 1;
                return (StatusCode::NO_CONTENT, String::new());
            }
            let post = &envelope["data"]["post"];
            let post_id = post["id"].as_str().unwrap_or_default().to_string();
            if seen.posts.insert(post_id.clone()) {
                let latency_us = post["created_at"]
                    .as_str()
                    .and_then(parse_rfc3339_us)
                    .map(|sent| received_us.saturating_sub(sent));
                if latency_us.is_none() {
                    seen.report.unparsed_created_at += 1;
                }
                seen.report.received.push(Received {
                    post: post_id,
                    latency_us,
                });
            }
            (StatusCode::NO_CONTENT, String::new())
        }
    }
}
