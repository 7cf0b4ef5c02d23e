//! `earshot probe`: asks a running earshot whether it is alive (`/healthz`) or ready
//! (`/readyz`), and exits 0 or 1 accordingly. A container's health check and a Kubernetes exec
//! probe run it, so the image needs no HTTP client and no manifest holds the admin token: the
//! probe reads the address, the TLS certificate and the token's variable from the same config
//! as the server.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::admin_client::AdminClient;
use crate::load_config;

/// What to ask.
#[derive(clap::Args)]
pub(crate) struct ProbeArgs {
    /// Configuration file of the earshot to ask (without it: the embedded default).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Ask whether it is ready (`/readyz`: sources connected, outbox writable, no part
    /// stopped) instead of alive (`/healthz`).
    #[arg(long)]
    ready: bool,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 5)]
    timeout: u64,
}

/// Exit 0 when the endpoint answers 200; 1 with what it said (or why it could not be asked)
/// on stderr otherwise.
pub(crate) async fn run(args: ProbeArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args.config)?;
    let client = AdminClient::new(&config, Duration::from_secs(args.timeout.max(1)))?;
    let path = if args.ready { "readyz" } else { "healthz" };
    let url = format!("{}/{path}", client.base);
    let mut request = client.http.get(&url);
    if args.ready {
        request = request.bearer_auth(&client.token);
    }
    match request.send().await {
        Err(e) => {
            eprintln!("earshot probe: cannot reach {url}: {e}");
            Ok(ExitCode::FAILURE)
        }
        Ok(resp) => {
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            if status.is_success() {
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("earshot probe: {url} answered {status}: {}", body.trim());
                Ok(ExitCode::FAILURE)
            }
        }
    }
}
