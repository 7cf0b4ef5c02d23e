//! Webhook sink: one delivery attempt of one outbox entry as a signed HTTP POST.
//!
//! Body and extra headers come from the queue's payload format ([`super::payload`]): the
//! Standard Webhooks envelope for `generic`, a CRM's create-API body otherwise. Every request
//! carries `webhook-id` (the entry's id: the same on every attempt and after every restart, the
//! receiver's idempotency key), `webhook-timestamp` and `webhook-signature` (fresh per attempt,
//! see [`super::signature`]), and the queue's `Authorization` header when it has one.
//!
//! Outcomes ([`Outcome::from_status`]):
//! - 2xx: delivered.
//! - 408, 425, 429, 5xx, timeouts and connection errors: retried. A `Retry-After` in seconds
//!   on 429 / 503 is honoured (the dispatcher pauses the queue until then).
//! - any other status: rejected — the endpoint refuses this payload and retrying cannot help;
//!   the entry goes to the dead-letter store at once, where it can be replayed once fixed.
//!
//! TLS is rustls; connections are kept alive and reused (one client per queue).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderValue;

use super::payload::{EventType, Latency, Outgoing, Payload};
use super::signature::SigningKey;
use crate::outbox::entry::{Entry, Event};

/// Where and how one webhook queue sends.
#[derive(Debug, Clone)]
pub struct WebhookTarget {
    /// Queue id.
    pub queue: String,
    /// Endpoint.
    pub url: url::Url,
    /// Signing key.
    pub key: SigningKey,
    /// `Authorization` header value, when the queue has credentials.
    pub auth: Option<HeaderValue>,
    /// Body format.
    pub payload: std::sync::Arc<Payload>,
    /// The queue's HTTP client (keep-alive pool, timeout).
    pub client: reqwest::Client,
}

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx.
    Delivered,
    /// Failed; may be retried, not before the given time if the endpoint named one.
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

/// One attempt's result.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// How it ended.
    pub outcome: Outcome,
    /// What happened, for logs and the dead-letter record (`HTTP 503`, the I/O error).
    pub detail: String,
}

/// The HTTP client of one queue: keep-alive, a per-request timeout, HTTP/1.1 (what every CRM
/// endpoint speaks), rustls.
pub fn client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    crate::tls::ensure_crypto_provider();
    reqwest::Client::builder()
        .timeout(timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .http1_only()
        .user_agent(concat!("earshot/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Makes attempt number `attempt` (1-based) to deliver `entry`.
pub async fn attempt(t: &WebhookTarget, entry: &Entry, attempt: u32, latency: Latency) -> Attempt {
    let now = SystemTime::now();
    let out = Outgoing {
        id: &entry.id,
        event: match entry.event {
            Event::MentionCreated => EventType::MentionCreated,
            Event::MentionDigest => EventType::MentionDigest,
            Event::SpikeStarted => EventType::SpikeStarted,
            Event::SpikeUpdated => EventType::SpikeUpdated,
            Event::SpikeEnded => EventType::SpikeEnded,
        },
        data: &entry.data,
        queue: &t.queue,
        attempt,
        timestamp: now,
        latency,
    };
    let rendered = match t.payload.render(&out) {
        Ok(r) => r,
        Err(e) => {
            return Attempt {
                outcome: Outcome::Rejected,
                detail: format!("the payload template failed: {e}"),
            }
        }
    };
    let ts = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
    let signature = t.key.sign(&entry.id, ts, &rendered.body);
    let mut req = t
        .client
        .post(t.url.clone())
        .header(http::header::CONTENT_TYPE, rendered.content_type.clone())
        .header("webhook-id", &entry.id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signature);
    for (name, value) in &rendered.headers {
        req = req.header(name.clone(), value.clone());
    }
    if let Some(auth) = &t.auth {
        req = req.header(http::header::AUTHORIZATION, auth.clone());
    }
    match req.body(rendered.body).send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let outcome = Outcome::from_status(
                status,
                resp.headers()
                    .get(http::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok()),
            );
            // Read (and discard) the body so the connection goes back to the pool.
            let _ = resp.bytes().await;
            Attempt {
                outcome,
                detail: format!("HTTP {status}"),
            }
        }
        Err(e) => Attempt {
            outcome: Outcome::Retry(None),
            detail: error_chain(&e),
        },
    }
}

/// The error and its causes on one line (`error sending request: connection refused`).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

/// Builds the `Authorization` header value from a queue's `auth` and the variable's value.
pub fn auth_header(scheme: super::AuthScheme, value: &str) -> Result<HeaderValue, String> {
    use base64::Engine as _;
    let text = match scheme {
        super::AuthScheme::Bearer => format!("Bearer {}", value.trim()),
        super::AuthScheme::Basic => format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(value.trim())
        ),
        super::AuthScheme::Header => value.trim().to_string(),
    };
    let mut v = HeaderValue::from_str(&text).map_err(|_| "not a valid header value".to_string())?;
    v.set_sensitive(true);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classification() {
        let cases = [
            (200, None, Outcome::Delivered),
            (201, None, Outcome::Delivered),
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
    fn auth_headers() {
        use crate::sink::AuthScheme::*;
        assert_eq!(auth_header(Bearer, " t0k ").unwrap(), "Bearer t0k");
        assert_eq!(
            auth_header(Basic, "me@x.com/token:abc").unwrap(),
            "Basic bWVAeC5jb20vdG9rZW46YWJj"
        );
        assert_eq!(
            auth_header(Header, "Zoho-oauthtoken 1000.x").unwrap(),
            "Zoho-oauthtoken 1000.x"
        );
        assert!(auth_header(Bearer, "a\nb").is_err());
        assert!(auth_header(Bearer, "x").unwrap().is_sensitive());
    }
}
