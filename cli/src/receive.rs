//! `earshot receive`: a webhook receiver that verifies what earshot sends, for trying a
//! deployment end to end without a CRM (the compose set in `deploy/compose` runs one beside
//! each node).
//!
//! It is the receiver of `earshot demo` and the integration tests (`earshot_sim::receiver`):
//! every request must carry a valid Standard Webhooks signature made with the secret in
//! `--secret-env`, within five minutes of its timestamp, and a body that holds to the mention
//! contract (or is a digest or spike event). It answers 204 to those and 400 to anything
//! else. Once a second, when something arrived, it prints one line of counts; at shutdown,
//! a summary.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context as _;
use earshot::shutdown;
use earshot::sink::signature::SigningKey;
use earshot_sim::receiver::Receiver;

/// Where to listen and how to verify.
#[derive(clap::Args)]
pub(crate) struct ReceiveArgs {
    /// Address to listen on (plain HTTP: earshot sends to `http://` on a loopback address
    /// only, so put the receiver beside the earshot that delivers, or behind a TLS proxy).
    #[arg(long)]
    listen: SocketAddr,
    /// The environment variable holding the signing secret, the one the queues' `secret_env`
    /// names (`whsec_<base64>`, or any string used as it is).
    #[arg(long, default_value = "EARSHOT_WEBHOOK_SECRET")]
    secret_env: String,
}

/// What has arrived so far, as printed.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
struct Counts {
    mentions: usize,
    digests: usize,
    spike_events: usize,
    duplicates: u64,
    rejected: u64,
}

impl Counts {
    fn of(receiver: &Receiver) -> Self {
        let received = receiver.received.lock().unwrap_or_else(|e| e.into_inner());
        Counts {
            mentions: received.order.len(),
            digests: received.digests.len(),
            spike_events: received.spikes.len(),
            duplicates: receiver.duplicates.load(Ordering::Relaxed),
            rejected: receiver.rejected.load(Ordering::Relaxed),
        }
    }

    fn line(&self) -> String {
        format!(
            "mentions={} digests={} spike_events={} duplicates={} rejected={}",
            self.mentions, self.digests, self.spike_events, self.duplicates, self.rejected
        )
    }
}

/// Serves until Ctrl-C or SIGTERM; exit 0, or 1 when the secret is missing or the address
/// cannot be bound.
pub(crate) async fn run(args: ReceiveArgs) -> anyhow::Result<ExitCode> {
    let secret = std::env::var(&args.secret_env)
        .ok()
        .filter(|s| !s.is_empty())
        .with_context(|| format!("the secret's variable {} is not set", args.secret_env))?;
    let key = SigningKey::from_secret(&secret)
        .map_err(|e| anyhow::anyhow!("the secret in {}: {e}", args.secret_env))?;
    let receiver = Receiver::new(key);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let (trigger, _) = shutdown::channel();
    crate::install_signals(trigger.clone());
    let mut stop = trigger.subscribe();
    let app = receiver.router();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.recv().await })
            .await
    });
    println!(
        "earshot receive: listening on http://{addr}/ (any path), verifying with ${}",
        args.secret_env
    );
    let mut shown = Counts::default();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut stop = trigger.subscribe();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.recv() => break,
        }
        let now = Counts::of(&receiver);
        if now != shown {
            println!("{}", now.line());
            shown = now;
        }
    }
    server.await?.context("the receiver's server failed")?;
    println!("earshot receive: stopped; {}", Counts::of(&receiver).line());
    Ok(ExitCode::SUCCESS)
}
