//! Setting a queue's delivery up from its config: the sink it delivers to (with its secrets
//! read from the environment) and the settings its dispatcher runs with.

use std::sync::Arc;

use super::breaker::BreakerSettings;
use super::cases::CaseSettings;
use super::dispatch::{Deliverer, DispatchSettings};
use super::file::{LineWriter, Target};
use super::nats::{NatsConnect, NatsTarget};
use super::payload::{Payload, PayloadFormat};
use super::signature::SigningKey;
use super::webhook::{self, WebhookTarget};
use super::{QueueConfig, SinkKind};
use crate::credentials::Credentials;

/// Why a webhook queue cannot be set up at start. Secrets are named by their environment
/// variable, never shown.
#[derive(Debug, thiserror::Error)]
pub enum QueueSetupError {
    /// No `url`.
    #[error("needs a url")]
    NoUrl,
    /// The `url` does not parse.
    #[error("url: {0}")]
    Url(#[from] url::ParseError),
    /// No `secret_env` on a queue whose format is read by a Standard Webhooks receiver.
    #[error("needs secret_env (a {0} queue's receiver checks the signature)")]
    NoSecretEnv(&'static str),
    /// An environment variable the queue names is not set.
    #[error("environment variable `{0}` is not set")]
    EnvNotSet(String),
    /// The signing secret is unusable.
    #[error("{0}")]
    Secret(#[from] crate::sink::signature::SecretError),
    /// The queue's credentials cannot be set up.
    #[error("auth: {0}")]
    Auth(#[from] crate::credentials::CredentialError),
    /// The payload template does not load.
    #[error("{0}")]
    Payload(#[from] crate::sink::payload::PayloadError),
    /// The HTTP client cannot be built.
    #[error("HTTP client: {0}")]
    Client(reqwest::Error),
    /// A `nats` queue without `subject`.
    #[error("needs a subject")]
    NoSubject,
    /// A `nats` queue's client cannot be set up.
    #[error("{0}")]
    Nats(#[from] crate::sink::nats::NatsSetupError),
}

/// How a queue delivers, from its config.
pub fn dispatch_settings(q: &QueueConfig) -> DispatchSettings {
    DispatchSettings {
        max_attempts: q.max_attempts,
        retry_schedule: q.retry_schedule.clone(),
        concurrency: q.concurrency,
        ordered: q.ordering == crate::sink::Ordering::Ordered,
        latency_budget: (!q.latency_budget.is_zero()).then_some(q.latency_budget),
        breaker: BreakerSettings {
            threshold: q.breaker_failures,
            cooldown: q.breaker_cooldown,
            max_cooldown: q.breaker_max_cooldown.max(q.breaker_cooldown),
        },
        disable_after: (!q.disable_after.is_zero()).then_some(q.disable_after),
        cases: (q.sink == SinkKind::Webhook
            && q.cases.follow_ups.unwrap_or(!matches!(
                q.format,
                PayloadFormat::Generic | PayloadFormat::Slack
            )))
        .then_some(CaseSettings {
            author_window: q.cases.author_window,
            keep: q.cases.keep,
        }),
    }
}

/// The sink a queue delivers to, set up from its config and the environment.
pub async fn deliverer(q: &QueueConfig) -> Result<Deliverer, QueueSetupError> {
    Ok(match (q.sink, &q.path) {
        (SinkKind::Webhook, _) => Deliverer::Webhook(webhook_target(q)?),
        (SinkKind::Nats, _) => Deliverer::Nats(nats_target(q).await?),
        (SinkKind::File, Some(p)) => {
            Deliverer::Lines(LineWriter::new(&q.id, Target::File(p.clone())))
        }
        _ => Deliverer::Lines(LineWriter::new(&q.id, Target::Stdout)),
    })
}

async fn nats_target(q: &QueueConfig) -> Result<NatsTarget, QueueSetupError> {
    let url = q.url.as_deref().ok_or(QueueSetupError::NoUrl)?;
    let subject = q.subject.as_deref().ok_or(QueueSetupError::NoSubject)?;
    let connect = NatsConnect {
        queue: &q.id,
        url,
        auth: q.nats_auth.as_ref(),
        ca: q.ca.as_deref(),
        timeout: q.timeout,
    };
    Ok(crate::sink::nats::connect(&connect, subject).await?)
}

/// A webhook queue's target: its URL, signing key, credentials and payload template.
pub fn webhook_target(q: &QueueConfig) -> Result<WebhookTarget, QueueSetupError> {
    let url = q.url.as_deref().ok_or(QueueSetupError::NoUrl)?;
    let url = url::Url::parse(url)?;
    let key = match q.secret_env.as_deref() {
        Some(var) => {
            let secret =
                std::env::var(var).map_err(|_| QueueSetupError::EnvNotSet(var.to_string()))?;
            Some(SigningKey::from_secret(&secret)?)
        }
        None if q.format.needs_signature() => {
            return Err(QueueSetupError::NoSecretEnv(q.format.as_str()))
        }
        None => None,
    };
    let client = webhook::client(q.timeout).map_err(QueueSetupError::Client)?;
    let auth = match &q.auth {
        None => None,
        Some(a) => Some(Arc::new(Credentials::from_config(
            &q.id,
            a,
            client.clone(),
        )?)),
    };
    let payload = Payload::load(q.format, q.template.as_deref(), &q.vars)?;
    Ok(WebhookTarget {
        queue: q.id.clone(),
        url,
        key,
        auth,
        payload: Arc::new(payload),
        client,
    })
}
