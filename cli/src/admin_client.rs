//! A client of a running earshot's admin server, for the commands that talk to it (`dlq` on an
//! outbox in use, `probe`): its address from the config, its own certificate trusted when it
//! serves TLS (often self-signed), the token from the config's environment variable.

use std::time::Duration;

use anyhow::Context as _;
use earshot::config::Config;

/// The admin server of the earshot running `config`.
pub(crate) struct AdminClient {
    /// `http(s)://host:port`, loopback when it listens on every address.
    pub(crate) base: String,
    /// The token every endpoint but `/healthz` wants (empty when the variable is unset).
    pub(crate) token: String,
    pub(crate) http: reqwest::Client,
}

impl AdminClient {
    /// A client for `config`'s admin server, each request bounded by `timeout`.
    pub(crate) fn new(config: &Config, timeout: Duration) -> anyhow::Result<Self> {
        earshot::tls::ensure_crypto_provider();
        let mut http = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none());
        if let Some(tls) = &config.admin.tls {
            // The server's own certificate is the one to trust (often self-signed).
            let pem = std::fs::read(&tls.cert)
                .with_context(|| format!("reading {}", tls.cert.display()))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)? {
                http = http.add_root_certificate(cert);
            }
        }
        Ok(Self {
            base: earshot::admin::base_url(&config.admin, config.admin.listen),
            token: std::env::var(&config.admin.token_env).unwrap_or_default(),
            http: http.build()?,
        })
    }
}
