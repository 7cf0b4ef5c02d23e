//! Webhook sink: mention → signed HTTP POST, retried until accepted or given up.
//!
//! Body: the Standard Webhooks envelope `{"type":"mention.created","timestamp":…,"data":
//! <mention>}`, serialized once per mention. Headers: `webhook-id` (the stable mention id, the
//! receiver's idempotency key, identical on every retry), `webhook-timestamp` and
//! `webhook-signature` (fresh per attempt, see [`super::signature`]). Outcomes:
//! - 2xx: delivered.
//! - 408, 425, 429, 5xx and connection errors: retried with exponential backoff and full
//!   jitter; a `Retry-After` (seconds) on 429/503 is honoured, capped at `backoff_max_ms`.
//! - any other status: rejected (the endpoint refuses this payload; retrying cannot help).
//! - `max_attempts` failures: dead (given up).
//!
//! Every attempt is counted in `earshot_webhook_deliveries_total{queue,outcome}`. TLS is
//! rustls; connections are kept alive and reused.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::{mpsc, Semaphore};
use tracing::{debug, error, warn};

use super::signature::SigningKey;
use crate::mention::{rfc3339_millis, Mention};
use crate::metrics::{Latencies, WEBHOOK_DELIVERIES};

/// Settings of one webhook queue, validated.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Queue id (metric label).
    pub queue: String,
    /// Endpoint.
    pub url: url::Url,
    /// Signing key.
    pub key: SigningKey,
    /// Attempts before giving up.
    pub max_attempts: u32,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Deliveries in flight.
    pub concurrency: usize,
    /// First retry delay.
    pub backoff_base: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
}

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx.
    Delivered,
    /// Failed; will be retried after the given delay (if attempts remain).
    Retry(Option<Duration>),
    /// Refused for good.
    Rejected,
}

impl Outcome {
    /// Classifies an HTTP status, with the `Retry-After` header value if any.
    pub fn from_status(status: u16, retry_after: Option<&str>) -> Outcome {
        match status {
            200..=299 => Outcome::Delivered,
            408 | 425 | 429 | 500..=599 => {
                let after = if matches!(status, 429 | 503) {
                    retry_after
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs)
                } else {
                    None
                };
                Outcome::Retry(after)
            }
            _ => Outcome::Rejected,
        }
    }
}

/// Delay before retry number `attempt` (1-based): full jitter over
/// `min(max, base · 2^(attempt−1))`, so retries of many mentions spread out instead of
/// hitting a recovering endpoint together.
pub fn retry_delay(
    attempt: u32,
    base: Duration,
    max: Duration,
    rng: &mut fastrand::Rng,
) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let ceiling = exp.min(max);
    ceiling.mul_f64(rng.f64())
}

#[derive(Serialize)]
struct Envelope<'a> {
    r#type: &'static str,
    timestamp: String,
    data: &'a Mention,
}

/// Delivers every mention received on `rx` until the channel closes and everything queued has
/// been attempted to the end.
pub async fn run(
    settings: WebhookSettings,
    mut rx: mpsc::Receiver<Arc<Mention>>,
    latencies: Latencies,
) {
    crate::tls::ensure_crypto_provider();
    let client = match reqwest::Client::builder()
        .timeout(settings.timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        // Plain HTTP/1.1 keep-alive: what every CRM endpoint speaks.
        .http1_only()
        .user_agent(concat!("earshot/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            error!(queue = %settings.queue, error = %e, "cannot build the webhook HTTP client");
            return;
        }
    };
    let settings = Arc::new(settings);
    let permits = Arc::new(Semaphore::new(settings.concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    while let Some(mention) = rx.recv().await {
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closed");
        let (client, settings, latencies) = (client.clone(), settings.clone(), latencies.clone());
        tasks.spawn(async move {
            deliver(&client, &settings, &mention, &latencies).await;
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

async fn deliver(
    client: &reqwest::Client,
    s: &WebhookSettings,
    mention: &Mention,
    latencies: &Latencies,
) {
    let count = |outcome: &'static str| {
        metrics::counter!(WEBHOOK_DELIVERIES, "queue" => s.queue.clone(), "outcome" => outcome)
            .increment(1)
    };
    let envelope = Envelope {
        r#type: "mention.created",
        timestamp: rfc3339_millis(SystemTime::now()),
        data: mention,
    };
    let body = match serde_json::to_vec(&envelope) {
        Ok(b) => bytes::Bytes::from(b),
        Err(e) => {
            error!(queue = %s.queue, error = %e, "cannot serialize a mention");
            count("rejected");
            return;
        }
    };
    let mut rng = fastrand::Rng::new();
    for attempt in 1..=s.max_attempts.max(1) {
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs() as i64;
        let signature = s.key.sign(&mention.mention_id, ts, &body);
        let result = client
            .post(s.url.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &mention.mention_id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", signature)
            .body(body.clone())
            .send()
            .await;
        let outcome = match &result {
            Ok(resp) => Outcome::from_status(
                resp.status().as_u16(),
                resp.headers()
                    .get(http::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok()),
            ),
            Err(e) => {
                debug!(queue = %s.queue, error = %e, "webhook attempt failed");
                Outcome::Retry(None)
            }
        };
        match outcome {
            Outcome::Delivered => {
                count("delivered");
                latencies.record_delivery(mention.received.elapsed());
                return;
            }
            Outcome::Rejected => {
                count("rejected");
                let status = result.map(|r| r.status().as_u16()).unwrap_or(0);
                error!(queue = %s.queue, mention_id = %mention.mention_id, status,
                    "the endpoint rejected a mention; it will not be retried");
                return;
            }
            Outcome::Retry(after) => {
                if attempt == s.max_attempts.max(1) {
                    break;
                }
                count("retry");
                let delay = after.map(|d| d.min(s.backoff_max)).unwrap_or_else(|| {
                    retry_delay(attempt, s.backoff_base, s.backoff_max, &mut rng)
                });
                tokio::time::sleep(delay).await;
            }
        }
    }
    count("dead");
    warn!(queue = %s.queue, mention_id = %mention.mention_id, attempts = s.max_attempts,
        "giving up on a mention after the last attempt");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classification() {
        let cases = [
            (200, None, Outcome::Delivered),
            (204, None, Outcome::Delivered),
            (400, None, Outcome::Rejected),
            (401, None, Outcome::Rejected),
            (404, None, Outcome::Rejected),
            (408, None, Outcome::Retry(None)),
            (429, Some("7"), Outcome::Retry(Some(Duration::from_secs(7)))),
            (
                429,
                Some("Wed, 21 Oct 2015 07:28:00 GMT"),
                Outcome::Retry(None),
            ),
            (500, Some("7"), Outcome::Retry(None)),
            (
                503,
                Some(" 2 "),
                Outcome::Retry(Some(Duration::from_secs(2))),
            ),
        ];
        for (status, after, want) in cases {
            assert_eq!(
                Outcome::from_status(status, after),
                want,
                "{status} {after:?}"
            );
        }
    }

    #[test]
    fn retry_delays_grow_and_stay_under_the_cap() {
        let mut rng = fastrand::Rng::with_seed(7);
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(2);
        for attempt in 1..=12 {
            let ceiling = (base * (1 << (attempt - 1))).min(max);
            for _ in 0..50 {
                let d = retry_delay(attempt, base, max, &mut rng);
                assert!(d <= ceiling, "attempt {attempt}: {d:?} > {ceiling:?}");
            }
        }
        // Full jitter still reaches most of the ceiling over many draws.
        let top = (0..200)
            .map(|_| retry_delay(5, base, max, &mut rng))
            .max()
            .unwrap();
        assert!(top > Duration::from_millis(1200), "{top:?}");
    }
}
